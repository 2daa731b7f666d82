import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { InProcessBus } from '@onestack/core/bus/index.ts';
import type { HostState } from '../agent/model.ts';
import { AgentRpc } from './agent-rpc.ts';
import { rpcTopics } from './topics.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

describe('AgentRpc link watch', () => {
  const bus = new InProcessBus({ logger: quiet });
  after(() => bus.close());

  it('restarts a watch that keeps dying ever later (1 s, 2 s, 4 s …), not every second', async () => {
    const topics = rpcTopics('watch-backoff');
    const state: HostState = { host: 'h1', localVtepIp: null, networks: [], ports: [], subnets: [], securityGroups: [], dhcpPorts: [], vtepPeers: {} };
    await bus.serve(topics.plugin, undefined, {
      get_host_state: async () => state,
      ports_wired: async () => null,
      report_state: async () => null,
    });
    const starts: number[] = [];
    const rpc = new AgentRpc({
      bus,
      topics,
      host: 'h1',
      logger: quiet,
      reconciler: { reconcile: async () => ({ host: 'h1', wiredPorts: [], unwiredPorts: [], dhcpNetworks: [], errors: [] }) },
      links: async () => [],
      // A watch whose namespace is gone: it ends as soon as it starts.
      watchLinks: () => {
        starts.push(Date.now());
        return { exited: Promise.resolve({ exitCode: 1 }), stop: async () => {} };
      },
    });
    await rpc.start();
    await new Promise((r) => setTimeout(r, 3_600));
    await rpc.stop();
    // Every second would have made 4 or 5 starts by now; doubling makes them at 0, 1 and 3 s.
    assert.equal(starts.length, 3, `starts at ${starts.map((t) => t - starts[0]).join(', ')} ms`);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]);
    assert.ok(gaps[0] >= 950 && gaps[1] >= 1950, `gaps ${gaps.join(', ')} ms`);
  });
});
