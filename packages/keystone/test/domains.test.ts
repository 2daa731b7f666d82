import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

describe('keystone /v3/domains', () => {
  let ks: KeystoneFixture;
  let member: JsonClient;
  let domainReader: JsonClient;
  let systemReader: JsonClient;
  let readerDomain: string;

  const create = async (domain: Record<string, unknown>) => {
    const res = await ks.admin.post('/v3/domains', { domain });
    assert.equal(res.status, 201, res.text);
    return res.body.domain;
  };

  before(async () => {
    ks = await startKeystone();
    const k = ks.ks;
    const roles = ks.boot.roleIds;
    const project = await k.resource.createProject({ name: 'demo', domainId: 'default' });
    const alice = await k.identity.createUser({ name: 'alice', domainId: 'default', password: 'alice-pw' });
    await k.assignment.grant({ userId: alice.id }, { projectId: project.id }, roles.member);
    member = await ks.login('alice', 'alice-pw', { project: { id: project.id } });
    readerDomain = (await k.resource.createProject({ name: 'reader-domain', isDomain: true })).id;
    const dora = await k.identity.createUser({ name: 'dora', domainId: 'default', password: 'dora-pw' });
    await k.assignment.grant({ userId: dora.id }, { domainId: readerDomain }, roles.reader);
    domainReader = await ks.login('dora', 'dora-pw', { domain: { id: readerDomain } });
    const auditor = await k.identity.createUser({ name: 'auditor', domainId: 'default', password: 'auditor-pw' });
    await k.assignment.grant({ userId: auditor.id }, { system: 'all' }, roles.reader);
    systemReader = await ks.login('auditor', 'auditor-pw', { system: { all: true } });
  });
  after(() => ks.close());

  it('creates, shows, lists, updates and deletes a domain', async () => {
    const d = await create({ name: 'acme', description: 'ACME Inc.', tags: ['customer'], region: 'eu' });
    assert.match(d.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      { ...d, links: undefined },
      { id: d.id, name: 'acme', description: 'ACME Inc.', enabled: true, tags: ['customer'], options: {}, region: 'eu', links: undefined },
    );
    assert.equal(d.links.self, `${ks.url}/v3/domains/${d.id}`);
    assert.deepEqual((await ks.admin.get(`/v3/domains/${d.id}`)).body.domain.tags, ['customer']);

    const byName = await ks.admin.get('/v3/domains?name=acme');
    assert.deepEqual(byName.body.domains.map((x: { id: string }) => x.id), [d.id]);
    assert.ok((await ks.admin.get('/v3/domains')).body.domains.some((x: { id: string }) => x.id === 'default'));

    const enabled = await ks.admin.delete(`/v3/domains/${d.id}`);
    assert.equal(enabled.status, 403);
    assert.deepEqual(enabled.body, { error: { code: 403, title: 'Forbidden', message: 'Cannot delete a domain that is enabled, please disable it first.' } });

    const patched = await ks.admin.patch(`/v3/domains/${d.id}`, { domain: { enabled: false, description: 'gone soon', tags: [] } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.domain.enabled, false);
    assert.deepEqual(patched.body.domain.tags, []);
    assert.deepEqual((await ks.admin.get('/v3/domains?enabled=false')).body.domains.map((x: { id: string }) => x.id), [d.id]);

    assert.equal((await ks.admin.delete(`/v3/domains/${d.id}`)).status, 204);
    const gone = await ks.admin.get(`/v3/domains/${d.id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.message, `Could not find domain: ${d.id}.`);
  });

  it('deletes everything a disabled domain owns', async () => {
    const d = await create({ name: 'doomed' });
    const p = await ks.admin.post('/v3/projects', { project: { name: 'p', domain_id: d.id } });
    const child = await ks.admin.post('/v3/projects', { project: { name: 'c', domain_id: d.id, parent_id: p.body.project.id } });
    assert.equal(child.status, 201, child.text);
    const u = await ks.admin.post('/v3/users', { user: { name: 'u', domain_id: d.id } });
    const g = await ks.admin.post('/v3/groups', { group: { name: 'g', domain_id: d.id } });
    assert.equal((await ks.admin.patch(`/v3/domains/${d.id}`, { domain: { enabled: false } })).status, 200);
    assert.equal((await ks.admin.delete(`/v3/domains/${d.id}`)).status, 204);
    assert.equal((await ks.admin.get(`/v3/projects/${child.body.project.id}`)).status, 404);
    assert.equal((await ks.admin.get(`/v3/users/${u.body.user.id}`)).status, 404);
    assert.equal((await ks.admin.get(`/v3/groups/${g.body.group.id}`)).status, 404);
  });

  it('takes an explicit id in upstream format only', async () => {
    const id = 'a'.repeat(32);
    assert.equal((await create({ name: 'explicit', explicit_domain_id: id })).id, id);
    const bad = await ks.admin.post('/v3/domains', { domain: { name: 'explicit2', explicit_domain_id: 'not-a-uuid' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.message, 'Domain ID does not conform to required UUID format.');
  });

  it('refuses bad input with the keystone error body', async () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      ['POST', '/v3/domains', { domain: { name: 'x' }, other: 1 }, 400, /'other' was unexpected/],
      ['POST', '/v3/domains', { domain: { description: 'no name' } }, 400, /'name' is a required property/],
      ['POST', '/v3/domains', { domain: { name: 'x', enabled: 1 } }, 400, /is not of type 'boolean'/],
      ['POST', '/v3/domains', { domain: { name: 'x', options: { nope: true } } }, 400, /'nope' was unexpected/],
      ['POST', '/v3/domains', { domain: { name: 'Default' } }, 409, /^Conflict occurred attempting to store project - it is not permitted to have two projects acting as domains with the same name: Default\.$/],
      ['PATCH', '/v3/domains/default', { domain: {} }, 400, /minProperties|fewer than 1/],
      ['PATCH', '/v3/domains/missing', { domain: { name: 'y' } }, 404, /Could not find domain: missing\./],
      ['DELETE', '/v3/domains/missing', undefined, 404, /Could not find domain: missing\./],
    ];
    for (const [method, path, body, status, message] of cases) {
      const res = await ks.admin.request(method, path, body);
      assert.equal(res.status, status, `${method} ${path} ${JSON.stringify(body)}: ${res.text}`);
      assert.equal(res.body.error.code, status);
      assert.match(res.body.error.message, message);
    }
    assert.deepEqual((await ks.admin.get('/v3/domains?name=x')).body.domains, []);
  });

  it('protects an immutable domain', async () => {
    const d = await create({ name: 'frozen', options: { immutable: true } });
    const res = await ks.admin.patch(`/v3/domains/${d.id}`, { domain: { enabled: false } });
    assert.equal(res.status, 403);
    assert.equal(res.body.error.message, `Unable to update immutable domain resource: \`${d.id}. Set resource option "immutable" to false first.`);
    assert.equal((await ks.admin.patch(`/v3/domains/${d.id}`, { domain: { options: { immutable: false } } })).status, 200);
    assert.equal((await ks.admin.patch(`/v3/domains/${d.id}`, { domain: { enabled: false } })).status, 200);
  });

  it('shows a domain to those scoped in it and lists only to readers', async () => {
    assert.equal((await member.get('/v3/domains/default')).status, 200);
    assert.equal((await member.get(`/v3/domains/${readerDomain}`)).status, 403);
    assert.equal((await member.get('/v3/domains')).status, 403);
    assert.equal((await member.post('/v3/domains', { domain: { name: 'nope' } })).status, 403);
    assert.equal((await member.patch('/v3/domains/default', { domain: { description: 'x' } })).status, 403);

    assert.equal((await domainReader.get(`/v3/domains/${readerDomain}`)).status, 200);
    const own = await domainReader.get('/v3/domains');
    assert.equal(own.status, 200);
    assert.deepEqual(own.body.domains.map((x: { id: string }) => x.id), [readerDomain]);
    assert.equal((await domainReader.patch(`/v3/domains/${readerDomain}`, { domain: { description: 'x' } })).status, 403);

    assert.ok((await systemReader.get('/v3/domains')).body.domains.length >= 2);
    assert.equal((await systemReader.get(`/v3/domains/${readerDomain}`)).status, 200);
    assert.equal((await systemReader.post('/v3/domains', { domain: { name: 'nope' } })).status, 403);
    assert.equal((await systemReader.delete(`/v3/domains/${readerDomain}`)).status, 403);
  });
});
