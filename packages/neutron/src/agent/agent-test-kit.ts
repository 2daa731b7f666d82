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
