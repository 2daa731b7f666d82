/**
 * Waits for guests' sshd, run inside a network namespace (`ip netns exec NS node … ssh-prober.ts`)
 * by bench/nova: reads one IPv4 address per line on stdin and, once the guest there answers on
 * port 22 with an SSH banner, writes `ADDRESS EPOCH_MS` on stdout. Every address is tried every
 * 100 ms. One long-lived process for the whole run: a process started per attempt (ssh-keyscan
 * every 100 ms) made the bench's own fork()s the largest item on the event loop it measures.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const ATTEMPT_MS = 1000;
const PERIOD_MS = 100;

function banner(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port: 22, timeout: ATTEMPT_MS });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', (chunk) => done(chunk.toString('latin1').startsWith('SSH-')));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

async function watch(ip: string): Promise<void> {
  while (!(await banner(ip))) await new Promise((r) => setTimeout(r, PERIOD_MS));
  process.stdout.write(`${ip} ${Date.now()}\n`);
}

for await (const line of createInterface({ input: process.stdin })) {
  const ip = line.trim();
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) void watch(ip);
}
