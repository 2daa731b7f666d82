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
   * The links in the host namespace. With it, the agent polls the taps of its ports (upstream's
   * polling_interval) and resyncs when one appears, disappears or is on no bridge: whoever
   * plugs the guest (Nova's QEMU, a test) creates the tap after the port is bound, and creates
   * it again unwired when the guest restarts (a hard reboot, a start after a stop).
   */
  links?: () => Promise<{ ifname: string; master?: string }[]>;
  /** Default 1000 ms (upstream's polling_interval is 2 s). */
  pollIntervalMs?: number;
}

export class AgentRpc {
  private server?: RpcServer;
  private heartbeat?: NodeJS.Timeout;
  private poller?: NodeJS.Timeout;
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
   * Polls the taps of this host's ports: a tap appearing for a port not wired yet, or a wired
   * port's tap gone or on no bridge (QEMU made it anew), asks for a resync.
   */
  private watchTaps(report: HostReport): void {
    const o = this.opts;
    clearTimeout(this.poller);
    if (!o.links || this.stopped || report.wiredPorts.length + report.unwiredPorts.length === 0) return;
    const unwired = new Set(report.unwiredPorts.map((id) => tapNameFor(id)));
    const wired = report.wiredPorts.map((id) => tapNameFor(id));
    const needsSync = async () => {
      const links = new Map((await o.links!()).map((l) => [l.ifname, l]));
      return [...unwired].some((t) => links.has(t)) || wired.some((t) => !links.get(t)?.master);
    };
    const poll = async () => {
      if (this.stopped) return;
      try {
        if (await needsSync()) return void this.requestSync();
      } catch (err) {
        o.logger.warn({ err: (err as Error).message }, 'tap poll failed');
      }
      this.poller = setTimeout(() => void poll(), o.pollIntervalMs ?? 1000);
      this.poller.unref?.();
    };
    this.poller = setTimeout(() => void poll(), o.pollIntervalMs ?? 1000);
    this.poller.unref?.();
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
