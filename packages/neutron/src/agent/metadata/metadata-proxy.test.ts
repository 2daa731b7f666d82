/**
 * The metadata proxy in a real namespace: guests (namespaces behind a bridge) ask
 * 169.254.169.254; a fake metadata service in the test process checks what arrives.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { verifyInstanceSignature } from '@onestack/core/http/instance-signature.ts';
import { NetnsLab, type Netns } from '@onestack/testing/netns.ts';
import { IpLib } from '../linux/ip-lib.ts';
import { MetadataProxy, instanceLookupFromPorts, type PortForLookup } from './metadata-proxy.ts';

const quiet: ExecLogger = { info: () => {}, warn: () => {} };
const ip = new IpLib({ logger: quiet });
const SECRET = 'metadata-test-secret';

interface Seen {
  path: string;
  instanceId: string;
  tenantId: string;
  forwardedFor: string;
  signatureValid: boolean;
}

async function curl(ns: Netns, url: string, extra: string[] = []): Promise<{ status: number; body: string }> {
  const { stdout } = await ns.exec('curl', ['-sS', '--max-time', '5', '-w', '\n%{http_code}', ...extra, url]);
  const i = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) };
}

describe('metadata proxy on 169.254.169.254 inside a namespace', () => {
  let lab: NetnsLab;
  let md: Netns;
  const guests: Netns[] = [];
  let nova: http.Server;
  let proxy: MetadataProxy;
  const net = randomUUID();
  const otherNet = randomUUID();
  const ports: PortForLookup[] = [
    { networkId: net, deviceOwner: 'compute:nova', deviceId: 'instance-1', projectId: 'project-a', fixedIps: ['10.0.0.11'] },
    { networkId: net, deviceOwner: 'compute:nova', deviceId: 'instance-2', projectId: 'project-b', fixedIps: ['10.0.0.12'] },
    // 10.0.0.13 is a DHCP port here and an instance only on another network: neither may answer.
    { networkId: net, deviceOwner: 'network:dhcp', deviceId: 'dhcp-x', projectId: 'project-a', fixedIps: ['10.0.0.13'] },
    { networkId: otherNet, deviceOwner: 'compute:nova', deviceId: 'instance-9', projectId: 'project-a', fixedIps: ['10.0.0.13'] },
  ];

  before(async () => {
    // The fake metadata service (Nova's, later): reports what it received and whether the signature verifies.
    nova = http.createServer((req, res) => {
      const h = (n: string) => String(req.headers[n] ?? '');
      const seen: Seen = {
        path: req.url ?? '',
        instanceId: h('x-instance-id'),
        tenantId: h('x-tenant-id'),
        forwardedFor: h('x-forwarded-for'),
        signatureValid: verifyInstanceSignature(SECRET, h('x-instance-id'), h('x-instance-id-signature')),
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(seen));
    });
    await new Promise<void>((r) => nova.listen(0, '127.0.0.1', r));

    lab = NetnsLab.create();
    md = await lab.addNamespace('md');
    await md.addBridge('br0', { addresses: ['10.0.0.1/24'] });
    for (const [i, addr] of ['10.0.0.11', '10.0.0.12', '10.0.0.13'].entries()) {
      const g = await lab.addNamespace(`mdg${i + 1}`);
      await lab.addVeth({ ns: md, name: `tapg${i + 1}`, master: 'br0' }, { ns: g, name: 'eth0', addresses: [`${addr}/24`] });
      await g.ip('route', 'add', 'default', 'via', '10.0.0.1');
      guests.push(g);
    }
    proxy = new MetadataProxy({
      ipLib: ip,
      logger: quiet,
      metadataUrl: `http://127.0.0.1:${(nova.address() as AddressInfo).port}`,
      sharedSecret: SECRET,
      lookup: instanceLookupFromPorts(async ({ networkIds, ip: addr }) => ports.filter((p) => networkIds.includes(p.networkId) && p.fixedIps.includes(addr))),
    });
  });
  after(async () => {
    await proxy?.close();
    await lab?.cleanup();
    nova?.close();
  });

  it('answers each guest as its own instance, signed, and nobody else', async () => {
    const t0 = Date.now();
    await proxy.ensure(md.name, { networkIds: [net], device: 'lo' });
    console.log(`  proxy up in ${Date.now() - t0} ms`);
    await proxy.ensure(md.name, { networkIds: [net], device: 'lo' });
    assert.deepEqual(proxy.namespaces(), [md.name]);

    const r1 = await curl(guests[0], 'http://169.254.169.254/openstack/latest/meta_data.json');
    assert.equal(r1.status, 200);
    assert.deepEqual(JSON.parse(r1.body), {
      path: '/openstack/latest/meta_data.json',
      instanceId: 'instance-1',
      tenantId: 'project-a',
      forwardedFor: '10.0.0.11',
      signatureValid: true,
    });
    // A guest claiming to be another instance is still itself.
    const r2 = await curl(guests[1], 'http://169.254.169.254/latest/meta-data/', ['-H', 'X-Instance-ID: instance-1', '-H', 'X-Forwarded-For: 10.0.0.11']);
    assert.deepEqual(JSON.parse(r2.body), { path: '/latest/meta-data/', instanceId: 'instance-2', tenantId: 'project-b', forwardedFor: '10.0.0.12', signatureValid: true });

    const r3 = await curl(guests[2], 'http://169.254.169.254/latest/meta-data/');
    assert.equal(r3.status, 404);
  });

  it('stops serving when stopped', async () => {
    await proxy.stop(md.name);
    await assert.rejects(curl(guests[0], 'http://169.254.169.254/'));
    assert.deepEqual(proxy.namespaces(), []);
  });
});
