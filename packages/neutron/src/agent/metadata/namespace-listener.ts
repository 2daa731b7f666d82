/**
 * A listening TCP socket bound inside another network namespace, held by this process.
 *
 * Node cannot enter a namespace, but a socket belongs to the namespace it was created in
 * for its whole life. So a helper (this Node binary with a one-line script) runs inside the
 * namespace through `ip netns exec`, binds, hands the listening socket back over Node's IPC
 * channel (SCM_RIGHTS underneath) and exits. The agent then serves connections from inside
 * the namespace itself: no daemon per namespace, nothing left running when onestack stops,
 * and a restart simply binds again on its first reconcile.
 *
 * A socket keeps its namespace alive: close it before deleting the namespace.
 */
import type { Server } from 'node:net';
import { runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import type { IpLib } from '../linux/ip-lib.ts';

// One line: argument vectors carry no line breaks. argv: [node, host, port].
const HELPER =
  "const s=require('net').createServer();" +
  "s.on('error',(e)=>process.send({error:e.message},()=>process.exit(1)));" +
  "s.listen({host:process.argv[1],port:Number(process.argv[2]),exclusive:true},()=>process.send({listening:true},s,()=>process.exit(0)));";

export async function listenInNamespace(
  ip: IpLib,
  logger: ExecLogger,
  namespace: string,
  bind: { host: string; port: number },
  timeoutMs = 20_000,
): Promise<Server> {
  let server: Server | undefined;
  let error: string | undefined;
  const args = ip.netnsExecArgs(namespace, process.execPath, ['-e', HELPER, bind.host, String(bind.port)]);
  try {
    await runCommand('ip', args, {
      logger,
      timeoutMs,
      onMessage: (message, handle) => {
        const m = message as { listening?: boolean; error?: string };
        if (m.listening && handle) server = handle as Server;
        if (m.error) error = m.error;
      },
    });
  } catch (err) {
    throw new Error(`cannot listen on ${bind.host}:${bind.port} in ${namespace}: ${error ?? (err as Error).message}`);
  }
  if (!server) throw new Error(`cannot listen on ${bind.host}:${bind.port} in ${namespace}: ${error ?? 'no socket came back'}`);
  return server;
}
