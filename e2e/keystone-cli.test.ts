import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PYTHON, sharedCloud, type Cloud } from './cloud.ts';

const run = promisify(execFile);

/** The unmodified openstack CLI and openstacksdk against `onestack up`. */
describe('openstack CLI against onestack up', () => {
  let c: Cloud;
  before(async () => {
    c = await sharedCloud('keystone-cli');
  });
  after(() => c?.stop());

  it('reports every service up', async () => {
    const { stdout } = await c.onestack('status', '--json');
    const st = JSON.parse(stdout);
    assert.ok(st.pid > 0);
    assert.ok(st.services.every((s: { status: string }) => s.status === 'up'));
  });

  it('issues and revokes tokens', async () => {
    const admin = await c.os('onestack', 'token', 'issue');
    assert.match(admin.id, /^gAAAAA/);
    const demo = await c.os('onestack-demo', 'token', 'issue');
    assert.ok(demo.project_id);
    await c.osRaw('onestack', 'token', 'revoke', demo.id);
  });

  it('manages domains, projects, users, groups and roles', async () => {
    const dom = await c.os('onestack', 'domain', 'create', '--description', 'e2e', 'e2e-dom');
    assert.equal(dom.name, 'e2e-dom');
    const proj = await c.os('onestack', 'project', 'create', '--domain', 'e2e-dom', '--description', 'p', 'e2e-proj');
    assert.equal(proj.domain_id, dom.id);
    const user = await c.os('onestack', 'user', 'create', '--domain', 'e2e-dom', '--password', 'e2e-pass-1', '--project', proj.id, 'e2e-user');
    assert.equal(user.domain_id, dom.id);
    const group = await c.os('onestack', 'group', 'create', '--domain', 'e2e-dom', 'e2e-group');
    await c.osRaw('onestack', 'group', 'add', 'user', '--group-domain', 'e2e-dom', '--user-domain', 'e2e-dom', 'e2e-group', 'e2e-user');
    const role = await c.os('onestack', 'role', 'create', 'e2e-role');
    await c.osRaw('onestack', 'role', 'add', '--project', proj.id, '--user', user.id, 'member');
    await c.osRaw('onestack', 'role', 'add', '--project', proj.id, '--group', group.id, 'e2e-role');

    const listed = await c.os('onestack', 'project', 'list', '--domain', 'e2e-dom');
    assert.deepEqual(listed.map((p: { Name: string }) => p.Name), ['e2e-proj']);
    assert.equal((await c.os('onestack', 'user', 'show', user.id)).name, 'e2e-user');
    await c.osRaw('onestack', 'project', 'set', '--description', 'changed', proj.id);
    assert.equal((await c.os('onestack', 'project', 'show', proj.id)).description, 'changed');
    await c.osRaw('onestack', 'user', 'set', '--email', 'e2e@example.org', user.id);
    await c.osRaw('onestack', 'group', 'set', '--description', 'g', group.id);
    await c.osRaw('onestack', 'role', 'set', '--description', 'r', role.id);
    await c.osRaw('onestack', 'domain', 'set', '--description', 'd', dom.id);

    const assignments = await c.os('onestack', 'role', 'assignment', 'list', '--names', '--effective', '--user', user.id);
    const roles = assignments.map((a: { Role: string }) => a.Role).sort();
    // member implies reader; the group's role reaches the user effectively
    assert.deepEqual(roles, ['e2e-role', 'member', 'reader']);

    await c.osRaw('onestack', 'role', 'remove', '--project', proj.id, '--user', user.id, 'member');
    await c.osRaw('onestack', 'group', 'delete', group.id);
    await c.osRaw('onestack', 'role', 'delete', role.id);
    await c.osRaw('onestack', 'user', 'delete', user.id);
    await c.osRaw('onestack', 'project', 'delete', proj.id);
    await c.osRaw('onestack', 'domain', 'set', '--disable', dom.id);
    await c.osRaw('onestack', 'domain', 'delete', dom.id);
    const domains = await c.os('onestack', 'domain', 'list');
    assert.ok(!domains.some((d: { Name: string }) => d.Name === 'e2e-dom'));
  });

  it('authenticates with an application credential', async () => {
    const ac = await c.os('onestack-demo', 'application', 'credential', 'create', 'e2e-ac');
    assert.ok(ac.secret);
    const { stdout } = await run(
      '/usr/bin/openstack',
      ['--os-auth-type', 'v3applicationcredential', '--os-auth-url', authUrl(c), '--os-application-credential-id', ac.id, '--os-application-credential-secret', ac.secret, '--os-identity-api-version', '3', 'token', 'issue', '-f', 'json'],
      { env: { ...c.env, OS_CLOUD: '' } },
    );
    assert.ok(JSON.parse(stdout).id);
    await c.osRaw('onestack-demo', 'application', 'credential', 'delete', ac.id);
  });

  it('manages the catalog: services, endpoints, regions', async () => {
    const region = await c.os('onestack', 'region', 'create', '--description', 'second', 'RegionTwo');
    assert.equal(region.region, 'RegionTwo');
    const svc = await c.os('onestack', 'service', 'create', '--name', 'e2e-svc', '--description', 'x', 'e2e-type');
    const ep = await c.os('onestack', 'endpoint', 'create', '--region', 'RegionTwo', svc.id, 'public', 'http://127.0.0.1:9/v1/%(tenant_id)s');
    assert.equal(ep.interface, 'public');
    await c.osRaw('onestack', 'endpoint', 'set', '--url', 'http://127.0.0.1:9/v2/%(tenant_id)s', ep.id);
    assert.match((await c.os('onestack', 'endpoint', 'show', ep.id)).url, /v2/);
    const catalog = await c.os('onestack', 'catalog', 'list');
    assert.ok(catalog.some((s: { Name: string }) => s.Name === 'e2e-svc'));
    await c.osRaw('onestack', 'service', 'set', '--description', 'y', svc.id);
    await c.osRaw('onestack', 'region', 'set', '--description', 'y', 'RegionTwo');
    await c.osRaw('onestack', 'endpoint', 'delete', ep.id);
    await c.osRaw('onestack', 'service', 'delete', svc.id);
    await c.osRaw('onestack', 'region', 'delete', 'RegionTwo');
  });

  it('changes its own password', async () => {
    await c.os('onestack', 'user', 'create', '--password', 'first-pass-1', '--project', c.project, 'pw-user');
    await c.osRaw('onestack', 'role', 'add', '--project', c.project, '--user', 'pw-user', 'member');
    const env = { ...c.env, OS_AUTH_URL: authUrl(c), OS_USERNAME: 'pw-user', OS_PASSWORD: 'first-pass-1', OS_PROJECT_NAME: c.project, OS_USER_DOMAIN_NAME: 'Default', OS_PROJECT_DOMAIN_NAME: 'Default', OS_IDENTITY_API_VERSION: '3' };
    await run('/usr/bin/openstack', ['user', 'password', 'set', '--original-password', 'first-pass-1', '--password', 'second-pass-2'], { env });
    const { stdout } = await run('/usr/bin/openstack', ['token', 'issue', '-f', 'json'], { env: { ...env, OS_PASSWORD: 'second-pass-2' } });
    assert.ok(JSON.parse(stdout).id);
  });

  it('manages unified limits', async () => {
    const svc = await c.os('onestack', 'service', 'create', '--name', 'nova-e2e', 'compute');
    const reg = await c.os('onestack', 'registered', 'limit', 'create', '--service', svc.id, '--default-limit', '20', '--region', 'RegionOne', 'cores');
    assert.equal(reg.default_limit, 20);
    const lim = await c.os('onestack', 'limit', 'create', '--project', c.project, '--service', svc.id, '--resource-limit', '10', '--region', 'RegionOne', 'cores');
    assert.equal((await c.os('onestack', 'limit', 'show', lim.id)).resource_limit, 10);
    const listed = await c.os('onestack-demo', 'limit', 'list');
    assert.equal(listed.length, 1);
    // A second compute service left in the shared cloud's catalog would be there for the files after this one.
    await c.osRaw('onestack', 'limit', 'delete', lim.id);
    await c.osRaw('onestack', 'registered', 'limit', 'delete', reg.id);
    await c.osRaw('onestack', 'service', 'delete', svc.id);
  });

  it('lists projects with openstacksdk through clouds.yaml', async () => {
    const script = 'import openstack\nconn = openstack.connect(cloud="onestack")\nprint(sorted(p.name for p in conn.identity.projects()))\n';
    const { stdout } = await run(PYTHON, ['-c', script], { env: c.env });
    assert.match(stdout, /'admin'/);
    assert.match(stdout, /'demo'/);
  });
});

function authUrl(c: Cloud): string {
  return `http://127.0.0.1:${c.env.ONESTACK_KEYSTONE__PORT}/v3`;
}
