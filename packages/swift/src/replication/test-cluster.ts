/**
 * A three-node Swift cluster for the durability tests: each storage node a
 * child process (node-main.ts) with its own devices, rings with three
 * replicas over them (one zone per node), and helpers to look at the disks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashPath, loadOrCreateHashPathConf, type HashPathConf } from '../common/hash-path.ts';
import { RingBuilder } from '../ring/builder.ts';
import { writeRingFile } from '../ring/ring-data.ts';
import { Ring } from '../ring/ring.ts';

const here = dirname(fileURLToPath(import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function ls(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export class StorageNodeProcess {
  child?: ChildProcess;
  constructor(
    readonly index: number,
    readonly stateDir: string,
    readonly devicesDir: string,
    readonly port: number,
    readonly devices: string[],
  ) {}

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'node-main.ts'), this.stateDir, this.devicesDir, String(this.port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (b: Buffer) => {
        out += b.toString();
        if (out.includes('ready')) {
          child.stdout!.off('data', onData);
          child.stdout!.resume();
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code, sig) => reject(new Error(`storage node ${this.index} exited before ready (${code ?? sig})`)));
    });
  }

  /** Sends `signal` and waits for the process to be gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await gone;
  }
}

export interface Cluster {
  dir: string;
  stateDir: string;
  swiftDir: string;
  hash: HashPathConf;
  nodes: StorageNodeProcess[];
  rings: { account: Ring; container: Ring; object: Ring };
  /** .data (or other ext) files of one object on every node's disks, as paths. */
  objectFiles(account: string, container: string, obj: string, ext?: string): string[];
  close(): Promise<void>;
}

export async function startCluster(opts: { nodes?: number; devicesPerNode?: number; replicas?: number; partPower?: number } = {}): Promise<Cluster> {
  const nNodes = opts.nodes ?? 3;
  const perNode = opts.devicesPerNode ?? 2;
  const dir = mkdtempSync(join(tmpdir(), 'onestack-swift-cluster-'));
  const stateDir = join(dir, 'state');
  const swiftDir = join(stateDir, 'swift');
  const hash = loadOrCreateHashPathConf(stateDir);
  const nodes: StorageNodeProcess[] = [];
  for (let i = 0; i < nNodes; i++) {
    const devicesDir = join(dir, `node${i + 1}`);
    const devices = Array.from({ length: perNode }, (_, d) => `sd${i * perNode + d + 1}`);
    for (const d of devices) mkdirSync(join(devicesDir, d), { recursive: true });
    nodes.push(new StorageNodeProcess(i, stateDir, devicesDir, await freePort(), devices));
  }
  const rings = {} as Cluster['rings'];
  for (const name of ['account', 'container', 'object'] as const) {
    const b = new RingBuilder(opts.partPower ?? 6, opts.replicas ?? 3, 0);
    for (const n of nodes) for (const device of n.devices) b.addDevice({ region: 1, zone: n.index + 1, ip: '127.0.0.1', port: n.port, device, weight: 100 });
    b.rebalance({ seed: 1 });
    const file = join(swiftDir, `${name}.ring.gz`);
    writeRingFile(file, b.getRing());
    rings[name] = Ring.load(file, hash);
  }
  const close = async () => {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL').catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
  } catch (e) {
    await close();
    throw e;
  }
  const objectFiles = (account: string, container: string, obj: string, ext = '.data') => {
    const h = hashPath(hash, account, container, obj);
    const found: string[] = [];
    for (const n of nodes) {
      for (const d of n.devices) {
        const objects = join(n.devicesDir, d, 'objects');
        for (const part of ls(objects).filter((p) => /^\d+$/.test(p))) {
          const hashDir = join(objects, part, h.slice(-3), h);
          for (const f of ls(hashDir)) if (f.endsWith(ext)) found.push(join(hashDir, f));
        }
      }
    }
    return found;
  };
  return {
    dir,
    stateDir,
    swiftDir,
    hash,
    nodes,
    rings,
    objectFiles,
    close,
  };
}
