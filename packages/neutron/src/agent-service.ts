/**
 * `neutron_agent`: the data plane of one host (linuxbridge L2, DHCP, firewall) as a service of
 * its own, one per host (`onestack serve neutron_agent` on each compute/network host; the
 * all-in-one runs it in its process when root). It talks to the Neutron server only over the
 * bus (rpc/agent-rpc.ts) and serves nothing but /healthcheck and /metrics.
 *
 * Everything it builds lives in namespaces: bridges, VXLAN devices and taps in the host
 * namespace (`host_namespace`, created when missing), DHCP in `qdhcp-<net>` namespaces. The
 * host's own interfaces, routes and firewall are never changed; `physical_interface_mappings`
 * name interfaces inside the host namespace (moving a real NIC there is the operator's choice).
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { defineGroup, opt } from '@onestack/core/config/index.ts';
import { createHttpServer } from '@onestack/core/http/index.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { HostAgent } from './agent/host-agent.ts';
import { AgentRpc } from './rpc/agent-rpc.ts';
import { rpcTopics } from './rpc/topics.ts';

export const neutronAgentOptions = defineGroup('neutron_agent', {
  port: opt.port({ default: 9697, help: 'Port of the agent\'s /healthcheck and /metrics (it has no API).' }),
  host: opt.string({ default: '', help: 'This host\'s name: what ports\' binding:host_id says (Nova\'s host). Empty: the hostname.' }),
  host_namespace: opt.string({ default: 'onestack-host', help: 'Network namespace holding the bridges, VXLAN devices and taps; created when missing.' }),
  local_ip: opt.string({ default: '', help: 'VXLAN endpoint address of this host, inside host_namespace ([vxlan] local_ip). Empty: no VXLAN to other hosts.' }),
  physical_interface_mappings: opt.list({ default: [], help: 'physnet:interface pairs for flat and VLAN networks; interfaces inside host_namespace ([linux_bridge]).' }),
  namespace_prefix: opt.string({ default: '', help: 'Put before qdhcp-<net> namespace names: keeps several clouds on one machine (tests) apart.' }),
  state_dir: opt.string({ default: '', help: 'dnsmasq files and firewall marks. Empty: <state_dir>/neutron-agent.' }),
  report_interval: opt.int({ default: 30, min: 1, help: 'Seconds between heartbeats ([agent] report_interval; the server\'s agent_down_time is 75).' }),
  polling_interval: opt.int({ default: 2, min: 1, help: 'Seconds between looks for taps of bound ports that are not plugged yet ([agent] polling_interval).' }),
});

type Values = { [K in keyof typeof neutronAgentOptions.options]: unknown };

export function parseMappings(entries: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const [physnet, dev] = e.split(':').map((s) => s.trim());
    if (!physnet || !dev) throw new Error(`[neutron_agent] physical_interface_mappings: invalid entry "${e}" (want physnet:interface)`);
    out[physnet] = dev;
  }
  return out;
}

export const neutronAgentService: ServiceDefinition = {
  name: 'neutron_agent',
  type: 'network-agent',
  catalog: false,
  requiresRoot: true,
  defaultPort: 9697,
  configGroups: [neutronAgentOptions],
  migrations: [],
  async start(rt) {
    const v = rt.config.neutron_agent as Values;
    const stateDir = String(v.state_dir || join((rt.config.DEFAULT as { state_dir: string }).state_dir, 'neutron-agent'));
    const host = String(v.host || hostname());
    const ns = String(v.host_namespace);
    const mappings = parseMappings(v.physical_interface_mappings as string[]);
    const agent = new HostAgent({ logger: rt.logger, hostNamespace: ns, namespacePrefix: String(v.namespace_prefix ?? ''), stateDir, physicalInterfaceMappings: mappings, createHostNamespace: true });
    const rpc = new AgentRpc({
      bus: rt.bus,
      topics: rpcTopics(),
      host,
      reconciler: agent,
      localIp: v.local_ip ? String(v.local_ip) : null,
      configurations: { interface_mappings: mappings, host_namespace: ns },
      reportIntervalMs: Number(v.report_interval) * 1000,
      pollIntervalMs: Number(v.polling_interval) * 1000,
      links: async () => (await agent.ip.linkList(ns)).map((l) => l.ifname),
      logger: rt.logger,
      onSynced: (report, ms) => rt.logger.info({ wired: report.wiredPorts.length, unwired: report.unwiredPorts.length, dhcp: report.dhcpNetworks.length, ms }, 'host synced'),
    });
    const app = createHttpServer({ service: 'neutron_agent', faultFormat: 'neutron', logger: rt.logger, tls: rt.tls, ops: { version: '0.1.0', metrics: rt.metrics } });
    await rpc.start();
    return {
      app,
      async close() {
        await rpc.stop();
        await app.close();
      },
    };
  },
};
