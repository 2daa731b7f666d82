/**
 * Whether a guest really runs under an accelerator on this host. /dev/kvm existing is
 * not enough: on some hosts (nested, Firecracker-style VMs) QEMU aborts with `failed to
 * set MSR` or runs without ever executing guest code. So the probe boots a 512-byte
 * boot sector that writes "OK" to COM1 and exits through isa-debug-exit; only that
 * round trip counts. Once per host, a second or two.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { positional, runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import type { Accelerator } from './qemu-command.ts';

/** mov dx,0x3f8; mov al,'O'; out dx,al; mov al,'K'; out dx,al; mov dx,0xf4; mov al,0x10; out dx,al; hlt; jmp hlt */
const CODE = [0xba, 0xf8, 0x03, 0xb0, 0x4f, 0xee, 0xb0, 0x4b, 0xee, 0xba, 0xf4, 0x00, 0xb0, 0x10, 0xee, 0xf4, 0xeb, 0xfd];
/** isa-debug-exit turns the value 0x10 into QEMU's exit status (0x10 << 1) | 1. */
const EXIT_STATUS = 33;

/** SeaBIOS does not boot a virtio disk of one sector: the image is a whole MiB. */
export function bootSector(): Buffer {
  const b = Buffer.alloc(1024 * 1024);
  Buffer.from(CODE).copy(b);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

export async function guestRunsUnder(accel: Accelerator, opts: { logger: ExecLogger; timeoutMs?: number }): Promise<boolean> {
  if (accel === 'kvm' && !existsSync('/dev/kvm')) return false;
  const dir = mkdtempSync(join(tmpdir(), 'onestack-accel-probe-'));
  try {
    const disk = join(dir, 'boot.img');
    const serial = join(dir, 'serial.log');
    writeFileSync(disk, bootSector());
    const cpu = accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max'];
    await runCommand(
      'qemu-system-x86_64',
      [
        ...cpu, '-machine', 'q35', '-m', '32', '-nodefaults', '-no-user-config', '-display', 'none',
        '-drive', `file=${disk},format=raw,if=none,id=d0`, '-device', 'virtio-blk-pci,drive=d0,bootindex=1',
        '-device', 'isa-debug-exit,iobase=0xf4,iosize=4', '-serial', `file:${serial}`,
      ].map((a) => (a.startsWith('-') ? a : positional(a))),
      { logger: opts.logger, timeoutMs: opts.timeoutMs ?? 20_000, allowedExitCodes: [EXIT_STATUS] },
    );
    return existsSync(serial) && readFileSync(serial, 'latin1').includes('OK');
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** KVM when a guest really runs under it, TCG otherwise. */
export async function pickAccelerator(opts: { logger: ExecLogger }): Promise<Accelerator> {
  return (await guestRunsUnder('kvm', opts)) ? 'kvm' : 'tcg';
}
