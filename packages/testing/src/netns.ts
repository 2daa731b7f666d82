import { execFile, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Network namespaces for tests, with the one rule that makes them safe on a
 * developer's machine: a lab only ever touches namespaces it created itself
 * (every `ip` call carries `-n <its namespace>`), so the host's own
 * interfaces, routes and firewall are never changed, and cleanup removes
 * exactly what the lab made, by name, and kills exactly the processes it
 * started or that run inside its namespaces, by PID.
 *
 * Names are `onestack-t<pid>-<n>-<role>`: the owner's PID lets a later lab
 * remove what a killed test run left behind, without touching the namespaces
 * of test runs that are still alive.
 */

const NAME_PREFIX = 'onestack-t';
const OWNED = /^onestack-t(\d+)-\d+-[a-z0-9-]+$/;
// Interface names: the kernel's IFNAMSIZ (15) and nothing a shell or `ip` would read twice.
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const ROLE = /^[a-z0-9-]{1,24}$/;
const CIDR = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

function ipBinary(): string {
  for (const p of ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']) if (existsSync(p)) return p;
  return 'ip';
}
export const IP = ipBinary();

/** Throws a clear error when not root: namespaces, bridges and taps need it, and a silent skip would hide the test. */
export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() === 0) return;
  throw new Error(
    `${what} needs root (it creates network namespaces, bridges and taps, all inside namespaces of its own): run it as root, as CI does`,
  );
}

function check(re: RegExp, value: string, what: string): string {
  if (!re.test(value)) throw new Error(`invalid ${what}: ${JSON.stringify(value)}`);
  return value;
}

async function ipCmd(args: string[]): Promise<string> {
  try {
    const { stdout } = await run(IP, args, { timeout: 30_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function pidsInSync(ns: string): number[] {
  const r = spawnSync(IP, ['netns', 'pids', ns], { encoding: 'utf8' });
  return (r.stdout ?? '')
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

function listNamespacesSync(): string[] {
  const r = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' });
  return (r.stdout ?? '')
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((s): s is string => !!s);
}

/** Removes namespaces left by test processes that died before their cleanup ran (SIGKILL, timeouts). */
function sweepOrphans(): void {
  for (const ns of listNamespacesSync()) {
    const m = OWNED.exec(ns);
    if (!m || pidAlive(Number(m[1]))) continue;
    for (const pid of pidsInSync(ns)) killQuietly(pid, 'SIGKILL');
    spawnSync(IP, ['netns', 'del', ns]);
  }
}

const liveLabs = new Set<NetnsLab>();
let seq = 0;
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // The last chance when a test forgot (or never reached) cleanup(): synchronous, SIGKILL.
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
  // A signal's default action skips 'exit': clean up, then let the signal do what it would have done.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      for (const lab of liveLabs) lab.cleanupSync();
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** One namespace of a lab. */
export class Netns {
  readonly links: string[] = [];

  constructor(
    readonly lab: NetnsLab,
    readonly name: string,
  ) {}

  /** `ip -n <this namespace> ARGS…` */
  ip(...args: string[]): Promise<string> {
    return ipCmd(['-n', this.name, ...args]);
  }

  /** Runs a program inside the namespace (`ip netns exec`), without a shell. Rejects on a non-zero exit, with its stderr. */
  exec(cmd: string, args: string[] = [], opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        IP,
        ['netns', 'exec', this.name, cmd, ...args],
        { timeout: opts.timeoutMs ?? 30_000, env: opts.env, cwd: opts.cwd, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) {
            const e = err as Error & { code?: number | string; signal?: string };
            const why = e.signal ? `killed by ${e.signal}` : `exit ${e.code}`;
            reject(Object.assign(new Error(`${cmd} ${args.join(' ')} in ${this.name}: ${why}: ${stderr.trim()}`), { stdout, stderr, code: e.code }));
          } else resolve({ stdout, stderr });
        },
      );
      if (opts.input !== undefined) child.stdin?.end(opts.input);
      else child.stdin?.end();
    });
  }

  /**
   * Starts a long-running program inside the namespace. `ip netns exec`
   * execs the program in place, so the child's PID is the program's PID;
   * the lab kills it on cleanup.
   */
  spawn(cmd: string, args: string[] = [], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn(IP, ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    if (child.pid !== undefined) this.lab.trackPid(child.pid);
    return child;
  }

  /** PIDs of every process inside the namespace. */
  async pids(): Promise<number[]> {
    const out = await ipCmd(['netns', 'pids', this.name]);
    return out
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  }

  async up(dev: string): Promise<void> {
    await this.ip('link', 'set', check(IFNAME, dev, 'interface name'), 'up');
  }

  async addAddress(dev: string, cidr: string): Promise<void> {
    await this.ip('addr', 'add', check(CIDR, cidr, 'address'), 'dev', check(IFNAME, dev, 'interface name'));
  }

  /** A Linux bridge, up, with the given addresses. */
  async addBridge(name: string, opts: { addresses?: string[]; mtu?: number } = {}): Promise<void> {
    check(IFNAME, name, 'bridge name');
    await this.ip('link', 'add', name, 'type', 'bridge');
    this.links.push(name);
    if (opts.mtu) await this.ip('link', 'set', name, 'mtu', String(opts.mtu));
    for (const a of opts.addresses ?? []) await this.addAddress(name, a);
    await this.up(name);
  }

  /**
   * A persistent tap created beforehand (QEMU then opens it with
   * `script=no`, needing no helper), attached to a bridge when `master` is given.
   */
  async addTap(name: string, opts: { master?: string } = {}): Promise<void> {
    check(IFNAME, name, 'tap name');
    await this.ip('tuntap', 'add', name, 'mode', 'tap');
    this.links.push(name);
    if (opts.master) await this.ip('link', 'set', name, 'master', check(IFNAME, opts.master, 'bridge name'));
    await this.up(name);
  }

  async setMac(dev: string, mac: string): Promise<void> {
    await this.ip('link', 'set', check(IFNAME, dev, 'interface name'), 'address', check(MAC, mac, 'MAC address'));
  }
}

export interface VethEnd {
  ns: Netns;
  name: string;
  /** A bridge in the same namespace to attach this end to. */
  master?: string;
  addresses?: string[];
}

/** A set of namespaces, links and processes that cleanup() removes together. */
export class NetnsLab {
  readonly namespaces: Netns[] = [];
  private readonly pids = new Set<number>();
  private readonly id: number;
  private closed = false;

  private constructor() {
    this.id = ++seq;
  }

  /** A new, empty lab. Needs root; removes the leftovers of dead test processes first. */
  static create(): NetnsLab {
    requireRoot('a network namespace lab');
    sweepOrphans();
    installExitHook();
    const lab = new NetnsLab();
    liveLabs.add(lab);
    return lab;
  }

  /** A namespace with a unique name and its loopback up. */
  async addNamespace(role: string): Promise<Netns> {
    if (this.closed) throw new Error('lab already cleaned up');
    const name = `${NAME_PREFIX}${process.pid}-${this.id}-${check(ROLE, role, 'namespace role')}`;
    if (this.namespaces.some((n) => n.name === name)) throw new Error(`namespace role ${role} already used`);
    await ipCmd(['netns', 'add', name]);
    const ns = new Netns(this, name);
    this.namespaces.push(ns);
    await ns.up('lo');
    return ns;
  }

  /** A veth pair between two namespaces of this lab (or within one); both ends up. */
  async addVeth(a: VethEnd, b: VethEnd): Promise<void> {
    for (const end of [a, b]) {
      if (end.ns.lab !== this) throw new Error(`namespace ${end.ns.name} is not part of this lab`);
      check(IFNAME, end.name, 'veth name');
    }
    await a.ns.ip('link', 'add', a.name, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.ns.name);
    a.ns.links.push(a.name);
    b.ns.links.push(b.name);
    for (const end of [a, b]) {
      if (end.master) await end.ns.ip('link', 'set', end.name, 'master', check(IFNAME, end.master, 'bridge name'));
      for (const addr of end.addresses ?? []) await end.ns.addAddress(end.name, addr);
      await end.ns.up(end.name);
    }
  }

  /** Kills this PID on cleanup (daemons that report their PID in a file, such as QEMU's -pidfile). */
  trackPid(pid: number): void {
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`invalid pid ${pid}`);
    this.pids.add(pid);
  }

  /**
   * Kills the lab's processes (SIGTERM, then SIGKILL after `graceMs`), then
   * any process still inside its namespaces, deletes the links it created
   * and the namespaces. Safe to call twice; never throws.
   */
  async cleanup(graceMs = 3000): Promise<void> {
    if (this.closed) return;
    const pids = new Set(this.pids);
    for (const ns of this.namespaces) for (const pid of pidsInSync(ns.name)) pids.add(pid);
    for (const pid of pids) killQuietly(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while ([...pids].some(pidAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.cleanupSync();
  }

  /** The synchronous part of cleanup(): SIGKILL whatever is left, delete links and namespaces. */
  cleanupSync(): void {
    if (this.closed) return;
    this.closed = true;
    liveLabs.delete(this);
    for (const pid of this.pids) killQuietly(pid, 'SIGKILL');
    for (const ns of this.namespaces) for (const pid of pidsInSync(ns.name)) killQuietly(pid, 'SIGKILL');
    // Deleting a namespace deletes its virtual links too; deleting them by name first
    // makes sure nothing of ours could be pushed back into the host's namespace.
    for (const ns of [...this.namespaces].reverse()) {
      for (const link of [...ns.links].reverse()) spawnSync(IP, ['-n', ns.name, 'link', 'del', link], { stdio: 'ignore' });
      spawnSync(IP, ['netns', 'del', ns.name], { stdio: 'ignore' });
    }
  }

  /** Names of this lab's namespaces that still exist (empty after cleanup). */
  remaining(): string[] {
    const names = new Set(this.namespaces.map((n) => n.name));
    return listNamespacesSync().filter((n) => names.has(n));
  }
}
