/**
 * The L3 agent: makes the routers of one host match their desired state, declaratively
 * and idempotently (upstream's l3-agent after a full sync, linuxbridge flavour).
 *
 * Per router: a namespace `<prefix>qrouter-<id>` with IPv4/IPv6 forwarding on (in that
 * namespace only); per interface a veth `qr-<port[:11]>` whose peer `tap<port[:11]>` sits
 * on the tenant network's bridge `brq<net[:11]>` in the host namespace; for the gateway
 * `qg-<port[:11]>` with its peer on the external network's bridge in the external
 * namespace; addresses, default routes via the external gateway, extra routes, the NAT
 * table (nat-rules.ts) and IPv6 router advertisements (router-advertisements.ts, when the
 * agent has a state directory). Every step compares with what is there first, so a reconcile of an
 * unchanged state changes nothing, and removal deletes exactly what the router had:
 * devices by prefix in the router's namespace, routes the agent added (protocol `boot`),
 * the namespace last.
 */
import { which, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import type { IpLib, IpLink, IpRoute } from '../linux/ip-lib.ts';
import {
  GATEWAY_DEV_PREFIX,
  INTERNAL_DEV_PREFIX,
  ROUTER_NS_PREFIX,
  bridgeName,
  gatewayDevice,
  internalDevice,
  routerNamespace,
  tapDevice,
} from './device-names.ts';
import { NAT_TABLE, natDeleteScript, natScript, natTableMatches, renderNat } from './nat-rules.ts';
import { RouterAdvertisements } from './router-advertisements.ts';
import type { RouterState } from './router-state.ts';

/** What the metadata proxy needs to know about router namespaces (metadata/proxy-manager.ts implements it). */
export interface RouterNamespaceHooks {
  routerReady(namespace: string, router: RouterState): Promise<void>;
  routerRemoving(namespace: string, routerId: string): Promise<void>;
}

export interface L3AgentOptions {
  ipLib: IpLib;
  logger: ExecLogger;
  /** Where the tenant networks' bridges are (the L2 agent's host namespace). */
  hostNamespace: string;
  /** Where the external networks' bridges are (external-network.ts). */
  externalNamespace: string;
  /** Put before `qrouter-`: keeps concurrent test runs apart; empty in a deployment. */
  namespacePrefix?: string;
  /** Gratuitous ARP for a newly configured floating IP (arping from iputils-arping); on by default. */
  gratuitousArp?: boolean;
  hooks?: RouterNamespaceHooks;
  /** Where the routers' IPv6 advertisers keep their pid files; without it no router advertises. */
  stateDir?: string;
}

export interface ReconcileResult {
  /** Router ids whose namespace the reconcile created or changed. */
  changed: string[];
  removed: string[];
  /** Router id → why it could not be configured; other routers are still reconciled. */
  failed: Record<string, string>;
}

interface DesiredDevice {
  name: string;
  peer: string;
  peerNs: string;
  bridge: string;
  mac: string;
  mtu?: number;
  cidrs: string[];
}

interface DesiredRoute {
  dst: string;
  via: string;
  dev?: string;
}

/** The canonical text of an address, as `ip -j` prints it (IPv6 compressed, lower case). */
export function canonicalIp(ip: string): string {
  return ip.includes(':') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}

function canonicalCidr(cidr: string): string {
  const [ip, len] = cidr.split('/');
  return len === undefined ? canonicalIp(ip) : `${canonicalIp(ip)}/${len}`;
}

/** `ip -j route` prints host routes without /32 or /128 and the default route as `default`. */
function routeDst(cidr: string): string {
  if (cidr === '0.0.0.0/0' || cidr === '::/0') return 'default';
  const c = canonicalCidr(cidr);
  return c.endsWith('/32') && !c.includes(':') ? c.slice(0, -3) : c.endsWith('/128') ? c.slice(0, -4) : c;
}

function routeKey(dst: string, via: string | undefined, v6: boolean): string {
  return `${v6 ? 6 : 4}|${dst}|${via ?? ''}`;
}

export class L3Agent {
  private readonly ip: IpLib;
  private readonly logger: ExecLogger;
  private readonly prefix: string;
  private readonly garp: boolean;
  private arpingWarned = false;

  private readonly advertisements?: RouterAdvertisements;

  constructor(private readonly opts: L3AgentOptions) {
    this.ip = opts.ipLib;
    this.logger = opts.logger;
    this.prefix = opts.namespacePrefix ?? '';
    this.garp = opts.gratuitousArp ?? true;
    if (opts.stateDir) this.advertisements = new RouterAdvertisements({ ip: opts.ipLib, logger: opts.logger, stateDir: opts.stateDir });
  }

  namespaceOf(routerId: string): string {
    return routerNamespace(routerId, this.prefix);
  }

  /** Router namespaces of this agent that exist on the host. */
  async existingRouters(): Promise<string[]> {
    const head = this.prefix + ROUTER_NS_PREFIX;
    return (await this.ip.netnsList()).filter((n) => n.startsWith(head)).map((n) => n.slice(head.length));
  }

  /** Makes the host's routers exactly `routers` (those administratively up). */
  async reconcile(routers: RouterState[]): Promise<ReconcileResult> {
    const result: ReconcileResult = { changed: [], removed: [], failed: {} };
    const wanted = new Map(routers.filter((r) => r.adminStateUp).map((r) => [r.id, r]));
    for (const id of await this.existingRouters()) {
      if (wanted.has(id)) continue;
      try {
        await this.removeRouter(id);
        result.removed.push(id);
      } catch (err) {
        result.failed[id] = (err as Error).message;
      }
    }
    const peerLinks = new Map<string, Promise<IpLink[]>>();
    for (const router of wanted.values()) {
      try {
        if (await this.syncRouter(router, peerLinks)) result.changed.push(router.id);
      } catch (err) {
        this.logger.warn({ router_id: router.id, err: (err as Error).message }, 'router sync failed');
        result.failed[router.id] = (err as Error).message;
      }
    }
    return result;
  }

  /** Deletes the router's namespace and everything in it; its tap peers go with their veths. */
  async removeRouter(routerId: string): Promise<void> {
    const ns = this.namespaceOf(routerId);
    if (!(await this.ip.netnsExists(ns))) return;
    await this.opts.hooks?.routerRemoving(ns, routerId);
    await this.advertisements?.stop(routerId);
    // Deleting the veths explicitly first: a namespace kept alive by a straggling process
    // would otherwise keep its devices (and their peers on the bridges) too.
    for (const link of await this.ip.linkList(ns)) {
      if (link.ifname.startsWith(INTERNAL_DEV_PREFIX) || link.ifname.startsWith(GATEWAY_DEV_PREFIX)) {
        await this.ip.linkDelete(ns, link.ifname, { mayNotExist: true });
      }
    }
    await this.ip.netnsDelete(ns, { mayNotExist: true });
  }

  private desiredDevices(router: RouterState): DesiredDevice[] {
    const devices: DesiredDevice[] = router.interfaces.map((itf) => ({
      name: internalDevice(itf.portId),
      peer: tapDevice(itf.portId),
      peerNs: this.opts.hostNamespace,
      bridge: bridgeName(itf.networkId),
      mac: itf.macAddress.toLowerCase(),
      mtu: itf.mtu,
      cidrs: itf.fixedIps.map((ip) => canonicalCidr(`${ip.ipAddress}/${ip.prefixlen}`)),
    }));
    const gw = router.gateway;
    if (gw) {
      const own = gw.fixedIps.map((ip) => canonicalCidr(`${ip.ipAddress}/${ip.prefixlen}`));
      const fips = router.floatingIps.map((f) => `${canonicalIp(f.floatingIpAddress)}/${f.floatingIpAddress.includes(':') ? 128 : 32}`);
      devices.push({
        name: gatewayDevice(gw.portId),
        peer: tapDevice(gw.portId),
        peerNs: this.opts.externalNamespace,
        bridge: bridgeName(gw.networkId),
        mac: gw.macAddress.toLowerCase(),
        mtu: gw.mtu,
        cidrs: [...own, ...fips.filter((f) => !own.some((o) => o.split('/')[0] === f.split('/')[0]))],
      });
    }
    return devices;
  }

  private desiredRoutes(router: RouterState): DesiredRoute[] {
    const routes: DesiredRoute[] = [];
    if (router.gateway) {
      const dev = gatewayDevice(router.gateway.portId);
      for (const via of router.gateway.externalGatewayIps) routes.push({ dst: 'default', via: canonicalIp(via), dev });
    }
    for (const r of router.routes) routes.push({ dst: routeDst(r.destination), via: canonicalIp(r.nexthop) });
    return routes;
  }

  private links(ns: string, cache: Map<string, Promise<IpLink[]>>): Promise<IpLink[]> {
    let p = cache.get(ns);
    if (!p) {
      p = this.ip.linkList(ns);
      cache.set(ns, p);
    }
    return p;
  }

  /** Returns whether anything changed. */
  private async syncRouter(router: RouterState, peerLinkCache: Map<string, Promise<IpLink[]>>): Promise<boolean> {
    const ns = this.namespaceOf(router.id);
    let changed = false;
    if (!(await this.ip.netnsExists(ns))) {
      await this.ip.netnsAdd(ns);
      changed = true;
    }
    // Forwarding is per namespace: the host's own setting is never touched.
    await this.ip.exec(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);

    const devices = this.desiredDevices(router);
    const wantedNames = new Set(devices.map((d) => d.name));
    const links = await this.ip.linkList(ns);
    for (const link of links) {
      const ours = link.ifname.startsWith(INTERNAL_DEV_PREFIX) || link.ifname.startsWith(GATEWAY_DEV_PREFIX);
      if (ours && !wantedNames.has(link.ifname)) {
        await this.ip.linkDelete(ns, link.ifname, { mayNotExist: true });
        changed = true;
      }
    }
    const byName = new Map(links.map((l) => [l.ifname, l]));
    for (const dev of devices) {
      if (await this.syncDevice(ns, dev, byName.get(dev.name), peerLinkCache)) changed = true;
    }

    const newAddresses = await this.syncAddresses(ns, devices);
    if (newAddresses.length > 0) changed = true;
    if (await this.syncRoutes(ns, router)) changed = true;
    if (await this.syncNat(ns, router)) changed = true;
    if (await this.advertisements?.sync(ns, router)) changed = true;

    if (router.gateway && this.garp) {
      const qg = gatewayDevice(router.gateway.portId);
      for (const a of newAddresses) if (a.dev === qg && !a.ip.includes(':')) await this.gratuitousArp(ns, qg, a.ip);
    }
    await this.opts.hooks?.routerReady(ns, router);
    return changed;
  }

  private async syncDevice(ns: string, dev: DesiredDevice, link: IpLink | undefined, peerLinkCache: Map<string, Promise<IpLink[]>>): Promise<boolean> {
    let changed = false;
    let peer = (await this.links(dev.peerNs, peerLinkCache)).find((l) => l.ifname === dev.peer);
    if (link && !peer) {
      // A veth whose peer is not where it belongs (another namespace, or gone): recreate the pair.
      await this.ip.linkDelete(ns, dev.name, { mayNotExist: true });
      link = undefined;
    }
    if (!link) {
      // A stale peer of that name (its router end gone with a deleted namespace cannot leave one; a crash midway can).
      if (peer) await this.ip.linkDelete(dev.peerNs, dev.peer, { mayNotExist: true });
      await this.ip.linkAddVeth(ns, dev.name, dev.peer, { peerNs: dev.peerNs, address: dev.mac, mtu: dev.mtu });
      peer = undefined;
      changed = true;
    } else {
      if (link.address?.toLowerCase() !== dev.mac) {
        await this.ip.linkSetAddress(ns, dev.name, dev.mac);
        changed = true;
      }
      if (dev.mtu && link.mtu !== dev.mtu) {
        await this.ip.linkSetMtu(ns, dev.name, dev.mtu);
        await this.ip.linkSetMtu(dev.peerNs, dev.peer, dev.mtu);
        changed = true;
      }
    }
    if (!peer || peer.master !== dev.bridge) {
      await this.ip.linkSetMaster(dev.peerNs, dev.peer, dev.bridge);
      changed = true;
    }
    if (!peer || !peer.flags.includes('UP')) {
      await this.ip.linkSetUp(dev.peerNs, dev.peer);
      changed = true;
    }
    if (!link || !link.flags.includes('UP')) {
      await this.ip.linkSetUp(ns, dev.name);
      changed = true;
    }
    return changed;
  }

  /** Returns the addresses it added (the caller announces new floating IPs). */
  private async syncAddresses(ns: string, devices: DesiredDevice[]): Promise<{ dev: string; ip: string }[]> {
    const current = new Map((await this.ip.addrList(ns)).map((l) => [l.ifname, l.addr_info.filter((a) => a.scope === 'global')]));
    const added: { dev: string; ip: string }[] = [];
    for (const dev of devices) {
      const have = new Set((current.get(dev.name) ?? []).map((a) => `${a.local}/${a.prefixlen}`));
      for (const cidr of have) if (!dev.cidrs.includes(cidr)) await this.ip.addrDel(ns, dev.name, cidr, { mayNotExist: true });
      for (const cidr of dev.cidrs) {
        if (have.has(cidr)) continue;
        // No duplicate address detection on router ports: the address is the port's, allocated by IPAM.
        await this.ip.addrAdd(ns, dev.name, cidr, { mayExist: true, nodad: cidr.includes(':') });
        added.push({ dev: dev.name, ip: cidr.split('/')[0] });
      }
    }
    return added;
  }

  private async syncRoutes(ns: string, router: RouterState): Promise<boolean> {
    let changed = false;
    const desired = this.desiredRoutes(router);
    const current: { route: IpRoute; v6: boolean }[] = [];
    for (const family of [4, 6] as const) {
      // Routes this agent added carry protocol `boot`, which `ip -j` leaves out (the kernel's own say `kernel`, RA's `ra`).
      for (const route of await this.ip.routeList(ns, { family })) {
        if ((route.protocol ?? 'boot') === 'boot' && route.type !== 'multicast' && route.type !== 'local') current.push({ route, v6: family === 6 });
      }
    }
    const wantedKeys = new Set(desired.map((r) => routeKey(r.dst, r.via, r.via.includes(':'))));
    for (const { route, v6 } of current) {
      if (wantedKeys.has(routeKey(route.dst, route.gateway, v6))) continue;
      await this.ip.routeDel(ns, { dst: route.dst === 'default' ? (v6 ? '::/0' : 'default') : route.dst, via: route.gateway, dev: route.dev }, { mayNotExist: true });
      changed = true;
    }
    const haveKeys = new Set(current.map(({ route, v6 }) => routeKey(route.dst, route.gateway, v6)));
    for (const r of desired) {
      const v6 = r.via.includes(':');
      if (haveKeys.has(routeKey(r.dst, r.via, v6))) continue;
      await this.ip.routeReplace(ns, { dst: r.dst === 'default' && v6 ? '::/0' : r.dst, via: r.via, dev: r.dev });
      changed = true;
    }
    return changed;
  }

  private async syncNat(ns: string, router: RouterState): Promise<boolean> {
    const rendering = renderNat(router);
    const listing = await this.ip.exec(ns, 'nft', ['list', 'table', 'ip', NAT_TABLE], { allowedExitCodes: [0, 1] });
    if (listing.exitCode === 0 && natTableMatches(listing.stdout, rendering)) return false;
    await this.ip.exec(ns, 'nft', ['-f', '-'], { input: natScript(rendering) });
    return true;
  }

  /** Removes the NAT table (a router namespace being torn down by hand; removeRouter does not need it). */
  async removeNat(routerId: string): Promise<void> {
    await this.ip.exec(this.namespaceOf(routerId), 'nft', ['-f', '-'], { input: natDeleteScript() });
  }

  /** Tells the external network's neighbours (its gateway, other routers) the floating IP's new MAC. */
  private async gratuitousArp(ns: string, dev: string, ip: string): Promise<void> {
    if (!which('arping')) {
      if (!this.arpingWarned) this.logger.warn({}, 'arping (iputils-arping) not installed: no gratuitous ARP for floating IPs');
      this.arpingWarned = true;
      return;
    }
    try {
      // -U: unsolicited (source = target = the address); -c 1 -w 1 bounds it to one packet and one second.
      await this.ip.exec(ns, 'arping', ['-q', '-U', '-c', '1', '-w', '1', '-I', dev, ip], { allowedExitCodes: [0, 1] });
    } catch (err) {
      this.logger.warn({ dev, ip, err: (err as Error).message }, 'gratuitous ARP failed');
    }
  }
}
