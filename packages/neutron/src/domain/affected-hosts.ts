/**
 * Which hosts' desired state (domain/host-states.ts) a change can alter, so the server asks
 * only those agents to resync (upstream notifies per host too: port_update to the binding
 * host, l2pop fdb entries to the network's hosts, security group member updates to the hosts
 * of the groups' ports). It must be a superset of the truth: a host left out keeps a stale
 * data plane until its next restart. `undefined` means every host.
 *
 * - A network's hosts: the hosts of its bound ports (its l2pop peers) plus the network host
 *   (DHCP and router interfaces live there).
 * - A security group's hosts: the hosts of its ports plus those of ports in groups whose rules
 *   name it as remote group (they expand its members' addresses).
 * - Routers and floating IPs live on the network host; a router's interface or gateway also
 *   changes its network's l2pop peers. Floating IP ports come as port changes.
 */
import type { Kysely } from 'kysely';
import type { NeutronDB } from '../db/schema.ts';

export interface ChangedPort {
  network_id: string;
  binding_host_id: string;
}

/** What the port hook knows beyond the row: the binding host before an update, and the groups before and after. */
export interface PortChangeContext {
  previousHost?: string;
  securityGroups?: string[];
}

export async function hostsOfNetworks(db: Kysely<NeutronDB>, networkIds: string[], networkHost: string): Promise<Set<string>> {
  const out = new Set([networkHost]);
  if (networkIds.length === 0) return out;
  const rows = await db.selectFrom('ports').select('binding_host_id').distinct().where('network_id', 'in', networkIds).where('binding_host_id', '!=', '').execute();
  for (const r of rows) out.add(r.binding_host_id);
  return out;
}

export async function hostsOfGroups(db: Kysely<NeutronDB>, groupIds: string[]): Promise<Set<string>> {
  if (groupIds.length === 0) return new Set();
  const referring = await db.selectFrom('security_group_rules').select('security_group_id').distinct().where('remote_group_id', 'in', groupIds).execute();
  const groups = [...new Set([...groupIds, ...referring.map((r) => r.security_group_id)])];
  const rows = await db
    .selectFrom('port_security_group_bindings')
    .innerJoin('ports', 'ports.id', 'port_security_group_bindings.port_id')
    .select('ports.binding_host_id')
    .distinct()
    .where('port_security_group_bindings.security_group_id', 'in', groups)
    .where('ports.binding_host_id', '!=', '')
    .execute();
  return new Set(rows.map((r) => r.binding_host_id));
}

/** Hosts a batch of port changes concerns (a bulk create is one batch: a few queries, not a few per port). */
export async function hostsForPorts(db: Kysely<NeutronDB>, networkHost: string, changes: { port: ChangedPort; ctx?: PortChangeContext }[]): Promise<string[]> {
  const out = await hostsOfNetworks(db, [...new Set(changes.map((c) => c.port.network_id))], networkHost);
  for (const { port, ctx } of changes) for (const h of [port.binding_host_id, ctx?.previousHost]) if (h) out.add(h);
  // The ports' addresses are members of their groups, expanded by ports whose rules name them.
  for (const h of await hostsOfGroups(db, [...new Set(changes.flatMap((c) => c.ctx?.securityGroups ?? []))])) out.add(h);
  return [...out];
}

type Payload = Record<string, Record<string, unknown> | undefined>;

/** Hosts a resource notification (server-rpc's RESYNC_EVENTS) concerns; undefined: all. */
export async function hostsForNotification(db: Kysely<NeutronDB>, networkHost: string, eventType: string, payload: unknown): Promise<string[] | undefined> {
  const [member] = eventType.split('.');
  const p = (payload ?? {}) as Payload;
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  switch (member) {
    case 'network': {
      const id = str(p.network?.id);
      return id ? [...(await hostsOfNetworks(db, [id], networkHost))] : undefined;
    }
    case 'subnet': {
      const net = str(p.subnet?.network_id);
      return net ? [...(await hostsOfNetworks(db, [net], networkHost))] : undefined;
    }
    case 'security_group': {
      // A deleted group's referring rules went with it: their hosts can no longer be found.
      const id = str(p.security_group?.id);
      return id && !eventType.endsWith('.delete.end') ? [...(await hostsOfGroups(db, [id]))] : undefined;
    }
    case 'security_group_rule': {
      const sg = str(p.security_group_rule?.security_group_id);
      if (!sg) return undefined;
      const rows = await db
        .selectFrom('port_security_group_bindings')
        .innerJoin('ports', 'ports.id', 'port_security_group_bindings.port_id')
        .select('ports.binding_host_id')
        .distinct()
        .where('port_security_group_bindings.security_group_id', '=', sg)
        .where('ports.binding_host_id', '!=', '')
        .execute();
      return rows.map((r) => r.binding_host_id);
    }
    case 'router': {
      // An interface makes the network host an l2pop peer of the network; a gateway, of the external network.
      const net = str(p.router_interface?.network_id) ?? str((p.router?.external_gateway_info as Record<string, unknown> | null | undefined)?.network_id);
      return [...(await hostsOfNetworks(db, net ? [net] : [], networkHost))];
    }
    case 'floatingip':
      return [networkHost];
    default:
      return undefined;
  }
}
