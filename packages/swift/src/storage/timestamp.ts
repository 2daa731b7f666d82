/**
 * Swift's Timestamp (swift/common/utils/timestamp.py): seconds with five
 * decimals, zero-padded to 16 characters ("0000001234.56789"), optionally
 * followed by "_" and a 16-hex-digit offset. The fixed width makes the
 * internal form sort lexically in time order, which the disk layout and the
 * databases rely on (file names, created_at columns).
 */
export class InvalidTimestamp extends Error {}

export interface Timestamp {
  /** Units of 10 µs since the epoch. */
  ticks: number;
  offset: number;
}

const PRECISION = 100000;

export function parseTimestamp(value: string | number): Timestamp {
  let raw = String(value).trim();
  let offset = 0;
  const us = raw.indexOf('_');
  if (us >= 0) {
    const off = raw.slice(us + 1);
    if (!/^[0-9a-fA-F]{1,16}$/.test(off)) throw new InvalidTimestamp(`invalid timestamp ${value}`);
    offset = parseInt(off, 16);
    raw = raw.slice(0, us);
  }
  if (!/^\d+(\.\d*)?$|^\.\d+$/.test(raw)) throw new InvalidTimestamp(`invalid timestamp ${value}`);
  const ticks = Math.round(Number(raw) * PRECISION);
  if (!Number.isFinite(ticks) || ticks >= 1e10 * PRECISION) throw new InvalidTimestamp(`invalid timestamp ${value}`);
  return { ticks, offset };
}

/** "0001700000000.12345" style, as upstream's Timestamp.normal. */
export function normalTs(ts: Timestamp): string {
  const whole = Math.floor(ts.ticks / PRECISION);
  const frac = ts.ticks - whole * PRECISION;
  return `${String(whole).padStart(10, '0')}.${String(frac).padStart(5, '0')}`;
}

export function internalTs(ts: Timestamp): string {
  return ts.offset ? `${normalTs(ts)}_${ts.offset.toString(16).padStart(16, '0')}` : normalTs(ts);
}

/** Normalises any accepted spelling to the internal form, or throws InvalidTimestamp. */
export function normalizeTimestamp(value: string | number): string {
  return internalTs(parseTimestamp(value));
}

/** The normal form of an internal timestamp (drops the offset). */
export function normalOf(internal: string): string {
  const us = internal.indexOf('_');
  return us >= 0 ? internal.slice(0, us) : internal;
}

export function nowTimestamp(nowMs = Date.now()): string {
  return internalTs({ ticks: Math.round(nowMs * (PRECISION / 1000)), offset: 0 });
}

export function timestampSeconds(internal: string): number {
  return Number(normalOf(internal));
}

/** Last-Modified as upstream computes it: the timestamp rounded up to whole seconds. */
export function httpDateOf(internal: string): string {
  return new Date(Math.ceil(timestampSeconds(internal)) * 1000).toUTCString();
}

/** "2024-01-02T03:04:05.123450" as upstream's listings print last_modified. */
export function isoOf(internal: string): string {
  const ts = parseTimestamp(internal);
  const whole = Math.floor(ts.ticks / PRECISION);
  const frac = ts.ticks - whole * PRECISION;
  const d = new Date(whole * 1000).toISOString().slice(0, 19);
  return `${d}.${String(frac).padStart(5, '0')}0`;
}
