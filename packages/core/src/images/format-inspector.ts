/**
 * What an uploaded image really is, found while it streams to the store: the job of
 * upstream's format inspector (oslo_utils.imageutils.format_inspector, which Glance
 * runs on every upload and import since the 2024 disk-image CVEs).
 *
 * Every known format is probed in parallel on the same pass. A probe keeps only the
 * header bytes it needs (the largest is a VMDK descriptor, under 1 MiB, as much as
 * qemu itself would read) and lets go of them as soon as the content cannot be its
 * format, so the inspector holds about 1 MiB at most whatever the image's size.
 * The verdict: the one format that matched (raw when none did), its virtual size,
 * and why the content is unsafe for qemu to open, when it is: a qcow2 that names a
 * backing file or an external data file, a VMDK whose descriptor points at other
 * files, a format nobody should accept (QED), or content that is two formats at once.
 *
 * The inspector never breaks the stream it watches: a probe that trips over its own
 * parsing is simply out of the running, as upstream's.
 */
import { Transform } from 'node:stream';
import { CommandError, positional, runCommand, which, type ExecLogger } from '../exec/privileged-exec.ts';

export type DetectedFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'vdi' | 'iso' | 'qed' | 'gpt' | 'luks';

export interface Inspection {
  /** What the content is; 'raw' when no format matched. 'gpt' is a raw disk with a partition table. */
  format: DetectedFormat;
  /** Bytes seen. */
  size: number;
  /** From the format's header (for raw: the size); absent when the header does not say. */
  virtualSize?: number;
  /** Why qemu must not open this content, in words for the user; absent when it is safe. */
  unsafe?: string;
}

export interface Inspector {
  /** Pass-through: put it between the source and the store. */
  readonly stream: Transform;
  /** The verdict; available once the stream has ended. */
  result(): Inspection;
  /** Bytes of headers held right now (upstream's context_info). */
  retainedBytes(): number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Bytes [offset, offset + length) of the stream, gathered across chunks. */
class Region {
  private buf = Buffer.alloc(0);
  filled = 0;

  constructor(
    readonly offset: number,
    /** May shrink once the format says how much it really needs. */
    public length: number,
  ) {}

  get complete(): boolean {
    return this.filled >= this.length;
  }

  get data(): Buffer {
    return this.buf.subarray(0, Math.min(this.filled, this.length));
  }

  get retained(): number {
    return this.buf.length;
  }

  /** Takes its part of `chunk`, which starts at stream offset `at`; bytes that went by before it existed are lost to it. */
  take(chunk: Buffer, at: number): void {
    const want = this.offset + this.filled;
    const stop = this.offset + this.length;
    if (want >= stop || at > want || at + chunk.length <= want) return;
    const piece = chunk.subarray(want - at, Math.min(stop, at + chunk.length) - at);
    const needed = this.filled + piece.length;
    if (needed > this.buf.length) {
      // Doubling keeps a region fed by tiny chunks linear in its size.
      const grown = Buffer.alloc(Math.min(this.length, Math.max(needed, 2 * this.buf.length, 4 * KiB)));
      this.buf.copy(grown, 0, 0, this.filled);
      this.buf = grown;
    }
    piece.copy(this.buf, this.filled);
    this.filled = needed;
  }
}

/** The last `length` bytes of the stream. */
class Tail {
  data = Buffer.alloc(0);

  constructor(readonly length: number) {}

  take(chunk: Buffer): void {
    const joined = chunk.length >= this.length ? chunk : Buffer.concat([this.data, chunk]);
    // A copy, so that the tail does not pin the caller's (possibly large) chunk.
    this.data = Buffer.from(joined.subarray(Math.max(0, joined.length - this.length)));
  }
}

const u16le = (b: Buffer, at: number) => b.readUInt16LE(at);
const u32le = (b: Buffer, at: number) => b.readUInt32LE(at);
const u32be = (b: Buffer, at: number) => b.readUInt32BE(at);
const u64le = (b: Buffer, at: number) => Number(b.readBigUInt64LE(at));
const u64be = (b: Buffer, at: number) => Number(b.readBigUInt64BE(at));

/** One candidate format. Subclasses read their regions in advance() and decide. */
abstract class Probe {
  abstract readonly name: DetectedFormat;
  verdict: 'undecided' | 'match' | 'no' = 'undecided';
  virtualSize?: number;
  /** Has everything it needs: takes no more data. */
  private settled = false;
  private readonly problems = new Set<string>();
  private readonly regions = new Map<string, Region>();
  private created = 0;

  get done(): boolean {
    return this.verdict === 'no' || this.settled;
  }

  get reasons(): string[] {
    return [...this.problems];
  }

  feed(chunk: Buffer, at: number): void {
    // A region created while reading this chunk may start inside it: give it the chunk too.
    for (let seen = -1; seen !== this.created && !this.done; ) {
      seen = this.created;
      for (const r of this.regions.values()) r.take(chunk, at);
      this.advance(at + chunk.length, false);
    }
  }

  finish(total: number): void {
    if (!this.done) this.advance(total, true);
    if (this.verdict === 'undecided') this.no();
    this.settle();
  }

  retained(): number {
    let n = 0;
    for (const r of this.regions.values()) n += r.retained;
    return n;
  }

  /** `position` is how much of the stream has gone by; at `eof` nothing more will come. */
  protected abstract advance(position: number, eof: boolean): void;

  protected region(name: string, offset: number, length: number): Region {
    let r = this.regions.get(name);
    if (!r) {
      r = new Region(offset, length);
      this.regions.set(name, r);
      this.created++;
    }
    return r;
  }

  protected drop(name: string): void {
    this.regions.delete(name);
  }

  no(): void {
    this.verdict = 'no';
    this.regions.clear();
  }

  protected match(): void {
    if (this.verdict === 'undecided') this.verdict = 'match';
  }

  protected unsafe(reason: string): void {
    this.problems.add(reason);
  }

  protected settle(): void {
    this.settled = true;
    this.regions.clear();
  }
}

// qcow2 (docs/interop/qcow2.txt in qemu): big-endian header; v3 adds feature bits
// and a header length, and header extensions follow the header in the first cluster.
const QCOW_MAGIC = Buffer.from('QFI\xfb', 'latin1');
/** Header extensions are looked for this far at most (the first cluster, capped). */
const QCOW_HEAD_MAX = 64 * KiB;
const QCOW_INCOMPAT_DATA_FILE = 1 << 2;
/** dirty, corrupt, external data file, compression type: anything above is unknown to upstream. */
const QCOW_INCOMPAT_KNOWN = 0b1111;
const QCOW_EXT_END = 0;
const QCOW_EXT_BACKING_FORMAT = 0xe2792aca;
const QCOW_EXT_DATA_FILE = 0x44415441;

class QcowProbe extends Probe {
  readonly name = 'qcow2';

  protected advance(_position: number, eof: boolean): void {
    const head = this.region('header', 0, QCOW_HEAD_MAX);
    if (head.filled >= 4 && !head.data.subarray(0, 4).equals(QCOW_MAGIC)) return this.no();
    if (head.filled < 32) return eof ? this.no() : undefined;
    this.match();
    const clusterBits = u32be(head.data, 20);
    if (clusterBits >= 9 && clusterBits <= 21) head.length = Math.min(QCOW_HEAD_MAX, 2 ** clusterBits);
    if (!head.complete && !eof) return;
    this.check(head.data, clusterBits);
    this.settle();
  }

  private check(h: Buffer, clusterBits: number): void {
    const version = u32be(h, 4);
    if (version !== 2 && version !== 3) this.unsafe('Unsupported qcow2 version');
    if (u64be(h, 8) !== 0 || u32be(h, 16) !== 0) this.unsafe('Image has a backing file');
    this.virtualSize = u64be(h, 24);
    if (clusterBits < 9 || clusterBits > 21) this.unsafe('Invalid qcow2 cluster size');
    if (version !== 2 && version !== 3) return;
    let headerLength = 72;
    if (version === 3) {
      if (h.length < 104) return this.unsafe('Truncated qcow2 header');
      const incompatHigh = u32be(h, 72);
      const incompatLow = u32be(h, 76);
      if (incompatLow & QCOW_INCOMPAT_DATA_FILE) this.unsafe('Image has data_file set');
      if (incompatHigh !== 0 || (incompatLow & ~QCOW_INCOMPAT_KNOWN) !== 0) this.unsafe('Unknown QCOW2 features found');
      headerLength = u32be(h, 100);
      if (headerLength < 104) return this.unsafe('Invalid qcow2 header length');
    }
    this.checkExtensions(h, headerLength);
  }

  /** The extensions name the external data file and the backing format even if the header bits were cleared. */
  private checkExtensions(h: Buffer, start: number): void {
    for (let at = start; ; ) {
      if (at + 8 > h.length) return this.unsafe('Image header extensions could not be inspected');
      const type = u32be(h, at);
      const length = u32be(h, at + 4);
      if (type === QCOW_EXT_END) return;
      if (type === QCOW_EXT_DATA_FILE) this.unsafe('Image has data_file set');
      if (type === QCOW_EXT_BACKING_FORMAT) this.unsafe('Image has a backing file');
      at += 8 + Math.ceil(length / 8) * 8;
    }
  }
}

/** QED: recognised so that it is refused; nobody supports it (upstream bans it too). */
class QedProbe extends Probe {
  readonly name = 'qed';

  protected advance(_position: number, eof: boolean): void {
    const head = this.region('header', 0, 4);
    if (!head.complete) return eof ? this.no() : undefined;
    if (!head.data.equals(Buffer.from('QED\0', 'latin1'))) return this.no();
    this.match();
    this.unsafe('This file format is not allowed');
    this.settle();
  }
}

/** VHD (qemu's vpc): a big-endian 512-byte footer copy at the start, disk size at 40. */
class VhdProbe extends Probe {
  readonly name = 'vhd';

  protected advance(_position: number, eof: boolean): void {
    const head = this.region('footer', 0, 48);
    if (head.filled >= 8 && !head.data.subarray(0, 8).equals(Buffer.from('conectix'))) return this.no();
    if (!head.complete) return eof ? this.no() : undefined;
    this.match();
    this.virtualSize = u64be(head.data, 40);
    this.settle();
  }
}

/** Microsoft's mixed-endian GUID layout, as VHDX stores it. */
function guid(text: string): Buffer {
  const hex = text.replaceAll('-', '');
  const b = Buffer.from(hex, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

// VHDX (MS-VHDX): identifier at 0, region table at 192 KiB pointing at the metadata
// region, whose table points at the Virtual Disk Size item.
const VHDX_REGION_TABLE = 192 * KiB;
const VHDX_TABLE_BYTES = 64 * KiB;
const VHDX_MAX_ENTRIES = 2047;
const VHDX_METADATA_REGION = guid('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const VHDX_VIRTUAL_DISK_SIZE = guid('2FA54224-CD1B-4876-B211-5DBED83BF4B8');

class VhdxProbe extends Probe {
  readonly name = 'vhdx';
  private metadataAt?: number;
  private sizeAt?: number;

  protected advance(_position: number, eof: boolean): void {
    const ident = this.region('ident', 0, 8);
    if (!ident.complete) return eof ? this.no() : undefined;
    if (!ident.data.equals(Buffer.from('vhdxfile'))) return this.no();
    this.match();
    if (this.metadataAt === undefined) {
      const table = this.region('regions', VHDX_REGION_TABLE, VHDX_TABLE_BYTES);
      if (!table.complete) return eof ? this.settle() : undefined;
      this.metadataAt = this.findRegion(table.data);
      this.drop('regions');
    }
    if (this.sizeAt === undefined) {
      const meta = this.region('metadata', this.metadataAt, VHDX_TABLE_BYTES);
      const item = meta.filled >= 32 ? this.findItem(meta.data, eof) : undefined;
      if (item === undefined) return eof ? this.settle() : undefined;
      this.sizeAt = this.metadataAt + item;
      this.drop('metadata');
    }
    const size = this.region('size', this.sizeAt, 8);
    if (size.complete) this.virtualSize = u64le(size.data, 0);
    if (size.complete || eof) this.settle();
  }

  private findRegion(table: Buffer): number {
    if (table.toString('latin1', 0, 4) !== 'regi') throw new Error('VHDX region table signature not found');
    const count = u32le(table, 8);
    if (count > VHDX_MAX_ENTRIES) throw new Error(`VHDX region count is ${count}`);
    for (let i = 0; i < count; i++) {
      const entry = 16 + 32 * i;
      if (table.subarray(entry, entry + 16).equals(VHDX_METADATA_REGION)) return u64le(table, entry + 16);
    }
    throw new Error('VHDX metadata region not found');
  }

  /** The size item's offset in the metadata region, undefined while its table is still arriving. */
  private findItem(meta: Buffer, eof: boolean): number | undefined {
    if (meta.toString('latin1', 0, 8) !== 'metadata') throw new Error('VHDX metadata signature not found');
    const count = u16le(meta, 10);
    if (count > VHDX_MAX_ENTRIES) throw new Error(`VHDX metadata item count is ${count}`);
    if (meta.length < 32 + 32 * count && !eof) return undefined;
    for (let i = 0; i < count && 32 + 32 * (i + 1) <= meta.length; i++) {
      const entry = 32 + 32 * i;
      if (meta.subarray(entry, entry + 16).equals(VHDX_VIRTUAL_DISK_SIZE)) return u32le(meta, entry + 16);
    }
    throw new Error('VHDX virtual disk size not found');
  }
}

// VMDK: either a "hosted sparse extent" (little-endian header "KDMV" with an embedded
// text descriptor at sector 1) or a bare text descriptor file naming extent files.
const VMDK_MAGIC = Buffer.from('KDMV');
/** The part of the sparse header read here. */
const VMDK_HEADER_BYTES = 64;
const VMDK_DESCRIPTOR_AT = 0x200;
/** qemu reads at most this much descriptor. */
const VMDK_DESCRIPTOR_MAX = MiB - 1;
const VMDK_FOOTER_BYTES = 3 * 512;
const VMDK_MARKER_EOS = 0;
const VMDK_MARKER_FOOTER = 3;
/** Single-file subformats, whose one extent is the file itself (upstream's vmdk_allowed_types). */
const VMDK_ALLOWED_TYPES = new Set(['monolithicsparse', 'streamoptimized']);
const VMDK_EXTENT_ACCESS = new Set(['rw', 'rdonly', 'noaccess']);

interface SparseHeader {
  version: number;
  capacitySectors: number;
  descriptorSector: number;
  descriptorSectors: number;
  /** Grain directory at the end: the footer's header is the real one. */
  footer: boolean;
}

function parseSparseHeader(h: Buffer): SparseHeader {
  return {
    version: u32le(h, 4),
    capacitySectors: u64le(h, 12),
    descriptorSector: u64le(h, 28),
    descriptorSectors: u64le(h, 36),
    footer: u32le(h, 56) === 0xffffffff && u32le(h, 60) === 0xffffffff,
  };
}

const isTextByte = (b: number) => (b >= 0x20 && b < 0x7f) || (b >= 0x09 && b <= 0x0d);

class VmdkProbe extends Probe {
  readonly name = 'vmdk';
  private header?: SparseHeader;
  private descriptorChecked = false;
  private tail?: Tail;
  /** How far the would-be text descriptor has been checked. */
  private scanned = 0;

  override feed(chunk: Buffer, at: number): void {
    super.feed(chunk, at);
    // After the header is read, so that the chunk holding it counts towards the tail too.
    this.tail?.take(chunk);
  }

  override retained(): number {
    return super.retained() + (this.tail?.data.length ?? 0);
  }

  protected advance(_position: number, eof: boolean): void {
    if (this.header) return this.advanceSparse(eof);
    // The start of the stream: a sparse header, or a text descriptor from its first byte.
    const start = this.region('text', 0, VMDK_DESCRIPTOR_MAX);
    if (start.filled < 4 || !start.data.subarray(0, 4).equals(VMDK_MAGIC)) return this.advanceText(start, eof);
    if (start.filled < VMDK_HEADER_BYTES) return eof ? this.no() : undefined;
    const header = parseSparseHeader(start.data);
    this.drop('text');
    if (header.version < 1 || header.version > 3) throw new Error(`Unsupported VMDK version ${header.version}`);
    if (header.descriptorSector * 512 !== VMDK_DESCRIPTOR_AT) throw new Error('Wrong descriptor location');
    this.header = header;
    this.match();
    this.region('descriptor', VMDK_DESCRIPTOR_AT, Math.min(header.descriptorSectors * 512, VMDK_DESCRIPTOR_MAX));
    if (header.footer) this.tail = new Tail(VMDK_FOOTER_BYTES);
    this.advanceSparse(eof);
  }

  private advanceSparse(eof: boolean): void {
    const header = this.header!;
    if (!this.descriptorChecked) {
      const descriptor = this.region('descriptor', VMDK_DESCRIPTOR_AT, Math.min(header.descriptorSectors * 512, VMDK_DESCRIPTOR_MAX));
      if (descriptor.complete) this.checkDescriptor(descriptor.data);
      else if (eof) this.unsafe('No descriptor found');
      else return;
      this.descriptorChecked = true;
      this.drop('descriptor');
    }
    if (!header.footer) return this.settle();
    if (!eof) return;
    this.checkFooter();
    this.settle();
  }

  /** Text until the first NUL (qemu reads the descriptor as a C string), or not a descriptor at all. */
  private advanceText(text: Region, eof: boolean): void {
    const bytes = text.data;
    for (; this.scanned < bytes.length; this.scanned++) {
      const b = bytes[this.scanned];
      if (b === 0) {
        text.length = this.scanned;
        break;
      }
      if (!isTextByte(b)) return this.no();
    }
    if (!text.complete && !eof) return;
    this.checkDescriptor(text.data);
    this.settle();
  }

  private checkDescriptor(raw: Buffer): void {
    const sparse = this.header !== undefined;
    const end = raw.indexOf(0);
    const bytes = end < 0 ? raw : raw.subarray(0, end);
    if (!bytes.every(isTextByte)) {
      if (!sparse) return this.no();
      return this.unsafe('Invalid VMDK descriptor data');
    }
    // Descriptors are case-insensitive ASCII.
    const original = bytes.toString('latin1');
    const text = original.toLowerCase();
    const createType = /createtype="([^"]{0,63})"/i.exec(original)?.[1];
    if (createType === undefined) {
      if (!sparse) return this.no();
      this.unsafe('Unsupported subformat');
    }
    this.match();
    const allowed = createType !== undefined && VMDK_ALLOWED_TYPES.has(createType.toLowerCase());
    if (createType !== undefined && !allowed) this.unsafe(`Unsupported subformat ${createType}`);
    if (!sparse) this.unsafe('Descriptor file refers to extents in other files');

    const extents: string[][] = [];
    for (const line of text.split('\n').map((l) => l.trim())) {
      if (line === '' || line.startsWith('#') || line.startsWith('ddb')) continue;
      const eq = line.indexOf('=');
      if (eq >= 0 && !line.slice(0, eq).includes(' ')) continue;
      const words = line.split(/\s+/);
      if (VMDK_EXTENT_ACCESS.has(words[0])) extents.push(words);
      else this.unsafe('Invalid VMDK descriptor data');
    }
    if (extents.length === 0) this.unsafe('No extents found');
    if (extents.some((words) => words.join(' ').includes('/'))) this.unsafe('Invalid extent filenames found');
    // A sparse file's one extent is itself; any other kind names another file.
    if (sparse && extents.some((words) => words[2] !== 'sparse')) this.unsafe('Extent refers to another file');
    // With no capacity in its header qemu opens the embedded descriptor as a descriptor file, extents and all.
    if (sparse && this.header!.capacitySectors === 0) this.unsafe('Sparse header defers to its descriptor');
    if (sparse && allowed) this.virtualSize = this.header!.capacitySectors * 512;
  }

  /** streamOptimized files may carry their real header at the end; it must agree with the one at the start. */
  private checkFooter(): void {
    const tail = this.tail!.data;
    if (tail.length < VMDK_FOOTER_BYTES) return this.unsafe('Footer marker is invalid');
    const head = this.header!;
    const foot = tail.subarray(512, 1024);
    if (!foot.subarray(0, 4).equals(VMDK_MAGIC)) return this.unsafe('Header and footer signature do not match');
    const footer = parseSparseHeader(foot);
    if (footer.version !== head.version) this.unsafe('Header and footer versions do not match');
    if (footer.descriptorSector !== head.descriptorSector || footer.descriptorSectors !== head.descriptorSectors) {
      this.unsafe('Footer specifies a different descriptor than header');
    }
    // qemu sizes the disk from the footer's header, the virtual size recorded here from the first one.
    if (footer.capacitySectors !== head.capacitySectors) this.unsafe('Footer specifies a different capacity than header');
    if (footer.footer) this.unsafe('Footer indicates another footer');
    const marker = (at: number, type: number, value: 'zero' | 'any') =>
      (value === 'any' || tail.readBigUInt64LE(at) === 0n) &&
      u32le(tail, at + 8) === 0 &&
      u32le(tail, at + 12) === type &&
      tail.subarray(at + 16, at + 512).every((b) => b === 0);
    if (!marker(0, VMDK_MARKER_FOOTER, 'any')) this.unsafe('Footer marker is invalid');
    if (!marker(1024, VMDK_MARKER_EOS, 'zero')) this.unsafe('End-of-stream marker is invalid');
  }
}

/** VirtualBox VDI: little-endian, signature at 0x40, disk size at 0x170. */
class VdiProbe extends Probe {
  readonly name = 'vdi';

  protected advance(_position: number, eof: boolean): void {
    const head = this.region('header', 0, 0x178);
    if (head.filled >= 0x44 && u32le(head.data, 0x40) !== 0xbeda107f) return this.no();
    if (!head.complete) return eof ? this.no() : undefined;
    this.match();
    this.virtualSize = u64le(head.data, 0x170);
    this.settle();
  }
}

/** ISO 9660 (and UDF's bridge): the volume descriptor after the 32 KiB system area. */
class IsoProbe extends Probe {
  readonly name = 'iso';

  protected advance(_position: number, eof: boolean): void {
    const pvd = this.region('descriptor', 32 * KiB, 2 * KiB);
    if (!pvd.complete) return eof ? this.no() : undefined;
    const d = pvd.data;
    if (!['CD001', 'NSR02', 'NSR03'].includes(d.toString('latin1', 1, 6))) return this.no();
    this.match();
    // A primary volume descriptor gives the block count and block size (both-endian; the LE half).
    if (d[0] === 1) this.virtualSize = u32le(d, 80) * u16le(d, 128);
    this.settle();
  }
}

/** A raw disk with an MBR or a GPT behind its protective MBR; its partition entries must make sense. */
class GptProbe extends Probe {
  readonly name = 'gpt';

  protected advance(position: number, eof: boolean): void {
    if (this.verdict === 'match') {
      // A disk's virtual size is its length, known at the end only.
      if (eof) this.virtualSize = position;
      return;
    }
    const mbr = this.region('mbr', 0, 512);
    if (!mbr.complete) return eof ? this.no() : undefined;
    const b = mbr.data;
    // A FAT volume boot record carries the same signature: two FATs on a fixed disk give it away.
    const fat = b[0x10] === 2 && b[0x15] === 0xf8;
    if (u16le(b, 510) !== 0xaa55 || fat) return this.no();
    this.match();
    const problem = this.partitionProblem(b);
    if (problem) this.unsafe(problem);
    this.drop('mbr');
    if (eof) this.virtualSize = position;
  }

  private partitionProblem(b: Buffer): string | undefined {
    const used: number[] = [];
    let protective = false;
    for (let i = 0; i < 4; i++) {
      const e = 446 + 16 * i;
      if (b[e] !== 0x00 && b[e] !== 0x80) return `MBR PTE ${i} has invalid boot flag`;
      const type = b[e + 4];
      if (type !== 0) used.push(i);
      if (type === 0xee) {
        protective = true;
        if (b[e + 1] !== 0x00 || b[e + 2] !== 0x02 || b[e + 3] !== 0x00) return 'GPT MBR has invalid start CHS';
        if (u32le(b, e + 8) !== 1) return 'GPT MBR has invalid start LBA';
      }
    }
    if (protective && (used.length !== 1 || used[0] !== 0)) return 'GPT MBR defines invalid extra partitions';
    if (used.length === 0) return 'GPT MBR has no partitions defined';
    return undefined;
  }
}

/** LUKS v1 (what qemu opens); the payload starts payload-offset sectors in. */
class LuksProbe extends Probe {
  readonly name = 'luks';
  private payloadAt = 0;

  protected advance(position: number, eof: boolean): void {
    const head = this.region('header', 0, 108);
    if (head.filled >= 6 && !head.data.subarray(0, 6).equals(Buffer.from('LUKS\xba\xbe', 'latin1'))) return this.no();
    if (!head.complete) return eof ? this.no() : undefined;
    if (this.verdict === 'undecided') {
      this.match();
      const version = head.data.readUInt16BE(6);
      if (version !== 1) this.unsafe(`LUKS version ${version} is not supported`);
      this.payloadAt = u32be(head.data, 104) * 512;
    }
    // The size is what follows the header, known at the end only.
    if (eof) this.virtualSize = Math.max(0, position - this.payloadAt);
  }
}

function newProbes(): Probe[] {
  return [new QcowProbe(), new QedProbe(), new VhdProbe(), new VhdxProbe(), new VmdkProbe(), new VdiProbe(), new IsoProbe(), new GptProbe(), new LuksProbe()];
}

class Detector {
  private readonly probes = newProbes();
  private size = 0;
  private ended = false;

  feed(chunk: Buffer): void {
    for (const p of this.probes) {
      if (!p.done) this.guard(p, () => p.feed(chunk, this.size));
    }
    this.size += chunk.length;
  }

  end(): void {
    for (const p of this.probes) this.guard(p, () => p.finish(this.size));
    this.ended = true;
  }

  retained(): number {
    return this.probes.reduce((n, p) => n + p.retained(), 0);
  }

  result(): Inspection {
    if (!this.ended) throw new Error('The image has not been inspected to its end yet');
    let matches = this.probes.filter((p) => p.verdict === 'match');
    // A bootable ISO legitimately carries an MBR in its system area.
    if (matches.length === 2 && matches.some((p) => p.name === 'iso') && matches.some((p) => p.name === 'gpt')) {
      matches = matches.filter((p) => p.name === 'iso');
    }
    if (matches.length === 0) return { format: 'raw', size: this.size, virtualSize: this.size };
    if (matches.length > 1) {
      return { format: matches[0].name, size: this.size, unsafe: `Multiple formats detected: ${matches.map((p) => p.name).join(',')}` };
    }
    const [p] = matches;
    return {
      format: p.name,
      size: this.size,
      ...(p.virtualSize !== undefined && { virtualSize: p.virtualSize }),
      ...(p.reasons.length > 0 && { unsafe: p.reasons.join('; ') }),
    };
  }

  /** A probe that trips over its own parsing is out of the running; the stream goes on. */
  private guard(p: Probe, step: () => void): void {
    try {
      step();
    } catch {
      p.no();
    }
  }
}

export function createInspector(): Inspector {
  const detector = new Detector();
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      detector.feed(chunk);
      done(null, chunk);
    },
    flush(done) {
      detector.end();
      done();
    },
  });
  return { stream, result: () => detector.result(), retainedBytes: () => detector.retained() };
}

/** disk_format values the inspector can recognise; others (ami, aki, ari, ploop) can only be checked as "not something else". */
const INSPECTABLE = new Set<string>(['raw', 'qcow2', 'vhd', 'vhdx', 'vmdk', 'vdi', 'iso', 'qed', 'gpt', 'luks']);

/**
 * Upstream's rule for an upload or import (glance/location.py set_data): the content
 * must be the declared disk_format, except that `raw` accepts anything (upstream
 * cannot tell raw from "unrecognised") and a non-inspectable disk_format accepts
 * content recognised as nothing; then whatever the content is must be safe. Returns
 * the message the request fails with, or undefined when the image is acceptable.
 */
export function checkDiskFormat(inspection: Inspection, diskFormat: string): string | undefined {
  const { format } = inspection;
  const accepted = format === diskFormat || diskFormat === 'raw' || (format === 'raw' && !INSPECTABLE.has(diskFormat));
  if (!accepted) return `Image disk_format ${diskFormat} does not match stream data ${format}`;
  if (inspection.unsafe) return `Image failed safety checks: ${inspection.unsafe}`;
  return undefined;
}

/**
 * The virtual_size to record for an accepted image: the header's when the content is
 * the declared format, the byte count for `raw` holding something else (upstream
 * pretends it did not recognise it), none for non-inspectable formats.
 */
export function virtualSizeFor(inspection: Inspection, diskFormat: string): number | undefined {
  if (inspection.format === diskFormat) return inspection.virtualSize;
  if (diskFormat === 'raw') return inspection.size;
  return undefined;
}

/** disk_format → qemu's block driver name. */
const QEMU_DRIVERS: Readonly<Record<string, string>> = {
  raw: 'raw',
  qcow2: 'qcow2',
  vmdk: 'vmdk',
  vhd: 'vpc',
  vhdx: 'vhdx',
  vdi: 'vdi',
  iso: 'raw',
  ploop: 'parallels',
  ami: 'raw',
  ari: 'raw',
  aki: 'raw',
};

/**
 * What qemu-img may use while it reads a header, as upstream (oslo.concurrency
 * ProcessLimits around `qemu-img info`): a crafted image must not make it eat the
 * host. Upstream Glance allows 2 s of CPU, Nova 30 s; this takes Nova's, since
 * large VMDK/VHDX metadata legitimately takes more than 2 s on a slow host.
 */
export const QEMU_IMG_LIMITS = { addressSpaceBytes: 1024 * MiB, cpuSeconds: 30 } as const;

export interface QemuImgInfo {
  /** qemu's driver name (vpc for vhd). */
  format: string;
  virtualSize?: number;
  unsafe?: string;
}

interface QemuImgJson {
  format?: string;
  'virtual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'format-specific'?: { type?: string; data?: { 'data-file'?: string; 'create-type'?: string; extents?: Array<{ filename?: string }> } };
}

/**
 * `qemu-img info` on a local file, opened as the declared format and never probed
 * (a probe is how a raw file gets read as qcow2), under prlimit. Defence in depth
 * after the streaming inspector: call it only on content the inspector accepted,
 * since opening an image is what a malicious header exploits. Content qemu-img
 * cannot read, or that trips the limits, comes back `unsafe`; a missing qemu-img or
 * prlimit throws.
 */
export async function qemuImgInfo(path: string, diskFormat: string, opts: { logger: ExecLogger; timeoutMs?: number }): Promise<QemuImgInfo> {
  const driver = QEMU_DRIVERS[diskFormat];
  if (!driver) throw new Error(`disk_format ${diskFormat} cannot be read by qemu-img`);
  const qemuImg = which('qemu-img');
  if (!qemuImg) throw new CommandError({ program: 'qemu-img', args: [], reason: 'not_found', detail: 'qemu-img is not installed (Debian: qemu-utils)' });
  let stdout: string;
  try {
    ({ stdout } = await runCommand(
      'prlimit',
      [
        `--as=${QEMU_IMG_LIMITS.addressSpaceBytes}`,
        `--cpu=${QEMU_IMG_LIMITS.cpuSeconds}`,
        '--',
        qemuImg,
        'info',
        '--output=json',
        '-f',
        driver,
        '--',
        positional(path),
      ],
      { logger: opts.logger, timeoutMs: opts.timeoutMs ?? 2 * QEMU_IMG_LIMITS.cpuSeconds * 1000, maxOutputBytes: MiB },
    ));
  } catch (e) {
    if (e instanceof CommandError && e.reason !== 'not_found' && e.reason !== 'spawn') {
      return { format: driver, unsafe: `qemu-img could not read the image as ${driver}` };
    }
    throw e;
  }
  let info: QemuImgJson;
  try {
    info = JSON.parse(stdout) as QemuImgJson;
  } catch {
    return { format: driver, unsafe: 'qemu-img gave no readable answer' };
  }
  const problems: string[] = [];
  if (info.format !== driver) problems.push(`qemu-img reports ${info.format} but disk_format says ${diskFormat}`);
  if (info['backing-filename'] !== undefined || info['full-backing-filename'] !== undefined) problems.push('Image has a backing file');
  const details = info['format-specific']?.data;
  if (details?.['data-file'] !== undefined) problems.push('Image has data_file set');
  if (info.format === 'vmdk') {
    const createType = details?.['create-type'];
    if (!createType || !VMDK_ALLOWED_TYPES.has(createType.toLowerCase())) problems.push(`Unsupported subformat ${createType ?? 'unknown'}`);
    if ((details?.extents ?? []).some((extent) => extent.filename !== path)) problems.push('Extent refers to another file');
  }
  return {
    format: info.format ?? driver,
    ...(typeof info['virtual-size'] === 'number' && { virtualSize: info['virtual-size'] }),
    ...(problems.length > 0 && { unsafe: problems.join('; ') }),
  };
}
