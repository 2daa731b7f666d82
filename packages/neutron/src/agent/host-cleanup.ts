/**
 * Tearing a host's data plane down completely (`onestack down`, test clean-up): every
 * namespace the host's agents own (qdhcp-/qrouter- under the configured prefix, the external
 * and the host namespace) with whatever runs inside, and the dnsmasq processes named by our
 * pid files (a dnsmasq whose namespace is already gone would otherwise linger). The firewall's
 * nftables tables live in the host namespace and go with it. Nothing outside those names is
 * touched.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { DhcpAgent } from './dhcp/dhcp-agent.ts';
import { ROUTER_NS_PREFIX } from './l3/device-names.ts';
import { IpLib } from './linux/ip-lib.ts';

export interface HostCleanupOptions {
  logger: ExecLogger;
  hostNamespace: string;
  namespacePrefix: string;
  externalNamespace?: string;
  stateDir: string;
  ip?: IpLib;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Is `ns` one of ours? Agent namespaces are recognised by prefix and a UUID suffix only. */
export function ownedNamespace(ns: string, o: Pick<HostCleanupOptions, 'hostNamespace' | 'namespacePrefix' | 'externalNamespace'>): boolean {
  if (ns === o.hostNamespace || (o.externalNamespace && ns === o.externalNamespace)) return true;
  for (const kind of ['qdhcp-', ROUTER_NS_PREFIX]) {
    const head = o.namespacePrefix + kind;
    if (ns.startsWith(head) && UUID.test(ns.slice(head.length))) return true;
  }
  return false;
}

/** Returns the namespaces it removed. */
export async function cleanupHost(o: HostCleanupOptions): Promise<string[]> {
  const ip = o.ip ?? new IpLib({ logger: o.logger });
  const dhcp = new DhcpAgent({ ip, logger: o.logger, hostNamespace: o.hostNamespace, namespacePrefix: o.namespacePrefix, stateDir: o.stateDir });
  const dhcpDir = join(o.stateDir, 'dhcp');
  if (existsSync(dhcpDir)) {
    for (const net of readdirSync(dhcpDir)) {
      const pid = UUID.test(net) ? dhcp.dnsmasqPid(net) : undefined;
      if (pid) kill(pid);
    }
  }
  const removed: string[] = [];
  for (const ns of await ip.netnsList()) {
    if (!ownedNamespace(ns, o)) continue;
    for (const pid of await ip.netnsPids(ns)) kill(pid);
    await ip.netnsDelete(ns, { mayNotExist: true });
    removed.push(ns);
  }
  return removed;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
