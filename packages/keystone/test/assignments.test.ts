import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

const PW = 'assign-test-pw-1';

interface Assignment {
  scope: { project?: { id: string; name?: string; domain?: { id: string; name: string } }; domain?: { id: string }; system?: { all: true }; 'OS-INHERIT:inherited_to'?: string };
  user?: { id: string; name?: string; domain?: { id: string; name: string } };
  group?: { id: string };
  role: { id: string; name?: string };
  links: { assignment: string; membership?: string; prior_role?: string };
}

describe('keystone grants and /v3/role_assignments', () => {
  let fx: KeystoneFixture;
  let v3: string;
  let role: Record<'admin' | 'member' | 'reader', string>;
  // Domain D1 holds P1 and its child C1, user u1 (member of group G), D1's admin and reader; D2 holds P2 and u2.
  let d1: string, d2: string, p1: string, c1: string, p2: string;
  let u1: string, u2: string, g: string;
  let domainAdmin: JsonClient, domainReader: JsonClient;

  async function user(name: string, domainId: string): Promise<string> {
    return (await fx.ks.identity.createUser({ name, domainId, password: PW })).id;
  }

  async function login(name: string, domainId: string, scope: unknown): Promise<JsonClient> {
    const res = await fx.client.post('/v3/auth/tokens', {
      auth: { identity: { methods: ['password'], password: { user: { name, domain: { id: domainId }, password: PW } } }, scope },
    });
    assert.equal(res.status, 201, res.text);
    return fx.client.withToken(res.headers.get('x-subject-token')!);
  }

  const assignments = async (client: JsonClient, query: string): Promise<Assignment[]> => {
    const res = await client.get(`/v3/role_assignments${query}`);
    assert.equal(res.status, 200, res.text);
    return res.body.role_assignments;
  };

  before(async () => {
    fx = await startKeystone();
    v3 = `${fx.url}/v3`;
    role = fx.boot.roleIds;
    const { resource, identity, assignment } = fx.ks;
    d1 = (await resource.createProject({ name: 'D1', isDomain: true })).id;
    d2 = (await resource.createProject({ name: 'D2', isDomain: true })).id;
    p1 = (await resource.createProject({ name: 'P1', domainId: d1 })).id;
    c1 = (await resource.createProject({ name: 'C1', parentId: p1 })).id;
    p2 = (await resource.createProject({ name: 'P2', domainId: d2 })).id;
    u1 = await user('u1', d1);
    u2 = await user('u2', d2);
    g = (await identity.createGroup({ name: 'G', domainId: d1 })).id;
    await identity.addUserToGroup(u1, g);
    await assignment.grant({ userId: await user('d1-admin', d1) }, { domainId: d1 }, role.admin);
    await assignment.grant({ userId: await user('d1-reader', d1) }, { domainId: d1 }, role.reader);
    domainAdmin = await login('d1-admin', d1, { domain: { id: d1 } });
    domainReader = await login('d1-reader', d1, { domain: { id: d1 } });
  });
  after(() => fx.close());

  it('grants, checks, lists and revokes roles on projects and domains, for users and groups', async () => {
    for (const [target, actor] of [
      [`projects/${p2}`, `users/${u2}`],
      [`projects/${p1}`, `groups/${g}`],
      [`domains/${d2}`, `users/${u2}`],
      [`domains/${d1}`, `groups/${g}`],
    ]) {
      const grant = `/v3/${target}/${actor}/roles/${role.reader}`;
      assert.equal((await fx.admin.put(grant)).status, 204, grant);
      assert.equal((await fx.admin.put(grant)).status, 204, 'granting twice is harmless');
      assert.equal((await fx.admin.get(grant)).status, 204);
      assert.equal((await fx.admin.head(grant)).status, 204);
      const list = await fx.admin.get(`/v3/${target}/${actor}/roles`);
      assert.equal(list.status, 200);
      assert.deepEqual(list.body.roles.map((r: { id: string }) => r.id), [role.reader]);
      assert.equal(list.body.links.self, `${v3}/${target}/${actor}/roles`);
      assert.equal((await fx.admin.delete(grant)).status, 204);
      const gone = await fx.admin.get(grant);
      assert.equal(gone.status, 404);
      const [, actorId] = actor.split('/');
      const [, targetId] = target.split('/');
      assert.equal(gone.body.error.message, `Could not find role assignment with role: ${role.reader}, user or group: ${actorId}, project, domain, or system: ${targetId}.`);
      assert.equal((await fx.admin.delete(grant)).status, 404);
    }
  });

  it('answers 404 for an unknown role, user, group, project or domain', async () => {
    for (const path of [
      `/v3/projects/${p1}/users/${u1}/roles/nosuchrole`,
      `/v3/projects/${p1}/users/nosuchuser/roles/${role.member}`,
      `/v3/projects/${p1}/groups/nosuchgroup/roles/${role.member}`,
      `/v3/projects/nosuchproject/users/${u1}/roles/${role.member}`,
      `/v3/domains/nosuchdomain/users/${u1}/roles/${role.member}`,
      `/v3/OS-INHERIT/projects/nosuchproject/users/${u1}/roles/${role.member}/inherited_to_projects`,
      `/v3/system/users/nosuchuser/roles/${role.member}`,
    ]) {
      const res = await fx.admin.put(path);
      assert.equal(res.status, 404, path);
      assert.equal(res.body.error.title, 'Not Found');
    }
    assert.equal((await fx.admin.get(`/v3/projects/nosuchproject/users/${u1}/roles`)).status, 404);
  });

  it('lists effective assignments: groups expanded, inherited grants placed on the projects below, implied roles added', async () => {
    const inherit = `/v3/OS-INHERIT/projects/${p1}/groups/${g}/roles/${role.member}/inherited_to_projects`;
    assert.equal((await fx.admin.put(inherit)).status, 204);
    assert.equal((await fx.admin.get(inherit)).status, 204);
    assert.equal((await fx.admin.get(`/v3/projects/${p1}/groups/${g}/roles/${role.member}`)).status, 404, 'inherited grants are distinct');

    const direct = await assignments(fx.admin, `?group.id=${g}`);
    assert.deepEqual(direct, [
      {
        links: { assignment: `${v3}/OS-INHERIT/projects/${p1}/groups/${g}/roles/${role.member}/inherited_to_projects` },
        scope: { project: { id: p1 }, 'OS-INHERIT:inherited_to': 'projects' },
        group: { id: g },
        role: { id: role.member },
      },
    ]);
    assert.deepEqual(await assignments(fx.admin, `?group.id=${g}&scope.OS-INHERIT:inherited_to=other`), [], 'only non-inherited ones');

    const effective = await assignments(fx.admin, `?effective&user.id=${u1}`);
    assert.deepEqual(effective, [
      {
        links: { assignment: `${v3}/OS-INHERIT/projects/${p1}/groups/${g}/roles/${role.member}/inherited_to_projects`, membership: `${v3}/groups/${g}/users/${u1}` },
        scope: { project: { id: c1 }, 'OS-INHERIT:inherited_to': 'projects' },
        user: { id: u1 },
        role: { id: role.member },
      },
      {
        links: {
          assignment: `${v3}/OS-INHERIT/projects/${p1}/groups/${g}/roles/${role.member}/inherited_to_projects`,
          membership: `${v3}/groups/${g}/users/${u1}`,
          prior_role: `${v3}/prior_role/${role.reader}/implies/${role.member}`,
        },
        scope: { project: { id: c1 }, 'OS-INHERIT:inherited_to': 'projects' },
        user: { id: u1 },
        role: { id: role.reader },
      },
    ]);

    const named = await assignments(fx.admin, `?scope.project.id=${p1}&include_subtree=true&effective&include_names`);
    assert.deepEqual(
      named.map((a) => [a.scope.project, a.user, a.role]),
      [
        [{ id: c1, name: 'C1', domain: { id: d1, name: 'D1' } }, { id: u1, name: 'u1', domain: { id: d1, name: 'D1' } }, { id: role.member, name: 'member' }],
        [{ id: c1, name: 'C1', domain: { id: d1, name: 'D1' } }, { id: u1, name: 'u1', domain: { id: d1, name: 'D1' } }, { id: role.reader, name: 'reader' }],
      ],
    );
    assert.deepEqual(await assignments(fx.admin, `?scope.project.id=${p1}&effective`), [], 'nothing lands on P1 itself');

    const onChild = await login('u1', d1, { project: { id: c1 } });
    const token = (await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': onChild.token! })).body.token;
    assert.deepEqual(token.roles.map((r: { name: string }) => r.name).sort(), ['member', 'reader']);

    // Inherited from a domain: every project of the domain, with the domain grant as the link.
    const fromDomain = `/v3/OS-INHERIT/domains/${d2}/users/${u2}/roles/${role.reader}/inherited_to_projects`;
    assert.equal((await fx.admin.put(fromDomain)).status, 204);
    const list = await fx.admin.get(`/v3/OS-INHERIT/domains/${d2}/users/${u2}/roles/inherited_to_projects`);
    assert.deepEqual(list.body.roles.map((r: { id: string }) => r.id), [role.reader]);
    assert.deepEqual(await assignments(fx.admin, `?effective&user.id=${u2}`), [
      {
        links: { assignment: `${fx.url}${fromDomain}` },
        scope: { project: { id: p2 }, 'OS-INHERIT:inherited_to': 'projects' },
        user: { id: u2 },
        role: { id: role.reader },
      },
    ]);
    assert.equal((await fx.admin.delete(fromDomain)).status, 204);
    assert.equal((await fx.admin.delete(inherit)).status, 204);
  });

  it('filters by role, scope and system', async () => {
    const sys = await assignments(fx.admin, '?scope.system=all');
    assert.deepEqual(sys, [
      {
        links: { assignment: `${v3}/system/users/${fx.boot.adminUserId}/roles/${role.admin}` },
        scope: { system: { all: true } },
        user: { id: fx.boot.adminUserId },
        role: { id: role.admin },
      },
    ]);
    const onDomain = await assignments(fx.admin, `?scope.domain.id=${d1}`);
    assert.deepEqual(onDomain.map((a) => a.role.id).sort(), [role.admin, role.reader].sort());
    assert.ok(onDomain.every((a) => a.scope.domain?.id === d1 && a.links.assignment.startsWith(`${v3}/domains/${d1}/users/`)));
    const readers = await assignments(fx.admin, `?role.id=${role.reader}&scope.domain.id=${d1}`);
    assert.equal(readers.length, 1);
  });

  it('refuses useless or contradictory filters with 400', async () => {
    for (const q of [
      '?include_subtree',
      `?user.id=${u1}&group.id=${g}`,
      `?effective&group.id=${g}`,
      `?scope.domain.id=${d1}&scope.project.id=${p1}`,
      `?scope.system=all&scope.project.id=${p1}`,
      `?effective&scope.OS-INHERIT:inherited_to=projects&scope.domain.id=${d1}`,
      '?role.id=not%20an%20id',
    ]) {
      const res = await fx.admin.get(`/v3/role_assignments${q}`);
      assert.equal(res.status, 400, `${q}: ${res.text}`);
    }
  });

  it('grants system roles: a system reader reads everything and changes nothing', async () => {
    const sr = await user('sys-reader', 'default');
    const grant = `/v3/system/users/${sr}/roles/${role.reader}`;
    assert.equal((await fx.admin.put(grant)).status, 204);
    assert.equal((await fx.admin.head(grant)).status, 204);
    assert.deepEqual((await fx.admin.get(`/v3/system/users/${sr}/roles`)).body.roles.map((r: { id: string }) => r.id), [role.reader]);
    const reader = await login('sys-reader', 'default', { system: { all: true } });
    const seen = await assignments(reader, `?user.id=${sr}`);
    assert.equal(seen[0]!.links.assignment, `${fx.url}${grant}`);
    assert.equal((await reader.get(`/v3/system/users/${fx.boot.adminUserId}/roles`)).status, 200);
    assert.equal((await reader.get(`/v3/projects/${p1}/groups/${g}/roles`)).status, 200);
    assert.equal((await reader.put(`/v3/projects/${p1}/users/${u1}/roles/${role.member}`)).status, 403);
    assert.equal((await reader.put(`/v3/system/users/${u1}/roles/${role.reader}`)).status, 403);

    const groupGrant = `/v3/system/groups/${g}/roles/${role.reader}`;
    assert.equal((await fx.admin.put(groupGrant)).status, 204);
    assert.equal((await fx.admin.get(groupGrant)).status, 204);
    assert.deepEqual((await fx.admin.get(`/v3/system/groups/${g}/roles`)).body.roles.map((r: { id: string }) => r.id), [role.reader]);
    assert.equal((await fx.admin.delete(groupGrant)).status, 204);
    assert.equal((await fx.admin.get(groupGrant)).status, 404);

    assert.equal((await fx.admin.delete(grant)).status, 204);
    assert.equal((await reader.get('/v3/role_assignments')).status, 401, 'the system token lost its only role');
  });

  it('keeps a project member from granting or listing', async () => {
    const a = (await fx.ks.resource.createProject({ name: 'A', domainId: 'default' })).id;
    const m = await user('a-member', 'default');
    await fx.ks.assignment.grant({ userId: m }, { projectId: a }, role.member);
    const member = await login('a-member', 'default', { project: { id: a } });
    const selfAdmin = await member.put(`/v3/projects/${a}/users/${m}/roles/${role.admin}`);
    assert.equal(selfAdmin.status, 403);
    assert.equal(selfAdmin.body.error.message, "Policy doesn't allow identity:create_grant to be performed.");
    assert.equal((await member.get('/v3/role_assignments')).status, 403);
    assert.equal((await member.get(`/v3/role_assignments?user.id=${m}`)).status, 403);
    assert.equal((await member.get(`/v3/projects/${a}/users/${m}/roles`)).status, 403);
    assert.equal((await member.get(`/v3/role_assignments?scope.project.id=${a}&include_subtree`)).status, 403);
  });

  it('confines a domain admin to its domain', async () => {
    assert.equal((await domainAdmin.get('/v3/roles')).status, 200, 'it needs the roles to grant them');
    assert.equal((await domainAdmin.put(`/v3/projects/${p1}/users/${u1}/roles/${role.member}`)).status, 204);
    assert.equal((await domainAdmin.get(`/v3/projects/${p1}/users/${u1}/roles/${role.member}`)).status, 204);
    assert.equal((await domainAdmin.put(`/v3/domains/${d1}/groups/${g}/roles/${role.reader}`)).status, 204);
    for (const path of [
      `/v3/projects/${p2}/users/${u1}/roles/${role.member}`,
      `/v3/projects/${p2}/users/${u2}/roles/${role.member}`,
      `/v3/projects/${p1}/users/${u2}/roles/${role.member}`,
      `/v3/domains/${d2}/users/${u1}/roles/${role.member}`,
      `/v3/OS-INHERIT/domains/${d2}/users/${u2}/roles/${role.member}/inherited_to_projects`,
      `/v3/system/users/${u1}/roles/${role.member}`,
    ]) {
      assert.equal((await domainAdmin.put(path)).status, 403, path);
    }
    // Another domain's grants stay invisible, whether or not they exist.
    assert.equal((await domainAdmin.put(`/v3/OS-INHERIT/domains/${d2}/users/nosuchuser/roles/${role.member}/inherited_to_projects`)).status, 403);

    const seen = await assignments(domainAdmin, '');
    assert.ok(seen.length >= 3);
    for (const a of seen) assert.ok(a.scope.domain?.id === d1 || [p1, c1].includes(a.scope.project?.id ?? ''), JSON.stringify(a));
    assert.equal(await assignments(domainReader, '').then((r) => r.length), seen.length);

    assert.equal((await domainReader.put(`/v3/projects/${p1}/users/${u1}/roles/${role.reader}`)).status, 403);
    assert.equal((await domainReader.get(`/v3/projects/${p1}/users/${u1}/roles`)).status, 200);
    assert.equal((await domainReader.get(`/v3/projects/${p2}/users/${u2}/roles`)).status, 403);

    assert.equal((await domainAdmin.delete(`/v3/projects/${p1}/users/${u1}/roles/${role.member}`)).status, 204);
    assert.equal((await domainAdmin.delete(`/v3/domains/${d1}/groups/${g}/roles/${role.reader}`)).status, 204);
  });

  it("lets a project's admin list its subtree's assignments and nothing else", async () => {
    const pa = await user('p1-admin', d1);
    await fx.ks.assignment.grant({ userId: pa }, { projectId: p1 }, role.admin);
    const projectAdmin = await login('p1-admin', d1, { project: { id: p1 } });
    const tree = await assignments(projectAdmin, `?scope.project.id=${p1}&include_subtree`);
    assert.ok(tree.some((a) => a.user?.id === pa && a.scope.project?.id === p1 && a.role.id === role.admin));
    assert.ok(tree.every((a) => [p1, c1].includes(a.scope.project?.id ?? '')));
    assert.equal((await projectAdmin.get(`/v3/role_assignments?scope.project.id=${p2}&include_subtree`)).status, 403);
    assert.equal((await projectAdmin.get(`/v3/role_assignments?scope.project.id=${p1}`)).status, 403);
    assert.equal((await projectAdmin.put(`/v3/projects/${p1}/users/${u1}/roles/${role.member}`)).status, 403);
    assert.equal((await fx.admin.get('/v3/role_assignments?scope.project.id=nosuchproject&include_subtree')).status, 404);
  });

  it("revokes a member's token when its role is removed", async () => {
    const m = await user('revoked-member', d1);
    const grant = `/v3/projects/${p1}/users/${m}/roles/${role.member}`;
    assert.equal((await fx.admin.put(grant)).status, 204);
    const member = await login('revoked-member', d1, { project: { id: p1 } });
    assert.equal((await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': member.token! })).status, 200);
    assert.equal((await member.get('/v3/auth/projects')).status, 200);

    assert.equal((await fx.admin.delete(grant)).status, 204);
    assert.notEqual((await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': member.token! })).status, 200);
    assert.equal((await member.get('/v3/auth/projects')).status, 401);
    const event = (await fx.admin.get('/v3/OS-REVOKE/events')).body.events.find((e: { user_id?: string }) => e.user_id === m);
    assert.deepEqual([event.project_id, event.role_id], [p1, role.member]);

    // A new grant and a new token work again, even within the same second.
    assert.equal((await fx.admin.put(grant)).status, 204);
    const again = await login('revoked-member', d1, { project: { id: p1 } });
    assert.equal((await again.get('/v3/auth/projects')).status, 200);
  });
});
