import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Attribute, Change, Client } from 'ldapts';
import pino from 'pino';
import { systemClock } from '@onestack/core/clock.ts';
import { ConfigError } from '@onestack/core/config/index.ts';
import { openDatabase, runMigrations } from '@onestack/core/db/index.ts';
import { randomIds } from '@onestack/core/ids.ts';
import { startSlapd, tempDir, type JsonClient, type Slapd } from '@onestack/testing/index.ts';
import { defaultKeystoneConfig } from '../src/conf.ts';
import { migrations } from '../src/db/migrations/index.ts';
import type { KeystoneDB } from '../src/db/schema.ts';
import { publicIdFor } from '../src/domain/domain-config.ts';
import { Keystone } from '../src/domain/keystone.ts';
import { ADMIN_PASSWORD, startKeystone, type KeystoneFixture } from './fixture.ts';

const HAVE_OPENSTACK_CLI = spawnSync('openstack', ['--version']).status === 0;
const FORBIDDEN = 'You are not authorized to perform the requested action.';
/** cn is the id, sn the name (upstream's defaults); employeeType says whether the account is enabled. */
const USERS = [
  { id: 'u-alice', name: 'alice', password: 'alice-pw', enabled: true },
  { id: 'u-bob', name: 'bob', password: 'bob-pw', enabled: true },
  { id: 'u-carol', name: 'carol', password: 'carol-pw', enabled: false },
];
const GROUPS = [
  { id: 'g-devs', name: 'devs', members: ['u-alice', 'u-bob'] },
  { id: 'g-ops', name: 'ops', members: ['u-carol'] },
];

async function asRoot(slapd: Slapd, fn: (c: Client) => Promise<void>): Promise<void> {
  const c = new Client({ url: slapd.url });
  try {
    await c.bind(slapd.rootDn, slapd.rootPassword);
    await fn(c);
  } finally {
    await c.unbind();
  }
}

async function seed(slapd: Slapd): Promise<void> {
  await asRoot(slapd, async (c) => {
    for (const ou of ['Users', 'UserGroups']) await c.add(`ou=${ou},${slapd.suffix}`, { objectClass: 'organizationalUnit', ou });
    for (const u of USERS) {
      await c.add(`cn=${u.id},ou=Users,${slapd.suffix}`, {
        objectClass: 'inetOrgPerson',
        cn: u.id,
        sn: u.name,
        userPassword: u.password,
        employeeType: u.enabled ? 'TRUE' : 'FALSE',
      });
    }
    for (const g of GROUPS) {
      await c.add(`cn=${g.id},ou=UserGroups,${slapd.suffix}`, {
        objectClass: 'groupOfNames',
        cn: g.id,
        ou: g.name,
        member: g.members.map((m) => `cn=${m},ou=Users,${slapd.suffix}`),
      });
    }
  });
}

function writeDomainConfig(dir: string, domainName: string, url: string, slapd: Slapd): void {
  writeFileSync(
    join(dir, `keystone.${domainName}.conf`),
    [
      '[identity]',
      'driver = ldap',
      '[ldap]',
      `url = ${url}`,
      `user = ${slapd.rootDn}`,
      `password = ${slapd.rootPassword}`,
      `suffix = ${slapd.suffix}`,
      'user_enabled_attribute = employeeType',
      'pool_retry_max = 0',
      '',
    ].join('\n'),
  );
}

/** A loopback port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

describe('keystone with an LDAP domain', () => {
  let slapd: Slapd;
  let fx: KeystoneFixture;
  const confDir = tempDir('onestack-ks-domains-');
  let ldapDomain: string;
  let projectId: string;
  const userId = (localId: string) => publicIdFor(ldapDomain, localId, 'user');
  const groupId = (localId: string) => publicIdFor(ldapDomain, localId, 'group');

  async function passwordToken(user: Record<string, unknown>, password: string, scope: unknown = { project: { id: projectId } }) {
    return fx.client.post('/v3/auth/tokens', { auth: { identity: { methods: ['password'], password: { user: { ...user, password } } }, scope } });
  }

  async function loginLdap(name: string, password: string): Promise<JsonClient> {
    const res = await passwordToken({ name, domain: { name: 'ldapdom' } }, password);
    assert.equal(res.status, 201, res.text);
    return fx.client.withToken(res.headers.get('x-subject-token')!);
  }

  const names = (items: Array<{ name: string }>) => items.map((i) => i.name);

  before(async () => {
    slapd = await startSlapd();
    await seed(slapd);
    writeDomainConfig(confDir.path, 'ldapdom', slapd.url, slapd);
    writeDomainConfig(confDir.path, 'deaddom', `ldap://127.0.0.1:${await closedPort()}`, slapd);
    // A file naming no domain is skipped, not fatal.
    writeDomainConfig(confDir.path, 'nosuchdomain', slapd.url, slapd);
    fx = await startKeystone({
      config: { domainConfigDir: confDir.path },
      // Start-up maps config file names to domains, so the domains exist first.
      beforeStart: async (ks) => {
        ldapDomain = (await ks.resource.createProject({ name: 'ldapdom', isDomain: true })).id;
        await ks.resource.createProject({ name: 'deaddom', isDomain: true });
      },
    });
    projectId = (await fx.ks.resource.createProject({ name: 'ldap-proj', domainId: 'default' })).id;
  });
  after(async () => {
    await fx?.close();
    await slapd?.stop();
    confDir.remove();
  });

  it('lists the directory users and groups under stable sha256 public ids', async () => {
    const res = await fx.admin.get(`/v3/users?domain_id=${ldapDomain}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      res.body.users.map((u: Record<string, unknown>) => [u.id, u.name, u.domain_id, u.enabled, u.password_expires_at]),
      USERS.map((u) => [userId(u.id), u.name, ldapDomain, u.enabled, null]),
    );
    assert.deepEqual((await fx.admin.get(`/v3/users?domain_id=${ldapDomain}`)).body.users, res.body.users, 'ids do not change');
    assert.deepEqual(names((await fx.admin.get(`/v3/users?domain_id=${ldapDomain}&enabled=false`)).body.users), ['carol']);
    assert.deepEqual(names((await fx.admin.get(`/v3/users?domain_id=${ldapDomain}&name=bob`)).body.users), ['bob']);

    const groups = await fx.admin.get(`/v3/groups?domain_id=${ldapDomain}`);
    assert.equal(groups.status, 200, groups.text);
    assert.deepEqual(
      groups.body.groups.map((g: Record<string, unknown>) => [g.id, g.name, g.domain_id]),
      GROUPS.map((g) => [groupId(g.id), g.name, ldapDomain]),
    );
    const mappings = await fx.database.db.selectFrom('id_mapping').selectAll().where('domain_id', '=', ldapDomain).execute();
    assert.equal(mappings.length, USERS.length + GROUPS.length);

    const alice = await fx.admin.get(`/v3/users/${userId('u-alice')}`);
    assert.equal(alice.status, 200, alice.text);
    assert.equal(alice.body.user.name, 'alice');
    assert.equal((await fx.admin.get(`/v3/groups/${groupId('g-devs')}`)).body.group.name, 'devs');
    assert.deepEqual(names((await fx.admin.get(`/v3/groups/${groupId('g-devs')}/users`)).body.users), ['alice', 'bob']);
    assert.deepEqual(names((await fx.admin.get(`/v3/users/${userId('u-carol')}/groups`)).body.groups), ['ops']);
    assert.equal((await fx.admin.head(`/v3/groups/${groupId('g-devs')}/users/${userId('u-alice')}`)).status, 204);
    assert.equal((await fx.admin.head(`/v3/groups/${groupId('g-devs')}/users/${userId('u-carol')}`)).status, 404);
  });

  it('gives directory users tokens with the roles granted to them and to their groups', async () => {
    const { member, reader } = fx.boot.roleIds;
    assert.equal((await fx.admin.put(`/v3/projects/${projectId}/users/${userId('u-alice')}/roles/${member}`)).status, 204);
    const res = await passwordToken({ name: 'alice', domain: { name: 'ldapdom' } }, 'alice-pw');
    assert.equal(res.status, 201, res.text);
    const token = res.body.token;
    assert.deepEqual(token.user.id, userId('u-alice'));
    assert.deepEqual(token.user.domain, { id: ldapDomain, name: 'ldapdom' });
    assert.deepEqual(names(token.roles).sort(), ['member', 'reader']);
    // By public id too.
    assert.equal((await passwordToken({ id: userId('u-alice') }, 'alice-pw')).status, 201);

    // bob holds a role only through the directory group devs.
    assert.equal((await fx.admin.put(`/v3/projects/${projectId}/groups/${groupId('g-devs')}/roles/${reader}`)).status, 204);
    const bob = await loginLdap('bob', 'bob-pw');
    const validated = await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': bob.token! });
    assert.equal(validated.status, 200, validated.text);
    assert.deepEqual(names(validated.body.token.roles), ['reader']);
    const effective = await fx.admin.get(`/v3/role_assignments?effective&user.id=${userId('u-bob')}`);
    assert.deepEqual(
      effective.body.role_assignments.map((a: { role: { id: string }; links: { membership?: string } }) => [a.role.id, a.links.membership?.split('/v3/')[1]]),
      [[reader, `groups/${groupId('g-devs')}/users/${userId('u-bob')}`]],
    );
    assert.deepEqual((await bob.get('/v3/auth/projects')).body.projects.map((p: { id: string }) => p.id), [projectId]);
  });

  it('refuses a wrong password, an unknown user and a disabled one with 401', async () => {
    assert.equal((await passwordToken({ name: 'alice', domain: { name: 'ldapdom' } }, 'wrong')).status, 401);
    assert.equal((await passwordToken({ name: 'alice', domain: { name: 'ldapdom' } }, '')).status, 401);
    assert.equal((await passwordToken({ name: 'nobody', domain: { name: 'ldapdom' } }, 'x')).status, 401);
    assert.equal((await passwordToken({ name: 'carol', domain: { name: 'ldapdom' } }, 'carol-pw', undefined)).status, 401);
  });

  it('refuses every write to the directory with upstream 403s', async () => {
    const refused = async (res: Promise<{ status: number; body: { error?: { message: string } }; text: string }>, message = FORBIDDEN) => {
      const r = await res;
      assert.equal(r.status, 403, r.text);
      assert.equal(r.body.error?.message, message);
    };
    const alice = userId('u-alice');
    const devs = groupId('g-devs');
    await refused(fx.admin.post('/v3/users', { user: { name: 'eve', domain_id: ldapDomain, password: 'eve-pw' } }));
    await refused(fx.admin.patch(`/v3/users/${alice}`, { user: { description: 'changed' } }));
    await refused(fx.admin.delete(`/v3/users/${alice}`));
    await refused(fx.admin.post('/v3/groups', { group: { name: 'admins', domain_id: ldapDomain } }));
    await refused(fx.admin.patch(`/v3/groups/${devs}`, { group: { description: 'changed' } }));
    await refused(fx.admin.delete(`/v3/groups/${devs}`));
    await refused(fx.admin.put(`/v3/groups/${devs}/users/${userId('u-carol')}`));
    await refused(fx.admin.delete(`/v3/groups/${devs}/users/${alice}`));
    assert.equal((await fx.client.post(`/v3/users/${alice}/password`, { user: { original_password: 'wrong', password: 'new-pw' } })).status, 401);
    await refused(fx.client.post(`/v3/users/${alice}/password`, { user: { original_password: 'alice-pw', password: 'new-pw' } }));

    const sqlGroup = (await fx.ks.identity.createGroup({ name: 'sql-group', domainId: 'default' })).id;
    const cross = (group: string, user: string) => `Group membership across backend boundaries is not allowed. Group in question is ${group}, user is ${user}.`;
    await refused(fx.admin.put(`/v3/groups/${sqlGroup}/users/${alice}`), cross(sqlGroup, 'u-alice'));
    await refused(fx.admin.put(`/v3/groups/${devs}/users/${fx.boot.adminUserId}`), cross('g-devs', fx.boot.adminUserId));

    // Nothing reached the directory, and alice's password is unchanged.
    await asRoot(slapd, async (c) => {
      const { searchEntries } = await c.search(`ou=Users,${slapd.suffix}`, { filter: '(description=*)' });
      assert.deepEqual(searchEntries, []);
    });
    await loginLdap('alice', 'alice-pw');
  });

  it('keeps SQL domains as they were', async () => {
    const { member } = fx.boot.roleIds;
    const sally = await fx.ks.identity.createUser({ name: 'sally', domainId: 'default', password: 'sally-pw' });
    await fx.ks.assignment.grant({ userId: sally.id }, { projectId }, member);
    const client = await fx.login('sally', 'sally-pw', { project: { id: projectId } });
    assert.equal((await client.get('/v3/auth/projects')).status, 200);
    // With domain-specific drivers a list without domain_id is of the token's project's domain.
    const listed = await fx.admin.get('/v3/users');
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(names(listed.body.users), ['admin', 'sally']);
    assert.deepEqual(names((await fx.admin.get('/v3/users?domain_id=default')).body.users), ['admin', 'sally']);
    assert.deepEqual(names((await fx.admin.get('/v3/groups')).body.groups), ['sql-group']);
  });

  it('stops validating a token once the directory disables its user and the cache expires', async () => {
    const alice = await loginLdap('alice', 'alice-pw');
    const validate = () => fx.admin.get('/v3/auth/tokens', { 'x-subject-token': alice.token! });
    assert.equal((await validate()).status, 200);
    const setEnabled = (value: string) =>
      asRoot(slapd, (c) => c.modify(`cn=u-alice,ou=Users,${slapd.suffix}`, new Change({ operation: 'replace', modification: new Attribute({ type: 'employeeType', values: [value] }) })));
    await setEnabled('FALSE');
    try {
      fx.ks.invalidateLocal();
      assert.equal((await validate()).status, 404);
      assert.equal((await passwordToken({ name: 'alice', domain: { name: 'ldapdom' } }, 'alice-pw')).status, 401);
    } finally {
      await setEnabled('TRUE');
    }
  });

  it('works with the openstack CLI', { skip: !HAVE_OPENSTACK_CLI && 'no openstack CLI' }, async () => {
    // Only these variables, so no clouds.yaml or OS_* of the caller's leaks in.
    const openstack = async (user: Record<string, string>, ...args: string[]) => {
      const env = { PATH: process.env.PATH, HOME: confDir.path, OS_AUTH_URL: `${fx.url}/v3`, OS_IDENTITY_API_VERSION: '3', ...user };
      const { stdout } = await promisify(execFile)('openstack', [...args, '-f', 'json'], { env });
      return JSON.parse(stdout);
    };
    const alice = { OS_USERNAME: 'alice', OS_USER_DOMAIN_NAME: 'ldapdom', OS_PASSWORD: 'alice-pw', OS_PROJECT_ID: projectId };
    const admin = { OS_USERNAME: 'admin', OS_USER_DOMAIN_NAME: 'Default', OS_PASSWORD: ADMIN_PASSWORD, OS_PROJECT_NAME: 'admin', OS_PROJECT_DOMAIN_ID: 'default' };
    const [token, users] = await Promise.all([openstack(alice, 'token', 'issue'), openstack(admin, 'user', 'list', '--domain', 'ldapdom')]);
    assert.equal(token.user_id, userId('u-alice'));
    assert.equal(token.project_id, projectId);
    assert.deepEqual(users.map((u: { Name: string }) => u.Name), USERS.map((u) => u.name));
  });

  it('answers 500 when the directory cannot be reached, never a wrong password', async () => {
    assert.equal((await passwordToken({ name: 'alice', domain: { name: 'deaddom' } }, 'alice-pw')).status, 500);
    const deaddom = (await fx.admin.get('/v3/domains?name=deaddom')).body.domains[0].id;
    assert.equal((await fx.admin.get(`/v3/users?domain_id=${deaddom}`)).status, 500);
  });

  it('deleting the domain forgets its public ids and grants, never the directory entries', async () => {
    assert.equal((await fx.admin.patch(`/v3/domains/${ldapDomain}`, { domain: { enabled: false } })).status, 200);
    assert.equal((await fx.admin.delete(`/v3/domains/${ldapDomain}`)).status, 204);
    const db = fx.database.db;
    assert.equal((await db.selectFrom('id_mapping').selectAll().where('domain_id', '=', ldapDomain).execute()).length, 0);
    const grants = await db.selectFrom('assignment').selectAll().where('actor_id', 'in', [userId('u-alice'), groupId('g-devs')]).execute();
    assert.deepEqual(grants, []);
    await asRoot(slapd, async (c) => {
      const { searchEntries } = await c.search(slapd.suffix, { scope: 'sub', filter: '(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))', attributes: ['cn'] });
      assert.equal(searchEntries.length, USERS.length + GROUPS.length);
    });
  });
});

describe('keystone start-up with domain configs', () => {
  const dir = tempDir('onestack-ks-startup-');
  after(() => dir.remove());

  async function keystoneWith(configDir: string, log: string[]): Promise<{ ks: Keystone; close: () => Promise<void> }> {
    const database = await openDatabase<KeystoneDB>(`sqlite://${join(dir.path, `ks-${log.length}-${Math.random().toString(36).slice(2)}.db`)}`);
    await runMigrations(database, 'keystone', [...migrations]);
    const sink = new Writable({ write: (chunk, _enc, done) => (log.push(JSON.parse(String(chunk)).msg), done()) });
    const config = { ...defaultKeystoneConfig({ stateDir: dir.path, publicUrl: 'http://127.0.0.1:0' }), domainConfigDir: configDir };
    const ks = new Keystone({ db: database.db, config, clock: systemClock, ids: randomIds, logger: pino({ level: 'warn' }, sink) });
    return { ks, close: async () => (await ks.close(), await database.close()) };
  }

  it('skips a file naming no domain, with upstream\'s warning', async () => {
    const configs = join(dir.path, 'unknown');
    mkdirSync(configs);
    writeFileSync(join(configs, 'keystone.ghost.conf'), '[identity]\ndriver = ldap\n[ldap]\nurl = ldap://127.0.0.1:1\n');
    const log: string[] = [];
    const { ks, close } = await keystoneWith(configs, log);
    try {
      await ks.start();
      assert.deepEqual(log, ['Invalid domain name (ghost) found in config file name']);
    } finally {
      await close();
    }
  });

  it('does not start with a broken domain config', async () => {
    const configs = join(dir.path, 'broken');
    mkdirSync(configs);
    writeFileSync(join(configs, 'keystone.Default.conf'), '[identity]\ndriver = ldap\n[ldap]\nurl = http://example.org\n');
    const { ks, close } = await keystoneWith(configs, []);
    try {
      await assert.rejects(ks.start(), (e: unknown) => e instanceof ConfigError && /not an ldap:\/\/ or ldaps:\/\/ URL/.test(e.message));
    } finally {
      await close();
    }
  });
});
