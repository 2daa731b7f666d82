/**
 * Whether a guest really runs under an accelerator on this host. /dev/kvm existing is
 * not enough: on some hosts (nested, Firecracker-style VMs) QEMU aborts with `failed to
 * set MSR` or runs without ever executing guest code. So the probe boots a 512-byte
 * boot sector that writes "OK" to COM1 and exits through isa-debug-exit; only that
 * round trip counts. Once per host: well under a second, or PROBE_TIMEOUT_MS when KVM hangs
 * (nova-compute registers its host only after it).
 *
 * The sector first does what bootloaders do, an IRET in 32-bit protected mode: on some
 * nested hosts KVM runs real-mode code but stops with "KVM internal error. Suberror: 1"
 * (emulation failure) at SYSLINUX's first protected-mode IRET, so a guest would hang
 * with an empty console while the probe, in real mode only, said KVM works.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { positional, runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import type { Accelerator } from './qemu-command.ts';

/**
 * At 0x7c00: cli; ds=0; lgdt [gdtr]; cr0.PE=1; jmp 0x08:pm. pm (32-bit, flat segments):
 * ds=ss=0x10; esp=0x7000; pushfd; push cs; push after; iretd. after: 'O','K' out to
 * 0x3f8; 0x10 out to 0xf4; hlt; jmp hlt. Then the GDT (null, code 0x08, data 0x10) at
 * 0x48 and its descriptor at 0x60.
 */
const CODE = [
  0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x66, 0x0f, 0x01, 0x16, 0x60, 0x7c, 0x0f, 0x20, 0xc0, 0x66, 0x83, 0xc8, 0x01, 0x0f, 0x22,
  0xc0, 0x66, 0xea, 0x1d, 0x7c, 0x00, 0x00, 0x08, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xd0, 0xbc, 0x00, 0x70,
  0x00, 0x00, 0x9c, 0x0e, 0x68, 0x32, 0x7c, 0x00, 0x00, 0xcf, 0x66, 0xba, 0xf8, 0x03, 0xb0, 0x4f, 0xee, 0xb0, 0x4b, 0xee,
  0x66, 0xba, 0xf4, 0x00, 0xb0, 0x10, 0xee, 0xf4, 0xeb, 0xfd, 0x66, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0x17, 0x00, 0x48, 0x7c,
  0x00, 0x00,
];
/** A working accelerator runs the sector in milliseconds even on a loaded host; a hung one never does. */
const PROBE_TIMEOUT_MS = 5_000;
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
      { logger: opts.logger, timeoutMs: opts.timeoutMs ?? PROBE_TIMEOUT_MS, allowedExitCodes: [EXIT_STATUS] },
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
