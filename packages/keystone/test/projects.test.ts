import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

describe('keystone /v3/projects', () => {
  let ks: KeystoneFixture;
  let d1: string;
  let d2: string;
  let projectA: string;
  let projectB: string;
  let member: JsonClient;
  let reader: JsonClient;
  let domainAdmin: JsonClient;
  let domainReader: JsonClient;
  let memberId: string;

  const create = async (project: Record<string, unknown>, client = ks.admin) => {
    const res = await client.post('/v3/projects', { project });
    assert.equal(res.status, 201, res.text);
    return res.body.project;
  };

  before(async () => {
    ks = await startKeystone();
    const k = ks.ks;
    d1 = (await k.resource.createProject({ name: 'd1', isDomain: true })).id;
    d2 = (await k.resource.createProject({ name: 'd2', isDomain: true })).id;
    projectA = (await k.resource.createProject({ name: 'A', domainId: d1 })).id;
    projectB = (await k.resource.createProject({ name: 'B', domainId: d1 })).id;
    const roles = ks.boot.roleIds;
    const alice = await k.identity.createUser({ name: 'alice', domainId: d1, password: 'alice-pw' });
    memberId = alice.id;
    await k.assignment.grant({ userId: alice.id }, { projectId: projectA }, roles.member);
    member = await ks.loginById(alice.id, 'alice-pw', { project: { id: projectA } });
    const rita = await k.identity.createUser({ name: 'rita', domainId: d1, password: 'rita-pw' });
    await k.assignment.grant({ userId: rita.id }, { projectId: projectA }, roles.reader);
    reader = await ks.loginById(rita.id, 'rita-pw', { project: { id: projectA } });
    const dan = await k.identity.createUser({ name: 'dan', domainId: d1, password: 'dan-pw' });
    await k.assignment.grant({ userId: dan.id }, { domainId: d1 }, roles.admin);
    domainAdmin = await ks.loginById(dan.id, 'dan-pw', { domain: { id: d1 } });
    const dora = await k.identity.createUser({ name: 'dora', domainId: d1, password: 'dora-pw' });
    await k.assignment.grant({ userId: dora.id }, { domainId: d1 }, roles.reader);
    domainReader = await ks.loginById(dora.id, 'dora-pw', { domain: { id: d1 } });
  });
  after(() => ks.close());

  it('creates, shows, updates and deletes a project as upstream renders it', async () => {
    const p = await create({ name: 'web', domain_id: d2, description: 'Web tier', tags: ['prod'], options: { immutable: false }, tier: 'gold' });
    assert.match(p.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      { ...p, links: undefined },
      { id: p.id, name: 'web', domain_id: d2, description: 'Web tier', enabled: true, parent_id: d2, is_domain: false, tags: ['prod'], options: { immutable: false }, tier: 'gold', links: undefined },
    );
    assert.equal(p.links.self, `${ks.url}/v3/projects/${p.id}`);
    const shown = await ks.admin.get(`/v3/projects/${p.id}`);
    assert.equal(shown.status, 200);
    assert.deepEqual(shown.body.project.tags, ['prod']);

    const patched = await ks.admin.patch(`/v3/projects/${p.id}`, { project: { name: 'web2', enabled: false, tags: ['a', 'b'], color: 'red' } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.project.name, 'web2');
    assert.equal(patched.body.project.enabled, false);
    assert.deepEqual(patched.body.project.tags.sort(), ['a', 'b']);
    assert.equal(patched.body.project.tier, 'gold');
    assert.equal(patched.body.project.color, 'red');

    assert.equal((await ks.admin.delete(`/v3/projects/${p.id}`)).status, 204);
    const gone = await ks.admin.get(`/v3/projects/${p.id}`);
    assert.equal(gone.status, 404);
    assert.deepEqual(gone.body, { error: { code: 404, title: 'Not Found', message: `Could not find project: ${p.id}.` } });
  });

  it('puts a project without a domain in the default domain, and one with only a parent under it', async () => {
    const top = await create({ name: 'plain' });
    assert.equal(top.domain_id, 'default');
    assert.equal(top.parent_id, 'default');
    const child = await create({ name: 'plain-child', parent_id: top.id });
    assert.equal(child.domain_id, 'default');
    assert.equal(child.parent_id, top.id);
    // As upstream: a parent in another domain than the (defaulted) domain_id is refused.
    const cross = await ks.admin.post('/v3/projects', { project: { name: 'cross', parent_id: projectA } });
    assert.equal(cross.status, 400);
    assert.match(cross.body.error.message, /specifies a parent in a different domain/);
  });

  it('creates a domain when is_domain is true', async () => {
    const p = await create({ name: 'acting', is_domain: true });
    assert.equal(p.is_domain, true);
    assert.equal(p.domain_id, null);
    assert.equal(p.parent_id, null);
    assert.equal((await ks.admin.get(`/v3/domains/${p.id}`)).body.domain.name, 'acting');
    const listed = await ks.admin.get('/v3/projects?is_domain=true');
    assert.ok(listed.body.projects.some((x: { id: string }) => x.id === p.id));
    assert.ok(!(await ks.admin.get('/v3/projects')).body.projects.some((x: { id: string }) => x.id === p.id));
    const withParent = await ks.admin.post('/v3/projects', { project: { name: 'bad', is_domain: true, parent_id: projectA } });
    assert.equal(withParent.status, 400);
    assert.equal(withParent.body.error.message, 'only root projects are allowed to act as domains.');
  });

  it('refuses bad input with the keystone error body', async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ project: { name: 'x' }, extra: 1 }, 400, /Additional properties are not allowed \('extra' was unexpected\)/],
      [{ project: {} }, 400, /'name' is a required property/],
      [{ project: { name: 'x', enabled: 'yes' } }, 400, /is not of type 'boolean'/],
      [{ project: { name: 'x'.repeat(65) } }, 400, /too long/],
      [{ project: { name: 'x', tags: ['a/b'] } }, 400, /tags/],
      [{ project: { name: 'x', tags: ['a', 'a'] } }, 400, /tags/],
      [{ project: { name: 'x', tags: Array.from({ length: 81 }, (_, i) => `t${i}`) } }, 400, /tags/],
      [{ project: { name: 'x', options: { bogus: true } } }, 400, /'bogus' was unexpected/],
      [{ project: { name: 'x', domain_id: 'nope' } }, 400, /Could not find domain: nope/],
      [{ project: { name: 'x', parent_id: 'nope' } }, 400, /Could not find project: nope/],
    ];
    for (const [body, status, message] of cases) {
      const res = await ks.admin.post('/v3/projects', body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.text}`);
      assert.equal(res.body.error.code, status);
      assert.equal(res.body.error.title, 'Bad Request');
      assert.match(res.body.error.message, message);
    }
    assert.equal((await ks.ks.resource.listProjects({ name: 'x' })).length, 0);

    const dup = await ks.admin.post('/v3/projects', { project: { name: 'A', domain_id: d1 } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.title, 'Conflict');
    assert.match(dup.body.error.message, /^Conflict occurred attempting to store project - it is not permitted to have two projects with either the same name or same id in the same domain: name is A/);
  });

  it('keeps the hierarchy attributes immutable', async () => {
    const p = await create({ name: 'fixed', domain_id: d2 });
    const cases: [unknown, number, string][] = [
      [{ domain_id: d1 }, 400, 'Cannot change Domain ID'],
      [{ parent_id: projectA }, 403, 'Update of `parent_id` is not allowed.'],
      [{ is_domain: true }, 400, 'Update of `is_domain` is not allowed.'],
      [{ id: 'other' }, 400, 'Cannot change ID'],
    ];
    for (const [project, status, message] of cases) {
      const res = await ks.admin.patch(`/v3/projects/${p.id}`, { project });
      assert.equal(res.status, status, res.text);
      assert.equal(res.body.error.message, message);
    }
    // Sending them back unchanged is fine.
    assert.equal((await ks.admin.patch(`/v3/projects/${p.id}`, { project: { domain_id: d2, parent_id: d2, is_domain: false } })).status, 200);
    assert.equal((await ks.admin.patch('/v3/projects/missing', { project: { name: 'y' } })).status, 404);
  });

  it('enforces the hierarchy: leaves only on delete, enabled branches, disabled subtrees', async () => {
    const root = await create({ name: 'root', domain_id: d2 });
    const mid = await create({ name: 'mid', parent_id: root.id, domain_id: d2 });
    const leaf = await create({ name: 'leaf', parent_id: mid.id, domain_id: d2 });

    const nonLeaf = await ks.admin.delete(`/v3/projects/${mid.id}`);
    assert.equal(nonLeaf.status, 403);
    assert.equal(nonLeaf.body.error.message, `Cannot delete the project ${mid.id} since it is not a leaf in the hierarchy. Use the cascade option if you want to delete a whole subtree.`);

    const disableMid = await ks.admin.patch(`/v3/projects/${mid.id}`, { project: { enabled: false } });
    assert.equal(disableMid.status, 403);
    assert.match(disableMid.body.error.message, /subtree contains enabled projects/);
    assert.equal((await ks.admin.patch(`/v3/projects/${leaf.id}`, { project: { enabled: false } })).status, 200);
    assert.equal((await ks.admin.patch(`/v3/projects/${mid.id}`, { project: { enabled: false } })).status, 200);

    const under = await ks.admin.post('/v3/projects', { project: { name: 'under', parent_id: leaf.id, domain_id: d2 } });
    assert.equal(under.status, 400);
    assert.match(under.body.error.message, /^cannot create a project in a branch containing a disabled project: /);
    const enableLeaf = await ks.admin.patch(`/v3/projects/${leaf.id}`, { project: { enabled: true } });
    assert.equal(enableLeaf.status, 403);
    assert.equal(enableLeaf.body.error.message, `Cannot enable project ${leaf.id} since it has disabled parents`);

    assert.equal((await ks.admin.delete(`/v3/projects/${leaf.id}`)).status, 204);
    assert.equal((await ks.admin.delete(`/v3/projects/${mid.id}`)).status, 204);
    assert.equal((await ks.admin.delete(`/v3/projects/${root.id}`)).status, 204);
  });

  it('refuses a tree deeper than max_project_tree_depth', async () => {
    let parent = d2;
    for (let i = 1; i <= 5; i++) parent = (await create({ name: `level${i}`, parent_id: parent, domain_id: d2 })).id;
    const tooDeep = await ks.admin.post('/v3/projects', { project: { name: 'level6', parent_id: parent, domain_id: d2 } });
    assert.equal(tooDeep.status, 403);
    assert.equal(tooDeep.body.error.message, `Max hierarchy depth reached for ${parent} branch.`);
  });

  it('expands parents and subtree as ids and as lists of visible projects', async () => {
    const top = await create({ name: 'top', domain_id: d1 });
    const a = await create({ name: 'top-a', parent_id: top.id, domain_id: d1 });
    const b = await create({ name: 'top-b', parent_id: top.id, domain_id: d1 });
    const a1 = await create({ name: 'top-a-1', parent_id: a.id, domain_id: d1 });

    const parents = await ks.admin.get(`/v3/projects/${a1.id}?parents_as_ids`);
    assert.deepEqual(parents.body.project.parents, { [a.id]: { [top.id]: { [d1]: null } } });
    const subtree = await ks.admin.get(`/v3/projects/${top.id}?subtree_as_ids`);
    assert.deepEqual(subtree.body.project.subtree, { [a.id]: { [a1.id]: null }, [b.id]: null });
    assert.equal((await ks.admin.get(`/v3/projects/${a1.id}?subtree_as_ids`)).body.project.subtree, null);

    // The lists only show projects the caller has a role on.
    await ks.ks.assignment.grant({ userId: ks.boot.adminUserId }, { projectId: a.id }, ks.boot.roleIds.reader);
    const list = await ks.admin.get(`/v3/projects/${top.id}?subtree_as_list`);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.project.subtree.map((x: { project: { id: string } }) => x.project.id), [a.id]);
    assert.equal(list.body.project.subtree[0].project.links.self, `${ks.url}/v3/projects/${a.id}`);
    const plist = await ks.admin.get(`/v3/projects/${a1.id}?parents_as_list`);
    assert.deepEqual(plist.body.project.parents.map((x: { project: { id: string } }) => x.project.id), [a.id]);

    const both = await ks.admin.get(`/v3/projects/${a1.id}?parents_as_list&parents_as_ids`);
    assert.equal(both.status, 400);
    assert.equal(both.body.error.message, 'Cannot use parents_as_list and parents_as_ids query params at the same time.');
    assert.equal((await ks.admin.get(`/v3/projects/${top.id}?subtree_as_list=1&subtree_as_ids=1`)).status, 400);
    assert.equal((await ks.admin.get(`/v3/projects/${top.id}?subtree_as_list=0&subtree_as_ids=1`)).status, 200);
  });

  it('filters lists by domain, parent, name, enabled and tags', async () => {
    const t1 = await create({ name: 'tagged1', domain_id: d2, tags: ['red', 'blue'] });
    await create({ name: 'tagged2', domain_id: d2, tags: ['red'], enabled: false });
    await create({ name: 'tagged3', domain_id: d2, tags: ['green'] });
    const names = async (query: string) => ((await ks.admin.get(`/v3/projects?domain_id=${d2}&${query}`)).body.projects as { name: string }[]).map((p) => p.name).filter((n) => n.startsWith('tagged')).sort();
    assert.deepEqual(await names('tags=red,blue'), ['tagged1']);
    assert.deepEqual(await names('tags-any=blue,green'), ['tagged1', 'tagged3']);
    assert.deepEqual(await names('not-tags=red,blue'), ['tagged2', 'tagged3']);
    assert.deepEqual(await names('not-tags-any=red'), ['tagged3']);
    assert.deepEqual(await names('enabled=false'), ['tagged2']);
    assert.deepEqual(await names('name=tagged3'), ['tagged3']);
    assert.deepEqual(await names(`parent_id=${d2}&tags=red`), ['tagged1', 'tagged2']);
    const res = await ks.admin.get(`/v3/projects?domain_id=${d2}&name=tagged1`);
    assert.deepEqual(res.body.projects.map((p: { id: string }) => p.id), [t1.id]);
    assert.equal(res.body.links.self, `${ks.url}/v3/projects?domain_id=${d2}&name=tagged1`);
  });

  it('manages tags one by one and as a set, with upstream validation', async () => {
    const p = await create({ name: 'tags', domain_id: d2 });
    const url = `/v3/projects/${p.id}/tags`;
    const put = await ks.admin.put(`${url}/alpha`);
    assert.equal(put.status, 201, put.text);
    assert.equal(put.headers.get('location'), `${ks.url}${url}/alpha`);
    assert.equal((await ks.admin.get(`${url}/alpha`)).status, 204);
    assert.equal((await ks.admin.head(`${url}/alpha`)).status, 204);
    const missing = await ks.admin.get(`${url}/beta`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.message, 'Could not find project tag: beta.');
    assert.equal((await ks.admin.put(`${url}/alpha`)).status, 400);
    assert.equal((await ks.admin.put(`${url}/a%2Cb`)).status, 400);
    assert.equal((await ks.admin.put(`${url}/${'x'.repeat(256)}`)).status, 400);

    const listed = await ks.admin.get(url);
    assert.deepEqual(listed.body, { tags: ['alpha'], links: { self: `${ks.url}${url}` } });
    const replaced = await ks.admin.put(url, { tags: ['one', 'two'] });
    assert.equal(replaced.status, 200, replaced.text);
    assert.deepEqual(replaced.body.tags.sort(), ['one', 'two']);
    assert.equal((await ks.admin.put(url, { tags: ['one', 'one'] })).status, 400);
    assert.equal((await ks.admin.put(url, { tags: ['ok'], other: 1 })).status, 400);
    assert.equal((await ks.admin.put(url, { tags: Array.from({ length: 81 }, (_, i) => `t${i}`) })).status, 400);
    assert.equal((await ks.admin.put(url, { tags: Array.from({ length: 80 }, (_, i) => `t${i}`) })).status, 200);
    const full = await ks.admin.put(`${url}/t80`);
    assert.equal(full.status, 400);
    assert.equal((await ks.admin.delete(`${url}/t0`)).status, 204);
    assert.equal((await ks.admin.delete(`${url}/t0`)).status, 404);
    assert.equal((await ks.admin.delete(url)).status, 204);
    assert.deepEqual((await ks.admin.get(url)).body.tags, []);
    assert.equal((await ks.admin.get('/v3/projects/missing/tags')).status, 404);
  });

  it('protects an immutable project until the option is cleared alone', async () => {
    const p = await create({ name: 'frozen', domain_id: d2, options: { immutable: true } });
    const rename = await ks.admin.patch(`/v3/projects/${p.id}`, { project: { name: 'thawed' } });
    assert.equal(rename.status, 403);
    assert.equal(rename.body.error.message, `Unable to update immutable project resource: \`${p.id}. Set resource option "immutable" to false first.`);
    assert.equal((await ks.admin.delete(`/v3/projects/${p.id}`)).status, 403);
    assert.equal((await ks.admin.put(`/v3/projects/${p.id}/tags/x`)).status, 403);
    assert.equal((await ks.admin.patch(`/v3/projects/${p.id}`, { project: { options: { immutable: false }, name: 'both' } })).status, 403);
    const thaw = await ks.admin.patch(`/v3/projects/${p.id}`, { project: { options: { immutable: null } } });
    assert.equal(thaw.status, 200, thaw.text);
    assert.deepEqual(thaw.body.project.options, {});
    assert.equal((await ks.admin.delete(`/v3/projects/${p.id}`)).status, 204);
  });

  it('lets a project member see its own project but nothing else', async () => {
    assert.equal((await member.get(`/v3/projects/${projectA}`)).status, 200);
    assert.equal((await member.get(`/v3/projects/${projectA}/tags`)).status, 200);
    const other = await member.get(`/v3/projects/${projectB}`);
    assert.equal(other.status, 403);
    assert.deepEqual(other.body, { error: { code: 403, title: 'Forbidden', message: "Policy doesn't allow identity:get_project to be performed." } });
    // A missing project answers 403 too: non-admins cannot probe ids.
    assert.equal((await member.get('/v3/projects/does-not-exist')).status, 403);
    assert.equal((await member.get('/v3/projects')).status, 403);
    assert.equal((await member.patch(`/v3/projects/${projectA}`, { project: { name: 'mine' } })).status, 403);
    assert.equal((await member.post('/v3/projects', { project: { name: 'new', domain_id: d1 } })).status, 403);
    assert.equal((await member.delete(`/v3/projects/${projectA}`)).status, 403);
    assert.equal((await member.put(`/v3/projects/${projectA}/tags/x`)).status, 403);
    assert.equal((await reader.patch(`/v3/projects/${projectA}`, { project: { description: 'r' } })).status, 403);
    assert.equal((await reader.get(`/v3/projects/${projectB}`)).status, 403);
    assert.equal((await ks.admin.get(`/v3/projects/${projectA}`)).body.project.name, 'A');
  });

  it('lets a domain admin manage the projects of its domain only', async () => {
    const mine = await create({ name: 'by-domain-admin', domain_id: d1 }, domainAdmin);
    assert.equal(mine.domain_id, d1);
    // Without a domain_id, the target has none: upstream refuses before defaulting it.
    assert.equal((await domainAdmin.post('/v3/projects', { project: { name: 'no-domain' } })).status, 403);
    assert.equal((await domainAdmin.post('/v3/projects', { project: { name: 'elsewhere', domain_id: d2 } })).status, 403);
    const foreign = await create({ name: 'foreign', domain_id: d2 });
    assert.equal((await domainAdmin.get(`/v3/projects/${foreign.id}`)).status, 403);
    assert.equal((await domainAdmin.patch(`/v3/projects/${foreign.id}`, { project: { name: 'x' } })).status, 403);
    assert.equal((await domainAdmin.patch(`/v3/projects/${mine.id}`, { project: { description: 'ok' } })).status, 200);

    const listed = await domainAdmin.get(`/v3/projects?domain_id=${d2}`);
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.projects, []);
    const own = (await domainReader.get('/v3/projects')).body.projects as { domain_id: string }[];
    assert.ok(own.length >= 3);
    assert.ok(own.every((p) => p.domain_id === d1));
    assert.equal((await domainReader.post('/v3/projects', { project: { name: 'r', domain_id: d1 } })).status, 403);
    assert.equal((await domainAdmin.delete(`/v3/projects/${mine.id}`)).status, 204);
  });

  it("lists a user's projects for the user and for admins", async () => {
    const mine = await member.get(`/v3/users/${memberId}/projects`);
    assert.equal(mine.status, 200, mine.text);
    assert.deepEqual(mine.body.projects.map((p: { id: string }) => p.id), [projectA]);
    assert.deepEqual((await ks.admin.get(`/v3/users/${memberId}/projects`)).body.projects.map((p: { id: string }) => p.id), [projectA]);
    assert.equal((await reader.get(`/v3/users/${memberId}/projects`)).status, 403);
    assert.equal((await domainReader.get(`/v3/users/${memberId}/projects`)).status, 200);
    assert.deepEqual((await ks.admin.get(`/v3/users/${memberId}/projects?name=nope`)).body.projects, []);
  });
});
