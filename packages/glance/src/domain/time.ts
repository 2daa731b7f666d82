/** Upstream's timeutils.isotime: seconds precision, UTC, a trailing Z. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * oslo's parse_isotime (the iso8601 library): a date, optionally a time and a
 * zone, UTC when no zone is given. undefined for anything else.
 */
export function parseIsoTime(s: string): number | undefined {
  const m = ISO_8601.exec(s.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = '00', mi = '00', sec = '00', frac = '', zone = 'Z'] = m;
  const tz = zone.toUpperCase() === 'Z' ? 'Z' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
  const ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${sec}${frac.slice(0, 4)}${tz}`);
  return Number.isNaN(ms) ? undefined : ms;
}
