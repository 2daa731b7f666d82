/**
 * Typed primitives over `ip`, `bridge` and `sysctl` for neutron's agents.
 *
 * Every call names its network namespace explicitly (`ip -n NS …`): the agents
 * only ever work inside namespaces onestack owns, so there is deliberately no
 * way to address the caller's own namespace. Every value is validated before it
 * reaches an argument vector, and programs run through core's privileged exec.
 *
 * Errors are CommandErrors; `isExistsError` / `isNotFoundError` let reconcilers
 * treat "already there" and "already gone" as success where that is the intent.
 */
import { isIP } from 'node:net';
import { CommandError, positional, runCommand, startCommand, which, type ExecLogger, type RunningCommand } from '@onestack/core/exec/privileged-exec.ts';

// ---------------------------------------------------------------------------------------------
// Validation

/** Kernel IFNAMSIZ is 16 with the NUL; no leading '-' so a name can never read as an option. */
const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
/** `ip netns` names are file names under /run/netns. */
const NSNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const SYSCTL_KEY = /^[a-z0-9_][a-z0-9_./-]{0,127}$/i;
const SYSCTL_VALUE = /^[A-Za-z0-9_. :-]{1,64}$/;

export class InvalidValueError extends Error {
  constructor(what: string, value: unknown) {
    super(`invalid ${what}: ${JSON.stringify(value)}`);
    this.name = 'InvalidValueError';
  }
}

export function checkIfname(name: string, what = 'interface name'): string {
  if (typeof name !== 'string' || !IFNAME.test(name)) throw new InvalidValueError(what, name);
  return name;
}

export function checkNetns(name: string): string {
  if (typeof name !== 'string' || !NSNAME.test(name) || name === '.' || name === '..') throw new InvalidValueError('namespace name', name);
  return name;
}

export function checkMac(mac: string): string {
  if (typeof mac !== 'string' || !MAC.test(mac.toLowerCase())) throw new InvalidValueError('MAC address', mac);
  return mac.toLowerCase();
}

export function checkIp(ip: string, version?: 4 | 6): string {
  const v = typeof ip === 'string' ? isIP(ip) : 0;
  if (!v || (version && v !== version)) throw new InvalidValueError('IP address', ip);
  return ip;
}

/** `a.b.c.d/len` or `x::y/len`; `default` is allowed only where `allowDefault` says so. */
export function checkCidr(cidr: string, opts: { allowDefault?: boolean; allowBareIp?: boolean } = {}): string {
  if (opts.allowDefault && cidr === 'default') return cidr;
  if (typeof cidr !== 'string') throw new InvalidValueError('CIDR', cidr);
  const [ip, len, extra] = cidr.split('/');
  if (extra !== undefined) throw new InvalidValueError('CIDR', cidr);
  const v = isIP(ip ?? '');
  if (!v) throw new InvalidValueError('CIDR', cidr);
  if (len === undefined) {
    if (opts.allowBareIp) return cidr;
    throw new InvalidValueError('CIDR', cidr);
  }
  const n = Number(len);
  if (!/^\d{1,3}$/.test(len) || n > (v === 4 ? 32 : 128)) throw new InvalidValueError('CIDR', cidr);
  return cidr;
}

function checkInt(what: string, n: number, min: number, max: number): string {
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidValueError(what, n);
  return String(n);
}

// ---------------------------------------------------------------------------------------------
// Parsed `ip -j` output (only the fields the agents read; the rest passes through)

export interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  master?: string;
  /** Set for veth ends and vlan devices: the peer/parent's name (when in the same namespace). */
  link?: string;
  link_netnsid?: number;
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, unknown>;
    info_slave_kind?: string;
  };
  [key: string]: unknown;
}

export interface IpAddrInfo {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope: string;
  [key: string]: unknown;
}

export interface IpAddr {
  ifname: string;
  addr_info: IpAddrInfo[];
  [key: string]: unknown;
}

export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  table?: string;
  [key: string]: unknown;
}

export interface FdbEntry {
  mac: string;
  ifname?: string;
  dst?: string;
  flags?: string[];
  state?: string;
  [key: string]: unknown;
}

export interface RouteSpec {
  /** `default` or a CIDR (a bare address means a host route). */
  dst: string;
  via?: string;
  dev?: string;
  metric?: number;
  table?: number;
  /** e.g. `link` for on-link routes without a gateway. */
  scope?: 'link' | 'host' | 'global';
  src?: string;
}

export interface VxlanSpec {
  vni: number;
  /** The local VTEP address (on `dev`). */
  local: string;
  dev: string;
  /** 4789 (IANA) unless the deployment says otherwise. */
  dstport?: number;
  /** Flooding and learning as l2pop does: flood entries added per peer, learning still on for replies. */
  learning?: boolean;
  ttl?: number;
  mtu?: number;
}

export interface IpLibOptions {
  logger: ExecLogger;
  /** Per call; `ip` answers in milliseconds, so a long wait means something is stuck. */
  timeoutMs?: number;
}

/** "RTNETLINK answers: File exists" and friends. */
export function isExistsError(err: unknown): boolean {
  return err instanceof CommandError && /File exists|already exists|already assigned/i.test(err.stderrTail);
}

/** The device, address, route, namespace or entry was not there. */
export function isNotFoundError(err: unknown): boolean {
  return (
    err instanceof CommandError &&
    /Cannot find device|does not exist|No such file or directory|No such process|Cannot assign requested address|not found|No such device/i.test(
      err.stderrTail,
    )
  );
}

export class IpLib {
  private readonly logger: ExecLogger;
  private readonly timeoutMs: number;

  constructor(opts: IpLibOptions) {
    this.logger = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  // -------------------------------------------------------------------------------------------
  // Raw runners

  /** `ip -n NS ARGS…` → stdout. */
  async ip(ns: string, args: (string | ReturnType<typeof positional>)[], opts: { input?: string } = {}): Promise<string> {
    const r = await runCommand('ip', ['-n', positional(checkNetns(ns)), ...args], {
      logger: this.logger,
      timeoutMs: this.timeoutMs,
      input: opts.input,
    });
    return r.stdout;
  }

  /** `bridge -n NS ARGS…` → stdout. */
  async bridge(ns: string, args: string[]): Promise<string> {
    const r = await runCommand('bridge', ['-n', positional(checkNetns(ns)), ...args], { logger: this.logger, timeoutMs: this.timeoutMs });
    return r.stdout;
  }

  /** Runs `program` inside NS (`ip netns exec NS program ARGS…`), without a shell. */
  async exec(
    ns: string,
    program: string,
    args: string[],
    opts: { input?: string; timeoutMs?: number; allowedExitCodes?: number[]; env?: Record<string, string> } = {},
  ): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const r = await runCommand('ip', this.netnsExecArgs(ns, program, args), {
      logger: this.logger,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      input: opts.input,
      allowedExitCodes: opts.allowedExitCodes,
      env: opts.env,
    });
    return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
  }

  // -------------------------------------------------------------------------------------------
  // Namespaces

  async netnsAdd(ns: string, opts: { mayExist?: boolean } = {}): Promise<void> {
    try {
      await runCommand('ip', ['netns', 'add', positional(checkNetns(ns))], { logger: this.logger, timeoutMs: this.timeoutMs });
    } catch (err) {
      if (!(opts.mayExist && isExistsError(err))) throw err;
      return;
    }
    // A new namespace's loopback is down; dnsmasq, metadata proxies and tests expect it up.
    await this.ip(ns, ['link', 'set', 'lo', 'up']);
  }

  async netnsDelete(ns: string, opts: { mayNotExist?: boolean } = {}): Promise<void> {
    try {
      await runCommand('ip', ['netns', 'delete', positional(checkNetns(ns))], { logger: this.logger, timeoutMs: this.timeoutMs });
    } catch (err) {
      if (!(opts.mayNotExist && isNotFoundError(err))) throw err;
    }
  }

  async netnsList(): Promise<string[]> {
    const r = await runCommand('ip', ['-j', 'netns', 'list'], { logger: this.logger, timeoutMs: this.timeoutMs });
    const text = r.stdout.trim();
    if (!text) return [];
    return (JSON.parse(text) as { name: string }[]).map((n) => n.name);
  }

  async netnsExists(ns: string): Promise<boolean> {
    return (await this.netnsList()).includes(checkNetns(ns));
  }

  /** PIDs of every process inside NS. */
  async netnsPids(ns: string): Promise<number[]> {
    const r = await runCommand('ip', ['netns', 'pids', positional(checkNetns(ns))], { logger: this.logger, timeoutMs: this.timeoutMs });
    return r.stdout
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  }

  /**
   * The argument vector (for the `ip` program) that runs `program` inside NS. For daemons
   * spawned by the caller; `program` is resolved to an absolute path so PATH never decides.
   */
  netnsExecArgs(ns: string, program: string, args: string[]): string[] {
    const resolved = which(program);
    if (!resolved) throw new InvalidValueError('program (not found)', program);
    for (const a of args) if (typeof a !== 'string' || /[\0\r\n]/.test(a)) throw new InvalidValueError('argument', a);
    return ['netns', 'exec', checkNetns(ns), resolved, ...args];
  }

  // -------------------------------------------------------------------------------------------
  // Links

  async linkAddBridge(ns: string, name: string, opts: { mtu?: number; address?: string } = {}): Promise<void> {
    const args = ['link', 'add', positional(checkIfname(name, 'bridge name'))];
    if (opts.mtu) args.push('mtu', checkInt('MTU', opts.mtu, 68, 65535));
    if (opts.address) args.push('address', checkMac(opts.address));
    // STP off and no forwarding delay: ports forward as soon as they are attached, as upstream's bridges do.
    args.push('type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    await this.ip(ns, args);
  }

  /** A veth pair: `name` in NS, `peerName` in `peerNs` (NS itself when omitted). */
  async linkAddVeth(
    ns: string,
    name: string,
    peerName: string,
    opts: { peerNs?: string; mtu?: number; address?: string; peerAddress?: string } = {},
  ): Promise<void> {
    const args = ['link', 'add', positional(checkIfname(name, 'veth name'))];
    if (opts.mtu) args.push('mtu', checkInt('MTU', opts.mtu, 68, 65535));
    if (opts.address) args.push('address', checkMac(opts.address));
    args.push('type', 'veth', 'peer', 'name', checkIfname(peerName, 'veth peer name'));
    if (opts.mtu) args.push('mtu', String(opts.mtu));
    if (opts.peerAddress) args.push('address', checkMac(opts.peerAddress));
    if (opts.peerNs) args.push('netns', checkNetns(opts.peerNs));
    await this.ip(ns, args);
  }

  async linkAddVxlan(ns: string, name: string, spec: VxlanSpec): Promise<void> {
    const args = ['link', 'add', positional(checkIfname(name, 'vxlan name'))];
    if (spec.mtu) args.push('mtu', checkInt('MTU', spec.mtu, 68, 65535));
    args.push(
      'type',
      'vxlan',
      'id',
      checkInt('VNI', spec.vni, 1, 16_777_215),
      'local',
      checkIp(spec.local),
      'dstport',
      checkInt('VXLAN port', spec.dstport ?? 4789, 1, 65535),
      'dev',
      checkIfname(spec.dev, 'underlay device'),
    );
    if (spec.ttl !== undefined) args.push('ttl', checkInt('TTL', spec.ttl, 1, 255));
    if (spec.learning === false) args.push('nolearning');
    await this.ip(ns, args);
  }

  /** An 802.1q subinterface `name` of `parent` with VLAN id `vlanId`. */
  async linkAddVlan(ns: string, name: string, parent: string, vlanId: number): Promise<void> {
    await this.ip(ns, [
      'link',
      'add',
      'link',
      checkIfname(parent, 'parent device'),
      'name',
      positional(checkIfname(name, 'vlan device name')),
      'type',
      'vlan',
      'id',
      checkInt('VLAN id', vlanId, 1, 4094),
    ]);
  }

  async linkAddDummy(ns: string, name: string): Promise<void> {
    await this.ip(ns, ['link', 'add', positional(checkIfname(name)), 'type', 'dummy']);
  }

  async linkDelete(ns: string, name: string, opts: { mayNotExist?: boolean } = {}): Promise<void> {
    try {
      await this.ip(ns, ['link', 'del', 'dev', positional(checkIfname(name))]);
    } catch (err) {
      if (!(opts.mayNotExist && isNotFoundError(err))) throw err;
    }
  }

  async linkSetUp(ns: string, name: string): Promise<void> {
    await this.ip(ns, ['link', 'set', 'dev', positional(checkIfname(name)), 'up']);
  }

  async linkSetDown(ns: string, name: string): Promise<void> {
    await this.ip(ns, ['link', 'set', 'dev', positional(checkIfname(name)), 'down']);
  }

  async linkSetMaster(ns: string, name: string, master: string): Promise<void> {
    await this.ip(ns, ['link', 'set', 'dev', positional(checkIfname(name)), 'master', checkIfname(master, 'bridge name')]);
  }

  async linkSetNoMaster(ns: string, name: string): Promise<void> {
    await this.ip(ns, ['link', 'set', 'dev', positional(checkIfname(name)), 'nomaster']);
  }

  async linkSetMtu(ns: string, name: string, mtu: number): Promise<void> {
    await this.ip(ns, ['link', 'set', 'dev', positional(checkIfname(name)), 'mtu', checkInt('MTU', mtu, 68, 65535)]);
  }

  async linkSetAddress(ns: string, name: string, mac: string): Promise<void> {
    await this.ip(ns, ['link', 'set', 'dev', positional(checkIfname(name)), 'address', checkMac(mac)]);
  }

  /** Moves a link into another namespace (it disappears from NS). */
  async linkSetNetns(ns: string, name: string, targetNs: string): Promise<void> {
    await this.ip(ns, ['link', 'set', 'dev', positional(checkIfname(name)), 'netns', checkNetns(targetNs)]);
  }

  /** Every link of NS with details (`ip -j -d link show`). */
  async linkList(ns: string): Promise<IpLink[]> {
    const out = await this.ip(ns, ['-j', '-d', 'link', 'show']);
    return parseJson<IpLink[]>(out);
  }

  /**
   * Watches NS's links (`ip -o -n NS monitor link`): every link added, changed or deleted
   * gives a line naming it. Runs until stopped; the caller stops it by the handle.
   */
  monitorLinks(ns: string, onLine: (line: string) => void): RunningCommand {
    return startCommand('ip', ['-o', '-n', positional(checkNetns(ns)), 'monitor', 'link'], { logger: this.logger, onLine });
  }

  /** One link, or undefined when NS has none of that name. */
  async linkShow(ns: string, name: string): Promise<IpLink | undefined> {
    try {
      const out = await this.ip(ns, ['-j', '-d', 'link', 'show', 'dev', positional(checkIfname(name))]);
      return parseJson<IpLink[]>(out)[0];
    } catch (err) {
      if (isNotFoundError(err)) return undefined;
      throw err;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Addresses

  async addrAdd(ns: string, dev: string, cidr: string, opts: { mayExist?: boolean; nodad?: boolean } = {}): Promise<void> {
    const args = ['addr', 'add', checkCidr(cidr), 'dev', positional(checkIfname(dev))];
    if (opts.nodad) args.push('nodad');
    try {
      await this.ip(ns, args);
    } catch (err) {
      if (!(opts.mayExist && isExistsError(err))) throw err;
    }
  }

  async addrDel(ns: string, dev: string, cidr: string, opts: { mayNotExist?: boolean } = {}): Promise<void> {
    try {
      await this.ip(ns, ['addr', 'del', checkCidr(cidr), 'dev', positional(checkIfname(dev))]);
    } catch (err) {
      if (!(opts.mayNotExist && isNotFoundError(err))) throw err;
    }
  }

  /** Removes every address of `dev` (of one family when given) whose scope is `global`. */
  async addrFlush(ns: string, dev: string, opts: { family?: 4 | 6 } = {}): Promise<void> {
    const args: (string | ReturnType<typeof positional>)[] = [];
    if (opts.family) args.push(opts.family === 4 ? '-4' : '-6');
    args.push('addr', 'flush', 'dev', positional(checkIfname(dev)), 'scope', 'global');
    await this.ip(ns, args);
  }

  /** Addresses per link (of one link when `dev` is given). */
  async addrList(ns: string, dev?: string): Promise<IpAddr[]> {
    const args: (string | ReturnType<typeof positional>)[] = ['-j', 'addr', 'show'];
    if (dev) args.push('dev', positional(checkIfname(dev)));
    return parseJson<IpAddr[]>(await this.ip(ns, args));
  }

  /** `addr/prefixlen` strings of one link, of global scope, in the kernel's order. */
  async addrCidrs(ns: string, dev: string): Promise<string[]> {
    const [link] = await this.addrList(ns, dev);
    return (link?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
  }

  // -------------------------------------------------------------------------------------------
  // Routes

  private routeArgs(r: RouteSpec): string[] {
    const args = [checkCidr(r.dst, { allowDefault: true, allowBareIp: true })];
    const v6 = r.dst.includes(':') || (r.via?.includes(':') ?? false);
    if (r.via) args.push('via', checkIp(r.via));
    if (r.dev) args.push('dev', checkIfname(r.dev));
    if (r.src) args.push('src', checkIp(r.src));
    if (r.scope) args.push('scope', r.scope);
    if (r.metric !== undefined) args.push('metric', checkInt('metric', r.metric, 0, 2 ** 32 - 1));
    if (r.table !== undefined) args.push('table', checkInt('table', r.table, 1, 2 ** 32 - 1));
    return v6 ? ['-6', ...args] : args;
  }

  async routeAdd(ns: string, r: RouteSpec): Promise<void> {
    const [first, ...rest] = this.routeArgs(r);
    await this.ip(ns, first === '-6' ? ['-6', 'route', 'add', ...rest] : ['route', 'add', first, ...rest]);
  }

  async routeReplace(ns: string, r: RouteSpec): Promise<void> {
    const [first, ...rest] = this.routeArgs(r);
    await this.ip(ns, first === '-6' ? ['-6', 'route', 'replace', ...rest] : ['route', 'replace', first, ...rest]);
  }

  async routeDel(ns: string, r: RouteSpec, opts: { mayNotExist?: boolean } = {}): Promise<void> {
    const [first, ...rest] = this.routeArgs(r);
    try {
      await this.ip(ns, first === '-6' ? ['-6', 'route', 'del', ...rest] : ['route', 'del', first, ...rest]);
    } catch (err) {
      if (!(opts.mayNotExist && isNotFoundError(err))) throw err;
    }
  }

  async routeList(ns: string, opts: { family?: 4 | 6; table?: number | 'all'; dev?: string } = {}): Promise<IpRoute[]> {
    const args: string[] = ['-j', opts.family === 6 ? '-6' : '-4', 'route', 'show'];
    if (opts.table !== undefined) args.push('table', opts.table === 'all' ? 'all' : checkInt('table', opts.table, 1, 2 ** 32 - 1));
    if (opts.dev) args.push('dev', checkIfname(opts.dev));
    return parseJson<IpRoute[]>(await this.ip(ns, args));
  }

  // -------------------------------------------------------------------------------------------
  // Bridge forwarding database (VXLAN flooding entries, l2pop style)

  async fdbAppend(ns: string, e: { mac: string; dev: string; dst: string }): Promise<void> {
    await this.bridge(ns, ['fdb', 'append', checkMac(e.mac), 'dev', checkIfname(e.dev), 'dst', checkIp(e.dst)]);
  }

  async fdbDel(ns: string, e: { mac: string; dev: string; dst: string }, opts: { mayNotExist?: boolean } = {}): Promise<void> {
    try {
      await this.bridge(ns, ['fdb', 'del', checkMac(e.mac), 'dev', checkIfname(e.dev), 'dst', checkIp(e.dst)]);
    } catch (err) {
      if (!(opts.mayNotExist && isNotFoundError(err))) throw err;
    }
  }

  /** Entries of one device (`bridge -j fdb show dev DEV`). */
  async fdbList(ns: string, dev: string): Promise<FdbEntry[]> {
    return parseJson<FdbEntry[]>(await this.bridge(ns, ['-j', 'fdb', 'show', 'dev', checkIfname(dev)]));
  }

  // -------------------------------------------------------------------------------------------
  // sysctl inside a namespace

  /** `sysctl -w KEY=VALUE` inside NS (keys may use '/' separators when a part contains '.'). */
  async sysctlSet(ns: string, key: string, value: string | number): Promise<void> {
    const v = String(value);
    if (!SYSCTL_KEY.test(key)) throw new InvalidValueError('sysctl key', key);
    if (!SYSCTL_VALUE.test(v)) throw new InvalidValueError('sysctl value', v);
    await this.exec(ns, 'sysctl', ['-q', '-w', `${key}=${v}`]);
  }

  async sysctlGet(ns: string, key: string): Promise<string> {
    if (!SYSCTL_KEY.test(key)) throw new InvalidValueError('sysctl key', key);
    return (await this.exec(ns, 'sysctl', ['-n', key])).stdout.trim();
  }
}

function parseJson<T>(text: string): T {
  const t = text.trim();
  // `ip -j` prints nothing at all (not `[]`) for some empty listings.
  return (t ? JSON.parse(t) : []) as T;
}
