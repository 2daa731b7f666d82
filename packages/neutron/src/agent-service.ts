/**
 * `neutron_agent`: the data plane of one host (linuxbridge L2, DHCP, firewall, routers and the
 * metadata proxy) as a service of
 * its own, one per host (`onestack serve neutron_agent` on each compute/network host; the
 * all-in-one runs it in its process when root). It talks to the Neutron server only over the
 * bus (rpc/agent-rpc.ts) and serves nothing but /healthcheck and /metrics.
 *
 * Everything it builds lives in namespaces: bridges, VXLAN devices and taps in the host
 * namespace (`host_namespace`, created when missing), DHCP in `qdhcp-<net>` namespaces,
 * routers in `qrouter-<id>` namespaces, the external networks' bridges in `external_namespace`. The
 * host's own interfaces, routes and firewall are never changed; `physical_interface_mappings`
 * name interfaces inside the host namespace (moving a real NIC there is the operator's choice).
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { defineGroup, opt } from '@onestack/core/config/index.ts';
import { createHttpServer } from '@onestack/core/http/index.ts';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { cleanupHost } from './agent/host-cleanup.ts';
import { HostAgent } from './agent/host-agent.ts';
import { DEFAULT_EXTERNAL_NAMESPACE } from './agent/l3/external-network.ts';
import { MetadataProxy } from './agent/metadata/metadata-proxy.ts';
import { IpLib } from './agent/linux/ip-lib.ts';
import { AgentRpc } from './rpc/agent-rpc.ts';
import { rpcTopics } from './rpc/topics.ts';

export const neutronAgentOptions = defineGroup('neutron_agent', {
  port: opt.port({ default: 9697, help: 'Port of the agent\'s /healthcheck and /metrics (it has no API).' }),
  host: opt.string({ default: '', help: 'This host\'s name: what ports\' binding:host_id says (Nova\'s host). Empty: the hostname.' }),
  host_namespace: opt.string({ default: 'onestack-host', help: 'Network namespace holding the bridges, VXLAN devices and taps; created when missing.' }),
  local_ip: opt.string({ default: '', help: 'VXLAN endpoint address of this host, inside host_namespace ([vxlan] local_ip). Empty: no VXLAN to other hosts.' }),
  physical_interface_mappings: opt.list({ default: [], help: 'physnet:interface pairs for flat and VLAN networks; interfaces inside host_namespace ([linux_bridge]).' }),
  external_interface_mappings: opt.list({
    default: [],
    help:
      'physnet:interface pairs connecting external networks to a real network: a router gateway on an external network of that physical network moves the host interface (root namespace) into external_namespace onto the network\'s bridge, and the host loses it. Empty (default): external networks stay inside external_namespace.',
  }),
  namespace_prefix: opt.string({ default: '', help: 'Put before qdhcp-<net> namespace names: keeps several clouds on one machine (tests) apart.' }),
  state_dir: opt.string({ default: '', help: 'dnsmasq files and firewall marks. Empty: <state_dir>/neutron-agent.' }),
  report_interval: opt.int({ default: 30, min: 1, help: 'Seconds between heartbeats ([agent] report_interval; the server\'s agent_down_time is 75).' }),
  external_namespace: opt.string({ default: DEFAULT_EXTERNAL_NAMESPACE, help: 'Namespace of the external networks\' bridges (the routers\' qg- peers plug in there); empty: this host runs no routers.' }),
  external_gateway: opt.bool({ default: true, help: 'The external namespace takes the external subnets\' gateway addresses (devstack\'s 172.24.4.1 on br-ex), so floating IPs are reachable from it.' }),
  enable_metadata_proxy: opt.bool({ default: true, help: 'Serve 169.254.169.254 in router namespaces (and DHCP namespaces of isolated subnets).' }),
  nova_metadata_url: opt.string({ default: '', help: 'Where the metadata proxy forwards to (Nova\'s metadata API; upstream\'s nova_metadata_host/port). Empty: http://127.0.0.1:<[nova] metadata_listen_port> (8775).' }),
  metadata_proxy_shared_secret: opt.string({ default: '', secret: true, help: 'Signs X-Instance-ID (X-Instance-ID-Signature); Nova\'s metadata_proxy_shared_secret must match. Empty: [nova] metadata_proxy_shared_secret of the same configuration.' }),
  polling_interval: opt.int({ default: 2, min: 1, help: 'Seconds between looks for taps of bound ports that are not plugged yet ([agent] polling_interval); the fallback of the agent\'s ip monitor, which sees them at once.' }),
});

type Values = { [K in keyof typeof neutronAgentOptions.options]: unknown };

export function parseMappings(entries: readonly string[], option = 'physical_interface_mappings'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) {
    const [physnet, dev] = e.split(':').map((s) => s.trim());
    if (!physnet || !dev) throw new Error(`[neutron_agent] ${option}: invalid entry "${e}" (want physnet:interface)`);
    out[physnet] = dev;
  }
  return out;
}

/** What `host`, `host_namespace`, `namespace_prefix`, `external_namespace` and `state_dir` resolve to. */
function placement(config: Record<string, Record<string, unknown>>): { host: string; ns: string; prefix: string; ext: string; stateDir: string } {
  const v = config.neutron_agent as Values;
  return {
    host: String(v.host || hostname()),
    ns: String(v.host_namespace),
    prefix: String(v.namespace_prefix ?? ''),
    ext: String(v.external_namespace ?? ''),
    stateDir: String(v.state_dir || join((config.DEFAULT as { state_dir: string }).state_dir, 'neutron-agent')),
  };
}

/**
 * Where the proxy forwards and how it signs: the explicit options, else (one configuration
 * for the whole all-in-one) Nova's metadata port and shared secret.
 */
export function metadataTarget(config: Record<string, Record<string, unknown>>): { metadataUrl: string; sharedSecret: string } {
  const v = config.neutron_agent as Values;
  const nova = (config.nova ?? {}) as { metadata_listen_port?: number; metadata_proxy_shared_secret?: string };
  return {
    metadataUrl: String(v.nova_metadata_url || `http://127.0.0.1:${nova.metadata_listen_port || 8775}`),
    sharedSecret: String(v.metadata_proxy_shared_secret || nova.metadata_proxy_shared_secret || ''),
  };
}

/** `onestack down`: every namespace, dnsmasq and nftables table the agent made. */
export async function cleanupNeutronAgent(config: Record<string, Record<string, unknown>>, logger: ExecLogger): Promise<string[]> {
  const p = placement(config);
  return cleanupHost({ logger, hostNamespace: p.ns, namespacePrefix: p.prefix, externalNamespace: p.ext || undefined, stateDir: p.stateDir });
}

export const neutronAgentService: ServiceDefinition = {
  name: 'neutron_agent',
  type: 'network-agent',
  catalog: false,
  requiresRoot: true,
  defaultPort: 9697,
  configGroups: [neutronAgentOptions],
  migrations: [],
  cleanup: (config, logger) => cleanupNeutronAgent(config, logger).then(() => undefined),
  async start(rt) {
    const v = rt.config.neutron_agent as Values;
    const { host, ns, prefix, ext, stateDir } = placement(rt.config);
    const mappings = parseMappings(v.physical_interface_mappings as string[]);
    // The proxy asks the server who is behind an address; the RPC client exists only below.
    let rpc: AgentRpc | undefined;
    const metadata =
      ext && v.enable_metadata_proxy
        ? new MetadataProxy({
            ipLib: new IpLib({ logger: rt.logger }),
            logger: rt.logger,
            ...metadataTarget(rt.config),
            lookup: (q) => rpc!.lookupInstance(q),
          })
        : undefined;
    const agent = new HostAgent({
      logger: rt.logger,
      hostNamespace: ns,
      namespacePrefix: prefix,
      stateDir,
      physicalInterfaceMappings: mappings,
      createHostNamespace: true,
      externalNamespace: ext || undefined,
      externalGateway: Boolean(v.external_gateway),
      externalInterfaceMappings: parseMappings(v.external_interface_mappings as string[], 'external_interface_mappings'),
      metadata,
    });
    rpc = new AgentRpc({
      bus: rt.bus,
      topics: rpcTopics(),
      host,
      reconciler: agent,
      localIp: v.local_ip ? String(v.local_ip) : null,
      configurations: { interface_mappings: mappings, host_namespace: ns, ...(ext ? { external_namespace: ext } : {}) },
      l3: Boolean(ext),
      reportIntervalMs: Number(v.report_interval) * 1000,
      pollIntervalMs: Number(v.polling_interval) * 1000,
      links: async () => (await agent.ip.linkList(ns)).map(({ ifname, master }) => ({ ifname, master })),
      watchLinks: (onLine) => agent.ip.monitorLinks(ns, onLine),
      logger: rt.logger,
      onSynced: (report, ms) => rt.logger.info({ wired: report.wiredPorts.length, unwired: report.unwiredPorts.length, dhcp: report.dhcpNetworks.length, ms }, 'host synced'),
    });
    const app = createHttpServer({ service: 'neutron_agent', faultFormat: 'neutron', logger: rt.logger, tls: rt.tls, ops: { version: '0.1.0', metrics: rt.metrics } });
    await rpc.start();
    return {
      app,
      async close() {
        await rpc!.stop();
        // Sockets only: the namespaces and what is in them stay for the next start (or `onestack down`).
        await metadata?.close();
        await app.close();
      },
    };
  },
};
