/**
 * The L2 agent, linuxbridge mechanism: inside the host namespace, one bridge per network
 * (`brq<net[:11]>`), its uplink (a `vxlan-<vni>` device with one flood entry per remote VTEP,
 * l2pop style; or a physical interface from physical_interface_mappings for flat, its
 * `<phys>.<vlan>` subinterface for vlan; nothing for local), and the ports' taps attached to
 * their network's bridge. Taps are created by whoever plugs the port (QEMU for Nova, the
 * DHCP/L3 agents for theirs, plugVethPort() for tests and stand-ins); this agent only wires them.
 *
 * reconcile() is idempotent and removes stale devices, but only devices it could have created
 * (names with its prefixes) and only in the host namespace.
 */
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { checkIfname, isExistsError, type IpLib, type IpLink } from '../linux/ip-lib.ts';
import { bridgeNameFor, tapNameFor, vxlanNameFor, type HostState, type NetworkState, type PortState } from '../model.ts';

export const FLOOD_MAC = '00:00:00:00:00:00';
const BRIDGE_RE = /^brq[0-9a-f-]{1,11}$/;
const VXLAN_RE = /^vxlan-(\d+)$/;

export interface LinuxBridgeAgentOptions {
  ip: IpLib;
  logger: ExecLogger;
  /** The namespace holding this host's bridges and taps. */
  hostNamespace: string;
  /** physical_network label → interface name in the host namespace (flat and vlan networks). */
  physicalInterfaceMappings?: Record<string, string>;
  vxlanPort?: number;
  /** The underlay device for VXLAN; by default the device holding localVtepIp. */
  vxlanDevice?: string;
}

export interface L2Report {
  wiredPorts: string[];
  unwiredPorts: string[];
  errors: { what: string; message: string }[];
}

export class LinuxBridgeAgent {
  private readonly ip: IpLib;
  private readonly ns: string;
  private readonly mappings: Record<string, string>;

  constructor(private readonly opts: LinuxBridgeAgentOptions) {
    this.ip = opts.ip;
    this.ns = opts.hostNamespace;
    this.mappings = opts.physicalInterfaceMappings ?? {};
    for (const dev of Object.values(this.mappings)) checkIfname(dev, 'physical interface');
  }

  async reconcile(state: HostState): Promise<L2Report> {
    const report: L2Report = { wiredPorts: [], unwiredPorts: [], errors: [] };
    const attempt = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        report.errors.push({ what, message: (err as Error).message });
        this.opts.logger.warn({ what, err: (err as Error).message }, 'l2 reconcile step failed');
      }
    };

    let links = await this.ip.linkList(this.ns);
    const byName = () => new Map(links.map((l) => [l.ifname, l]));

    const desiredBridges = new Set<string>();
    const desiredUplinks = new Set<string>();
    for (const net of state.networks) {
      desiredBridges.add(bridgeNameFor(net.id));
      try {
        const uplink = this.uplinkName(net);
        if (uplink) desiredUplinks.add(uplink);
      } catch {
        // An unmapped physical network: reported when the network itself is reconciled.
      }
    }

    // Stale first: a VNI moving to another network must free its vxlan name before reuse.
    for (const link of links) {
      const name = link.ifname;
      if (BRIDGE_RE.test(name) && !desiredBridges.has(name)) await attempt(`delete bridge ${name}`, () => this.ip.linkDelete(this.ns, name, { mayNotExist: true }));
      else if (VXLAN_RE.test(name) && !desiredUplinks.has(name)) await attempt(`delete ${name}`, () => this.ip.linkDelete(this.ns, name, { mayNotExist: true }));
      else if (this.isOurVlanDevice(link) && !desiredUplinks.has(name)) await attempt(`delete ${name}`, () => this.ip.linkDelete(this.ns, name, { mayNotExist: true }));
    }
    links = await this.ip.linkList(this.ns);

    for (const net of state.networks) {
      await attempt(`network ${net.id}`, async () => {
        await this.ensureBridge(net, byName());
        await this.ensureUplink(net, state, byName());
      });
    }
    links = await this.ip.linkList(this.ns);
    const current = byName();

    const nets = new Map(state.networks.map((n) => [n.id, n]));
    for (const port of state.ports) {
      const net = nets.get(port.networkId);
      const tap = current.get(tapNameFor(port.id));
      if (!net || !tap) {
        report.unwiredPorts.push(port.id);
        continue;
      }
      await attempt(`port ${port.id}`, async () => {
        await this.wireTap(port, net, tap);
        report.wiredPorts.push(port.id);
      });
    }
    return report;
  }

  /**
   * A veth pair standing in for a guest NIC: `tap<port[:11]>` in the host namespace, its peer
   * (`guestIfname`, with the port's MAC) in `guestNs`. reconcile() then wires the tap.
   */
  async plugVethPort(port: Pick<PortState, 'id' | 'macAddress'>, guestNs: string, opts: { guestIfname?: string; mtu?: number } = {}): Promise<void> {
    const tap = tapNameFor(port.id);
    const guestIf = opts.guestIfname ?? 'eth0';
    try {
      await this.ip.linkAddVeth(this.ns, tap, guestIf, { peerNs: guestNs, peerAddress: port.macAddress, mtu: opts.mtu });
    } catch (err) {
      if (!isExistsError(err)) throw err;
    }
    await this.ip.linkSetUp(guestNs, guestIf);
  }

  /** Removes a stand-in's veth pair (both ends). */
  async unplugVethPort(portId: string): Promise<void> {
    await this.ip.linkDelete(this.ns, tapNameFor(portId), { mayNotExist: true });
  }

  private uplinkName(net: NetworkState): string | undefined {
    const seg = net.segment;
    if (seg.networkType === 'vxlan') return vxlanNameFor(seg.segmentationId ?? 0);
    if (seg.networkType === 'flat') return this.physicalInterface(net);
    if (seg.networkType === 'vlan') return `${this.physicalInterface(net)}.${seg.segmentationId}`;
    return undefined;
  }

  private physicalInterface(net: NetworkState): string {
    const phys = net.segment.physicalNetwork ?? '';
    const dev = this.mappings[phys];
    if (!dev) throw new Error(`no physical_interface_mappings entry for physical network ${JSON.stringify(phys)} (network ${net.id})`);
    return dev;
  }

  /** A `<phys>.<n>` vlan device on one of our mapped interfaces: one we made for a vlan network. */
  private isOurVlanDevice(link: IpLink): boolean {
    if (link.linkinfo?.info_kind !== 'vlan') return false;
    const m = /^(.+)\.(\d+)$/.exec(link.ifname);
    return !!m && Object.values(this.mappings).includes(m[1]);
  }

  private async ensureBridge(net: NetworkState, links: Map<string, IpLink>): Promise<void> {
    const name = bridgeNameFor(net.id);
    const br = links.get(name);
    if (!br) {
      await this.ip.linkAddBridge(this.ns, name, { mtu: net.mtu });
    } else if (br.mtu !== net.mtu) {
      await this.ip.linkSetMtu(this.ns, name, net.mtu);
    }
    if (!br || !br.flags.includes('UP')) await this.ip.linkSetUp(this.ns, name);
  }

  private async ensureUplink(net: NetworkState, state: HostState, links: Map<string, IpLink>): Promise<void> {
    const seg = net.segment;
    const bridge = bridgeNameFor(net.id);
    // Without a VTEP address (an all-in-one without local_ip) a vxlan network stays on this host.
    if (seg.networkType === 'local' || (seg.networkType === 'vxlan' && !state.localVtepIp)) return;
    let name: string;
    if (seg.networkType === 'vxlan') {
      name = await this.ensureVxlan(net, state, links);
    } else if (seg.networkType === 'flat') {
      name = this.physicalInterface(net);
      if (!links.has(name)) throw new Error(`physical interface ${name} for network ${net.id} does not exist in ${this.ns}`);
    } else {
      const parent = this.physicalInterface(net);
      name = `${parent}.${seg.segmentationId}`;
      if (!links.has(name)) {
        await this.ip.linkAddVlan(this.ns, name, parent, seg.segmentationId ?? 0);
        if (!links.get(parent)?.flags.includes('UP')) await this.ip.linkSetUp(this.ns, parent);
      }
    }
    const link = links.get(name);
    if (link?.master !== bridge) await this.ip.linkSetMaster(this.ns, name, bridge);
    if (!link?.flags.includes('UP')) await this.ip.linkSetUp(this.ns, name);
  }

  private async ensureVxlan(net: NetworkState, state: HostState, links: Map<string, IpLink>): Promise<string> {
    const vni = net.segment.segmentationId;
    if (!vni) throw new Error(`vxlan network ${net.id} has no segmentation id`);
    if (!state.localVtepIp) throw new Error(`vxlan network ${net.id} but the host has no local VTEP address`);
    const name = vxlanNameFor(vni);
    const existing = links.get(name);
    const data = existing?.linkinfo?.info_data ?? {};
    const port = this.opts.vxlanPort ?? 4789;
    if (existing && (data.id !== vni || data.local !== state.localVtepIp || data.port !== port)) {
      await this.ip.linkDelete(this.ns, name);
      links.delete(name);
    }
    if (!links.has(name)) {
      const dev = this.opts.vxlanDevice ?? (await this.deviceHolding(state.localVtepIp));
      // The vxlan header costs 50 bytes: the network's MTU is already net of it (1450 on a 1500 underlay).
      await this.ip.linkAddVxlan(this.ns, name, { vni, local: state.localVtepIp, dev, dstport: port, mtu: net.mtu });
    } else if (existing && existing.mtu !== net.mtu) {
      await this.ip.linkSetMtu(this.ns, name, net.mtu);
    }
    await this.syncFloodEntries(name, state.vtepPeers[net.id] ?? []);
    return name;
  }

  private async syncFloodEntries(dev: string, peers: string[]): Promise<void> {
    const current = new Set(
      (await this.ip.fdbList(this.ns, dev)).filter((e) => e.mac === FLOOD_MAC && e.dst).map((e) => e.dst as string),
    );
    const desired = new Set(peers);
    for (const dst of desired) if (!current.has(dst)) await this.ip.fdbAppend(this.ns, { mac: FLOOD_MAC, dev, dst });
    for (const dst of current) if (!desired.has(dst)) await this.ip.fdbDel(this.ns, { mac: FLOOD_MAC, dev, dst }, { mayNotExist: true });
  }

  private async deviceHolding(address: string): Promise<string> {
    for (const link of await this.ip.addrList(this.ns)) {
      if (link.addr_info.some((a) => a.local === address)) return link.ifname;
    }
    throw new Error(`no device in ${this.ns} holds the VTEP address ${address}`);
  }

  private async wireTap(port: PortState, net: NetworkState, tap: IpLink): Promise<void> {
    const bridge = bridgeNameFor(net.id);
    if (tap.mtu !== net.mtu) await this.ip.linkSetMtu(this.ns, tap.ifname, net.mtu);
    if (tap.master !== bridge) await this.ip.linkSetMaster(this.ns, tap.ifname, bridge);
    const up = tap.flags.includes('UP');
    if (port.adminStateUp && !up) await this.ip.linkSetUp(this.ns, tap.ifname);
    if (!port.adminStateUp && up) await this.ip.linkSetDown(this.ns, tap.ifname);
  }
}
