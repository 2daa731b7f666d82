import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { hasExited } from '@onestack/core/exec/process-exit.ts';
import { runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { VolumeDriverError } from './volume-driver.ts';

/** Where a consumer on another host reads the volume: `nbd://host:port/exportName`, raw. */
export interface NbdExport {
  host: string;
  port: number;
  exportName: string;
}

/** What an export serves; kept beside its pid file so a restarted service can serve it again. */
interface ExportRecord extends NbdExport {
  path: string;
  format: 'qcow2' | 'raw';
  readOnly: boolean;
}

/**
 * One `qemu-storage-daemon` per export (one per attachment): it opens the volume
 * file in its own format and serves it raw over NBD on listenAddress. Started with
 * --daemonize, so the call returns only once the server listens; its pid file and a
 * record of what it serves live in runDir under the export's key, which is how a
 * restarted service finds, keeps, restarts or ends the exports of a previous one.
 */
export class NbdExports {
  constructor(private readonly o: { runDir: string; listenAddress: string; logger: ExecLogger }) {}

  private file(key: string, ext: 'pid' | 'json'): string {
    if (!/^[A-Za-z0-9-]{1,100}$/.test(key)) throw new VolumeDriverError(`invalid export key ${JSON.stringify(key)}`);
    return join(this.o.runDir, `${key}.${ext}`);
  }

  /** Serves the file under key; an export already running for key is answered as is. */
  async start(key: string, spec: { path: string; format: 'qcow2' | 'raw'; readOnly: boolean; exportName: string }, port?: number): Promise<NbdExport> {
    const known = await this.record(key);
    if (known && (await this.pid(key))) return { host: known.host, port: known.port, exportName: known.exportName };
    await mkdir(this.o.runDir, { recursive: true });
    const rec: ExportRecord = { host: this.o.listenAddress, port: port ?? (await freePort(this.o.listenAddress)), ...spec };
    const blockdevs = [
      // A read-only export shares the image with other readers (several ro attachments of a multiattach volume).
      { driver: 'file', filename: spec.path, 'node-name': 'file0', 'read-only': spec.readOnly, ...(spec.readOnly ? { 'force-share': true } : {}) },
      { driver: spec.format, file: 'file0', 'node-name': 'disk0', 'read-only': spec.readOnly },
    ];
    try {
      await runCommand(
        'qemu-storage-daemon',
        [
          '--daemonize',
          '--pidfile', this.file(key, 'pid'),
          ...blockdevs.flatMap((b) => ['--blockdev', JSON.stringify(b)]),
          '--nbd-server', `addr.type=inet,addr.host=${rec.host},addr.port=${rec.port}`,
          '--export', `type=nbd,id=export0,node-name=disk0,name=${rec.exportName},writable=${spec.readOnly ? 'off' : 'on'}`,
        ],
        { logger: this.o.logger, timeoutMs: 30_000 },
      );
    } catch (e) {
      await rm(this.file(key, 'pid'), { force: true });
      throw new VolumeDriverError(`could not export ${spec.path} over NBD: ${e instanceof Error ? e.message : String(e)}`, 'backend', { cause: e });
    }
    await writeFile(this.file(key, 'json'), JSON.stringify(rec));
    return { host: rec.host, port: rec.port, exportName: rec.exportName };
  }

  /** Ends the export and waits until its process is gone; an absent export is already stopped. */
  async stop(key: string): Promise<void> {
    const pid = await this.pid(key);
    if (pid) await terminate(pid);
    await rm(this.file(key, 'pid'), { force: true });
    await rm(this.file(key, 'json'), { force: true });
  }

  /** Keys of the exports recorded in runDir (running or not). */
  async keys(): Promise<string[]> {
    const names = await readdir(this.o.runDir).catch(() => [] as string[]);
    return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length));
  }

  async record(key: string): Promise<ExportRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.file(key, 'json'), 'utf8')) as ExportRecord;
    } catch {
      return undefined;
    }
  }

  /** The daemon's pid while it runs: the pid file's process must still be that qemu-storage-daemon (pids are reused). */
  async pid(key: string): Promise<number | undefined> {
    const pidFile = this.file(key, 'pid');
    const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    return cmdline[0]?.endsWith('qemu-storage-daemon') && cmdline.includes(pidFile) ? pid : undefined;
  }

  /**
   * After a restart: the exports in `keep` run again on their recorded ports
   * (consumers hold those addresses), every other recorded export is ended.
   */
  async reconcile(keep: Set<string>): Promise<void> {
    for (const key of await this.keys()) {
      const rec = await this.record(key);
      if (!keep.has(key) || !rec) {
        await this.stop(key);
        continue;
      }
      if (await this.pid(key)) continue;
      await rm(this.file(key, 'json'), { force: true });
      await this.start(key, rec, rec.port).catch((err: unknown) => this.o.logger.warn({ err, key }, 'NBD export could not be restarted'));
    }
  }

  /** Service shutdown: every daemon ends, the records stay so that reconcile serves them again on the same ports. */
  async suspendAll(): Promise<void> {
    for (const key of await this.keys()) {
      const pid = await this.pid(key);
      if (pid) await terminate(pid);
      await rm(this.file(key, 'pid'), { force: true });
    }
  }

  async stopAll(): Promise<void> {
    for (const key of await this.keys()) await this.stop(key);
  }
}

async function terminate(pid: number): Promise<void> {
  const alive = async () => !(await hasExited(pid));
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 100 && (await alive()); i++) {
    if (i === 50) process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
