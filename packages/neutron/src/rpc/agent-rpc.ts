/**
 * A host's agents as a bus client (upstream's linuxbridge + DHCP agents' RPC loop): on start
 * it reports its state, asks for its host's desired state and reconciles (so a restart finds
 * and keeps what the previous run built), then resyncs whenever the server casts
 * `host_state_changed` for it, and heartbeats every `reportIntervalMs`. After each reconcile it
 * tells the server which ports are wired (their status becomes ACTIVE).
 *
 * Resyncs are coalesced: changes arriving during a sync cause exactly one more sync.
 * A failed sync (server unreachable) is retried on the next heartbeat.
 */
import type { Bus, RpcServer } from '@onestack/core/bus/bus.ts';
import type { AgentReport } from '../domain/agents.ts';
import { tapNameFor, type HostReport, type HostState } from '../agent/model.ts';
import { AGENT_TYPES, type HostStateChanged, type MetadataLookup, type PortsWired, type RpcTopics } from './topics.ts';

/** What the RPC loop needs of the host's reconcilers (agent/host-agent.ts composes them). */
export interface Reconciler {
  reconcile(state: HostState): Promise<HostReport>;
}

export interface AgentRpcOptions {
  bus: Bus;
  topics: RpcTopics;
  host: string;
  reconciler: Reconciler;
  /** The VXLAN endpoint in the host namespace; overrides what the server has on record. */
  localIp?: string | null;
  /** Reported as configurations (bridge_mappings …). */
  configurations?: Record<string, unknown>;
  /** Also report a DHCP agent row (every host agent here can serve DHCP). Default true. */
  dhcp?: boolean;
  /** Also report an L3 agent row (the host runs routers). */
  l3?: boolean;
  /** Heartbeat period; upstream's report_interval is 30 s. */
  reportIntervalMs?: number;
  logger: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** Called after every sync (tests, benchmarks, metrics). */
  onSynced?: (report: HostReport, ms: number) => void;
  callTimeoutMs?: number;
  /**
   * The links in the host namespace. With it, the agent checks the taps of its ports and
   * resyncs when one appears, disappears or is on no bridge: whoever plugs the guest (Nova's
   * QEMU, a test) creates the tap after the port is bound, and creates it again unwired when
   * the guest restarts (a hard reboot, a start after a stop).
   */
  links?: () => Promise<{ ifname: string; master?: string }[]>;
  /**
   * Starts a watch of the host namespace's links (`ip monitor link`), one line per event
   * naming the link. With it, an event on one of the ports' taps runs the check at once, and
   * the poll every pollIntervalMs is only the fallback (a missed event, the watch restarting).
   * Every `links` call forks a program from the service's process, which blocks its event
   * loop for the fork: polling often is what this replaces.
   */
  watchLinks?: (onLine: (line: string) => void) => { exited: Promise<unknown>; stop(): Promise<void> };
  /** Default 1000 ms (upstream's polling_interval is 2 s). */
  pollIntervalMs?: number;
}

/** How long a burst of link events (tap made, up, on its bridge) gets to finish before one check. */
const LINK_EVENT_SETTLE_MS = 20;
const MONITOR_START_CHECK_MS = 200;
/** A watch that dies again and again (its namespace gone) is restarted ever later, up to the cap. */
const MONITOR_RESTART_MS = 1000;
const MONITOR_RESTART_MAX_MS = 30_000;
/** A watch that ran this long was healthy: the next restart starts from MONITOR_RESTART_MS again. */
const MONITOR_HEALTHY_MS = 10_000;
/** An `ip -o monitor link` line about a tap: `N: tapXXXX: <…` or `Deleted N: tapXXXX: <…`. */
const TAP_EVENT = /^(Deleted )?\d+: tap/;

export class AgentRpc {
  private server?: RpcServer;
  private heartbeat?: NodeJS.Timeout;
  private poller?: NodeJS.Timeout;
  /** The taps the last sync left to watch; unset while nothing is (or a resync is asked for). */
  private taps?: { unwired: Set<string>; wired: string[] };
  private tapsGeneration = 0;
  private monitor?: { exited: Promise<unknown>; stop(): Promise<void> };
  private monitorRestart?: NodeJS.Timeout;
  private monitorRestartMs = MONITOR_RESTART_MS;
  private checkTimer?: NodeJS.Timeout;
  private checking = false;
  private checkAgain = false;
  private linkEventDuringSync = false;
  private syncing?: Promise<void>;
  private again = false;
  private started = false;
  private stopped = false;
  private firstReport = true;
  private lastReport?: HostReport;
  private devices = 0;
  private lastRouters = 0;

  constructor(private readonly opts: AgentRpcOptions) {}

  get report(): HostReport | undefined {
    return this.lastReport;
  }

  async start(): Promise<void> {
    const o = this.opts;
    this.server = await o.bus.serve(o.topics.agent, o.host, {
      host_state_changed: async (a: HostStateChanged) => {
        if (!a?.hosts || a.hosts.includes(o.host)) void this.requestSync();
        return null;
      },
    });
    this.started = true;
    await this.reportState();
    await this.requestSync();
    const every = o.reportIntervalMs ?? 30_000;
    this.heartbeat = setInterval(() => void this.beat(), every);
    this.heartbeat.unref?.();
  }

  /** Stops listening and heartbeating; the data plane stays as it is (a restart resyncs it). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.poller);
    clearTimeout(this.checkTimer);
    clearTimeout(this.monitorRestart);
    await this.monitor?.stop();
    await this.server?.stop();
    await this.syncing?.catch(() => undefined);
  }

  /** Resolves when a sync that started after this call has finished. */
  requestSync(): Promise<void> {
    if (this.stopped || !this.started) return Promise.resolve();
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    const run = (async () => {
      do {
        this.again = false;
        await this.syncOnce().catch((err: unknown) => this.opts.logger.warn({ err: (err as Error).message }, 'agent sync failed; retried at the next heartbeat'));
      } while (this.again && !this.stopped);
    })();
    this.syncing = run.finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  /** The instance behind a metadata request, asked of the server (the metadata proxy's lookup). */
  lookupInstance(query: MetadataLookup): Promise<{ instanceId: string; projectId: string } | undefined> {
    const o = this.opts;
    return o.bus.call<{ instanceId: string; projectId: string } | null>(o.topics.plugin, 'metadata_lookup', query, { timeoutMs: o.callTimeoutMs }).then((r) => r ?? undefined);
  }

  private async syncOnce(): Promise<void> {
    const o = this.opts;
    const t0 = Date.now();
    const state = await o.bus.call<HostState>(o.topics.plugin, 'get_host_state', { host: o.host }, { timeoutMs: o.callTimeoutMs });
    if (o.localIp !== undefined) state.localVtepIp = o.localIp;
    const report = await o.reconciler.reconcile(state);
    this.lastReport = report;
    this.devices = state.ports.length;
    this.lastRouters = state.routers?.length ?? 0;
    const wired: PortsWired = { host: o.host, wired: report.wiredPorts, unwired: report.unwiredPorts, dhcpNetworks: report.dhcpNetworks };
    await o.bus.call(o.topics.plugin, 'ports_wired', wired, { timeoutMs: o.callTimeoutMs });
    if (report.errors.length) o.logger.warn({ errors: report.errors }, 'host reconcile reported errors');
    o.onSynced?.(report, Date.now() - t0);
    this.watchTaps(report);
  }

  /**
   * Watches the taps of this host's ports: a tap appearing for a port not wired yet, or a wired
   * port's tap gone or on no bridge (QEMU made it anew), asks for a resync. Link events run the
   * check as they come; the poll is the fallback.
   */
  private watchTaps(report: HostReport): void {
    const o = this.opts;
    clearTimeout(this.poller);
    const generation = ++this.tapsGeneration;
    this.taps = undefined;
    if (!o.links || this.stopped) return;
    this.ensureMonitor();
    if (report.wiredPorts.length + report.unwiredPorts.length === 0) return;
    this.taps = { unwired: new Set(report.unwiredPorts.map((id) => tapNameFor(id))), wired: report.wiredPorts.map((id) => tapNameFor(id)) };
    // What changed while the sync ran may postdate the links it read.
    if (this.linkEventDuringSync) this.scheduleCheck();
    this.linkEventDuringSync = false;
    const poll = async () => {
      await this.checkTaps();
      if (generation !== this.tapsGeneration || !this.taps || this.stopped) return;
      this.poller = setTimeout(() => void poll(), o.pollIntervalMs ?? 1000);
      this.poller.unref?.();
    };
    this.poller = setTimeout(() => void poll(), o.pollIntervalMs ?? 1000);
    this.poller.unref?.();
  }

  private async checkTaps(): Promise<void> {
    const taps = this.taps;
    if (!taps || this.stopped) return;
    if (this.syncing) {
      this.linkEventDuringSync = true;
      return;
    }
    try {
      const links = new Map((await this.opts.links!()).map((l) => [l.ifname, l]));
      const needed = [...taps.unwired].some((t) => links.has(t)) || taps.wired.some((t) => !links.get(t)?.master);
      if (needed && taps === this.taps) {
        this.taps = undefined;
        void this.requestSync();
      }
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'tap check failed');
    }
  }

  /** A burst of link events (a tap made, set up, put on a bridge) costs one check. */
  private scheduleCheck(delayMs = LINK_EVENT_SETTLE_MS): void {
    if (this.checking || this.checkTimer) {
      this.checkAgain = true;
      return;
    }
    this.checkTimer = setTimeout(() => {
      this.checkTimer = undefined;
      this.checking = true;
      void this.checkTaps().finally(() => {
        this.checking = false;
        if (this.checkAgain && !this.stopped) {
          this.checkAgain = false;
          this.scheduleCheck();
        }
      });
    }, delayMs);
    this.checkTimer.unref?.();
  }

  private onLinkEvent(line: string): void {
    // Bridges, VXLAN and DHCP devices change too (the agent's own work); only taps matter here.
    if (this.stopped || !TAP_EVENT.test(line)) return;
    if (this.syncing) {
      this.linkEventDuringSync = true;
      return;
    }
    const taps = this.taps;
    if (taps && ([...taps.unwired].some((t) => line.includes(t)) || taps.wired.some((t) => line.includes(t)))) this.scheduleCheck();
  }

  /** Keeps one link watch running while the agent runs, restarting it when it dies. */
  private ensureMonitor(): void {
    const o = this.opts;
    if (!o.watchLinks || this.monitor || this.stopped) return;
    const started = Date.now();
    /** Returns the delay it chose. */
    const restart = (): number => {
      if (Date.now() - started >= MONITOR_HEALTHY_MS) this.monitorRestartMs = MONITOR_RESTART_MS;
      const delay = this.monitorRestartMs;
      this.monitorRestart = setTimeout(() => this.ensureMonitor(), delay);
      this.monitorRestart.unref?.();
      this.monitorRestartMs = Math.min(delay * 2, MONITOR_RESTART_MAX_MS);
      return delay;
    };
    let monitor: NonNullable<AgentRpc['monitor']>;
    try {
      monitor = o.watchLinks((line) => this.onLinkEvent(line));
    } catch (err) {
      o.logger.warn({ err: (err as Error).message, restart_in_ms: restart() }, 'link watch failed to start; tap polling only until it does');
      return;
    }
    this.monitor = monitor;
    // Events before the watch listens are not seen: one check once it has had time to.
    this.scheduleCheck(MONITOR_START_CHECK_MS);
    void monitor.exited.then((why) => {
      if (this.monitor !== monitor) return;
      this.monitor = undefined;
      if (this.stopped) return;
      o.logger.warn({ exit: why, restart_in_ms: restart() }, 'link watch ended; restarting it');
    });
  }

  private async beat(): Promise<void> {
    await this.reportState().catch((err: unknown) => this.opts.logger.warn({ err: (err as Error).message }, 'report_state failed'));
    // A sync that failed (server down) or errored pieces get another go.
    if (!this.lastReport || this.lastReport.errors.length) void this.requestSync();
  }

  async reportState(): Promise<void> {
    const o = this.opts;
    const configurations = { ...o.configurations, ...(o.localIp ? { local_ip: o.localIp, tunneling_ip: o.localIp, tunnel_types: ['vxlan'] } : {}), devices: this.devices };
    const reports: AgentReport[] = [{ ...AGENT_TYPES.linuxbridge, host: o.host, configurations }];
    if (o.l3) reports.push({ ...AGENT_TYPES.l3, host: o.host, configurations: { agent_mode: 'legacy', routers: this.lastRouters } });
    if (o.dhcp !== false) reports.push({ ...AGENT_TYPES.dhcp, host: o.host, configurations: { dhcp_driver: 'dnsmasq', networks: this.lastReport?.dhcpNetworks.length ?? 0 } });
    for (const r of reports) {
      await o.bus.call(o.topics.plugin, 'report_state', { agent: { ...r, startFlag: this.firstReport } }, { timeoutMs: o.callTimeoutMs });
    }
    this.firstReport = false;
  }
}
