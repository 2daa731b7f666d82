import { randomBytes } from 'node:crypto';

/**
 * upstream's Timestamp.normal: seconds with five decimals, zero-padded to 16
 * characters ("1732550000.12345"). Successive calls in one process never
 * repeat or go back, so two quick writes from here still order.
 */
let last = 0;
export function normalTimestamp(nowMs: number = Date.now()): string {
  let t = Math.round(nowMs * 100); // units of 10 µs
  if (t <= last) t = last + 1;
  last = t;
  return formatTimestamp(t / 100000);
}

export function formatTimestamp(seconds: number): string {
  return seconds.toFixed(5).padStart(16, '0');
}

/** `tx<21 hex>-<unix time as 10 hex digits>`, upstream's generate_trans_id with no suffix. */
export function newTransId(nowMs: number = Date.now()): string {
  return `tx${randomBytes(11).toString('hex').slice(0, 21)}-${Math.floor(nowMs / 1000).toString(16).padStart(10, '0')}`;
}

/** HTTP date of a timestamp, as Last-Modified (whole seconds, rounded up as upstream). */
export function httpDate(seconds: number): string {
  return new Date(Math.ceil(seconds) * 1000).toUTCString();
}
