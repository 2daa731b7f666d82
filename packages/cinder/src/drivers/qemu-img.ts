import { CommandError, positional, runCommand, which, type Arg, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';

/**
 * qemu-img for the file driver. Opening an untrusted image is what a hostile
 * header exploits, so untrusted reads run under prlimit with the format given
 * (never probed: probing is how a raw file gets read as qcow2).
 * Glance (format-inspector.ts) and Nova (image-cache.ts) each carry the same
 * guard: it belongs in packages/core (proposed, not lifted this session).
 */
const AS_BYTES = 1024 ** 3;
const CPU_SECONDS = 30;
const QEMU_DRIVERS: Record<string, string> = { raw: 'raw', qcow2: 'qcow2', vmdk: 'vmdk', vhd: 'vpc', vhdx: 'vhdx', vdi: 'vdi' };

export interface QemuImgJson {
  format?: string;
  'virtual-size'?: number;
  'actual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'format-specific'?: { type?: string; data?: { 'data-file'?: string } };
}

export class QemuImg {
  constructor(private readonly logger: ExecLogger) {}

  async run(args: readonly Arg[], timeoutMs = 600_000): Promise<string> {
    return (await runCommand('qemu-img', args, { logger: this.logger, timeoutMs })).stdout;
  }

  /** `qemu-img info` of a file this driver made itself. */
  async info(path: string, format = 'qcow2'): Promise<QemuImgJson> {
    return JSON.parse(await this.run(['info', '--output=json', '-f', format, '--', positional(path)], 60_000)) as QemuImgJson;
  }

  /**
   * Inspects an untrusted image as its declared format and answers the reason to
   * refuse it, or its virtual size in bytes.
   */
  async inspectUntrusted(path: string, diskFormat: string): Promise<{ unsafe: string } | { virtualSize: number; driver: string }> {
    const driver = QEMU_DRIVERS[diskFormat];
    if (!driver) return { unsafe: `disk_format ${diskFormat} is not supported for volumes` };
    const qemuImg = which('qemu-img');
    if (!qemuImg) throw new CommandError({ program: 'qemu-img', args: [], reason: 'not_found', detail: 'qemu-img is not installed (Debian: qemu-utils)' });
    let info: QemuImgJson;
    try {
      const { stdout } = await runCommand('prlimit', [`--as=${AS_BYTES}`, `--cpu=${CPU_SECONDS}`, '--', qemuImg, 'info', '--output=json', '-f', driver, '--', positional(path)], {
        logger: this.logger,
        timeoutMs: 2 * CPU_SECONDS * 1000,
        maxOutputBytes: 1024 ** 2,
      });
      info = JSON.parse(stdout) as QemuImgJson;
    } catch (e) {
      if (e instanceof CommandError && (e.reason === 'not_found' || e.reason === 'spawn')) throw e;
      return { unsafe: `qemu-img could not read the image as ${driver}` };
    }
    if (info.format !== driver) return { unsafe: `image is ${info.format} but disk_format says ${diskFormat}` };
    if (info['backing-filename'] !== undefined || info['full-backing-filename'] !== undefined) return { unsafe: 'image has a backing file' };
    if (info['format-specific']?.data?.['data-file'] !== undefined) return { unsafe: 'image has an external data file' };
    if (driver === 'raw' && (await this.probesAsOther(path))) return { unsafe: 'image declared raw holds another format' };
    return { virtualSize: info['virtual-size'] ?? 0, driver };
  }

  /** A file declared raw whose header says qcow2 (etc.) would let a guest's backing file reference host files later. */
  private async probesAsOther(path: string): Promise<boolean> {
    const { open } = await import('node:fs/promises');
    const fh = await open(path, 'r');
    try {
      const head = Buffer.alloc(8);
      await fh.read(head, 0, 8, 0);
      const magic = head.subarray(0, 4).toString('latin1');
      return magic === 'QFI\xfb' || magic === 'KDMV' || head.toString('latin1') === 'conectix' || head.toString('latin1').startsWith('vhdxfile');
    } finally {
      await fh.close();
    }
  }
}
