/**
 * The Neutron server's side of the agent RPC (see topics.ts): answers the agents' calls and
 * tells them to resync whenever something that shapes a host's data plane changes.
 *
 * Change detection: the core's portChanged hooks (in process, right after commit) and the
 * resource notifications every API server publishes (networks, subnets, security groups and
 * rules, routers, floating IPs), so a change made through any API server reaches the agents.
 * Only the hosts a change affects are told (domain/affected-hosts.ts); casts are debounced:
 * a burst of API calls is one resync per affected host.
 *
 * Port status: the agent reports which ports it wired; a port becoming ACTIVE (or DOWN again)
 * bumps its revision, sends `port.update.end` and, for an instance's port (device_owner
 * `compute:*`), the Nova external event `network-vif-plugged` (`network-vif-unplugged`):
 * a notification with that event type whose payload is one entry of Nova's
 * os-server-external-events body: `{name, server_uuid, tag: <port id>, status: 'completed'}`.
 */
import type { Kysely } from 'kysely';
import type { Bus, RpcServer, Subscription } from '@onestack/core/bus/bus.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { Logger } from 'pino';
import type { NeutronDB, PortRow } from '../db/schema.ts';
import { reportAgentState, type AgentReport } from '../domain/agents.ts';
import type { Hooks } from '../domain/hooks.ts';
import { hostsForNotification, hostsForPorts, type ChangedPort, type PortChangeContext } from '../domain/affected-hosts.ts';
import { buildHostState, vtepAddresses, type RouterStatesFn } from '../domain/host-states.ts';
import type { Notifier } from '../domain/notifier.ts';
import type { HostStateChanged, MetadataLookup, PortsWired, RpcTopics } from './topics.ts';

export interface ServerRpcDeps {
  db: Kysely<NeutronDB>;
  bus: Bus;
  clock: Clock;
  ids: IdSource;
  logger: Pick<Logger, 'warn' | 'info' | 'debug'>;
  hooks: Hooks;
  notifier: Notifier;
  topics: RpcTopics;
  /** The host that serves DHCP and routers (static scheduling, see domain/host-states.ts). */
  networkHost: string;
  routerStates?: RouterStatesFn;
  isolatedMetadata?: boolean;
  /** Coalescing window of resync casts; default 50 ms. */
  debounceMs?: number;
  /** Notification pool of this deployment's servers (one server handles each notification). */
  pool?: string;
}

/** Events that change some host's desired state (ports come through the portChanged hook). */
export const RESYNC_EVENTS = ['network.*.end', 'subnet.*.end', 'security_group.*.end', 'security_group_rule.*.end', 'router.*.end', 'router.interface.*', 'floatingip.*.end'];

export const VIF_PLUGGED = 'network-vif-plugged';
export const VIF_UNPLUGGED = 'network-vif-unplugged';

export class NeutronServerRpc {
  private server?: RpcServer;
  private subscription?: Subscription;
  private timer?: NodeJS.Timeout;
  /** undefined: every host. */
  private pendingHosts: Set<string> | undefined = new Set();
  private pending = false;
  private stopped = false;
  /** Port changes since the last cast: their hosts are found at the flush, in one go. */
  private pendingPorts: { port: ChangedPort; ctx?: PortChangeContext }[] = [];
  private readonly hook = (_event: string, port: ChangedPort, ctx?: PortChangeContext) => {
    if (this.stopped) return;
    this.pendingPorts.push({ port: { network_id: port.network_id, binding_host_id: port.binding_host_id }, ctx });
    this.changed([]);
  };

  constructor(private readonly deps: ServerRpcDeps) {}

  async start(): Promise<void> {
    const d = this.deps;
    this.server = await d.bus.serve(d.topics.plugin, undefined, {
      get_host_state: async (a: { host: string }) => buildHostState(d.db, a.host, { networkHost: d.networkHost, routerStates: d.routerStates, isolatedMetadata: d.isolatedMetadata }),
      report_state: async (a: { agent: AgentReport }) => this.reportState(a.agent),
      ports_wired: async (a: PortsWired) => ({ changed: await this.portsWired(a) }),
      metadata_lookup: async (a: MetadataLookup) => (await instanceForAddress(d.db, a)) ?? null,
    });
    d.hooks.portChanged.push(this.hook);
    this.subscription = await d.bus.subscribe('notifications', d.pool ?? `neutron-server-rpc-${d.topics.agent}`, async (n) => this.changedFor(() => hostsForNotification(d.db, d.networkHost, n.event_type, n.payload)), { eventTypes: RESYNC_EVENTS });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const i = this.deps.hooks.portChanged.indexOf(this.hook);
    if (i >= 0) this.deps.hooks.portChanged.splice(i, 1);
    await this.subscription?.stop();
    await this.server?.stop();
  }

  /** Schedules a cast for the hosts `affected` finds; every host when it cannot tell or fails. */
  private changedFor(affected: () => Promise<string[] | undefined>): void {
    if (this.stopped) return;
    affected()
      .catch((err: unknown) => {
        this.deps.logger.warn({ err }, 'could not tell which hosts a change affects; resyncing all');
        return undefined;
      })
      .then((hosts) => {
        this.changed(hosts);
      });
  }

  /** Schedules a `host_state_changed` cast for these hosts (all when absent). */
  changed(hosts?: string[]): void {
    if (this.stopped) return;
    if (!hosts) this.pendingHosts = undefined;
    else if (this.pendingHosts) for (const h of hosts) this.pendingHosts.add(h);
    this.pending = true;
    this.timer ??= setTimeout(() => void this.flush(), this.deps.debounceMs ?? 50);
  }

  private async flush(): Promise<void> {
    this.timer = undefined;
    if (!this.pending || this.stopped) return;
    let hosts = this.pendingHosts;
    const ports = this.pendingPorts;
    this.pending = false;
    this.pendingHosts = new Set();
    this.pendingPorts = [];
    if (hosts && ports.length) {
      try {
        for (const h of await hostsForPorts(this.deps.db, this.deps.networkHost, ports)) hosts.add(h);
      } catch (err) {
        this.deps.logger.warn({ err }, 'could not tell which hosts port changes affect; resyncing all');
        hosts = undefined;
      }
    }
    if (hosts?.size === 0) return;
    const args: HostStateChanged = hosts ? { hosts: [...hosts] } : {};
    await this.deps.bus.fanout(this.deps.topics.agent, 'host_state_changed', args).catch((err: unknown) => this.deps.logger.warn({ err }, 'host_state_changed cast failed'));
  }

  private async reportState(agent: AgentReport): Promise<string> {
    const before = agent.startFlag ? undefined : (await vtepAddresses(this.deps.db, [agent.host])).get(agent.host);
    const id = await reportAgentState(this.deps.db, this.deps.clock, this.deps.ids, agent);
    const vtep = agent.configurations?.local_ip;
    // A (re)started agent or a moved VTEP: the other hosts' flood lists change.
    if (agent.startFlag || (typeof vtep === 'string' && vtep !== before)) this.changed();
    return id;
  }

  /** Moves the host's ports to ACTIVE/DOWN as the agent saw them; returns the ids that changed. */
  async portsWired(r: PortsWired): Promise<string[]> {
    const { db } = this.deps;
    const changed: string[] = [];
    const dhcp = r.dhcpNetworks.length
      ? await db.selectFrom('ports').select('id').where('device_owner', '=', 'network:dhcp').where('network_id', 'in', r.dhcpNetworks).execute()
      : [];
    const up = [...new Set([...r.wired, ...dhcp.map((p) => p.id)])];
    for (const [ids, status] of [
      [up, 'ACTIVE'],
      [r.unwired, 'DOWN'],
    ] as const) {
      if (ids.length === 0) continue;
      const rows = await db.selectFrom('ports').selectAll().where('id', 'in', ids).where('status', '!=', status).execute();
      for (const p of rows) {
        // Compare-and-swap on the revision: a concurrent API update wins and the next report retries.
        const res = await db
          .updateTable('ports')
          .set({ status, revision_number: p.revision_number + 1, updated_at: this.deps.clock.now() })
          .where('id', '=', p.id)
          .where('revision_number', '=', p.revision_number)
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) !== 1) continue;
        changed.push(p.id);
        this.announce({ ...p, status, revision_number: p.revision_number + 1 });
      }
    }
    return changed;
  }

  private announce(p: PortRow): void {
    const { notifier } = this.deps;
    notifier.end('port', 'update', {
      id: p.id,
      network_id: p.network_id,
      status: p.status,
      device_id: p.device_id,
      device_owner: p.device_owner,
      mac_address: p.mac_address,
      'binding:host_id': p.binding_host_id,
      revision_number: p.revision_number,
    });
    if (p.device_owner.startsWith('compute:') && p.device_id) {
      const name = p.status === 'ACTIVE' ? VIF_PLUGGED : VIF_UNPLUGGED;
      notifier.send(name, { name, server_uuid: p.device_id, tag: p.id, status: 'completed' });
    }
  }
}

/** An instance's port (device_owner compute:*) with fixed IP `ip` on one of `networkIds`. */
export async function instanceForAddress(db: Kysely<NeutronDB>, q: MetadataLookup): Promise<{ instanceId: string; projectId: string } | undefined> {
  if (!q?.ip || !Array.isArray(q.networkIds) || q.networkIds.length === 0) return undefined;
  const row = await db
    .selectFrom('ports')
    .innerJoin('ipallocations', 'ipallocations.port_id', 'ports.id')
    .select(['ports.device_id', 'ports.project_id'])
    .where('ports.network_id', 'in', q.networkIds)
    .where('ipallocations.ip_address', '=', q.ip)
    .where('ports.device_owner', 'like', 'compute:%')
    .where('ports.device_id', '!=', '')
    .executeTakeFirst();
  return row ? { instanceId: row.device_id, projectId: row.project_id ?? '' } : undefined;
}
