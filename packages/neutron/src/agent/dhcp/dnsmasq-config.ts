/**
 * What dnsmasq is told for one network, the way upstream's dhcp agent tells it
 * (neutron/agent/linux/dhcp.py, Dnsmasq): static ranges only (every address comes from the
 * hosts file, built from the port list), options per subnet tag in an opts file, names in an
 * addn-hosts file. Pure functions: the agent writes the files and runs the process.
 */
import { isIP } from 'node:net';
import type { NetworkState, PortState, SubnetState } from '../model.ts';

export const METADATA_IP = '169.254.169.254';
export const DEFAULT_LEASE_SECONDS = 86_400;
export const DEFAULT_DNS_DOMAIN = 'openstacklocal';

export interface DnsmasqFiles {
  dir: string;
  pidFile: string;
  hostsFile: string;
  addnHostsFile: string;
  optsFile: string;
  leaseFile: string;
}

export interface DnsmasqInput {
  network: NetworkState;
  /** DHCP-enabled subnets of the network. */
  subnets: SubnetState[];
  /** Every port of the network except the DHCP port. */
  ports: PortState[];
  dhcpPort: PortState;
  interfaceName: string;
  files: DnsmasqFiles;
  leaseSeconds?: number;
  dnsDomain?: string;
}

export function subnetTag(subnet: SubnetState): string {
  return `subnet-${subnet.id}`;
}

function prefixLength(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

function networkAddress(cidr: string): string {
  return cidr.split('/')[0];
}

export function netmask4(len: number): string {
  const m = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 0xff).join('.');
}

/** The address mode a v6 subnet's DHCP range has; undefined when dnsmasq serves it no range. */
function v6RangeMode(s: SubnetState): string | undefined {
  const addr = s.ipv6AddressMode;
  const ra = s.ipv6RaMode;
  if (addr === 'dhcpv6-stateful' || (!addr && !ra)) return 'static';
  if (addr === 'dhcpv6-stateless') return 'ra-stateless';
  if (addr === 'slaac' && ra) return 'ra-only';
  return undefined;
}

/** dnsmasq's command line (without the program), upstream's options in upstream's order. */
export function dnsmasqArgs(input: DnsmasqInput): string[] {
  const { files } = input;
  const lease = `${input.leaseSeconds ?? DEFAULT_LEASE_SECONDS}s`;
  const args = [
    '--no-hosts',
    '--no-resolv',
    `--pid-file=${files.pidFile}`,
    `--dhcp-hostsfile=${files.hostsFile}`,
    `--addn-hosts=${files.addnHostsFile}`,
    `--dhcp-optsfile=${files.optsFile}`,
    `--dhcp-leasefile=${files.leaseFile}`,
    '--dhcp-match=set:ipxe,175',
    '--bind-interfaces',
    `--interface=${input.interfaceName}`,
  ];
  let possibleLeases = 0;
  let ra = false;
  for (const s of input.subnets) {
    const len = prefixLength(s.cidr);
    if (s.ipVersion === 4) {
      args.push(`--dhcp-range=set:${subnetTag(s)},${networkAddress(s.cidr)},static,${netmask4(len)},${lease}`);
      possibleLeases += 2 ** (32 - len);
    } else {
      const mode = v6RangeMode(s);
      if (s.ipv6RaMode) ra = true;
      // dnsmasq serves no range shorter than /64 (upstream skips them too).
      if (!mode || len < 64) continue;
      args.push(`--dhcp-range=set:${subnetTag(s)},${networkAddress(s.cidr)},${mode},${len},${lease}`);
      possibleLeases += 2 ** Math.min(128 - len, 24);
    }
  }
  if (ra) {
    args.push('--enable-ra');
    // Router lifetime 0: this server is not the subnet's router (the L3 agent's namespace is).
    args.push(`--ra-param=${input.interfaceName},mtu:${input.network.mtu},0,0`);
  }
  args.push(
    `--dhcp-lease-max=${Math.min(Math.max(possibleLeases, 1), 2 ** 24)}`,
    '--conf-file=/dev/null',
    `--domain=${input.dnsDomain ?? DEFAULT_DNS_DOMAIN}`,
    '--dhcp-authoritative',
  );
  return args;
}

/** `host-10-0-0-11` / `host-2001-db8--5`, or the port's dns_name. */
export function hostnameFor(port: PortState, ip: string): string {
  return port.dnsName || `host-${ip.replace(/[.:]/g, '-')}`;
}

function subnetsById(subnets: SubnetState[]): Map<string, SubnetState> {
  return new Map(subnets.map((s) => [s.id, s]));
}

/** The addresses DHCP hands out from hosts-file entries: v4 and stateful v6 only. */
function leasedIps(port: PortState, subnets: Map<string, SubnetState>): { ip: string; subnet: SubnetState }[] {
  const out: { ip: string; subnet: SubnetState }[] = [];
  for (const f of port.fixedIps) {
    const s = subnets.get(f.subnetId);
    if (!s) continue;
    if (s.ipVersion === 6 && v6RangeMode(s) !== 'static') continue;
    out.push({ ip: f.ipAddress, subnet: s });
  }
  return out;
}

/** `mac,fqdn,ip` per address (v6 in brackets), sorted so that unchanged state gives unchanged files. */
export function hostsFile(input: DnsmasqInput): string {
  const domain = input.dnsDomain ?? DEFAULT_DNS_DOMAIN;
  const subnets = subnetsById(input.subnets);
  const lines: string[] = [];
  for (const port of sortById(input.ports)) {
    for (const { ip } of leasedIps(port, subnets)) {
      const addr = isIP(ip) === 6 ? `[${ip}]` : ip;
      lines.push(`${port.macAddress},${hostnameFor(port, ip)}.${domain},${addr}`);
    }
  }
  return lines.map((l) => `${l}\n`).join('');
}

export function addnHostsFile(input: DnsmasqInput): string {
  const domain = input.dnsDomain ?? DEFAULT_DNS_DOMAIN;
  const subnets = subnetsById(input.subnets);
  const lines: string[] = [];
  for (const port of sortById(input.ports)) {
    for (const f of port.fixedIps) {
      if (!subnets.has(f.subnetId)) continue;
      const name = hostnameFor(port, f.ipAddress);
      lines.push(`${f.ipAddress}\t${name}.${domain} ${name}`);
    }
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** Options per subnet tag: router (3), DNS (6), MTU (26), classless routes (121 and MS 249). */
export function optsFile(input: DnsmasqInput): string {
  const lines: string[] = [];
  const dhcpIps = new Map(input.dhcpPort.fixedIps.map((f) => [f.subnetId, f.ipAddress]));
  for (const s of input.subnets) {
    const tag = `tag:${subnetTag(s)}`;
    if (s.ipVersion === 6) {
      if (s.dnsNameservers.length) lines.push(`${tag},option6:dns-server,${s.dnsNameservers.map((d) => `[${d}]`).join(',')}`);
      lines.push(`${tag},option6:domain-search,${input.dnsDomain ?? DEFAULT_DNS_DOMAIN}`);
      continue;
    }
    if (s.dnsNameservers.length) lines.push(`${tag},option:dns-server,${s.dnsNameservers.join(',')}`);
    const routes: string[] = [];
    const dhcpIp = dhcpIps.get(s.id);
    if (s.isolatedMetadata && dhcpIp) routes.push(`${METADATA_IP}/32,${dhcpIp}`);
    for (const r of s.hostRoutes) if (isIP(r.nexthop) === 4) routes.push(`${r.destination},${r.nexthop}`);
    // A client that gets option 121 ignores option 3, so the default route goes into 121 too.
    if (routes.length && s.gatewayIp) routes.push(`0.0.0.0/0,${s.gatewayIp}`);
    if (routes.length) {
      lines.push(`${tag},option:classless-static-route,${routes.join(',')}`);
      lines.push(`${tag},249,${routes.join(',')}`);
    }
    // No gateway: an empty router option tells the client there is none (not the server itself).
    lines.push(s.gatewayIp ? `${tag},option:router,${s.gatewayIp}` : `${tag},option:router`);
    lines.push(`${tag},option:mtu,${input.network.mtu}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

function sortById<T extends { id: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
