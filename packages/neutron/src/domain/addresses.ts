import ipaddr from 'ipaddr.js';

/** Address arithmetic for IPAM: addresses as bigints, CIDRs with their bounds. */
export interface Cidr {
  version: 4 | 6;
  first: bigint;
  last: bigint;
  prefix: number;
  text: string;
}

export function ipToBig(ip: string): { version: 4 | 6; value: bigint } | undefined {
  if (!ipaddr.isValid(ip)) return undefined;
  let addr = ipaddr.parse(ip);
  if (addr.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(ip)) return undefined;
  const bytes = addr.toByteArray();
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return { version: addr.kind() === 'ipv4' ? 4 : 6, value: v };
}

export function bigToIp(version: 4 | 6, value: bigint): string {
  const n = version === 4 ? 4 : 16;
  const bytes: number[] = [];
  for (let i = n - 1; i >= 0; i--) bytes.push(Number((value >> BigInt(i * 8)) & 0xffn));
  return ipaddr.fromByteArray(bytes).toString();
}

export function normalizeIp(ip: string): string | undefined {
  const b = ipToBig(ip);
  return b ? bigToIp(b.version, b.value) : undefined;
}

/** A CIDR as written; `strict` refuses host bits set (upstream: "is not a recognized IP subnet cidr"). */
export function parseCidr(text: string, strict = true): Cidr | undefined {
  const slash = text.indexOf('/');
  const ipPart = slash < 0 ? text : text.slice(0, slash);
  const parsed = ipToBig(ipPart);
  if (!parsed) return undefined;
  const bits = parsed.version === 4 ? 32 : 128;
  const prefix = slash < 0 ? bits : Number(text.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits || (slash >= 0 && !/^\d+$/.test(text.slice(slash + 1)))) return undefined;
  const hostBits = BigInt(bits - prefix);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << hostBits) - 1n);
  const first = parsed.value & mask;
  if (strict && first !== parsed.value) return undefined;
  const last = first | ((1n << hostBits) - 1n);
  return { version: parsed.version, first, last, prefix, text: `${bigToIp(parsed.version, first)}/${prefix}` };
}

export function contains(c: Cidr, ip: bigint): boolean {
  return ip >= c.first && ip <= c.last;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.version === b.version && a.first <= b.last && b.first <= a.last;
}

export interface Pool {
  start: bigint;
  end: bigint;
}

/** Upstream's default pool: the whole subnet but the network address (and broadcast on IPv4), minus the gateway. */
export function defaultPools(c: Cidr, gateway: bigint | null): Pool[] {
  const start = c.version === 4 && c.prefix < 31 ? c.first + 1n : c.version === 6 ? c.first + 1n : c.first;
  const end = c.version === 4 && c.prefix < 31 ? c.last - 1n : c.last;
  if (start > end) return [];
  if (gateway === null || gateway < start || gateway > end) return [{ start, end }];
  const pools: Pool[] = [];
  if (gateway > start) pools.push({ start, end: gateway - 1n });
  if (gateway < end) pools.push({ start: gateway + 1n, end });
  return pools;
}

/** The subnet's modified EUI-64 address for a MAC (RFC 4291 appendix A), used by SLAAC and DHCPv6-stateless subnets. */
export function eui64(c: Cidr, mac: string): bigint {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  const iid = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
  let v = 0n;
  for (const x of iid) v = (v << 8n) | BigInt(x);
  return c.first | v;
}

/** Yields the addresses of the pools in order, skipping `taken`, at most `max` of them. */
export function freeAddresses(pools: Pool[], taken: Set<bigint>, max: number): bigint[] {
  const out: bigint[] = [];
  for (const p of pools) {
    for (let a = p.start; a <= p.end && out.length < max; a++) if (!taken.has(a)) out.push(a);
    if (out.length >= max) break;
  }
  return out;
}

/** The first free block of `prefixlen` inside `within` that overlaps none of `used`. */
export function freeBlock(within: Cidr, prefixlen: number, used: Cidr[]): Cidr | undefined {
  if (prefixlen < within.prefix) return undefined;
  const bits = within.version === 4 ? 32 : 128;
  const size = 1n << BigInt(bits - prefixlen);
  const sorted = used.filter((u) => overlaps(u, within)).sort((a, b) => (a.first < b.first ? -1 : 1));
  let cand = within.first;
  while (cand + size - 1n <= within.last) {
    const block: Cidr = { version: within.version, first: cand, last: cand + size - 1n, prefix: prefixlen, text: `${bigToIp(within.version, cand)}/${prefixlen}` };
    const clash = sorted.find((u) => overlaps(u, block));
    if (!clash) return block;
    // Jump past the clash, aligned to the block size.
    const next = clash.last + 1n;
    cand = ((next + size - 1n) / size) * size;
  }
  return undefined;
}
