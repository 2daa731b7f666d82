/**
 * Test support for the agents' real-data-plane tests (imported by *.test.ts only): builders
 * for host-state pieces and the lab topology of "hosts" as namespaces joined by an underlay veth.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import type { Netns, NetnsLab } from '@onestack/testing/netns.ts';
import { IpLib } from './linux/ip-lib.ts';
import type { NetworkState, PortState, SecurityGroupState, SubnetState } from './model.ts';

export const quietLogger: ExecLogger = { info: () => {}, warn: () => {} };

let macSeq = 0x10;
export function nextMac(): string {
  macSeq += 1;
  const b = (n: number) => n.toString(16).padStart(2, '0');
  return `fa:16:3e:${b((process.pid >> 8) & 0xff)}:${b(process.pid & 0xff)}:${b(macSeq & 0xff)}`;
}

export function vxlanNetwork(vni: number, mtu = 1450): NetworkState {
  return { id: randomUUID(), mtu, segment: { networkType: 'vxlan', segmentationId: vni, physicalNetwork: null } };
}

export function localNetwork(mtu = 1500): NetworkState {
  return { id: randomUUID(), mtu, segment: { networkType: 'local', segmentationId: null, physicalNetwork: null } };
}

export function subnet4(networkId: string, cidr: string, gatewayIp: string | null, extra: Partial<SubnetState> = {}): SubnetState {
  return {
    id: randomUUID(),
    networkId,
    ipVersion: 4,
    cidr,
    gatewayIp,
    enableDhcp: true,
    dnsNameservers: [],
    hostRoutes: [],
    ipv6RaMode: null,
    ipv6AddressMode: null,
    ...extra,
  };
}

export function port(networkId: string, fixedIps: { subnetId: string; ipAddress: string }[], extra: Partial<PortState> = {}): PortState {
  return {
    id: randomUUID(),
    networkId,
    macAddress: nextMac(),
    fixedIps,
    deviceOwner: 'compute:nova',
    deviceId: randomUUID(),
    adminStateUp: true,
    portSecurityEnabled: true,
    securityGroupIds: [],
    allowedAddressPairs: [],
    ...extra,
  };
}

/** A group allowing everything (both directions, both families): the baseline for traffic tests. */
export function openGroup(memberIps: string[] = []): SecurityGroupState {
  const rule = (direction: 'ingress' | 'egress', ethertype: 'IPv4' | 'IPv6') => ({
    id: randomUUID(),
    direction,
    ethertype,
    protocol: null,
    portRangeMin: null,
    portRangeMax: null,
    remoteIpPrefix: null,
    remoteGroupId: null,
  });
  return {
    id: randomUUID(),
    stateful: true,
    rules: [rule('ingress', 'IPv4'), rule('egress', 'IPv4'), rule('ingress', 'IPv6'), rule('egress', 'IPv6')],
    memberIps,
  };
}

/** Host namespaces joined by one underlay veth (10.x VTEPs): hosts[i] has underlay address vteps[i]. */
export async function underlayHosts(lab: NetnsLab, count: 1 | 2, tag: string): Promise<{ hosts: Netns[]; vteps: string[] }> {
  const hosts: Netns[] = [];
  for (let i = 0; i < count; i++) hosts.push(await lab.addNamespace(`${tag}-h${i}`));
  const vteps = ['192.168.199.1', '192.168.199.2'].slice(0, count);
  if (count === 2) {
    await lab.addVeth({ ns: hosts[0], name: 'ul0', addresses: [`${vteps[0]}/24`] }, { ns: hosts[1], name: 'ul0', addresses: [`${vteps[1]}/24`] });
  }
  return { hosts, vteps };
}

/** Waits for `fn` to stop throwing (DHCP, ARP and bridges take a moment). */
/**
 * Everything a restart of the agent must leave untouched on one host: links (minus ticking
 * timers), the configured fdb entries and the nft ruleset. Learned fdb entries come and go
 * with whatever the guests send (IPv6 neighbour discovery, for one), so they are left out.
 */
export async function dataPlane(ip: IpLib, ns: Netns): Promise<string> {
  const steady = (d: Record<string, unknown> = {}) => Object.fromEntries(Object.entries(d).filter(([k]) => !k.endsWith('_timer')));
  const links = (await ip.linkList(ns.name)).map((l) => ({ ...l, linkinfo: { ...l.linkinfo, info_data: steady(l.linkinfo?.info_data) } }));
  const nft = (await ns.exec('nft', ['-j', 'list', 'ruleset'])).stdout;
  const entries = JSON.parse(await ip.bridge(ns.name, ['-j', 'fdb', 'show'])) as { state?: string }[];
  const fdb = entries.filter((e) => e.state === 'permanent' || e.state === 'static');
  return JSON.stringify({ links, nft, fdb });
}

export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 10_000, stepMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, stepMs));
    }
  }
}

/** One ping from `ns` (busybox: this machine has no iputils ping). */
export async function ping(ns: Netns, address: string, opts: { timeoutS?: number } = {}): Promise<void> {
  await ns.exec('busybox', ['ping', '-c', '1', '-W', String(opts.timeoutS ?? 2), address]);
}

/** True when one ping gets through; false when it does not. */
export async function pings(ns: Netns, address: string, timeoutS = 1): Promise<boolean> {
  try {
    await ping(ns, address, { timeoutS });
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes the namespaces an agent under test created with `prefix` (qdhcp-… of a simulated
 * host), killing what runs inside: the lab only knows the namespaces it made itself.
 */
export async function removeAgentNamespaces(prefix: string): Promise<void> {
  const ip = new IpLib({ logger: quietLogger });
  for (const ns of await ip.netnsList()) {
    if (!ns.startsWith(prefix)) continue;
    for (const pid of await ip.netnsPids(ns)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await ip.netnsDelete(ns, { mayNotExist: true });
  }
}

export interface Lease {
  ip: string;
  mask: string;
  router?: string;
  mtu?: string;
  staticroutes?: string;
  dns?: string;
}

/**
 * Asks for a lease with busybox udhcpc (as the guest image does, with option 121 and 26
 * requested) and configures it on the interface. The hook script only reports what it got.
 */
export async function dhcpLease(ns: Netns, dev: string, scriptDir: string): Promise<Lease> {
  const script = join(scriptDir, 'udhcpc-report.sh');
  if (!existsSync(script)) {
    writeFileSync(
      script,
      '#!/bin/sh\n[ "$1" = bound ] || exit 0\necho "LEASE ip=$ip mask=$mask router=$router mtu=$mtu dns=$dns staticroutes=$staticroutes"\n',
      { mode: 0o755 },
    );
  }
  const { stdout } = await ns.exec('busybox', ['udhcpc', '-i', dev, '-n', '-q', '-f', '-t', '8', '-T', '1', '-O', 'staticroutes', '-O', 'mtu', '-s', script], {
    timeoutMs: 20_000,
  });
  const line = stdout.split('\n').find((l) => l.startsWith('LEASE '));
  if (!line) throw new Error(`no lease on ${dev} in ${ns.name}: ${stdout}`);
  const fields: Record<string, string> = {};
  for (const m of line.slice(6).matchAll(/(\w+)=(.*?)(?= \w+=|$)/g)) fields[m[1]] = m[2];
  const lease: Lease = { ip: fields.ip, mask: fields.mask, router: fields.router, mtu: fields.mtu, staticroutes: fields.staticroutes, dns: fields.dns };
  await ns.ip('addr', 'add', `${lease.ip}/${lease.mask}`, 'dev', dev);
  // As the guest image's hook does: option 121 routes in preference to option 3.
  const words = (lease.staticroutes ?? '').split(' ').filter(Boolean);
  for (let i = 0; i + 1 < words.length; i += 2) await ns.ip('route', 'replace', words[i] === '0.0.0.0/0' ? 'default' : words[i], 'via', words[i + 1], 'dev', dev);
  if (!words.length && lease.router) await ns.ip('route', 'replace', 'default', 'via', lease.router, 'dev', dev);
  return lease;
}

export interface Dhcpv6Reply {
  /** IA_NA addresses (a stateful server's answer to Solicit). */
  addresses: string[];
  /** DNS recursive name servers (option 23). */
  dns: string[];
}

/**
 * One DHCPv6 exchange from `dev` in `ns` (busybox here has no udhcpc6): a Solicit for an
 * address (stateful) or an Information-Request for options only (stateless), retried each
 * second; resolves with the first Advertise/Reply. A child node in the namespace sends it
 * from the link-local address to ff02::1:2, as a guest's client does.
 */
export async function dhcpv6(ns: Netns, dev: string, kind: 'solicit' | 'information-request'): Promise<Dhcpv6Reply> {
  const script = `
const dgram = require('dgram'), fs = require('fs');
const dev = process.argv[1], kind = process.argv[2];
const mac = Buffer.from(fs.readFileSync('/sys/class/net/' + dev + '/address', 'utf8').trim().split(':').map((h) => parseInt(h, 16)));
const opt = (code, data) => Buffer.concat([Buffer.from([code >> 8, code & 255, data.length >> 8, data.length & 255]), data]);
const duid = Buffer.concat([Buffer.from([0, 3, 0, 1]), mac]);
const parts = [Buffer.from([kind === 'solicit' ? 1 : 11, 0x12, 0x34, 0x56]), opt(1, duid), opt(8, Buffer.alloc(2)), opt(6, Buffer.from([0, 23]))];
if (kind === 'solicit') parts.push(opt(3, Buffer.concat([mac.subarray(2), Buffer.alloc(8)])));
const msg = Buffer.concat(parts);
const addr = (b) => b.toString('hex').match(/.{4}/g).join(':');
const options = (b, out) => {
  for (let i = 0; i + 4 <= b.length; ) {
    const code = b.readUInt16BE(i), len = b.readUInt16BE(i + 2), d = b.subarray(i + 4, i + 4 + len);
    if (code === 3) options(d.subarray(12), out);
    if (code === 5) out.addresses.push(addr(d.subarray(0, 16)));
    if (code === 23) for (let j = 0; j + 16 <= d.length; j += 16) out.dns.push(addr(d.subarray(j, j + 16)));
    i += 4 + len;
  }
  return out;
};
const s = dgram.createSocket({ type: 'udp6', reuseAddr: true });
s.on('message', (m) => { if (m[0] === 2 || m[0] === 7) { console.log(JSON.stringify(options(m.subarray(4), { addresses: [], dns: [] }))); process.exit(0); } });
s.bind(546, '::', () => {
  const send = () => s.send(msg, 547, 'ff02::1:2%' + dev);
  send();
  setInterval(send, 1000);
  setTimeout(() => process.exit(3), 10000);
});`;
  const { stdout } = await ns.exec(process.execPath, ['-e', script, dev, kind], { timeoutMs: 20_000 });
  const r = JSON.parse(stdout.trim().split('\n').pop()!) as Dhcpv6Reply;
  return { addresses: r.addresses.map(canonicalV6), dns: r.dns.map(canonicalV6) };
}

/** The global IPv6 addresses of `dev` in `ns` (SLAAC's, once the RA arrived and DAD ended). */
export async function globalV6(ns: Netns, dev: string): Promise<string[]> {
  const out = JSON.parse((await ns.exec('ip', ['-j', '-6', 'addr', 'show', 'dev', dev, 'scope', 'global'])).stdout) as { addr_info: { local?: string; tentative?: boolean }[] }[];
  // `ip -j` lists filtered-out addresses as empty objects.
  return out.flatMap((l) => l.addr_info.flatMap((a) => (a.local && !a.tentative ? [a.local] : [])));
}

/** RFC 5952 text of an IPv6 address (as the API and `ip -j` print it). */
export function canonicalV6(a: string): string {
  return new URL(`http://[${a}]/`).hostname.slice(1, -1);
}
