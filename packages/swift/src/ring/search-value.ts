import type { BuilderDevice } from './builder.ts';

/** Device fields a search value can name; each present field must match. */
export interface DeviceMatch {
  id?: number;
  region?: number;
  zone?: number;
  ip?: string;
  port?: number;
  replication_ip?: string;
  replication_port?: number;
  device?: string;
  meta?: string;
}

function takeInt(s: string, prefix: string): [number | undefined, string] {
  if (!s.startsWith(prefix)) return [undefined, s];
  const m = /^\d+/.exec(s.slice(prefix.length));
  if (!m) throw new Error(`Invalid <search-value>: expected digits after ${prefix}`);
  return [Number(m[0]), s.slice(prefix.length + m[0].length)];
}

/** An address: IPv4 digits and dots, [IPv6], or (after a '-') a host name up to ':', 'R', '/' or '_'. */
function takeIp(s: string, afterDash: boolean): [string | undefined, string] {
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) throw new Error('Invalid <search-value>: unterminated [');
    return [s.slice(1, end).toLowerCase(), s.slice(end + 1)];
  }
  const m = (afterDash ? /^[A-Za-z0-9.-]*[A-Za-z0-9]/ : /^\d[\d.]*/).exec(s);
  if (!m) return [undefined, s];
  // A host name must not swallow the 'R' of a replication address: stop before R<digit|[|:>.
  let ip = m[0];
  const r = /R(?=[\d[:])/.exec(ip);
  if (r && afterDash) ip = ip.slice(0, r.index);
  return [ip, s.slice(ip.length)];
}

/**
 * Upstream's search value: d<id>r<region>z<zone>-<ip>:<port>R<r_ip>:<r_port>/<device>_<meta>,
 * every part optional but at least one present. Also the form `add` takes,
 * e.g. r1z1-127.0.0.1:6200/sdb1.
 */
export function parseSearchValue(value: string): DeviceMatch {
  const orig = value;
  const m: DeviceMatch = {};
  let s = value;
  [m.id, s] = takeInt(s, 'd');
  [m.region, s] = takeInt(s, 'r');
  [m.zone, s] = takeInt(s, 'z');
  const dash = s.startsWith('-');
  if (dash) s = s.slice(1);
  [m.ip, s] = takeIp(s, dash);
  if (s.startsWith(':')) [m.port, s] = takeInt(s, ':');
  if (s.startsWith('R')) {
    s = s.slice(1);
    [m.replication_ip, s] = takeIp(s, true);
    if (s.startsWith(':')) [m.replication_port, s] = takeInt(s, ':');
  }
  if (s.startsWith('/')) {
    const end = s.indexOf('_');
    m.device = end < 0 ? s.slice(1) : s.slice(1, end);
    s = end < 0 ? '' : s.slice(end);
  }
  if (s.startsWith('_')) {
    m.meta = s.slice(1).replace(/^"(.*)"$/, '$1');
    s = '';
  }
  if (s) throw new Error(`Invalid <search-value>: ${JSON.stringify(orig)} (left over: ${JSON.stringify(s)})`);
  for (const k of Object.keys(m) as (keyof DeviceMatch)[]) if (m[k] === undefined || m[k] === '') delete m[k];
  if (!Object.keys(m).length) throw new Error(`Invalid <search-value>: ${JSON.stringify(orig)}`);
  return m;
}

export function matchDevices(devs: BuilderDevice[], match: DeviceMatch): BuilderDevice[] {
  return devs.filter((d) =>
    (Object.keys(match) as (keyof DeviceMatch)[]).every((k) => (k === 'meta' ? String(d.meta ?? '').includes(match.meta as string) : d[k] === match[k])),
  );
}
