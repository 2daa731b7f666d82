import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

/**
 * One place that walks the personas across the rule families: a project's
 * member or reader never reaches another project's things, a reader never
 * writes, a domain admin stays in its domain, only a cloud admin manages the
 * cloud. Each area's own test file goes deeper.
 */
describe('keystone isolation between projects, domains and personas', () => {
  let fx: KeystoneFixture;
  const PW = 'isolation-pw-1';
  let ids: Record<string, string>;
  let memberA: JsonClient;
  let readerA: JsonClient;
  let memberB: JsonClient;
  let domainAdmin1: JsonClient;

  before(async () => {
    fx = await startKeystone();
    const ks = fx.ks;
    const d1 = await ks.resource.createProject({ name: 'd1', isDomain: true });
    const d2 = await ks.resource.createProject({ name: 'd2', isDomain: true });
    const a = await ks.resource.createProject({ name: 'proj-a', domainId: 'default' });
    const b = await ks.resource.createProject({ name: 'proj-b', domainId: 'default' });
    const p2 = await ks.resource.createProject({ name: 'proj-d2', domainId: d2.id });
    const mk = async (name: string, domainId = 'default') => (await ks.identity.createUser({ name, domainId, password: PW })).id;
    ids = { d1: d1.id, d2: d2.id, a: a.id, b: b.id, p2: p2.id, ua: await mk('ua'), ra: await mk('ra'), ub: await mk('ub'), da: await mk('da', d1.id), u2: await mk('u2', d2.id) };
    const r = fx.boot.roleIds;
    await ks.assignment.grant({ userId: ids.ua }, { projectId: a.id }, r.member);
    await ks.assignment.grant({ userId: ids.ra }, { projectId: a.id }, r.reader);
    await ks.assignment.grant({ userId: ids.ub }, { projectId: b.id }, r.member);
    await ks.assignment.grant({ userId: ids.da }, { domainId: d1.id }, r.admin);
    memberA = await fx.login('ua', PW, { project: { id: a.id } });
    readerA = await fx.login('ra', PW, { project: { id: a.id } });
    memberB = await fx.login('ub', PW, { project: { id: b.id } });
    domainAdmin1 = await fx.loginById(ids.da, PW, { domain: { id: d1.id } });
  });
  after(() => fx.close());

  const denied = async (p: Promise<{ status: number; text: string }>, what: string) => {
    const res = await p;
    assert.ok(res.status === 403 || res.status === 404, `${what}: expected 403/404, got ${res.status} ${res.text}`);
  };

  it('a project member sees nothing of another project', async () => {
    await denied(memberA.get(`/v3/projects/${ids.b}`), 'show project B');
    await denied(memberA.patch(`/v3/projects/${ids.b}`, { project: { description: 'x' } }), 'update project B');
    await denied(memberA.delete(`/v3/projects/${ids.b}`), 'delete project B');
    await denied(memberA.get('/v3/users'), 'list users');
    await denied(memberA.get(`/v3/users/${ids.ub}`), 'show user of B');
    await denied(memberA.get(`/v3/users/${ids.ub}/projects`), "list B user's projects");
    await denied(memberA.get(`/v3/role_assignments?scope.project.id=${ids.b}`), "list B's assignments");
    await denied(memberA.put(`/v3/projects/${ids.b}/users/${ids.ua}/roles/${fx.boot.roleIds.member}`), 'grant itself into B');
    await denied(memberA.get('/v3/auth/tokens', { 'x-subject-token': memberB.token! }), "validate B's token");
    await denied(memberA.get(`/v3/users/${ids.ub}/application_credentials`), "list B's application credentials");
    await denied(memberA.get(`/v3/credentials?user_id=${ids.ub}`).then(async (r) => (r.status === 200 && r.body.credentials.length === 0 ? { status: 403, text: '' } : r)), "list B's credentials");
    const projects = await memberA.get('/v3/auth/projects');
    assert.deepEqual(projects.body.projects.map((p: { id: string }) => p.id), [ids.a]);
  });

  it('a reader cannot write, even in its own project', async () => {
    await denied(readerA.patch(`/v3/projects/${ids.a}`, { project: { description: 'x' } }), 'update own project');
    await denied(readerA.post('/v3/users', { user: { name: 'sneaky', domain_id: 'default' } }), 'create user');
    await denied(readerA.put(`/v3/projects/${ids.a}/users/${ids.ra}/roles/${fx.boot.roleIds.admin}`), 'grant itself admin');
    await denied(readerA.post('/v3/roles', { role: { name: 'sneaky' } }), 'create role');
    await denied(readerA.post('/v3/services', { service: { type: 'x' } }), 'create service');
  });

  it('a project member is not a cloud admin', async () => {
    await denied(memberA.post('/v3/domains', { domain: { name: 'sneaky' } }), 'create domain');
    await denied(memberA.post('/v3/projects', { project: { name: 'sneaky', domain_id: 'default' } }), 'create project');
    await denied(memberA.post('/v3/regions', { region: { id: 'sneaky' } }), 'create region');
    const svc = await fx.ks.catalog.createService({ type: 'compute', name: 'nova' });
    await denied(memberA.post('/v3/registered_limits', { registered_limits: [{ service_id: svc.id, resource_name: 'cores', default_limit: 1 }] }), 'create registered limits');
  });

  it('a domain admin manages its own domain and nothing beyond it', async () => {
    const created = await domainAdmin1.post('/v3/users', { user: { name: 'in-d1', domain_id: ids.d1, password: PW } });
    assert.equal(created.status, 201, created.text);
    await denied(domainAdmin1.post('/v3/users', { user: { name: 'in-d2', domain_id: ids.d2 } }), 'create user in D2');
    await denied(domainAdmin1.get(`/v3/users/${ids.u2}`), 'show user of D2');
    await denied(domainAdmin1.patch(`/v3/projects/${ids.p2}`, { project: { description: 'x' } }), 'update project of D2');
    await denied(domainAdmin1.put(`/v3/projects/${ids.p2}/users/${ids.u2}/roles/${fx.boot.roleIds.member}`), 'grant in D2');
    await denied(domainAdmin1.patch(`/v3/domains/${ids.d2}`, { domain: { description: 'x' } }), 'update domain D2');
    const users = await domainAdmin1.get('/v3/users');
    assert.equal(users.status, 200);
    assert.ok(users.body.users.every((u: { domain_id: string }) => u.domain_id === ids.d1), 'lists only D1 users');
  });

  it('the cloud admin reaches everything', async () => {
    assert.equal((await fx.admin.get(`/v3/projects/${ids.b}`)).status, 200);
    assert.equal((await fx.admin.get(`/v3/users/${ids.u2}`)).status, 200);
    assert.equal((await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': memberB.token! })).status, 200);
  });
});
