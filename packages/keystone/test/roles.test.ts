import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

const PW = 'roles-test-pw-1';

describe('keystone /v3/roles, implied roles and /v3/role_inferences', () => {
  let fx: KeystoneFixture;
  let projectId: string;
  let member: JsonClient;
  let systemReader: JsonClient;

  before(async () => {
    fx = await startKeystone();
    projectId = (await fx.ks.resource.createProject({ name: 'roles-p', domainId: 'default' })).id;
    const m = await fx.ks.identity.createUser({ name: 'role-member', domainId: 'default', password: PW });
    await fx.ks.assignment.grant({ userId: m.id }, { projectId }, fx.boot.roleIds.member);
    member = await fx.login('role-member', PW, { project: { id: projectId } });
    const r = await fx.ks.identity.createUser({ name: 'role-sysreader', domainId: 'default', password: PW });
    await fx.ks.assignment.grant({ userId: r.id }, { system: 'all' }, fx.boot.roleIds.reader);
    systemReader = await fx.login('role-sysreader', PW, { system: { all: true } });
  });
  after(() => fx.close());

  it('creates, shows, lists, updates and deletes a role, keeping extra attributes', async () => {
    const created = await fx.admin.post('/v3/roles', { role: { name: 'operator', description: 'Runs things', colour: 'red' } });
    assert.equal(created.status, 201, created.text);
    const role = created.body.role;
    assert.match(role.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(role, {
      id: role.id,
      name: 'operator',
      domain_id: null,
      description: 'Runs things',
      options: {},
      colour: 'red',
      links: { self: `${fx.url}/v3/roles/${role.id}` },
    });
    assert.deepEqual((await fx.admin.get(`/v3/roles/${role.id}`)).body.role, role);

    const byName = await fx.admin.get('/v3/roles?name=operator');
    assert.deepEqual(byName.body.roles, [role]);
    assert.equal(byName.body.links.self, `${fx.url}/v3/roles?name=operator`);
    const all = (await fx.admin.get('/v3/roles')).body.roles.map((r: { name: string }) => r.name);
    for (const n of ['admin', 'member', 'reader', 'service', 'operator']) assert.ok(all.includes(n), n);

    const patched = await fx.admin.patch(`/v3/roles/${role.id}`, { role: { name: 'operator2', description: null, shape: 'round' } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.role.name, 'operator2');
    assert.equal(patched.body.role.description, null);
    assert.equal(patched.body.role.colour, 'red');
    assert.equal(patched.body.role.shape, 'round');

    assert.equal((await fx.admin.delete(`/v3/roles/${role.id}`)).status, 204);
    const gone = await fx.admin.get(`/v3/roles/${role.id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.message, `Could not find role: ${role.id}.`);
    assert.equal((await fx.admin.delete(`/v3/roles/${role.id}`)).status, 404);
  });

  it('refuses a duplicate name with 409', async () => {
    assert.equal((await fx.admin.post('/v3/roles', { role: { name: 'dup' } })).status, 201);
    const again = await fx.admin.post('/v3/roles', { role: { name: 'dup' } });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.message, 'Conflict occurred attempting to store role - Duplicate entry found with name dup.');
    const other = await fx.admin.post('/v3/roles', { role: { name: 'dup2' } });
    const renamed = await fx.admin.patch(`/v3/roles/${other.body.role.id}`, { role: { name: 'dup' } });
    assert.equal(renamed.status, 409);
  });

  it('validates bodies strictly', async () => {
    const cases: [string, unknown][] = [
      ['no role', {}],
      ['no name', { role: { description: 'x' } }],
      ['empty name', { role: { name: '' } }],
      ['name not a string', { role: { name: 7 } }],
      ['unknown option', { role: { name: 'x1', options: { sticky: true } } }],
      ['immutable not a boolean', { role: { name: 'x2', options: { immutable: 'yes' } } }],
      ['bad domain id', { role: { name: 'x3', domain_id: 'not a domain!' } }],
      ['unknown top-level key', { role: { name: 'x4' }, extra: 1 }],
    ];
    for (const [why, body] of cases) {
      const res = await fx.admin.post('/v3/roles', body);
      assert.equal(res.status, 400, `${why}: ${res.text}`);
      assert.equal(res.body.error.title, 'Bad Request');
    }
    const id = (await fx.admin.post('/v3/roles', { role: { name: 'patchme' } })).body.role.id;
    assert.equal((await fx.admin.patch(`/v3/roles/${id}`, { role: {} })).status, 400);
    const changeId = await fx.admin.patch(`/v3/roles/${id}`, { role: { id: 'other', name: 'n' } });
    assert.equal(changeId.status, 400);
    assert.equal(changeId.body.error.message, 'Cannot change ID');
    assert.equal((await fx.admin.patch('/v3/roles/nope', { role: { name: 'n' } })).status, 404);
  });

  it('protects immutable roles until they are made mutable', async () => {
    const role = (await fx.admin.post('/v3/roles', { role: { name: 'frozen', options: { immutable: true } } })).body.role;
    assert.deepEqual(role.options, { immutable: true });
    const rename = await fx.admin.patch(`/v3/roles/${role.id}`, { role: { name: 'thawed' } });
    assert.equal(rename.status, 403);
    assert.equal(rename.body.error.message, `Unable to update immutable role resource: \`${role.id}. Set resource option "immutable" to false first.`);
    // Making it mutable must be the only change in the request.
    assert.equal((await fx.admin.patch(`/v3/roles/${role.id}`, { role: { name: 'thawed', options: { immutable: false } } })).status, 403);
    const del = await fx.admin.delete(`/v3/roles/${role.id}`);
    assert.equal(del.status, 403);
    assert.match(del.body.error.message, /^Unable to delete immutable role resource/);
    const unfrozen = await fx.admin.patch(`/v3/roles/${role.id}`, { role: { options: { immutable: null } } });
    assert.equal(unfrozen.status, 200, unfrozen.text);
    assert.deepEqual(unfrozen.body.role.options, {});
    assert.equal((await fx.admin.delete(`/v3/roles/${role.id}`)).status, 204);
  });

  it('keeps domain-specific roles apart from global ones', async () => {
    const d = await fx.ks.resource.createProject({ name: 'role-dom', isDomain: true });
    const created = await fx.admin.post('/v3/roles', { role: { name: 'member', domain_id: d.id } });
    assert.equal(created.status, 201, created.text);
    const role = created.body.role;
    assert.equal(role.domain_id, d.id);
    const dupe = await fx.admin.post('/v3/roles', { role: { name: 'member', domain_id: d.id } });
    assert.equal(dupe.status, 409);
    assert.equal(dupe.body.error.message, `Conflict occurred attempting to store role - Duplicate entry found with name member at domain ID ${d.id}.`);
    assert.ok(!(await fx.admin.get('/v3/roles')).body.roles.some((r: { id: string }) => r.id === role.id));
    assert.deepEqual((await fx.admin.get(`/v3/roles?domain_id=${d.id}`)).body.roles.map((r: { id: string }) => r.id), [role.id]);
    const move = await fx.admin.patch(`/v3/roles/${role.id}`, { role: { domain_id: 'default' } });
    assert.equal(move.status, 400);
    assert.equal(move.body.error.message, 'Update of `domain_id` is not allowed.');
    assert.equal((await fx.admin.post('/v3/roles', { role: { name: 'r', domain_id: 'nosuchdomain' } })).status, 404);

    // A domain role only stands for the global roles it implies: tokens carry those, never it.
    assert.equal((await fx.admin.put(`/v3/roles/${role.id}/implies/${fx.boot.roleIds.reader}`)).status, 201);
    const globalToDomain = await fx.admin.put(`/v3/roles/${fx.boot.roleIds.reader}/implies/${role.id}`);
    assert.equal(globalToDomain.status, 403);
    const p = await fx.ks.resource.createProject({ name: 'dom-p', domainId: d.id });
    const u = await fx.ks.identity.createUser({ name: 'dom-role-user', domainId: 'default', password: PW });
    const mismatch = await fx.admin.put(`/v3/projects/${projectId}/users/${u.id}/roles/${role.id}`);
    assert.equal(mismatch.status, 403);
    assert.equal(mismatch.body.error.message, `Project ${projectId} must be in the same domain as the role ${role.id} being assigned.`);
    assert.equal((await fx.admin.put(`/v3/system/users/${u.id}/roles/${role.id}`)).status, 400);
    assert.equal((await fx.admin.put(`/v3/projects/${p.id}/users/${u.id}/roles/${role.id}`)).status, 204);
    const token = await fx.login('dom-role-user', PW, { project: { id: p.id } });
    const validated = await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': token.token! });
    assert.deepEqual(validated.body.token.roles.map((r: { name: string }) => r.name), ['reader']);
  });

  it('manages implied roles with upstream response bodies', async () => {
    const prior = (await fx.admin.post('/v3/roles', { role: { name: 'prior' } })).body.role;
    const implied = (await fx.admin.post('/v3/roles', { role: { name: 'implied' } })).body.role;
    const path = `/v3/roles/${prior.id}/implies/${implied.id}`;
    const ref = (r: { id: string; name: string }) => ({ id: r.id, links: { self: `${fx.url}/v3/roles/${r.id}` }, name: r.name });

    const put = await fx.admin.put(path);
    assert.equal(put.status, 201, put.text);
    assert.deepEqual(put.body, { role_inference: { prior_role: ref(prior), implies: ref(implied) }, links: { self: `${fx.url}${path}` } });
    assert.equal((await fx.admin.put(path)).status, 409);
    assert.deepEqual((await fx.admin.get(path)).body, put.body);
    const head = await fx.admin.head(path);
    assert.equal(head.status, 204);

    const list = await fx.admin.get(`/v3/roles/${prior.id}/implies`);
    assert.deepEqual(list.body, {
      role_inference: { prior_role: ref(prior), implies: [ref(implied)] },
      links: { self: `${fx.url}/v3/roles/${prior.id}/implies` },
    });
    const inferences = (await fx.admin.get('/v3/role_inferences')).body.role_inferences as { prior_role: { id: string }; implies: unknown[] }[];
    assert.deepEqual(inferences.find((i) => i.prior_role.id === prior.id), { prior_role: ref(prior), implies: [ref(implied)] });
    const admin = inferences.find((i) => i.prior_role.id === fx.boot.roleIds.admin)!;
    assert.deepEqual(admin.implies, [ref({ id: fx.boot.roleIds.member, name: 'member' })]);

    assert.equal((await fx.admin.delete(path)).status, 204);
    const gone = await fx.admin.get(path);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.message, `${prior.id} does not imply ${implied.id}.`);
    assert.equal((await fx.admin.delete(path)).status, 404);
    assert.equal((await fx.admin.put(`/v3/roles/${prior.id}/implies/nosuchrole`)).status, 404);
    const toAdmin = await fx.admin.put(`/v3/roles/${prior.id}/implies/${fx.boot.roleIds.admin}`);
    assert.equal(toAdmin.status, 403);
    assert.equal(toAdmin.body.error.message, `${fx.boot.roleIds.admin} cannot be an implied roles.`);
  });

  it('expands implied role chains into tokens, cycles included', async () => {
    const u = await fx.ks.identity.createUser({ name: 'chain-user', domainId: 'default', password: PW });
    assert.equal((await fx.admin.put(`/v3/projects/${projectId}/users/${u.id}/roles/${fx.boot.roleIds.admin}`)).status, 204);
    const token = await fx.login('chain-user', PW, { project: { id: projectId } });
    const body = (await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': token.token! })).body.token;
    assert.deepEqual(body.roles.map((r: { name: string }) => r.name).sort(), ['admin', 'member', 'reader']);

    const a = (await fx.admin.post('/v3/roles', { role: { name: 'cycle-a' } })).body.role;
    const b = (await fx.admin.post('/v3/roles', { role: { name: 'cycle-b' } })).body.role;
    assert.equal((await fx.admin.put(`/v3/roles/${a.id}/implies/${b.id}`)).status, 201);
    assert.equal((await fx.admin.put(`/v3/roles/${b.id}/implies/${a.id}`)).status, 201);
    const c = await fx.ks.identity.createUser({ name: 'cycle-user', domainId: 'default', password: PW });
    assert.equal((await fx.admin.put(`/v3/projects/${projectId}/users/${c.id}/roles/${a.id}`)).status, 204);
    const cycled = await fx.login('cycle-user', PW, { project: { id: projectId } });
    const roles = (await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': cycled.token! })).body.token.roles;
    assert.deepEqual(roles.map((r: { name: string }) => r.name).sort(), ['cycle-a', 'cycle-b']);
    const effective = await fx.admin.get(`/v3/role_assignments?effective&user.id=${c.id}`);
    assert.deepEqual(effective.body.role_assignments.map((r: { role: { id: string } }) => r.role.id).sort(), [a.id, a.id, b.id].sort());
  });

  it('enforces policy: readers read, only the cloud admin writes', async () => {
    assert.equal((await systemReader.get('/v3/roles')).status, 200);
    assert.equal((await systemReader.get(`/v3/roles/${fx.boot.roleIds.member}`)).status, 200);
    assert.equal((await systemReader.get('/v3/role_inferences')).status, 200);
    assert.equal((await systemReader.post('/v3/roles', { role: { name: 'nope' } })).status, 403);
    assert.equal((await systemReader.put(`/v3/roles/${fx.boot.roleIds.member}/implies/${fx.boot.roleIds.service}`)).status, 403);

    const denied = await member.get('/v3/roles');
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.message, "Policy doesn't allow identity:list_roles to be performed.");
    assert.equal((await member.post('/v3/roles', { role: { name: 'nope' } })).status, 403);
    assert.equal((await member.delete(`/v3/roles/${fx.boot.roleIds.reader}`)).status, 403);
    assert.equal((await member.get('/v3/role_inferences')).status, 403);
    // Policy comes before existence, so a caller learns nothing about roles it may not see.
    assert.equal((await member.get('/v3/roles/nosuchrole')).status, 403);
  });
});
