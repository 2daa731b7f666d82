import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { runCommand, which, type ExecLogger } from '../exec/privileged-exec.ts';
import { checkDiskFormat, createInspector, qemuImgInfo, virtualSizeFor, type Inspection } from './format-inspector.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const quiet: ExecLogger = { info: () => {}, warn: () => {} };
const dir = mkdtempSync(join(tmpdir(), 'onestack-inspector-'));
const at = (name: string) => join(dir, name);

async function qemuImg(...args: string[]): Promise<void> {
  await runCommand('qemu-img', args, { logger: quiet, timeoutMs: 60_000 });
}

async function qemuVirtualSize(path: string): Promise<number> {
  const { stdout } = await runCommand('qemu-img', ['info', '--output=json', '--', path], { logger: quiet, timeoutMs: 60_000 });
  return (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'];
}

interface Watched {
  inspection: Inspection;
  /** Most header bytes the inspector held at any point. */
  peak: number;
  /** What came out of the pass-through. */
  out: { size: number; sha256: string };
}

async function watch(source: Readable): Promise<Watched> {
  const inspector = createInspector();
  let peak = 0;
  let size = 0;
  const sha = createHash('sha256');
  await pipeline(
    source,
    inspector.stream,
    new Writable({
      write(chunk: Buffer, _e, done) {
        peak = Math.max(peak, inspector.retainedBytes());
        size += chunk.length;
        sha.update(chunk);
        done();
      },
    }),
  );
  return { inspection: inspector.result(), peak, out: { size, sha256: sha.digest('hex') } };
}

/** Inspects in several chunkings: headers split across chunks must read the same. */
async function inspect(bytes: Buffer): Promise<Inspection> {
  const results = [];
  for (const chunk of [64 * KiB, 4093, 509]) {
    const parts = [];
    for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
    const watched = await watch(Readable.from(parts, { objectMode: false }));
    assert.equal(watched.out.size, bytes.length, 'the pass-through passes every byte');
    assert.equal(watched.out.sha256, createHash('sha256').update(bytes).digest('hex'));
    results.push(watched.inspection);
  }
  assert.deepEqual(results[1], results[0], 'same verdict in 4093-byte chunks');
  assert.deepEqual(results[2], results[0], 'same verdict in 509-byte chunks');
  return results[0];
}

const inspectFile = (name: string) => inspect(readFileSync(at(name)));

/** A copy of a file with some bytes changed. */
function patched(name: string, edits: Array<[offset: number, bytes: Buffer | number[]]>): Buffer {
  const b = Buffer.from(readFileSync(at(name)));
  for (const [offset, bytes] of edits) Buffer.from(bytes).copy(b, offset);
  return b;
}

/** A sparse VMDK with its embedded descriptor (at 0x200, 10 sectors for qemu's) replaced. */
function withDescriptor(name: string, descriptor: string): Buffer {
  const b = Buffer.from(readFileSync(at(name)));
  b.fill(0, 0x200, 0x200 + 10 * 512);
  b.write(descriptor, 0x200, 'latin1');
  return b;
}

const descriptor = (createType: string, extent: string) =>
  `# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType="${createType}"\n\n# Extent description\n${extent}\n\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\n`;

function u64le(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}

/** An MBR with the given partition entries (boot flag, type, start LBA), sectors 512 each. */
function mbrDisk(size: number, entries: Array<{ boot: number; type: number; chs?: number[]; lba: number }>): Buffer {
  const b = Buffer.alloc(size);
  entries.forEach((e, i) => {
    const at = 446 + 16 * i;
    b[at] = e.boot;
    Buffer.from(e.chs ?? [0x20, 0x21, 0x00]).copy(b, at + 1);
    b[at + 4] = e.type;
    b.writeUInt32LE(e.lba, at + 8);
    b.writeUInt32LE(100, at + 12);
  });
  b.writeUInt16LE(0xaa55, 510);
  return b;
}

/** An ISO 9660 primary volume descriptor at 32 KiB, as genisoimage writes one. */
function isoImage(blocks: number): Buffer {
  const b = Buffer.alloc(blocks * 2048);
  const pvd = 16 * 2048;
  b[pvd] = 1;
  b.write('CD001', pvd + 1, 'latin1');
  b[pvd + 6] = 1;
  b.writeUInt32LE(blocks, pvd + 80);
  b.writeUInt32BE(blocks, pvd + 84);
  b.writeUInt16LE(2048, pvd + 128);
  b.writeUInt16BE(2048, pvd + 130);
  return b;
}

before(async () => {
  await qemuImg('create', '-f', 'qcow2', at('plain.qcow2'), '10M');
  await qemuImg('create', '-f', 'qcow2', '-b', '/etc/passwd', '-F', 'raw', at('backing.qcow2'), '10M');
  await qemuImg('create', '-f', 'raw', at('data.raw'), '1M');
  await qemuImg('create', '-f', 'qcow2', '-o', `data_file=${at('data.raw')}`, at('datafile.qcow2'), '1M');
  await qemuImg('create', '-f', 'qcow2', '-o', 'compat=0.10', at('v2.qcow2'), '10M');
  await qemuImg('create', '-f', 'qcow2', '-o', 'compat=0.10', '-b', '/etc/passwd', '-F', 'raw', at('v2-backing.qcow2'), '10M');
  await qemuImg('create', '-f', 'vmdk', at('sparse.vmdk'), '10M');
  await qemuImg('create', '-f', 'vmdk', '-o', 'subformat=streamOptimized', at('stream.vmdk'), '10M');
  await qemuImg('create', '-f', 'vmdk', '-o', 'subformat=monolithicFlat', at('flat.vmdk'), '10M');
  await qemuImg('create', '-f', 'vpc', at('disk.vhd'), '10M');
  await qemuImg('create', '-f', 'vhdx', at('disk.vhdx'), '10M');
  await qemuImg('create', '-f', 'vdi', at('disk.vdi'), '10M');
  await qemuImg('create', '-f', 'qed', at('disk.qed'), '10M');
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('format inspector: qcow2', () => {
  it('reads the format and virtual size of a plain qcow2', async () => {
    assert.deepEqual(await inspectFile('plain.qcow2'), { format: 'qcow2', size: 196616, virtualSize: 10 * MiB });
    assert.deepEqual(await inspectFile('v2.qcow2'), { format: 'qcow2', size: readFileSync(at('v2.qcow2')).length, virtualSize: 10 * MiB });
  });

  it('refuses a backing file (v3 and v2)', async () => {
    assert.equal((await inspectFile('backing.qcow2')).unsafe, 'Image has a backing file');
    assert.equal((await inspectFile('v2-backing.qcow2')).unsafe, 'Image has a backing file');
  });

  it('refuses a backing format extension even when the header offset was zeroed', async () => {
    const b = patched('backing.qcow2', [[8, Buffer.alloc(12)]]);
    assert.equal((await inspect(b)).unsafe, 'Image has a backing file');
  });

  it('refuses an external data file, by feature bit and by header extension alone', async () => {
    assert.equal((await inspectFile('datafile.qcow2')).unsafe, 'Image has data_file set');
    const bitCleared = patched('datafile.qcow2', [[0x4f, [readFileSync(at('datafile.qcow2'))[0x4f] & ~0x04]]]);
    assert.equal((await inspect(bitCleared)).unsafe, 'Image has data_file set');
  });

  it('refuses unknown incompatible features and unsupported versions', async () => {
    assert.equal((await inspect(patched('plain.qcow2', [[0x4f, [0x10]]]))).unsafe, 'Unknown QCOW2 features found');
    assert.equal((await inspect(patched('plain.qcow2', [[0x48, [0x01]]]))).unsafe, 'Unknown QCOW2 features found');
    assert.equal((await inspect(patched('plain.qcow2', [[4, [0, 0, 0, 1]]]))).unsafe, 'Unsupported qcow2 version');
  });

  it('refuses header extensions it cannot see the end of', async () => {
    const noEnd = patched('plain.qcow2', [[100, [0, 0, 0xff, 0xfc]]]);
    assert.equal((await inspect(noEnd)).unsafe, 'Image header extensions could not be inspected');
  });
});

describe('format inspector: vmdk', () => {
  it('accepts monolithicSparse and streamOptimized, with their virtual size', async () => {
    assert.deepEqual(await inspectFile('sparse.vmdk'), { format: 'vmdk', size: 65536, virtualSize: 10 * MiB });
    assert.deepEqual(await inspectFile('stream.vmdk'), { format: 'vmdk', size: 65536, virtualSize: 10 * MiB });
  });

  it('refuses a descriptor file (monolithicFlat) that points at an extent file', async () => {
    const result = await inspectFile('flat.vmdk');
    assert.equal(result.format, 'vmdk');
    assert.match(result.unsafe!, /Unsupported subformat monolithicFlat/);
    assert.match(result.unsafe!, /Descriptor file refers to extents in other files/);
  });

  it('refuses a text descriptor even when it claims an allowed subformat', async () => {
    const text = Buffer.from(descriptor('monolithicSparse', 'RW 20480 SPARSE "other-image"'));
    assert.equal((await inspect(text)).unsafe, 'Descriptor file refers to extents in other files');
  });

  it('refuses embedded descriptors that name other files, other subformats or odd lines', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['monolithicSparse', 'RW 20480 SPARSE "/etc/passwd"', /Invalid extent filenames found/],
      ['monolithicSparse', 'RW 20480 FLAT "neighbour-image" 0', /Extent refers to another file/],
      ['monolithicFlat', 'RW 20480 SPARSE "sparse.vmdk"', /Unsupported subformat monolithicFlat/],
      ['twoGbMaxExtentSparse', 'RW 20480 SPARSE "sparse.vmdk"', /Unsupported subformat twoGbMaxExtentSparse/],
      ['monolithicSparse', 'RW 20480 SPARSE "sparse.vmdk"\n$(touch /tmp/pwned)', /Invalid VMDK descriptor data/],
      ['monolithicSparse', '# no extents', /No extents found/],
    ];
    for (const [createType, extent, reason] of cases) {
      const result = await inspect(withDescriptor('sparse.vmdk', descriptor(createType, extent)));
      assert.equal(result.format, 'vmdk');
      assert.match(result.unsafe ?? '', reason, `${createType} / ${extent}`);
    }
    const fine = await inspect(withDescriptor('sparse.vmdk', descriptor('monolithicSparse', 'RW 20480 SPARSE "sparse.vmdk"')));
    assert.equal(fine.unsafe, undefined);
  });

  it('refuses a sparse header without capacity, which makes qemu follow the descriptor', async () => {
    const b = patched('sparse.vmdk', [[12, u64le(0n)]]);
    assert.equal((await inspect(b)).unsafe, 'Sparse header defers to its descriptor');
  });

  it('checks a streamOptimized footer against the header', async () => {
    const original = readFileSync(at('stream.vmdk'));
    const header = Buffer.from(original.subarray(0, 512));
    const marker = (type: number) => {
      const m = Buffer.alloc(512);
      m.writeUInt32LE(type, 12);
      return m;
    };
    const withFooter = (footer: Buffer, eos: Buffer) =>
      Buffer.concat([patched('stream.vmdk', [[56, u64le(0xffffffffffffffffn)]]), marker(3), footer, eos]);

    const good = await inspect(withFooter(header, marker(0)));
    assert.deepEqual(good, { format: 'vmdk', size: 65536 + 1536, virtualSize: 10 * MiB });

    const otherDescriptor = Buffer.from(header);
    otherDescriptor.writeBigUInt64LE(2n, 28);
    assert.match((await inspect(withFooter(otherDescriptor, marker(0)))).unsafe!, /Footer specifies a different descriptor than header/);
    assert.match((await inspect(withFooter(header, marker(7)))).unsafe!, /End-of-stream marker is invalid/);
    const bigger = Buffer.from(header);
    bigger.writeBigUInt64LE(1n << 40n, 12);
    assert.match((await inspect(withFooter(bigger, marker(0)))).unsafe!, /Footer specifies a different capacity than header/);
    const footerPointsOn = Buffer.from(header);
    footerPointsOn.writeBigUInt64LE(0xffffffffffffffffn, 56);
    assert.match((await inspect(withFooter(footerPointsOn, marker(0)))).unsafe!, /Footer indicates another footer/);
  });
});

describe('format inspector: other formats', () => {
  it('reads vhd, vhdx and vdi with the virtual size qemu-img reports', async () => {
    for (const [name, format] of [
      ['disk.vhd', 'vhd'],
      ['disk.vhdx', 'vhdx'],
      ['disk.vdi', 'vdi'],
    ] as const) {
      const result = await inspectFile(name);
      assert.deepEqual(result, { format, size: readFileSync(at(name)).length, virtualSize: await qemuVirtualSize(at(name)) }, name);
    }
  });

  it('recognises QED only to refuse it', async () => {
    assert.equal((await inspectFile('disk.qed')).unsafe, 'This file format is not allowed');
  });

  it('reads an ISO, from genisoimage when installed and from a hand-made header', async () => {
    if (which('genisoimage')) {
      await runCommand('genisoimage', ['-quiet', '-V', 'TEST', '-o', at('made.iso'), '/etc/hostname'], { logger: quiet, timeoutMs: 60_000 });
      const iso = readFileSync(at('made.iso'));
      assert.deepEqual(await inspect(iso), { format: 'iso', size: iso.length, virtualSize: iso.length });
    }
    assert.deepEqual(await inspect(isoImage(40)), { format: 'iso', size: 40 * 2048, virtualSize: 40 * 2048 });
  });

  it('takes a bootable (hybrid) ISO with an MBR as an ISO', async () => {
    const hybrid = isoImage(40);
    mbrDisk(512, [{ boot: 0x80, type: 0x17, lba: 0 }]).copy(hybrid, 0);
    assert.deepEqual(await inspect(hybrid), { format: 'iso', size: 40 * 2048, virtualSize: 40 * 2048 });
  });

  it('calls a disk with a sane partition table gpt, and checks its entries', async () => {
    const mbr = mbrDisk(MiB, [{ boot: 0x80, type: 0x83, lba: 2048 }]);
    assert.deepEqual(await inspect(mbr), { format: 'gpt', size: MiB, virtualSize: MiB });
    const protective = mbrDisk(MiB, [{ boot: 0, type: 0xee, chs: [0, 2, 0], lba: 1 }]);
    assert.equal((await inspect(protective)).unsafe, undefined);
    assert.equal((await inspect(mbrDisk(MiB, [{ boot: 0x12, type: 0x83, lba: 2048 }]))).unsafe, 'MBR PTE 0 has invalid boot flag');
    assert.equal((await inspect(mbrDisk(MiB, []))).unsafe, 'GPT MBR has no partitions defined');
    const extra = mbrDisk(MiB, [
      { boot: 0, type: 0xee, chs: [0, 2, 0], lba: 1 },
      { boot: 0, type: 0x83, lba: 4096 },
    ]);
    assert.equal((await inspect(extra)).unsafe, 'GPT MBR defines invalid extra partitions');
    const fat = mbrDisk(MiB, []);
    fat[0x10] = 2;
    fat[0x15] = 0xf8;
    assert.equal((await inspect(fat)).format, 'raw', 'a FAT boot sector is not a partition table');
  });

  it('recognises LUKS v1 and refuses other versions', async () => {
    const luks = Buffer.alloc(MiB);
    luks.write('LUKS\xba\xbe', 0, 'latin1');
    luks.writeUInt16BE(1, 6);
    luks.writeUInt32BE(8, 104);
    assert.deepEqual(await inspect(luks), { format: 'luks', size: MiB, virtualSize: MiB - 8 * 512 });
    luks.writeUInt16BE(2, 6);
    assert.equal((await inspect(luks)).unsafe, 'LUKS version 2 is not supported');
  });

  it('calls unrecognised content raw, its size the virtual size', async () => {
    const random = randomBytes(3 * MiB + 17);
    assert.deepEqual(await inspect(random), { format: 'raw', size: random.length, virtualSize: random.length });
    const text = Buffer.from('just some text, not a descriptor\n'.repeat(1000));
    assert.deepEqual(await inspect(text), { format: 'raw', size: text.length, virtualSize: text.length });
    assert.deepEqual(await inspect(Buffer.alloc(0)), { format: 'raw', size: 0, virtualSize: 0 });
    assert.equal((await inspectFile('data.raw')).format, 'raw');
  });

  it('refuses content that is two formats at once', async () => {
    const polyglot = Buffer.from(readFileSync(at('plain.qcow2')));
    isoImage(17).subarray(16 * 2048).copy(polyglot, 16 * 2048);
    const result = await inspect(polyglot);
    assert.equal(result.unsafe, 'Multiple formats detected: qcow2,iso');
  });

  it('gives no verdict before the stream has ended', () => {
    const inspector = createInspector();
    inspector.stream.write(Buffer.from('QFI\xfb', 'latin1'));
    assert.throws(() => inspector.result(), /not been inspected to its end/);
    inspector.stream.destroy();
  });
});

describe('format inspector: memory', () => {
  const streamOf = (total: number, chunk: Buffer, head?: Buffer) => {
    let sent = 0;
    return new Readable({
      read() {
        if (head && sent === 0) {
          sent += head.length;
          return void this.push(head);
        }
        if (sent >= total) return void this.push(null);
        sent += chunk.length;
        this.push(chunk);
      },
    });
  };
  const limit = MiB + 64 * KiB;

  it('holds at most about 1 MiB, whatever the size of the image', async () => {
    const zeros = await watch(streamOf(200 * MiB, Buffer.alloc(64 * KiB)));
    assert.equal(zeros.out.size, 200 * MiB);
    assert.equal(zeros.inspection.format, 'raw');
    assert.ok(zeros.peak <= limit, `zeros: held ${zeros.peak} bytes`);

    // Text is what keeps the VMDK descriptor probe reading longest.
    const text = await watch(streamOf(200 * MiB, Buffer.alloc(64 * KiB, 'a')));
    assert.equal(text.inspection.format, 'raw');
    assert.ok(text.peak <= limit, `text: held ${text.peak} bytes`);

    const qcow = await watch(streamOf(200 * MiB, Buffer.alloc(64 * KiB), readFileSync(at('plain.qcow2')).subarray(0, 64 * KiB)));
    assert.equal(qcow.inspection.format, 'qcow2');
    assert.ok(qcow.peak <= limit, `qcow2: held ${qcow.peak} bytes`);
  });

  it('stays linear when fed one byte at a time', async () => {
    const started = Date.now();
    const parts = Array.from(Buffer.from('a'.repeat(256 * KiB)), (b) => Buffer.from([b]));
    const result = await watch(Readable.from(parts, { objectMode: false }));
    assert.equal(result.inspection.format, 'raw');
    assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
  });
});

describe('checkDiskFormat and virtualSizeFor (upstream set_data rules)', () => {
  const qcow2: Inspection = { format: 'qcow2', size: 1000, virtualSize: 10 * MiB };
  const raw: Inspection = { format: 'raw', size: 1000, virtualSize: 1000 };
  const unsafe: Inspection = { ...qcow2, unsafe: 'Image has a backing file' };

  it('accepts content of the declared format', () => {
    assert.equal(checkDiskFormat(qcow2, 'qcow2'), undefined);
    assert.equal(checkDiskFormat(raw, 'raw'), undefined);
    assert.equal(virtualSizeFor(qcow2, 'qcow2'), 10 * MiB);
    assert.equal(virtualSizeFor(raw, 'raw'), 1000);
  });

  it('refuses content of another format, as upstream words it', () => {
    assert.equal(checkDiskFormat(raw, 'qcow2'), 'Image disk_format qcow2 does not match stream data raw');
    assert.equal(checkDiskFormat(qcow2, 'vmdk'), 'Image disk_format vmdk does not match stream data qcow2');
    assert.equal(checkDiskFormat(qcow2, 'ami'), 'Image disk_format ami does not match stream data qcow2');
    assert.equal(checkDiskFormat({ format: 'raw', size: 10 }, 'iso'), 'Image disk_format iso does not match stream data raw');
  });

  it('lets raw hold anything safe (sized by its bytes) and non-inspectable formats hold unrecognised content', () => {
    assert.equal(checkDiskFormat(qcow2, 'raw'), undefined);
    assert.equal(virtualSizeFor(qcow2, 'raw'), 1000);
    for (const f of ['ami', 'ari', 'aki', 'ploop']) {
      assert.equal(checkDiskFormat(raw, f), undefined);
      assert.equal(virtualSizeFor(raw, f), undefined);
    }
  });

  it('refuses unsafe content whatever it was declared as', () => {
    assert.equal(checkDiskFormat(unsafe, 'qcow2'), 'Image failed safety checks: Image has a backing file');
    assert.equal(checkDiskFormat(unsafe, 'raw'), 'Image failed safety checks: Image has a backing file');
  });
});

describe('qemuImgInfo', () => {
  const calls: Array<Record<string, unknown>> = [];
  const logger: ExecLogger = { info: (o: unknown) => void calls.push(o as Record<string, unknown>), warn: (o: unknown) => void calls.push(o as Record<string, unknown>) };

  it('runs qemu-img under prlimit with the format given, never probed', async () => {
    calls.length = 0;
    assert.deepEqual(await qemuImgInfo(at('plain.qcow2'), 'qcow2', { logger }), { format: 'qcow2', virtualSize: 10 * MiB });
    assert.equal(calls[0].program, which('prlimit'));
    assert.deepEqual(calls[0].args, [
      '--as=1073741824',
      '--cpu=30',
      '--',
      which('qemu-img'),
      'info',
      '--output=json',
      '-f',
      'qcow2',
      '--',
      at('plain.qcow2'),
    ]);
  });

  it('reads vhd as qemu vpc and a sparse vmdk as safe', async () => {
    assert.deepEqual(await qemuImgInfo(at('disk.vhd'), 'vhd', { logger }), { format: 'vpc', virtualSize: await qemuVirtualSize(at('disk.vhd')) });
    assert.deepEqual(await qemuImgInfo(at('sparse.vmdk'), 'vmdk', { logger }), { format: 'vmdk', virtualSize: 10 * MiB });
  });

  it('finds backing files, data files and extent files again', async () => {
    assert.match((await qemuImgInfo(at('backing.qcow2'), 'qcow2', { logger })).unsafe!, /Image has a backing file/);
    assert.match((await qemuImgInfo(at('datafile.qcow2'), 'qcow2', { logger })).unsafe!, /Image has data_file set/);
    const flat = await qemuImgInfo(at('flat.vmdk'), 'vmdk', { logger });
    assert.match(flat.unsafe!, /Unsupported subformat monolithicFlat/);
    assert.match(flat.unsafe!, /Extent refers to another file/);
  });

  it('calls content qemu-img cannot read as the declared format unsafe', async () => {
    writeFileSync(at('garbage'), randomBytes(4096));
    assert.deepEqual(await qemuImgInfo(at('garbage'), 'qcow2', { logger }), { format: 'qcow2', unsafe: 'qemu-img could not read the image as qcow2' });
  });

  it('refuses a disk_format it has no qemu driver for', async () => {
    await assert.rejects(qemuImgInfo(at('plain.qcow2'), 'docker', { logger }), /cannot be read by qemu-img/);
  });
});

