/**
 * The DHCP agent: per network with DHCP-enabled subnets and a DHCP port on this host, a
 * namespace `<prefix>qdhcp-<net-id>` joined to the network's bridge in the host namespace by a
 * veth (`tap<port[:11]>` on the bridge, `ns-<port[:11]>` inside with the DHCP port's MAC and
 * addresses), and one dnsmasq in it, run as upstream's agent runs it.
 *
 * Port changes rewrite the hosts/opts files and SIGHUP dnsmasq (leases are kept, but those of
 * addresses no port holds with that MAC any more are released first: see staleLeases); a
 * changed command line (subnets, MTU) restarts it; a network gone from the state loses its process
 * (killed by the PID in its pid file, after checking the PID is still that dnsmasq), its
 * namespace, its veth and its files.
 *
 * dnsmasq drops privileges to its own user after start-up but re-reads the files on SIGHUP:
 * the state directory must be traversable by that user (the agent makes its own dirs 0755).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { checkNetns, type IpLib } from '../linux/ip-lib.ts';
import { bridgeNameFor, ID_CHARS, tapNameFor, type HostState, type NetworkState, type PortState, type SubnetState } from '../model.ts';
import { addnHostsFile, dnsmasqArgs, hostsFile, METADATA_IP, optsFile, type DnsmasqFiles, type DnsmasqInput } from './dnsmasq-config.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface DhcpAgentOptions {
  ip: IpLib;
  logger: ExecLogger;
  hostNamespace: string;
  /** Prepended to `qdhcp-<net-id>`, so that several simulated hosts (and the real one) never share a name. */
  namespacePrefix: string;
  /** Files per network live in `<stateDir>/dhcp/<net-id>/`. */
  stateDir: string;
  leaseSeconds?: number;
  dnsDomain?: string;
}

export interface DhcpReport {
  dhcpNetworks: string[];
  errors: { what: string; message: string }[];
}

export const nsDeviceFor = (portId: string): string => `ns-${portId.slice(0, ID_CHARS)}`;

export class DhcpAgent {
  private readonly ip: IpLib;
  private readonly dir: string;

  constructor(private readonly opts: DhcpAgentOptions) {
    this.ip = opts.ip;
    checkNetns(`${opts.namespacePrefix}qdhcp-x`);
    this.dir = join(opts.stateDir, 'dhcp');
  }

  namespaceFor(networkId: string): string {
    return `${this.opts.namespacePrefix}qdhcp-${networkId}`;
  }

  async reconcile(state: HostState): Promise<DhcpReport> {
    const report: DhcpReport = { dhcpNetworks: [], errors: [] };
    const desired = this.desiredNetworks(state);

    // Stale first: processes, namespaces and files of networks no longer served here.
    const wanted = new Set(desired.map((d) => d.network.id));
    for (const netId of await this.knownNetworks()) {
      if (wanted.has(netId)) continue;
      try {
        await this.teardown(netId);
      } catch (err) {
        report.errors.push({ what: `dhcp teardown ${netId}`, message: (err as Error).message });
      }
    }

    for (const d of desired) {
      try {
        await this.ensure(d);
        report.dhcpNetworks.push(d.network.id);
      } catch (err) {
        report.errors.push({ what: `dhcp ${d.network.id}`, message: (err as Error).message });
        this.opts.logger.warn({ network: d.network.id, err: (err as Error).message }, 'dhcp reconcile failed');
      }
    }
    return report;
  }

  /** The PID of a network's dnsmasq when it runs, else undefined. */
  dnsmasqPid(networkId: string): number | undefined {
    const pidFile = this.files(networkId).pidFile;
    if (!existsSync(pidFile)) return undefined;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    const cmdline = readCmdline(pid);
    // A recycled PID belongs to someone else: only a dnsmasq naming our pid file is ours.
    return cmdline?.includes(`--pid-file=${pidFile}`) ? pid : undefined;
  }

  files(networkId: string): DnsmasqFiles {
    const dir = join(this.dir, networkId);
    return {
      dir,
      pidFile: join(dir, 'pid'),
      hostsFile: join(dir, 'host'),
      addnHostsFile: join(dir, 'addn_hosts'),
      optsFile: join(dir, 'opts'),
      leaseFile: join(dir, 'leases'),
    };
  }

  private desiredNetworks(state: HostState): DnsmasqInput[] {
    const out: DnsmasqInput[] = [];
    const allPorts = [...state.ports, ...(state.otherPorts ?? [])];
    for (const network of state.networks) {
      const dhcpPort = state.dhcpPorts.find((p) => p.networkId === network.id);
      const subnets = state.subnets.filter((s) => s.networkId === network.id && s.enableDhcp);
      if (!dhcpPort || !subnets.length) continue;
      const seen = new Set<string>();
      const ports = allPorts.filter((p) => p.networkId === network.id && p.id !== dhcpPort.id && !seen.has(p.id) && seen.add(p.id));
      out.push({
        network,
        subnets,
        ports,
        dhcpPort,
        interfaceName: nsDeviceFor(dhcpPort.id),
        files: this.files(network.id),
        leaseSeconds: this.opts.leaseSeconds,
        dnsDomain: this.opts.dnsDomain,
      });
    }
    return out;
  }

  /** Networks that have something of ours on the host: a state dir or a namespace. */
  private async knownNetworks(): Promise<string[]> {
    const ids = new Set<string>();
    if (existsSync(this.dir)) for (const name of readdirSync(this.dir)) if (UUID.test(name)) ids.add(name);
    const prefix = this.namespaceFor('');
    for (const ns of await this.ip.netnsList()) {
      if (ns.startsWith(prefix) && UUID.test(ns.slice(prefix.length))) ids.add(ns.slice(prefix.length));
    }
    return [...ids];
  }

  private async ensure(d: DnsmasqInput): Promise<void> {
    const ns = this.namespaceFor(d.network.id);
    await this.ip.netnsAdd(ns, { mayExist: true });
    await this.ensureInterface(ns, d.network, d.dhcpPort, d.subnets);

    mkdirSync(d.files.dir, { recursive: true, mode: 0o755 });
    chmodSync(this.dir, 0o755);
    chmodSync(d.files.dir, 0o755);
    const closed = closedAncestor(this.dir);
    // Without this dnsmasq starts, cannot read its hosts file and silently answers no one.
    if (closed) throw new Error(`dnsmasq, once it drops to its own user, cannot reach ${this.dir}: ${closed} is not searchable by others (chmod o+x it, or choose a state_dir under a path that is)`);
    const changed = [
      writeIfChanged(d.files.hostsFile, hostsFile(d)),
      writeIfChanged(d.files.addnHostsFile, addnHostsFile(d)),
      writeIfChanged(d.files.optsFile, optsFile(d)),
    ].some(Boolean);

    const args = dnsmasqArgs(d);
    const pid = this.dnsmasqPid(d.network.id);
    const stale = existsSync(d.files.leaseFile) ? staleLeases(readFileSync(d.files.leaseFile, 'utf8'), d.ports) : [];
    if (pid !== undefined && sameArgs(readCmdline(pid), args)) {
      for (const lease of stale) await this.release(ns, d.interfaceName, lease);
      if (changed) process.kill(pid, 'SIGHUP');
      return;
    }
    if (pid !== undefined) await stopProcess(pid);
    // dnsmasq reads its lease file at start: a stale lease left there would hold the address.
    if (stale.length) writeIfChanged(d.files.leaseFile, dropLeases(readFileSync(d.files.leaseFile, 'utf8'), stale));
    // dnsmasq daemonizes: the call returns once it has bound its sockets and written its pid file.
    await runCommand('ip', this.ip.netnsExecArgs(ns, 'dnsmasq', args), { logger: this.opts.logger, timeoutMs: 15_000 });
  }

  /** dhcp_release from inside the namespace: dnsmasq forgets the lease as if the client had let it go. */
  private async release(ns: string, iface: string, lease: V4Lease): Promise<void> {
    const args = [iface, lease.ip, lease.mac, ...(lease.clientId ? [lease.clientId] : [])];
    try {
      await runCommand('ip', this.ip.netnsExecArgs(ns, 'dhcp_release', args), { logger: this.opts.logger, timeoutMs: 10_000 });
    } catch (err) {
      this.opts.logger.warn({ ip: lease.ip, err: (err as Error).message }, 'dhcp_release failed');
    }
  }

  private async ensureInterface(ns: string, network: NetworkState, port: PortState, subnets: SubnetState[]): Promise<void> {
    const hostNs = this.opts.hostNamespace;
    const tap = tapNameFor(port.id);
    const dev = nsDeviceFor(port.id);
    if (!(await this.ip.linkShow(ns, dev))) {
      await this.ip.linkDelete(hostNs, tap, { mayNotExist: true });
      await this.ip.linkAddVeth(hostNs, tap, dev, { peerNs: ns, peerAddress: port.macAddress, mtu: network.mtu });
    }
    const inside = await this.ip.linkShow(ns, dev);
    if (inside?.address !== port.macAddress.toLowerCase()) await this.ip.linkSetAddress(ns, dev, port.macAddress);
    if (inside?.mtu !== network.mtu) await this.ip.linkSetMtu(ns, dev, network.mtu);
    const outside = await this.ip.linkShow(hostNs, tap);
    if (outside?.mtu !== network.mtu) await this.ip.linkSetMtu(hostNs, tap, network.mtu);
    const bridge = bridgeNameFor(network.id);
    if (outside?.master !== bridge) await this.ip.linkSetMaster(hostNs, tap, bridge);
    if (!outside?.flags.includes('UP')) await this.ip.linkSetUp(hostNs, tap);
    if (!inside?.flags.includes('UP')) await this.ip.linkSetUp(ns, dev);

    const byId = new Map(subnets.map((s) => [s.id, s]));
    const want = new Set<string>();
    for (const f of port.fixedIps) {
      const s = byId.get(f.subnetId);
      if (s) want.add(`${f.ipAddress}/${s.cidr.split('/')[1]}`);
    }
    if (subnets.some((s) => s.isolatedMetadata)) want.add(`${METADATA_IP}/32`);
    const have = new Set(await this.ip.addrCidrs(ns, dev));
    for (const cidr of want) if (!have.has(cidr)) await this.ip.addrAdd(ns, dev, cidr, { mayExist: true, nodad: cidr.includes(':') });
    for (const cidr of have) if (!want.has(cidr)) await this.ip.addrDel(ns, dev, cidr, { mayNotExist: true });
  }

  private async teardown(networkId: string): Promise<void> {
    const pid = this.dnsmasqPid(networkId);
    if (pid !== undefined) await stopProcess(pid);
    const ns = this.namespaceFor(networkId);
    if (await this.ip.netnsExists(ns)) {
      // The ns end's peer (our tap on the bridge) goes with it; anything else still inside is ours too.
      for (const p of await this.ip.netnsPids(ns)) await stopProcess(p);
      const links = await this.ip.linkList(ns);
      for (const l of links) if (l.ifname.startsWith('ns-')) await this.ip.linkDelete(ns, l.ifname, { mayNotExist: true });
      await this.ip.netnsDelete(ns, { mayNotExist: true });
    }
    rmSync(this.files(networkId).dir, { recursive: true, force: true });
  }
}

export interface V4Lease {
  line: string;
  mac: string;
  ip: string;
  clientId?: string;
}

/**
 * The IPv4 leases in dnsmasq's lease file (`expiry mac ip hostname client-id`) whose address no
 * port holds with that MAC any more: a deleted port's, or one whose address a new port took.
 * dnsmasq would keep such an address for the old MAC and offer the new owner nothing until the
 * lease expired (upstream's _release_unused_leases). IPv6 leases (by DUID) are left to expire.
 */
export function staleLeases(leaseFile: string, ports: PortState[]): V4Lease[] {
  const held = new Set(ports.flatMap((p) => p.fixedIps.map((f) => `${p.macAddress.toLowerCase()} ${f.ipAddress}`)));
  const out: V4Lease[] = [];
  for (const line of leaseFile.split('\n')) {
    const [, mac, ip, , clientId] = line.trim().split(/\s+/);
    if (!ip || ip.includes(':') || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac ?? '')) continue;
    if (held.has(`${mac.toLowerCase()} ${ip}`)) continue;
    out.push({ line, mac, ip, ...(clientId && clientId !== '*' ? { clientId } : {}) });
  }
  return out;
}

function dropLeases(leaseFile: string, leases: V4Lease[]): string {
  const gone = new Set(leases.map((l) => l.line));
  return leaseFile
    .split('\n')
    .filter((l) => !gone.has(l))
    .join('\n');
}

/** A process's argv from /proc, or undefined when it is gone. */
export function readCmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** The first directory above `dir` that users other than its owner cannot pass through, if any. */
export function closedAncestor(dir: string): string | undefined {
  for (let d = dirname(dir); ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return d;
    if (d === dirname(d)) return undefined;
  }
}

/** Does a running dnsmasq's argv (after the program) equal `args`? */
export function sameArgs(cmdline: string[] | undefined, args: string[]): boolean {
  if (!cmdline) return false;
  const i = cmdline.findIndex((a) => a.endsWith('dnsmasq'));
  return i >= 0 && JSON.stringify(cmdline.slice(i + 1)) === JSON.stringify(args);
}

function writeIfChanged(path: string, content: string): boolean {
  if (existsSync(path) && readFileSync(path, 'utf8') === content) return false;
  writeFileSync(`${path}.tmp`, content, { mode: 0o644 });
  // Rename is atomic: dnsmasq re-reading on SIGHUP never sees half a file.
  renameSync(`${path}.tmp`, path);
  return true;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after 3 s; resolves when the process is gone. */
export async function stopProcess(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 3000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
    while (alive(pid)) await new Promise((r) => setTimeout(r, 25));
  }
}

