import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { NetnsLab, type Netns } from '@onestack/testing/netns.ts';
import { InvalidValueError, IpLib, checkCidr, isExistsError } from './ip-lib.ts';

const quiet: ExecLogger = { info: () => {}, warn: () => {} };

describe('ip-lib against real namespaces', () => {
  let lab: NetnsLab;
  let a: Netns;
  let b: Netns;
  const ip = new IpLib({ logger: quiet });

  before(async () => {
    lab = NetnsLab.create();
    a = await lab.addNamespace('iplib-a');
    b = await lab.addNamespace('iplib-b');
  });
  after(() => lab.cleanup());

  it('rejects names and values that could read as options or shell syntax', async () => {
    assert.throws(() => ip.netnsExecArgs('-x', 'ip', []), InvalidValueError);
    assert.throws(() => checkCidr('10.0.0.0/33'), InvalidValueError);
    assert.throws(() => checkCidr('10.0.0.1'), InvalidValueError);
    assert.equal(checkCidr('10.0.0.1', { allowBareIp: true }), '10.0.0.1');
    await Promise.all([
      assert.rejects(ip.linkAddBridge(a.name, 'br;rm -rf'), InvalidValueError),
      assert.rejects(ip.linkAddBridge(a.name, 'averyveryverylongname'), InvalidValueError),
      assert.rejects(ip.linkSetAddress(a.name, 'lo', 'zz:00:00:00:00:00'), InvalidValueError),
      assert.rejects(ip.linkAddVxlan(a.name, 'vx', { vni: 0, local: '1.2.3.4', dev: 'lo' }), InvalidValueError),
    ]);
  });

  it('creates a namespace, lists it, and deletes it', async () => {
    const name = `${a.name}-x`;
    await ip.netnsAdd(name);
    try {
      assert.ok(await ip.netnsExists(name));
      await ip.netnsAdd(name, { mayExist: true });
      const lo = await ip.linkShow(name, 'lo');
      assert.equal(lo?.operstate, 'UNKNOWN', 'loopback is up in a new namespace');
    } finally {
      await ip.netnsDelete(name, { mayNotExist: true });
    }
    assert.equal(await ip.netnsExists(name), false);
    await ip.netnsDelete(name, { mayNotExist: true });
  });

  it('builds a bridge with a veth across namespaces, addresses, routes, MTU and MAC', async () => {
    await ip.linkAddBridge(a.name, 'brtest', { mtu: 1450 });
    await ip.linkSetUp(a.name, 'brtest');
    await ip.linkAddVeth(a.name, 'tapx', 'ethx', { peerNs: b.name, mtu: 1450, peerAddress: 'fa:16:3e:00:00:01' });
    await ip.linkSetMaster(a.name, 'tapx', 'brtest');
    await ip.linkSetUp(a.name, 'tapx');
    await ip.linkSetUp(b.name, 'ethx');
    await ip.addrAdd(a.name, 'brtest', '10.9.0.1/24');
    await ip.addrAdd(a.name, 'brtest', '10.9.0.1/24', { mayExist: true });
    await assert.rejects(ip.addrAdd(a.name, 'brtest', '10.9.0.1/24'), isExistsError);
    await ip.addrAdd(b.name, 'ethx', '10.9.0.2/24');
    await ip.routeAdd(b.name, { dst: 'default', via: '10.9.0.1' });
    await ip.routeReplace(b.name, { dst: '10.77.0.0/16', via: '10.9.0.1', metric: 5 });

    const links = await ip.linkList(a.name);
    const tap = links.find((l) => l.ifname === 'tapx');
    assert.equal(tap?.master, 'brtest');
    assert.equal(tap?.mtu, 1450);
    assert.equal(tap?.linkinfo?.info_kind, 'veth');
    assert.equal(links.find((l) => l.ifname === 'brtest')?.linkinfo?.info_kind, 'bridge');
    assert.equal((await ip.linkShow(b.name, 'ethx'))?.address, 'fa:16:3e:00:00:01');
    assert.equal(await ip.linkShow(b.name, 'nosuchdev'), undefined);
    assert.deepEqual(await ip.addrCidrs(b.name, 'ethx'), ['10.9.0.2/24']);

    const routes = await ip.routeList(b.name);
    assert.ok(routes.some((r) => r.dst === 'default' && r.gateway === '10.9.0.1'));
    assert.ok(routes.some((r) => r.dst === '10.77.0.0/16' && r.metric === 5));
    await ip.routeDel(b.name, { dst: '10.77.0.0/16', via: '10.9.0.1', metric: 5 });
    await ip.routeDel(b.name, { dst: '10.77.0.0/16' }, { mayNotExist: true });
    assert.ok(!(await ip.routeList(b.name)).some((r) => r.dst === '10.77.0.0/16'));

    // Real traffic over what was built.
    await b.exec('busybox', ['ping', '-c', '1', '-W', '2', '10.9.0.1']);

    await ip.linkSetNoMaster(a.name, 'tapx');
    assert.equal((await ip.linkShow(a.name, 'tapx'))?.master, undefined);
    await ip.addrFlush(a.name, 'brtest');
    assert.deepEqual(await ip.addrCidrs(a.name, 'brtest'), []);
    await ip.linkDelete(a.name, 'tapx');
    assert.equal(await ip.linkShow(b.name, 'ethx'), undefined, 'deleting one end deletes its peer');
    await ip.linkDelete(a.name, 'tapx', { mayNotExist: true });
  });

  it('builds a vxlan device with flood entries and a vlan subinterface', async () => {
    await ip.linkAddVeth(a.name, 'ul0', 'ul1', { peerNs: b.name });
    await ip.addrAdd(a.name, 'ul0', '192.168.77.1/24');
    await ip.linkSetUp(a.name, 'ul0');
    await ip.linkAddVxlan(a.name, 'vxlan-4242', { vni: 4242, local: '192.168.77.1', dev: 'ul0' });
    const vx = await ip.linkShow(a.name, 'vxlan-4242');
    assert.equal(vx?.linkinfo?.info_kind, 'vxlan');
    assert.equal(vx?.linkinfo?.info_data?.id, 4242);
    assert.equal(vx?.linkinfo?.info_data?.local, '192.168.77.1');
    assert.equal(vx?.linkinfo?.info_data?.port, 4789);

    await ip.fdbAppend(a.name, { mac: '00:00:00:00:00:00', dev: 'vxlan-4242', dst: '192.168.77.2' });
    await ip.fdbAppend(a.name, { mac: '00:00:00:00:00:00', dev: 'vxlan-4242', dst: '192.168.77.3' });
    let dsts = (await ip.fdbList(a.name, 'vxlan-4242')).filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst);
    assert.deepEqual(dsts.sort(), ['192.168.77.2', '192.168.77.3']);
    await ip.fdbDel(a.name, { mac: '00:00:00:00:00:00', dev: 'vxlan-4242', dst: '192.168.77.2' });
    await ip.fdbDel(a.name, { mac: '00:00:00:00:00:00', dev: 'vxlan-4242', dst: '192.168.77.2' }, { mayNotExist: true });
    dsts = (await ip.fdbList(a.name, 'vxlan-4242')).filter((e) => e.mac === '00:00:00:00:00:00').map((e) => e.dst);
    assert.deepEqual(dsts, ['192.168.77.3']);

  });

  it('creates a vlan subinterface where the kernel has 802.1q', async (t) => {
    try {
      await ip.linkAddVlan(a.name, 'ul0.100', 'ul0', 100);
    } catch (err) {
      // This machine's kernel is built without CONFIG_VLAN_8021Q: say so instead of passing silently.
      if (/Unknown device type/.test(String(err))) return t.skip('kernel without 802.1q');
      throw err;
    }
    const vlan = await ip.linkShow(a.name, 'ul0.100');
    assert.equal(vlan?.linkinfo?.info_kind, 'vlan');
    assert.equal(vlan?.linkinfo?.info_data?.id, 100);
  });

  it('creates a dummy link where the kernel has the driver', async (t) => {
    try {
      await ip.linkAddDummy(a.name, 'dummy0');
    } catch (err) {
      // This machine's kernel is built without CONFIG_DUMMY: say so instead of passing silently.
      if (/Unknown device type/.test(String(err))) return t.skip('kernel without the dummy driver');
      throw err;
    }
    assert.equal((await ip.linkShow(a.name, 'dummy0'))?.linkinfo?.info_kind, 'dummy');
  });

  it('sets and reads a sysctl inside the namespace only', async () => {
    await ip.sysctlSet(a.name, 'net.ipv4.ip_forward', 1);
    assert.equal(await ip.sysctlGet(a.name, 'net.ipv4.ip_forward'), '1');
    assert.equal(await ip.sysctlGet(b.name, 'net.ipv4.ip_forward'), '0');
    await assert.rejects(ip.sysctlSet(a.name, 'net.ipv4.ip_forward', '1; reboot'), InvalidValueError);
  });

  it('runs a program inside the namespace and reports its PIDs', async () => {
    const { stdout } = await ip.exec(b.name, 'ip', ['-br', 'link']);
    assert.match(stdout, /ethx|lo/);
    assert.deepEqual(await ip.netnsPids(b.name), []);
    const argv = ip.netnsExecArgs(b.name, 'sleep', ['1']);
    assert.deepEqual(argv.slice(0, 3), ['netns', 'exec', b.name]);
    assert.match(argv[3], /^\/.*sleep$/);
  });
});
