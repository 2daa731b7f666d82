/**
 * The router's NAT as one nftables table in the router namespace, rendered from the
 * router's state and applied in one `nft -f -` transaction (create, delete, recreate:
 * atomic, and the same whether the table existed or not).
 *
 * The table carries a digest of its rendering as its comment, so a reconcile whose
 * rendering is unchanged leaves the table (and its rule handles) alone.
 */
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { gatewayDevice } from './device-names.ts';
import type { RouterState } from './router-state.ts';

export const NAT_TABLE = 'onestack-l3-nat';
const DIGEST_PREFIX = 'onestack:';

export interface NatRendering {
  /** The table body: chains and rules, no table wrapper. */
  chains: string;
  digest: string;
  ruleCount: number;
}

/** The IPv4 network of address/prefixlen in CIDR form (nft wants host bits clear). */
export function ipv4Network(address: string, prefixlen: number): string {
  const n = address.split('.').reduce((acc, octet) => (acc << 8) | Number(octet), 0) >>> 0;
  const mask = prefixlen === 0 ? 0 : (0xffffffff << (32 - prefixlen)) >>> 0;
  const net = (n & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 0xff).join('.')}/${prefixlen}`;
}

function gatewayIpv4(router: RouterState): string | undefined {
  return router.gateway?.fixedIps.find((ip) => isIPv4(ip.ipAddress))?.ipAddress;
}

/**
 * Floating IPs: DNAT in prerouting (from outside) and output (from the router itself),
 * SNAT of the fixed address leaving through qg-. Internal subnets: SNAT to the gateway
 * address when enable_snat. Hairpin: a guest reaching another guest's floating IP from
 * inside is masqueraded, or the reply would go back directly, un-NATed.
 */
export function renderNat(router: RouterState): NatRendering {
  const pre: string[] = [];
  const post: string[] = [];
  const gw = router.gateway;
  if (gw) {
    const qg = JSON.stringify(gatewayDevice(gw.portId));
    const fips = [...router.floatingIps].filter((f) => isIPv4(f.floatingIpAddress) && isIPv4(f.fixedIpAddress));
    fips.sort((a, b) => a.floatingIpAddress.localeCompare(b.floatingIpAddress));
    for (const fip of fips) {
      pre.push(`ip daddr ${fip.floatingIpAddress} dnat to ${fip.fixedIpAddress}`);
      post.push(`ip saddr ${fip.fixedIpAddress} oifname ${qg} snat to ${fip.floatingIpAddress}`);
    }
    const gwIp = gatewayIpv4(router);
    if (gw.enableSnat && gwIp) {
      const subnets = new Set<string>();
      for (const itf of router.interfaces) {
        for (const ip of itf.fixedIps) if (isIPv4(ip.ipAddress)) subnets.add(ipv4Network(ip.ipAddress, ip.prefixlen));
      }
      for (const cidr of [...subnets].sort()) post.push(`ip saddr ${cidr} oifname ${qg} snat to ${gwIp}`);
    }
    if (fips.length > 0) post.push('iifname "qr-*" oifname "qr-*" ct status dnat masquerade');
  }
  const chain = (name: string, hook: string, priority: string, rules: string[]) =>
    // A rule's last token on the line of a closing brace is a syntax error in nft 1.0.6 (`dnat to X }`): one per line.
    [`\tchain ${name} {`, `\t\ttype nat hook ${hook} priority ${priority}; policy accept;`, ...rules.map((r) => `\t\t${r}`), '\t}'].join('\n');
  const chains = [
    chain('prerouting', 'prerouting', 'dstnat', pre),
    chain('output', 'output', '-100', pre),
    chain('postrouting', 'postrouting', 'srcnat', post),
  ].join('\n');
  const digest = createHash('sha256').update(chains).digest('hex').slice(0, 32);
  return { chains, digest, ruleCount: pre.length * 2 + post.length };
}

/** The `nft -f -` script that replaces the table in one transaction. */
export function natScript(rendering: NatRendering): string {
  return [
    `table ip ${NAT_TABLE}`,
    `delete table ip ${NAT_TABLE}`,
    `table ip ${NAT_TABLE} {`,
    `\tcomment "${DIGEST_PREFIX}${rendering.digest}"`,
    rendering.chains,
    '}',
    '',
  ].join('\n');
}

export function natDeleteScript(): string {
  return `table ip ${NAT_TABLE}\ndelete table ip ${NAT_TABLE}\n`;
}

/** Whether `nft list table ip onestack-l3-nat` output is this rendering, unchanged. */
export function natTableMatches(listing: string, rendering: NatRendering): boolean {
  const comment = /^\s*comment "([^"]*)"/m.exec(listing)?.[1];
  if (comment !== DIGEST_PREFIX + rendering.digest) return false;
  const rules = listing.split('\n').filter((line) => {
    const t = line.trim();
    return t !== '' && !t.startsWith('table ') && !t.startsWith('chain ') && !t.startsWith('type ') && !t.startsWith('comment ') && t !== '}';
  });
  return rules.length === rendering.ruleCount;
}
