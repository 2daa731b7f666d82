/**
 * The nftables rules of one host namespace: security groups and anti-spoofing per port, in
 * the design measured on these machines (shared notes, vms-and-networks §4): the kernel has no
 * conntrack in the bridge family, so
 *
 * - a **bridge** table marks each frame by port — the upper 16 bits of the packet mark say which
 *   port sent it (prerouting, keyed on the tap), the lower 16 bits which port it goes to
 *   (forward, priority -200, before br_netfilter) — and does the stateless anti-spoofing there
 *   (MAC, IPv4/IPv6 source, ARP sender; DHCP from 0.0.0.0 and DAD from :: allowed; a guest may
 *   not answer DHCP or send router advertisements);
 * - an **inet** table, reached through br_netfilter, jumps on the mark to the port's egress and
 *   ingress chains, where conntrack works: established/related pass, invalid drops, each
 *   security-group rule passes what it describes, the rest drops. An egress chain `return`s
 *   (so the receiving port's ingress chain still runs), an ingress chain `accept`s.
 *
 * In an inet chain reached through the bridge `oifname` is the bridge, not the tap (measured):
 * hence the marks. Pure functions; ./firewall.ts applies the result with `nft -f -`.
 */
import { isIP } from 'node:net';
import type { PortState, SecurityGroupRuleState, SecurityGroupState } from '../model.ts';
import { tapNameFor, ID_CHARS } from '../model.ts';

export const BRIDGE_TABLE = 'onestack-ports';
export const INET_TABLE = 'onestack-sg';

export interface FirewallPort {
  port: PortState;
  /** 1..65535, stable for the port's life on the host (see MarkAllocator). */
  index: number;
}

const PROTOCOLS: Record<string, number> = {
  ah: 51, dccp: 33, egp: 8, esp: 50, gre: 47, icmp: 1, icmpv6: 58, 'ipv6-icmp': 58, igmp: 2, ipip: 4, 'ipv6-encap': 41,
  'ipv6-frag': 44, 'ipv6-nonxt': 59, 'ipv6-opts': 60, 'ipv6-route': 43, ospf: 89, pgm: 113, rsvp: 46, sctp: 132, tcp: 6,
  udp: 17, udplite: 136, vrrp: 112,
};
const PORT_PROTOCOLS = new Set([6, 17, 33, 132, 136]);

/** The protocol number a rule matches, or null for any; throws on an unknown name. */
export function protocolNumber(protocol: string | number | null, ethertype: 'IPv4' | 'IPv6'): number | null {
  if (protocol === null || protocol === '' || protocol === 'any') return null;
  let n: number;
  if (typeof protocol === 'number' || /^\d+$/.test(protocol)) n = Number(protocol);
  else {
    const known = PROTOCOLS[protocol.toLowerCase()];
    if (known === undefined) throw new Error(`unknown protocol ${JSON.stringify(protocol)}`);
    n = known;
  }
  if (!Number.isInteger(n) || n < 0 || n > 255) throw new Error(`invalid protocol number ${protocol}`);
  // Upstream: "icmp" in an IPv6 rule means ICMPv6.
  if (ethertype === 'IPv6' && n === 1) return 58;
  return n;
}

/** A CIDR with its host bits cleared (nft refuses some, and equal prefixes must render equally). */
export function normalizeCidr(cidr: string): string {
  const [addr, lenText] = cidr.split('/');
  const v = isIP(addr);
  if (!v) throw new Error(`invalid address ${JSON.stringify(cidr)}`);
  const bits = v === 4 ? 32 : 128;
  const len = lenText === undefined ? bits : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > bits) throw new Error(`invalid prefix ${JSON.stringify(cidr)}`);
  const value = v === 4 ? ipv4ToBig(addr) : ipv6ToBig(addr);
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
  const net = value & mask;
  const text = v === 4 ? bigToIpv4(net) : bigToIpv6(net);
  return len === bits ? text : `${text}/${len}`;
}

function ipv4ToBig(a: string): bigint {
  return a.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}
function bigToIpv4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
}
function ipv6ToBig(a: string): bigint {
  let text = a;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = ipv4ToBig(v4[1]);
    text = text.slice(0, -v4[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}
function bigToIpv6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((n >> BigInt(16 * (7 - i))) & 0xffffn).toString(16));
  // The canonical form: the longest run of zero groups (two or more) becomes '::'.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** fe80::/64 address from the MAC by modified EUI-64 (what a guest's kernel configures). */
export function linkLocalFromMac(mac: string): string {
  const b = mac.split(':').map((x) => parseInt(x, 16));
  b[0] ^= 0x02;
  const g = [(b[0] << 8) | b[1], (b[2] << 8) | 0xff, (0xfe << 8) | b[3], (b[4] << 8) | b[5]];
  return normalizeCidr(`fe80::${g.map((x) => x.toString(16)).join(':')}`);
}

const q = (s: string) => `"${s}"`;
const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
const short = (id: string) => id.slice(0, ID_CHARS);
const set = (items: string[]) => `{ ${[...new Set(items)].join(', ')} }`;

/** Named sets of remote-group member addresses, per group and family. */
export function remoteGroupSetName(groupId: string, family: 4 | 6): string {
  return `rg-${groupId}-${family}`;
}

function antiSpoofRules(port: PortState): string[] {
  const macs = [port.macAddress, ...port.allowedAddressPairs.map((p) => p.macAddress)].map((m) => m.toLowerCase());
  const pairs = [
    ...port.fixedIps.map((f) => ({ mac: port.macAddress.toLowerCase(), ip: f.ipAddress })),
    ...port.allowedAddressPairs.map((p) => ({ mac: p.macAddress.toLowerCase(), ip: p.ipAddress })),
  ].map((p) => ({ mac: p.mac, ip: normalizeCidr(p.ip) }));
  const v4 = pairs.filter((p) => isIP(p.ip.split('/')[0]) === 4);
  const v6 = [...pairs.filter((p) => isIP(p.ip.split('/')[0]) === 6), ...macs.map((mac) => ({ mac, ip: linkLocalFromMac(mac) }))];
  const rules = [`ether saddr != ${set(macs)} drop`];
  rules.push(v4.length ? `ether type arp arp saddr ip != ${set(v4.map((p) => p.ip))} drop` : 'ether type arp drop');
  // DHCP DISCOVER/REQUEST come from 0.0.0.0 before the guest has its address.
  rules.push('ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept');
  rules.push(v4.length ? `ether type ip ether saddr . ip saddr != ${set(v4.map((p) => `${p.mac} . ${p.ip}`))} drop` : 'ether type ip drop');
  // Duplicate address detection and MLD reports come from :: .
  rules.push('ether type ip6 ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld-listener-report, mld2-listener-report } accept');
  rules.push(`ether type ip6 ether saddr . ip6 saddr != ${set(v6.map((p) => `${p.mac} . ${p.ip}`))} drop`);
  // A guest is neither the network's DHCP server nor its router.
  rules.push('ether type ip udp sport 67 udp dport 68 drop');
  rules.push('ether type ip6 udp sport 547 udp dport 546 drop');
  rules.push('ether type ip6 icmpv6 type { nd-router-advert, nd-redirect } drop');
  return rules;
}

/** One security-group rule as nft match expressions, or null when it can match nothing. */
export function ruleMatch(rule: SecurityGroupRuleState, knownGroups: Set<string>): string | null {
  const family = rule.ethertype === 'IPv6' ? 6 : 4;
  const parts = [`meta nfproto ${family === 4 ? 'ipv4' : 'ipv6'}`];
  const proto = protocolNumber(rule.protocol, rule.ethertype);
  if (proto !== null) parts.push(`meta l4proto ${proto}`);
  if (proto !== null && PORT_PROTOCOLS.has(proto) && rule.portRangeMin !== null) {
    const max = rule.portRangeMax ?? rule.portRangeMin;
    parts.push(`th dport ${max === rule.portRangeMin ? rule.portRangeMin : `${rule.portRangeMin}-${max}`}`);
  } else if ((proto === 1 || proto === 58) && rule.portRangeMin !== null) {
    const kw = proto === 1 ? 'icmp' : 'icmpv6';
    parts.push(`${kw} type ${rule.portRangeMin}`);
    if (rule.portRangeMax !== null) parts.push(`${kw} code ${rule.portRangeMax}`);
  }
  const addrKw = family === 4 ? 'ip' : 'ip6';
  const side = rule.direction === 'ingress' ? 'saddr' : 'daddr';
  if (rule.remoteIpPrefix) {
    const prefix = normalizeCidr(rule.remoteIpPrefix);
    if (isIP(prefix.split('/')[0]) !== family) return null;
    if (!/\/0$/.test(prefix)) parts.push(`${addrKw} ${side} ${prefix}`);
  }
  if (rule.remoteGroupId) {
    if (!knownGroups.has(rule.remoteGroupId)) return null;
    parts.push(`${addrKw} ${side} @${remoteGroupSetName(rule.remoteGroupId, family)}`);
  }
  return parts.join(' ');
}

function sgChains(fp: FirewallPort, groups: Map<string, SecurityGroupState>): { out: string[]; in: string[] } {
  const portGroups = fp.port.securityGroupIds.map((id) => groups.get(id)).filter((g): g is SecurityGroupState => !!g);
  const stateful = portGroups.length === 0 || portGroups.some((g) => g.stateful);
  const known = new Set(groups.keys());
  const out: string[] = [];
  const inn: string[] = [];
  if (stateful) {
    out.push('ct state invalid drop', 'ct state established,related return');
    inn.push('ct state invalid drop', 'ct state established,related accept');
  }
  // Upstream's allowances: DHCP and the ND/MLD messages a port needs to work at all.
  out.push('meta nfproto ipv4 udp sport 68 udp dport 67 return');
  out.push('meta nfproto ipv6 udp sport 546 udp dport 547 return');
  out.push('meta nfproto ipv6 icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } return');
  inn.push('meta nfproto ipv4 udp sport 67 udp dport 68 accept');
  inn.push('meta nfproto ipv6 udp sport 547 udp dport 546 accept');
  inn.push('meta nfproto ipv6 icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query } accept');
  const seen = new Set<string>();
  for (const g of portGroups) {
    for (const rule of g.rules) {
      const m = ruleMatch(rule, known);
      if (m === null) continue;
      const line = rule.direction === 'egress' ? `${m} return` : `${m} accept`;
      const key = `${rule.direction} ${line}`;
      if (seen.has(key)) continue;
      seen.add(key);
      (rule.direction === 'egress' ? out : inn).push(line);
    }
  }
  out.push('drop');
  inn.push('drop');
  return { out, in: inn };
}

function chain(name: string, lines: string[], head?: string): string {
  const body = [...(head ? [head] : []), ...lines].map((l) => `    ${l}`).join('\n');
  return `  chain ${name} {\n${body}\n  }`;
}

/** Security-group ports: those with port security on (the others pass untouched, as upstream). */
export function protectedPorts(ports: FirewallPort[]): FirewallPort[] {
  return ports.filter((p) => p.port.portSecurityEnabled).sort((a, b) => a.index - b.index);
}

/** The bridge table's body (without the table line), or null when no port needs one. */
export function renderBridgeTable(ports: FirewallPort[]): string | null {
  const fps = protectedPorts(ports);
  if (!fps.length) return null;
  const chains = [
    chain('prerouting', [`iifname vmap ${set(fps.map((p) => `${q(tapNameFor(p.port.id))} : jump out-${short(p.port.id)}`))}`], 'type filter hook prerouting priority -200; policy accept;'),
    chain('forward', [`oifname vmap ${set(fps.map((p) => `${q(tapNameFor(p.port.id))} : jump in-${short(p.port.id)}`))}`], 'type filter hook forward priority -200; policy accept;'),
  ];
  for (const fp of fps) {
    chains.push(chain(`out-${short(fp.port.id)}`, [`meta mark set meta mark & 0x0000ffff | ${hex(fp.index << 16)}`, ...antiSpoofRules(fp.port)]));
    chains.push(chain(`in-${short(fp.port.id)}`, [`meta mark set meta mark & 0xffff0000 | ${hex(fp.index)}`]));
  }
  return chains.join('\n');
}

/** The inet table's body, or null when no port needs one. */
export function renderInetTable(ports: FirewallPort[], groups: SecurityGroupState[]): string | null {
  const fps = protectedPorts(ports);
  if (!fps.length) return null;
  const byId = new Map([...groups].sort((a, b) => (a.id < b.id ? -1 : 1)).map((g) => [g.id, g]));
  const parts: string[] = [];
  for (const g of byId.values()) {
    for (const family of [4, 6] as const) {
      const members = [...new Set(g.memberIps.filter((ip) => isIP(ip.split('/')[0]) === family).map(normalizeCidr))].sort();
      const elements = members.length ? ` elements = ${set(members)};` : '';
      parts.push(`  set ${remoteGroupSetName(g.id, family)} { type ${family === 4 ? 'ipv4_addr' : 'ipv6_addr'}; flags interval; auto-merge;${elements} }`);
    }
  }
  parts.push(
    chain(
      'forward',
      [
        `meta mark & 0xffff0000 vmap ${set(fps.map((p) => `${hex(p.index << 16)} : jump sg-out-${short(p.port.id)}`))}`,
        `meta mark & 0x0000ffff vmap ${set(fps.map((p) => `${hex(p.index)} : jump sg-in-${short(p.port.id)}`))}`,
      ],
      'type filter hook forward priority 0; policy accept;',
    ),
  );
  for (const fp of fps) {
    const c = sgChains(fp, byId);
    parts.push(chain(`sg-out-${short(fp.port.id)}`, c.out));
    parts.push(chain(`sg-in-${short(fp.port.id)}`, c.in));
  }
  return parts.join('\n');
}

/**
 * One nft transaction replacing a table's whole content (create-if-missing, delete, define):
 * atomic, and never leaves a duplicate rule behind. `comment` carries the content's hash so that
 * an unchanged state is recognised on the live table and not re-applied.
 */
export function replaceTableScript(family: 'bridge' | 'inet', name: string, body: string | null, comment: string): string {
  const lines = [`table ${family} ${name}`, `delete table ${family} ${name}`];
  if (body !== null) lines.push(`table ${family} ${name} {\n  comment "${comment}"\n${body}\n}`);
  return `${lines.join('\n')}\n`;
}
