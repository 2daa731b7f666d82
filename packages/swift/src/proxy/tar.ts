/**
 * A streaming tar reader (ustar, GNU long names, pax headers) for bulk
 * extract-archive: entries come one at a time, each body an async iterable
 * of exactly its bytes that must be read or skipped before the next entry.
 */

export class TarError extends Error {}

export interface TarEntry {
  name: string;
  size: number;
  /** '0' regular file, '5' directory, … (ustar typeflag). */
  type: string;
  /** pax extended header records of this entry (global ones merged). */
  pax: Record<string, string>;
  body: AsyncIterable<Buffer>;
}

const BLOCK = 512;

function field(h: Buffer, off: number, len: number): string {
  const b = h.subarray(off, off + len);
  const nul = b.indexOf(0);
  return (nul < 0 ? b : b.subarray(0, nul)).toString('utf8');
}

function octal(h: Buffer, off: number, len: number): number {
  // Base-256 (GNU) for sizes past 8 GiB: high bit of the first byte set.
  if (h[off] & 0x80) {
    let n = h[off] & 0x7f;
    for (let i = 1; i < len; i++) n = n * 256 + h[off + i];
    return n;
  }
  const s = field(h, off, len).trim();
  if (s && !/^[0-7]+$/.test(s)) throw new TarError('invalid header');
  return s ? parseInt(s, 8) : 0;
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  return sum === octal(h, 148, 8);
}

/** "len key=value\n" records of a pax header. */
function parsePax(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < b.length) {
    const sp = b.indexOf(0x20, at);
    if (sp < 0) break;
    const len = Number(b.subarray(at, sp).toString());
    if (!len) break;
    const rec = b.subarray(sp + 1, at + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    at += len;
  }
  return out;
}

export async function* tarEntries(source: AsyncIterable<Buffer | string>): AsyncGenerator<TarEntry> {
  const it = source[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  const need = async (n: number): Promise<boolean> => {
    while (buf.length < n) {
      const next = await it.next();
      if (next.done) return false;
      buf = buf.length ? Buffer.concat([buf, Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value)]) : Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
    }
    return true;
  };
  const take = async (n: number): Promise<Buffer> => {
    if (!(await need(n))) throw new TarError('unexpected end of data');
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    return out;
  };
  const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;
  let global: Record<string, string> = {};
  let local: Record<string, string> = {};
  let longName: string | undefined;
  let first = true;
  for (;;) {
    if (!(await need(BLOCK))) {
      if (first) throw new TarError('empty file');
      return;
    }
    const h = await take(BLOCK);
    if (h.every((b) => b === 0)) return;
    if (!checksumOk(h)) throw new TarError(first ? 'invalid header' : 'bad checksum');
    first = false;
    const size = octal(h, 124, 12);
    const type = String.fromCharCode(h[156] || 0x30);
    if (type === 'x' || type === 'g' || type === 'L') {
      const data = (await take(padded(size))).subarray(0, size);
      if (type === 'x') local = { ...local, ...parsePax(data) };
      else if (type === 'g') global = { ...global, ...parsePax(data) };
      else longName = data.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    const prefix = h.subarray(257, 263).toString('latin1').startsWith('ustar') ? field(h, 345, 155) : '';
    const pax = { ...global, ...local };
    const name = pax.path ?? longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    const entrySize = pax.size !== undefined ? Number(pax.size) : size;
    local = {};
    longName = undefined;
    let left = entrySize;
    // A read the consumer abandoned may still be in flight: skipping waits for it, so the two never read at once.
    let inflight: Promise<boolean> = Promise.resolve(true);
    async function* body(): AsyncGenerator<Buffer> {
      while (left > 0) {
        if (!buf.length && !(await (inflight = need(1)))) throw new TarError('unexpected end of data');
        const n = Math.min(left, buf.length);
        const out = buf.subarray(0, n);
        buf = buf.subarray(n);
        left -= n;
        yield out;
      }
    }
    yield { name, size: entrySize, type, pax, body: body() };
    // Whatever the consumer left unread is skipped, then the block padding.
    await inflight.catch(() => false);
    for await (const _ of body());
    await take(padded(entrySize) - entrySize);
  }
}
