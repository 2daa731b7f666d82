/**
 * Test and benchmark support: the Neutron API (test fixture: real Keystone, real HTTP) with its
 * agent RPC server, and one agent per simulated host, each host a namespace of a NetnsLab
 * (two hosts are joined by an underlay veth for VXLAN), all on the fixture's bus.
 * Host 0 is the network host (DHCP, routers): it is named as the API server's `host`.
 */
import { chmodSync } from 'node:fs';
import { NetnsLab, requireRoot, type Netns } from '@onestack/testing/netns.ts';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { startNeutron, type NeutronFixture } from '../../../test/fixture.ts';
import { AgentRpc } from '../../rpc/agent-rpc.ts';
import { NeutronServerRpc } from '../../rpc/server-rpc.ts';
import { rpcTopics, type RpcTopics } from '../../rpc/topics.ts';
import { quietLogger, removeAgentNamespaces, underlayHosts } from '../agent-test-kit.ts';
import { IpLib } from '../linux/ip-lib.ts';
import { HostAgent } from '../host-agent.ts';
import { MetadataProxy } from '../metadata/metadata-proxy.ts';
import { routerStates } from '../../domain/router-states.ts';

export interface SimHost {
  name: string;
  ns: Netns;
  vtep: string;
  dir: string;
  agent: HostAgent;
  rpc: AgentRpc;
  /** Replaces agent and rpc by new instances (a restart of the agent process). */
  restart(): Promise<void>;
  /** With `l3`: the namespace of the external networks' bridges (`<host ns>-ext`). */
  externalNamespace?: string;
  metadata?: MetadataProxy;
}

export interface ApiStack {
  fx: NeutronFixture;
  server: NeutronServerRpc;
  topics: RpcTopics;
  lab: NetnsLab;
  hosts: SimHost[];
  /** Sync durations of every agent sync, in order (ms). */
  syncs: { host: string; ms: number }[];
  close(): Promise<void>;
}

let stackSeq = 0;

// DEBUG_STACK=1: every command the agents run, with its duration, on stderr.
const agentLogger = process.env.DEBUG_STACK
  ? ({ info: (o: unknown) => console.error('exec', Date.now() % 100000, JSON.stringify(o)), warn: (o: unknown, m?: string) => console.error('WARN', Date.now() % 100000, m, JSON.stringify(o)) } as unknown as typeof quietLogger)
  : quietLogger;

export interface StackL3Options {
  /** The (fake) metadata service the proxies forward to. */
  metadataUrl: string;
  sharedSecret: string;
  /** physnet → an interface of the root namespace the test made, for the external networks (external_interface_mappings). */
  externalInterfaceMappings?: Record<string, string>;
}

export async function startApiStack(opts: { hosts: 1 | 2; tag: string; pollIntervalMs?: number; l3?: StackL3Options }): Promise<ApiStack> {
  requireRoot('the Neutron API + agents stack');
  const fx = await startNeutron();
  const cleanups: (() => Promise<void> | void)[] = [() => fx.close()];
  const close = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  try {
    const topics = rpcTopics(`t${process.pid}-${stackSeq++}`);
    const server = new NeutronServerRpc({
      db: fx.database.db,
      bus: fx.ks.bus,
      clock: fx.deps.clock,
      ids: fx.deps.ids,
      logger: fx.deps.logger,
      hooks: fx.deps.hooks,
      notifier: fx.deps.notifier,
      topics,
      networkHost: fx.config.networkHost,
      routerStates,
      isolatedMetadata: Boolean(opts.l3),
      debounceMs: 20,
    });
    await server.start();
    cleanups.push(() => server.stop());
    const lab = NetnsLab.create();
    cleanups.push(() => lab.cleanup());
    const { hosts: nss, vteps } = await underlayHosts(lab, opts.hosts, opts.tag);
    // A lone host still has its VTEP address, as a deployment's would (a bridge: no dummy module here).
    if (nss.length === 1) await nss[0].addBridge('ul0', { addresses: [`${vteps[0]}/24`] });
    const syncs: { host: string; ms: number }[] = [];
    const hosts: SimHost[] = [];
    for (let i = 0; i < nss.length; i++) {
      const ns = nss[i];
      const d = tempDir(`onestack-${opts.tag}${i}-`);
      chmodSync(d.path, 0o755);
      cleanups.push(() => d.remove());
      cleanups.push(() => removeAgentNamespaces(`${ns.name}-`));
      const name = i === 0 ? fx.config.networkHost : `compute${i}`;
      const externalNamespace = opts.l3 ? `${ns.name}-ext` : undefined;
      const make = () => {
        let rpc: AgentRpc | undefined;
        const metadata = opts.l3
          ? new MetadataProxy({ ipLib: new IpLib({ logger: agentLogger }), logger: agentLogger, metadataUrl: opts.l3.metadataUrl, sharedSecret: opts.l3.sharedSecret, lookup: (q) => rpc!.lookupInstance(q), timeoutMs: 5000 })
          : undefined;
        const agent = new HostAgent({ logger: agentLogger, hostNamespace: ns.name, namespacePrefix: `${ns.name}-`, stateDir: d.path, externalNamespace, externalGateway: true, externalInterfaceMappings: opts.l3?.externalInterfaceMappings, metadata });
        rpc = new AgentRpc({
          bus: fx.ks.bus,
          topics,
          host: name,
          reconciler: agent,
          localIp: vteps[i] ?? null,
          logger: quietLogger,
          reportIntervalMs: 60_000,
          // The link watch sees taps at once; the poll is its fallback, slow as in production.
          pollIntervalMs: opts.pollIntervalMs ?? 2000,
          links: async () => (await agent.ip.linkList(ns.name)).map(({ ifname, master }) => ({ ifname, master })),
          watchLinks: (onLine) => agent.ip.monitorLinks(ns.name, onLine),
          onSynced: (_r, ms) => syncs.push({ host: name, ms }),
          l3: Boolean(opts.l3),
        });
        return { agent, rpc, metadata };
      };
      const h: SimHost = {
        name,
        ns,
        vtep: vteps[i] ?? '',
        dir: d.path,
        externalNamespace,
        ...make(),
        async restart() {
          await h.rpc.stop();
          await h.metadata?.close();
          Object.assign(h, make());
          await h.rpc.start();
        },
      };
      cleanups.push(async () => {
        await h.rpc.stop();
        await h.metadata?.close();
      });
      hosts.push(h);
    }
    for (const h of hosts) await h.rpc.start();
    return { fx, server, topics, lab, hosts, syncs, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Waits until every agent has finished the syncs the changes so far asked for. */
export async function settled(stack: ApiStack): Promise<void> {
  // The server's debounce, then the agents' coalesced syncs.
  await new Promise((r) => setTimeout(r, 60));
  for (const h of stack.hosts) await h.rpc.requestSync();
}
