import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { InProcessBus } from '@onestack/core/bus/index.ts';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { IpLib } from './agent/linux/ip-lib.ts';
import { systemClock } from '@onestack/core/clock.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { createMetrics } from '@onestack/core/metrics.ts';
import { NetnsLab, requireRoot, type Netns } from '@onestack/testing/netns.ts';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { emptyHostState } from './agent/model.ts';
import { cleanupNeutronAgent, metadataTarget, neutronAgentService, parseMappings } from './agent-service.ts';
import { rpcTopics } from './rpc/topics.ts';

describe('neutron_agent service', () => {
  let lab: NetnsLab;
  let hostNs: Netns;
  const dir = tempDir('onestack-nagent-');

  before(async () => {
    requireRoot('the neutron_agent service test');
    lab = NetnsLab.create();
    hostNs = await lab.addNamespace('svc-h0');
  });
  after(async () => {
    await lab.cleanup();
    dir.remove();
  });

  it('parses physnet:interface mappings and refuses malformed ones', () => {
    assert.deepEqual(parseMappings(['public:eth1', ' physnet1 : eth2 ']), { public: 'eth1', physnet1: 'eth2' });
    assert.throws(() => parseMappings(['public']), /physnet:interface/);
  });

  it('forwards metadata to the configured URL, else to the all-in-one\'s Nova metadata port, signing with its secret', () => {
    const own = { nova_metadata_url: 'http://nova:8775', metadata_proxy_shared_secret: 's1' };
    assert.deepEqual(metadataTarget({ neutron_agent: own, nova: { metadata_listen_port: 18775, metadata_proxy_shared_secret: 's2' } }), { metadataUrl: 'http://nova:8775', sharedSecret: 's1' });
    assert.deepEqual(metadataTarget({ neutron_agent: { nova_metadata_url: '', metadata_proxy_shared_secret: '' }, nova: { metadata_listen_port: 18775, metadata_proxy_shared_secret: 's2' } }), {
      metadataUrl: 'http://127.0.0.1:18775',
      sharedSecret: 's2',
    });
    assert.deepEqual(metadataTarget({ neutron_agent: {} }), { metadataUrl: 'http://127.0.0.1:8775', sharedSecret: '' });
  });

  it('starts on the bus: reports both agents, asks for its host state, answers /healthcheck, stops cleanly', async () => {
    // A fake Neutron server on the bus: records the calls, hands out an empty state.
    const bus = new InProcessBus();
    const calls: { method: string; args: any }[] = [];
    const server = await bus.serve(rpcTopics().plugin, undefined, {
      report_state: async (args) => (calls.push({ method: 'report_state', args }), 'id'),
      get_host_state: async (args) => (calls.push({ method: 'get_host_state', args }), emptyHostState(args.host)),
      ports_wired: async (args) => (calls.push({ method: 'ports_wired', args }), { changed: [] }),
    });
    const running = await neutronAgentService.start({
      config: {
        DEFAULT: { state_dir: dir.path },
        neutron_agent: { port: 0, host: 'svc-host', host_namespace: hostNs.name, local_ip: '192.0.2.10', physical_interface_mappings: [], external_interface_mappings: [], namespace_prefix: '', state_dir: dir.path, report_interval: 30, polling_interval: 2 },
      },
      db: undefined as never,
      bus,
      logger: pino({ level: 'silent' }),
      clock: systemClock,
      ids: randomIds,
      metrics: createMetrics('neutron_agent'),
      publicUrl: 'http://127.0.0.1:0',
      identityUrl: 'http://127.0.0.1:0/v3',
    });
    try {
      const reports = calls.filter((c) => c.method === 'report_state').map((c) => c.args.agent);
      assert.deepEqual(reports.map((r) => [r.agentType, r.host, r.startFlag]), [['Linux bridge agent', 'svc-host', true], ['DHCP agent', 'svc-host', true]]);
      assert.equal(reports[0].configurations.local_ip, '192.0.2.10');
      assert.deepEqual(calls.filter((c) => c.method !== 'report_state').map((c) => c.method), ['get_host_state', 'ports_wired']);
      const res = await running.app.inject({ method: 'GET', url: '/healthcheck' });
      assert.equal(res.statusCode, 200);
      // A resync cast reaches it through the fan-out.
      await bus.fanout(rpcTopics().agent, 'host_state_changed', { hosts: ['svc-host'] });
      for (let i = 0; i < 50 && calls.filter((c) => c.method === 'get_host_state').length < 2; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(calls.filter((c) => c.method === 'get_host_state').length, 2);
    } finally {
      await running.close();
      await server.stop();
      await bus.close();
    }
  });

  it('cleanup (onestack down) removes the agent\'s namespaces with what runs in them, and nothing else', async () => {
    const ip = new IpLib({ logger: { info: () => {}, warn: () => {} } });
    const base = `${hostNs.name}-c-`;
    const owned = [`${base}host`, `${base}ext`, `${base}qdhcp-${randomUUID()}`, `${base}qrouter-${randomUUID()}`];
    // Same prefix but not a name the agent makes; and the lab's own namespace.
    const foreign = `${base}qrouter-not-a-uuid`;
    for (const ns of [...owned, foreign]) await ip.netnsAdd(ns);
    const sleeper = lab.namespaces[0].spawn('sleep', ['30']);
    try {
      const inside = (await ip.exec(owned[2], 'sh', ['-c', 'sleep 30 >/dev/null 2>&1 & echo $!'])).stdout.trim();
      const config = {
        DEFAULT: { state_dir: dir.path },
        neutron_agent: { host_namespace: owned[0], namespace_prefix: base, external_namespace: owned[1], state_dir: dir.path },
      };
      const removed = await cleanupNeutronAgent(config, { info: () => {}, warn: () => {} });
      assert.deepEqual(removed.sort(), [...owned].sort());
      const left = await ip.netnsList();
      for (const ns of owned) assert.ok(!left.includes(ns), ns);
      assert.ok(left.includes(foreign) && left.includes(hostNs.name), 'foreign namespaces stay');
      // Killed and not yet reaped (a zombie: this container's init may never reap it) counts as gone.
      const alive = () => {
        try {
          return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${inside}/stat`, 'utf8'));
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(alive(), false, 'the process inside a removed namespace is gone');
      assert.equal(sleeper.exitCode, null, 'processes elsewhere live on');
    } finally {
      for (const ns of [...owned, foreign]) await ip.netnsDelete(ns, { mayNotExist: true });
    }
  });
});
