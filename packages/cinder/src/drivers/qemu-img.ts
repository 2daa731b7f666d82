import { positional, runCommand, type Arg, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { checkUntrustedFile } from '@onestack/core/images/untrusted-file.ts';

/**
 * qemu-img for the file driver. Images from users go through core's untrusted-image
 * check first (opening an untrusted image is what a hostile header exploits).
 */
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
   * Inspects an untrusted image as its declared format (core's checkUntrustedFile) and
   * answers the reason to refuse it, or its virtual size in bytes and qemu's driver name.
   */
  async inspectUntrusted(path: string, diskFormat: string): Promise<{ unsafe: string } | { virtualSize: number; driver: string }> {
    const driver = QEMU_DRIVERS[diskFormat];
    if (!driver) return { unsafe: `disk_format ${diskFormat} is not supported for volumes` };
    const verdict = await checkUntrustedFile(path, diskFormat, { logger: this.logger });
    return 'unsafe' in verdict ? verdict : { virtualSize: verdict.virtualSize, driver };
  }
}
