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
import { HostAgent } from '../host-agent.ts';

export interface SimHost {
  name: string;
  ns: Netns;
  vtep: string;
  dir: string;
  agent: HostAgent;
  rpc: AgentRpc;
  /** Replaces agent and rpc by new instances (a restart of the agent process). */
  restart(): Promise<void>;
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

export async function startApiStack(opts: { hosts: 1 | 2; tag: string; pollIntervalMs?: number }): Promise<ApiStack> {
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
      networkHost: fx.config.host,
      debounceMs: 20,
    });
    await server.start();
    cleanups.push(() => server.stop());
    const lab = NetnsLab.create();
    cleanups.push(() => lab.cleanup());
    const { hosts: nss, vteps } = await underlayHosts(lab, opts.hosts, opts.tag);
    const syncs: { host: string; ms: number }[] = [];
    const hosts: SimHost[] = [];
    for (let i = 0; i < nss.length; i++) {
      const ns = nss[i];
      const d = tempDir(`onestack-${opts.tag}${i}-`);
      chmodSync(d.path, 0o755);
      cleanups.push(() => d.remove());
      cleanups.push(() => removeAgentNamespaces(`${ns.name}-`));
      const name = i === 0 ? fx.config.host : `compute${i}`;
      const make = () => {
        const agent = new HostAgent({ logger: quietLogger, hostNamespace: ns.name, namespacePrefix: `${ns.name}-`, stateDir: d.path });
        const rpc = new AgentRpc({
          bus: fx.ks.bus,
          topics,
          host: name,
          reconciler: agent,
          localIp: vteps[i] ?? null,
          logger: quietLogger,
          reportIntervalMs: 60_000,
          pollIntervalMs: opts.pollIntervalMs ?? 200,
          links: async () => (await agent.ip.linkList(ns.name)).map((l) => l.ifname),
          onSynced: (_r, ms) => syncs.push({ host: name, ms }),
        });
        return { agent, rpc };
      };
      const h: SimHost = {
        name,
        ns,
        vtep: vteps[i] ?? '',
        dir: d.path,
        ...make(),
        async restart() {
          await h.rpc.stop();
          Object.assign(h, make());
          await h.rpc.start();
        },
      };
      cleanups.push(() => h.rpc.stop());
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
