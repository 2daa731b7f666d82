/**
 * The bus topics between the Neutron server and its host agents (upstream: `q-plugin` for
 * agent→server calls, `q-agent-notifier-*` fan-outs for server→agent casts).
 *
 * Server methods (topic `plugin`, any server answers):
 * - `report_state {agent: AgentReport}` → agent id. Heartbeat; the agents table and `/v2.0/agents`.
 * - `get_host_state {host}` → HostState (agent/model.ts): the whole desired data plane of the host.
 * - `ports_wired {host, wired, unwired, dhcpNetworks}` → {changed}: port status ACTIVE/DOWN.
 * - `metadata_lookup {ip, networkIds}` → {instanceId, projectId} | null: the instance behind a
 *   metadata request (upstream's metadata agent asks get_ports by network and fixed IP).
 * Agent methods (topic `agent`, fan-out to every agent, or `host` for one):
 * - `host_state_changed {hosts?}`: the named hosts (all when absent) should resync.
 *
 * A suffix keeps concurrent deployments (test runs on one RabbitMQ) apart.
 */
export interface RpcTopics {
  plugin: string;
  agent: string;
}

export function rpcTopics(suffix = ''): RpcTopics {
  const s = suffix ? `-${suffix}` : '';
  return { plugin: `q-plugin${s}`, agent: `q-agent-notifier${s}` };
}

export interface HostStateChanged {
  hosts?: string[];
}

export interface MetadataLookup {
  ip: string;
  networkIds: string[];
}

export interface PortsWired {
  host: string;
  wired: string[];
  unwired: string[];
  dhcpNetworks: string[];
}

/** Upstream's agent types, as `openstack network agent list` shows them. */
export const AGENT_TYPES = {
  linuxbridge: { agentType: 'Linux bridge agent', binary: 'neutron-linuxbridge-agent', topic: 'N/A' },
  dhcp: { agentType: 'DHCP agent', binary: 'neutron-dhcp-agent', topic: 'dhcp_agent' },
  l3: { agentType: 'L3 agent', binary: 'neutron-l3-agent', topic: 'l3_agent' },
} as const;
