/**
 * The agents of one host, composed: L2 wiring first (bridges must exist before DHCP's veth,
 * the routers' qr- peers and the firewall's taps), then DHCP, then (with an external
 * namespace configured) the external networks' bridges and the routers, then the firewall.
 * The metadata proxy serves the router namespaces (as the L3 agent's hooks) and the DHCP
 * namespaces of subnets with isolated metadata. Every reconcile is a full sync against the
 * desired HostState; the first one after start-up is what removes a previous run's leftovers
 * (stale bridges and vxlan devices, qdhcp namespaces and their dnsmasq by pid file, tables), so
 * a restart with an unchanged state leaves the data plane working and untouched.
 *
 * Reconciles are serialised: a resync arriving mid-way waits for the running one.
 */
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { DhcpAgent } from './dhcp/dhcp-agent.ts';
import { Firewall } from './firewall/firewall.ts';
import { LinuxBridgeAgent } from './l2/linuxbridge-agent.ts';
import { nsDeviceFor } from './dhcp/dhcp-agent.ts';
import { BRIDGE_PREFIX, bridgeName } from './l3/device-names.ts';
import { ensureExternalGatewayAddress, ensureExternalNetwork } from './l3/external-network.ts';
import { L3Agent } from './l3/l3-agent.ts';
import type { RouterState } from './l3/router-state.ts';
import { IpLib } from './linux/ip-lib.ts';
import type { MetadataProxy } from './metadata/metadata-proxy.ts';
import type { HostReport, HostState } from './model.ts';

export interface HostAgentOptions {
  logger: ExecLogger;
  /** Where bridges, vxlan devices and taps live (all-in-one: `onestack-host`). */
  hostNamespace: string;
  /** Prefix of the namespaces this host's agents create (`<prefix>qdhcp-<net>`). */
  namespacePrefix: string;
  /** dnsmasq files, firewall marks and listings. */
  stateDir: string;
  physicalInterfaceMappings?: Record<string, string>;
  vxlanPort?: number;
  dhcpLeaseSeconds?: number;
  dnsDomain?: string;
  /** Creates the host namespace when missing (the all-in-one); tests bring their own. */
  createHostNamespace?: boolean;
  /**
   * Where the external networks' bridges live (all-in-one: `onestack-ext`). Set, the host runs
   * the routers of its state (L3 agent, routers namespaced as `<namespacePrefix>qrouter-<id>`).
   */
  externalNamespace?: string;
  /**
   * The external namespace takes the external subnets' gateway addresses (devstack's
   * 172.24.4.1 on br-ex): it plays the upstream router, so floating IPs are reachable from it.
   */
  externalGateway?: boolean;
  /**
   * physnet → a host interface of the root namespace: an external network on that physical
   * network gets the interface moved into the external namespace and enslaved to its bridge,
   * connecting floating IPs to a real network ([neutron_agent] external_interface_mappings).
   */
  externalInterfaceMappings?: Record<string, string>;
  /** Serves 169.254.169.254 in router namespaces and in DHCP namespaces of isolated subnets. */
  metadata?: MetadataProxy;
  ip?: IpLib;
}

export class HostAgent {
  readonly ip: IpLib;
  readonly l2: LinuxBridgeAgent;
  readonly dhcp: DhcpAgent;
  readonly firewall: Firewall;
  readonly l3?: L3Agent;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: HostAgentOptions) {
    this.ip = opts.ip ?? new IpLib({ logger: opts.logger });
    const common = { ip: this.ip, logger: opts.logger, hostNamespace: opts.hostNamespace };
    this.l2 = new LinuxBridgeAgent({ ...common, physicalInterfaceMappings: opts.physicalInterfaceMappings, vxlanPort: opts.vxlanPort });
    this.dhcp = new DhcpAgent({
      ...common,
      namespacePrefix: opts.namespacePrefix,
      stateDir: opts.stateDir,
      leaseSeconds: opts.dhcpLeaseSeconds,
      dnsDomain: opts.dnsDomain,
    });
    this.firewall = new Firewall({ ...common, stateDir: opts.stateDir });
    if (opts.externalNamespace) {
      this.l3 = new L3Agent({
        ipLib: this.ip,
        logger: opts.logger,
        hostNamespace: opts.hostNamespace,
        externalNamespace: opts.externalNamespace,
        namespacePrefix: opts.namespacePrefix,
        hooks: opts.metadata,
        stateDir: opts.stateDir,
      });
    }
  }

  /** Makes the host match `state`; never throws for one failed piece (see the report's errors). */
  reconcile(state: HostState): Promise<HostReport> {
    const run = this.queue.then(() => this.reconcileNow(state));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async reconcileNow(state: HostState): Promise<HostReport> {
    const report: HostReport = { host: state.host, wiredPorts: [], unwiredPorts: [], dhcpNetworks: [], errors: [] };
    const step = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await fn();
      } catch (err) {
        report.errors.push({ what, message: (err as Error).message });
        this.opts.logger.warn({ what, err: (err as Error).message }, 'host reconcile step failed');
        return undefined;
      }
    };
    if (this.opts.createHostNamespace) await step('host namespace', () => this.ip.netnsAdd(this.opts.hostNamespace, { mayExist: true }));
    const l2 = await step('l2', () => this.l2.reconcile(state));
    if (l2) {
      report.wiredPorts = l2.wiredPorts;
      report.unwiredPorts = l2.unwiredPorts;
      report.errors.push(...l2.errors);
    }
    const isolated = this.isolatedMetadataScopes(state);
    if (this.opts.metadata) await step('metadata (stale dhcp)', () => this.stopStaleDhcpMetadata(isolated));
    const dhcp = await step('dhcp', () => this.dhcp.reconcile(state));
    if (dhcp) {
      report.dhcpNetworks = dhcp.dhcpNetworks;
      report.errors.push(...dhcp.errors);
      for (const [ns, scope] of isolated) {
        if (dhcp.dhcpNetworks.includes(scope.networkIds[0])) await step(`metadata ${ns}`, () => this.opts.metadata!.ensure(ns, scope));
      }
    }
    if (this.l3) {
      const routers = (state.routers ?? []).filter((r) => r.adminStateUp);
      const bridges = await step('external networks', () => this.ensureExternalNetworks(routers));
      const l3 = await step('l3', () => this.l3!.reconcile(state.routers ?? []));
      if (l3) for (const [id, message] of Object.entries(l3.failed)) report.errors.push({ what: `router ${id}`, message });
      if (bridges) await step('external networks (stale)', () => this.removeStaleExternalBridges(bridges));
    }
    const fw = await step('firewall', () => this.firewall.reconcile(state));
    if (fw) report.errors.push(...fw.errors);
    return report;
  }

  /** DHCP namespace → what its proxy serves, for networks with a subnet of isolated metadata. */
  private isolatedMetadataScopes(state: HostState): Map<string, { networkIds: string[]; device: string }> {
    const out = new Map<string, { networkIds: string[]; device: string }>();
    if (!this.opts.metadata) return out;
    for (const port of state.dhcpPorts) {
      if (!state.subnets.some((s) => s.networkId === port.networkId && s.isolatedMetadata)) continue;
      out.set(this.dhcp.namespaceFor(port.networkId), { networkIds: [port.networkId], device: nsDeviceFor(port.id) });
    }
    return out;
  }

  /** Before DHCP deletes a namespace: a listening socket would keep it alive. */
  private async stopStaleDhcpMetadata(wanted: Map<string, unknown>): Promise<void> {
    const prefix = this.dhcp.namespaceFor('');
    for (const ns of this.opts.metadata!.namespaces()) if (ns.startsWith(prefix) && !wanted.has(ns)) await this.opts.metadata!.stop(ns);
  }

  /** The bridges of the external networks the routers' gateways are on; returns their names. */
  private async ensureExternalNetworks(routers: RouterState[]): Promise<Set<string>> {
    const ns = this.opts.externalNamespace!;
    const wanted = new Map<string, { mtu?: number; cidrs: Set<string>; externalInterface?: string }>();
    for (const gw of routers.flatMap((r) => (r.gateway ? [r.gateway] : []))) {
      const externalInterface = gw.physicalNetwork ? this.opts.externalInterfaceMappings?.[gw.physicalNetwork] : undefined;
      const entry = wanted.get(gw.networkId) ?? { mtu: gw.mtu, cidrs: new Set<string>(), ...(externalInterface && { externalInterface }) };
      wanted.set(gw.networkId, entry);
      if (!this.opts.externalGateway) continue;
      for (const via of gw.externalGatewayIps) {
        const sameFamily = gw.fixedIps.find((f) => f.ipAddress.includes(':') === via.includes(':'));
        if (sameFamily) entry.cidrs.add(`${via}/${sameFamily.prefixlen}`);
      }
    }
    if (this.opts.createHostNamespace) await this.ip.netnsAdd(ns, { mayExist: true });
    for (const [networkId, { mtu, cidrs, externalInterface }] of wanted) {
      await ensureExternalNetwork(this.ip, this.opts.logger, { namespace: ns, networkId, mtu, externalInterface });
      for (const cidr of cidrs) await ensureExternalGatewayAddress(this.ip, { namespace: ns, networkId, cidr });
    }
    return new Set([...wanted.keys()].map(bridgeName));
  }

  /** After the routers: bridges of external networks no router uses any more. */
  private async removeStaleExternalBridges(wanted: Set<string>): Promise<void> {
    const ns = this.opts.externalNamespace!;
    if (!(await this.ip.netnsExists(ns))) return;
    for (const link of await this.ip.linkList(ns)) {
      if (link.ifname.startsWith(BRIDGE_PREFIX) && !wanted.has(link.ifname)) await this.ip.linkDelete(ns, link.ifname, { mayNotExist: true });
    }
  }
}
