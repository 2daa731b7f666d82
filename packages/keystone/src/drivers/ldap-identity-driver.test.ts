import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Client } from 'ldapts';
import pino from 'pino';
import { startSlapd, tempDir, type Slapd } from '@onestack/testing/index.ts';
import { loadDomainConfigFile, type LdapConfig } from '../domain/domain-config.ts';
import { CONTRACT_DATA, identityDriverContract, type ContractData } from './identity-driver-contract.ts';
import { LdapBackendError, LdapIdentityDriver, normalizeDn, parseDn } from './ldap-identity-driver.ts';

const SERVICE_PASSWORD = 'svc-pw;with#odd "chars"';

let slapd: Slapd;
const configDir = tempDir('onestack-ldap-conf-');

before(async () => {
  slapd = await startSlapd();
  await withRoot(async (c) => {
    await c.add(`cn=keystone,${slapd.suffix}`, {
      objectClass: ['organizationalRole', 'simpleSecurityObject'],
      cn: 'keystone',
      userPassword: SERVICE_PASSWORD,
    });
  });
});
after(async () => {
  await slapd?.stop();
  configDir.remove();
});

async function withRoot(fn: (c: Client) => Promise<void>): Promise<void> {
  const c = new Client({ url: slapd.url });
  try {
    await c.bind(slapd.rootDn, slapd.rootPassword);
    await fn(c);
  } finally {
    await c.unbind();
  }
}

/** An RDN with its value escaped as RFC 4514 requires. */
function rdn(type: string, value: string): string {
  const escaped = value.replace(/[,+"\\<>;=]/g, (ch) => `\\${ch}`).replace(/^[ #]/, (ch) => `\\${ch}`).replace(/ $/, '\\ ');
  return `${type}=${escaped}`;
}

let files = 0;
/** The [ldap] section written to keystone.<domain>.conf and read back, as an operator's file would be. */
function ldapConf(options: Record<string, string | number | boolean>): LdapConfig {
  const file = join(configDir.path, `keystone.dom${++files}.conf`);
  const lines = Object.entries({ url: slapd.url, user: `cn=keystone,${slapd.suffix}`, password: SERVICE_PASSWORD, suffix: slapd.suffix, pool_retry_delay: 0.01, ...options });
  // Quoted, so ';' and '#' in values are not comments.
  writeFileSync(file, `[identity]\ndriver = ldap\n\n[ldap]\n${lines.map(([k, v]) => `${k} = "${String(v).replace(/"/g, '\\"')}"`).join('\n')}\n`);
  return loadDomainConfigFile(file).config.ldap;
}

/**
 * Layout A, upstream's defaults: inetOrgPerson users under ou=Users (id cn,
 * name sn), groupOfNames under ou=UserGroups (id cn, name ou) listing member
 * DNs. Ids and DNs need escaping; one member DN is not named by the id
 * attribute; zoë has no enabled attribute.
 */
const A_IDS: Record<string, string> = { alice: 'u-alice', bob: 'u-bob', 'carol, (ops)*': 'carol, (ops)+1', dave: 'u-dave', 'zoë': 'u-zoë' };
const aUserDn = (name: string) => (name === 'dave' ? `uid=dave,ou=Users,${slapd.suffix}` : `${rdn('cn', A_IDS[name])},ou=Users,${slapd.suffix}`);

async function seedLayoutA(data: ContractData): Promise<void> {
  await withRoot(async (c) => {
    for (const ou of ['Users', 'UserGroups']) await c.add(`ou=${ou},${slapd.suffix}`, { objectClass: 'organizationalUnit', ou });
    for (const u of data.users) {
      await c.add(aUserDn(u.name), {
        objectClass: ['inetOrgPerson'],
        cn: A_IDS[u.name],
        sn: u.name,
        userPassword: u.password,
        ...(u.name === 'dave' ? { uid: 'dave' } : {}),
        ...(u.name === 'zoë' ? {} : { employeeType: u.enabled ? 'TRUE' : 'FALSE' }),
        ...(u.email ? { mail: u.email } : {}),
        ...(u.description ? { description: u.description } : {}),
        ...(u.name === 'alice' ? { telephoneNumber: '+1 555 0100', departmentNumber: 'project-42' } : {}),
      });
    }
    const ghost = `cn=ghost,ou=Users,${slapd.suffix}`;
    for (const [i, g] of data.groups.entries()) {
      // groupOfNames needs a member: an empty group lists a DN that is no user.
      const members = g.members.length ? g.members.map(aUserDn) : [ghost];
      if (g.name === 'developers') members.push(`cn=keystone,${slapd.suffix}`, ghost);
      await c.add(`cn=g${i},ou=UserGroups,${slapd.suffix}`, { objectClass: 'groupOfNames', cn: `g${i}`, ou: g.name, description: g.description, member: members });
    }
    // Emulated enabled flag: the DNs spelled differently from the entries' own.
    await c.add(`cn=enabled_users,ou=Users,${slapd.suffix}`, {
      objectClass: 'groupOfNames',
      cn: 'enabled_users',
      member: [`CN=U-Alice , OU=users,${slapd.suffix.toUpperCase()}`, aUserDn('zoë')],
    });
  });
}

/**
 * Layout B, a posix directory: users spread over sub-OUs (query_scope sub),
 * id uid, name displayName, enabled as a userAccountControl-like bitmask;
 * posixGroup groups (id gidNumber, name cn) listing memberUid ids.
 */
// memberUid is IA5 (ASCII) text.
const bId = (name: string) => `${name.normalize('NFD').replace(/[^\x20-\x7e]/g, '')}-b`;
async function seedLayoutB(data: ContractData): Promise<void> {
  const base = `ou=B,${slapd.suffix}`;
  await withRoot(async (c) => {
    for (const dn of [base, `ou=People,${base}`, `ou=eng,ou=People,${base}`, `ou=ops,ou=People,${base}`, `ou=Groups,${base}`]) {
      await c.add(dn, { objectClass: 'organizationalUnit', ou: /^ou=([^,]+)/.exec(dn)![1] });
    }
    for (const [i, u] of data.users.entries()) {
      await c.add(`${rdn('uid', bId(u.name))},ou=${i % 2 ? 'eng' : 'ops'},ou=People,${base}`, {
        objectClass: ['inetOrgPerson', 'posixAccount', 'shadowAccount'],
        uid: bId(u.name),
        cn: `person ${i}`,
        sn: `person ${i}`,
        displayName: u.name,
        uidNumber: String(5000 + i),
        gidNumber: '5000',
        homeDirectory: `/home/u${i}`,
        userPassword: u.password,
        ...(u.email ? { mail: u.email } : {}),
        ...(u.description ? { description: u.description } : {}),
        // 514 = 512 | ACCOUNTDISABLE; no attribute = user_enabled_default.
        ...(u.name === 'alice' ? { shadowFlag: '512' } : u.name === 'bob' ? { shadowFlag: '514' } : u.name === 'dave' ? { shadowFlag: '0' } : {}),
      });
    }
    for (const [i, g] of data.groups.entries()) {
      await c.add(`cn=${g.name},ou=Groups,${base}`, {
        objectClass: 'posixGroup',
        cn: g.name,
        gidNumber: String(7000 + i),
        description: g.description,
        ...(g.members.length ? { memberUid: [...g.members.map(bId), 'ghost-b'] } : {}),
      });
    }
  });
}

const layoutA = () => ({ user_enabled_attribute: 'employeeType', page_size: 2, pool_size: 2, auth_pool_size: 2 });

identityDriverContract('LDAP, inetOrgPerson and groupOfNames with member DNs', async (data) => {
  await seedLayoutA(data);
  // The first URL is dead: connections fail over to the second.
  const dead = await closedPort();
  return { driver: new LdapIdentityDriver(ldapConf({ ...layoutA(), url: `ldap://127.0.0.1:${dead}, ${slapd.url}` })) };
});

identityDriverContract('LDAP, posixAccount and posixGroup with memberUid, subtree scope, bitmask enabled, no pooling', async (data) => {
  await seedLayoutB(data);
  const base = `ou=B,${slapd.suffix}`;
  return {
    driver: new LdapIdentityDriver(
      ldapConf({
        query_scope: 'sub',
        use_pool: false,
        user_tree_dn: `ou=People,${base}`,
        user_objectclass: 'posixAccount',
        user_id_attribute: 'uid',
        user_name_attribute: 'displayName',
        user_enabled_attribute: 'shadowFlag',
        user_enabled_mask: 2,
        user_enabled_default: 512,
        group_tree_dn: `ou=Groups,${base}`,
        group_objectclass: 'posixGroup',
        group_id_attribute: 'gidNumber',
        group_name_attribute: 'cn',
        group_member_attribute: 'memberUid',
        group_members_are_ids: true,
      }),
    ),
  };
});

describe('LDAP driver options (layout A)', () => {
  const drivers: LdapIdentityDriver[] = [];
  const driver = (options: Record<string, string | number | boolean>) => {
    const d = new LdapIdentityDriver(ldapConf({ ...layoutA(), ...options }));
    drivers.push(d);
    return d;
  };
  const enabledByName = async (d: LdapIdentityDriver) => Object.fromEntries((await d.listUsers()).map((u) => [u.name, u.enabled]));
  after(() => Promise.all(drivers.map((d) => d.close())));

  it('user_enabled_invert reads the attribute as a lock flag, the default included (as upstream)', async () => {
    const inverted = await enabledByName(driver({ user_enabled_invert: true }));
    assert.deepEqual(inverted, { alice: false, bob: true, 'carol, (ops)*': false, dave: false, 'zoë': false });
    const lenient = await enabledByName(driver({ user_enabled_invert: true, user_enabled_default: 'False' }));
    assert.equal(lenient['zoë'], true);
    assert.equal(lenient.alice, false);
  });

  it('user_enabled_emulation: members of cn=enabled_users are enabled, DNs compared as DNs', async () => {
    const d = driver({ user_enabled_emulation: true });
    assert.deepEqual(await enabledByName(d), { alice: true, bob: false, 'carol, (ops)*': false, dave: false, 'zoë': true });
    assert.deepEqual((await d.listUsers({ enabled: true })).map((u) => u.name), ['alice', 'zoë']);
  });

  it('an unset enabled attribute leaves everyone enabled; user_attribute_ignore drops attributes', async () => {
    assert.ok(Object.values(await enabledByName(driver({ user_enabled_attribute: 'enabled' }))).every(Boolean));
    const ignoring = await driver({ user_attribute_ignore: 'enabled,email' }).getUser('u-bob');
    assert.equal(ignoring?.enabled, true);
    assert.equal(ignoring?.email, undefined);
  });

  it('user_filter restricts every lookup, authentication included', async () => {
    const d = driver({ user_filter: '(mail=*)' });
    assert.deepEqual((await d.listUsers()).map((u) => u.name), ['alice', 'bob', 'zoë']);
    assert.equal(await d.getUser('u-dave'), undefined);
    assert.equal(await d.authenticate('u-dave', 'dave-secret-4'), false);
    assert.deepEqual((await d.listUsersInGroup('g0')).map((u) => u.name), ['alice', 'bob']);
  });

  it('maps additional attributes and the default project', async () => {
    const d = driver({
      user_additional_attribute_mapping: 'telephoneNumber:phone',
      user_attribute_ignore: '',
      user_default_project_id_attribute: 'departmentNumber',
      group_additional_attribute_mapping: 'cn:ldap_cn',
    });
    const alice = await d.getUser('u-alice');
    assert.deepEqual(alice?.extra, { phone: '+1 555 0100' });
    assert.equal(alice?.defaultProjectId, 'project-42');
    assert.deepEqual((await d.getGroup('g1'))?.extra, { ldap_cn: 'g1' });
    // The default ignores default_project_id, as upstream.
    assert.equal((await driver({ user_default_project_id_attribute: 'departmentNumber' }).getUser('u-alice'))?.defaultProjectId, undefined);
  });

  it('one-level scope does not see users below the tree', async () => {
    const d = driver({ user_tree_dn: `ou=B,${slapd.suffix}`, user_id_attribute: 'uid' });
    assert.deepEqual(await d.listUsers(), []);
    const sub = driver({ user_tree_dn: `ou=B,${slapd.suffix}`, user_id_attribute: 'uid', query_scope: 'sub', user_name_attribute: 'displayName' });
    assert.equal((await sub.listUsers()).length, CONTRACT_DATA.users.length);
  });
});

describe('LDAP connections', () => {
  it('reconnects after the server drops every connection, and keeps binding as the service account', async () => {
    const d = new LdapIdentityDriver(ldapConf(layoutA()));
    try {
      assert.equal(await d.authenticate('u-alice', 'alice-secret-1'), true);
      assert.equal((await d.getUser('u-alice'))?.name, 'alice');
      await slapd.restart();
      // Anonymous reads see nothing here: finding alice proves the new connection is bound.
      assert.equal((await d.getUser('u-alice'))?.name, 'alice');
      assert.equal(await d.authenticate('u-alice', 'alice-secret-1'), true);
      assert.equal(await d.authenticate('u-alice', 'nope'), false);
    } finally {
      await d.close();
    }
  });

  it('retries an operation whose connection breaks under it, on a new connection', async () => {
    // A proxy that can cut a connection the moment the next request goes through it.
    let cutNext = false;
    let cuts = 0;
    const proxy = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: slapd.port });
      client.on('data', (chunk) => {
        if (cutNext) {
          cutNext = false;
          cuts++;
          client.destroy();
          upstream.destroy();
          return;
        }
        upstream.write(chunk);
      });
      upstream.pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const { port } = proxy.address() as { port: number };
    const d = new LdapIdentityDriver(ldapConf({ ...layoutA(), url: `ldap://127.0.0.1:${port}` }));
    try {
      assert.equal((await d.getUser('u-alice'))?.name, 'alice');
      assert.equal(await d.authenticate('u-alice', 'alice-secret-1'), true);
      cutNext = true;
      assert.equal((await d.getUser('u-alice'))?.name, 'alice');
      cutNext = true;
      assert.equal(await d.authenticate('u-alice', 'alice-secret-1'), true);
      assert.equal(cuts, 2);
    } finally {
      await d.close();
      proxy.close();
    }
  });

  it('reports a wrong service password as a backend error, without the password in errors or logs', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    const badPassword = 'wrong-Service-Pw-123';
    const conf = ldapConf({ ...layoutA(), password: badPassword });
    const d = new LdapIdentityDriver(conf, logger);
    try {
      const err = await d.getUser('u-alice').then(
        () => assert.fail('expected a failure'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof LdapBackendError, String(err));
      assert.match(err.message, /cn=keystone/);
      logger.error({ err, conf, driver: d }, 'lookup failed');
      const everything = [err.message, String(err.stack), JSON.stringify(conf), ...lines].join('\n');
      assert.ok(lines.length > 0);
      assert.ok(!everything.includes(badPassword), 'the service password leaked');
      // authenticate() does not turn a backend failure into "wrong password".
      await assert.rejects(d.authenticate('u-alice', 'alice-secret-1'), LdapBackendError);
    } finally {
      await d.close();
    }
  });

  it('never lets an empty password through, even where the server takes it as an anonymous bind', async () => {
    const lax = await startSlapd({ global: ['allow bind_anon_dn'], access: ['access to * by * read'] });
    try {
      const dn = `cn=u-alice,${lax.suffix}`;
      const c = new Client({ url: lax.url });
      await c.bind(lax.rootDn, lax.rootPassword);
      await c.add(dn, { objectClass: 'inetOrgPerson', cn: 'u-alice', sn: 'alice', userPassword: 'alice-secret-1' });
      // The trap itself: this server accepts a DN with no password.
      await c.bind(dn, '');
      await c.unbind();
      const d = new LdapIdentityDriver(ldapConf({ url: lax.url, suffix: lax.suffix, user: '', password: '', user_tree_dn: lax.suffix }));
      try {
        assert.equal(await d.authenticate('u-alice', 'alice-secret-1'), true);
        assert.equal(await d.authenticate('u-alice', ''), false);
      } finally {
        await d.close();
      }
    } finally {
      await lax.stop();
    }
  });

  it('fails fast when no server answers', async () => {
    const port = await closedPort();
    const d = new LdapIdentityDriver(ldapConf({ url: `ldap://127.0.0.1:${port}`, pool_retry_max: 2 }));
    const t0 = Date.now();
    await assert.rejects(d.getUserByName('alice'), (e: unknown) => e instanceof LdapBackendError && /unavailable/.test(e.message));
    assert.ok(Date.now() - t0 < 2000);
    await d.close();
  });

  it('times out on a server that never answers', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    const d = new LdapIdentityDriver({ ...ldapConf({ url: `ldap://127.0.0.1:${port}` }), operationTimeoutMs: 300 });
    try {
      const t0 = Date.now();
      await assert.rejects(d.getUser('u-alice'), (e: unknown) => e instanceof LdapBackendError && /timed out/i.test(e.message));
      assert.ok(Date.now() - t0 < 2000, 'timeouts are not retried');
    } finally {
      await d.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe('LDAP over TLS', () => {
  let secure: Slapd;
  const conf = (options: Record<string, string | number | boolean>) =>
    ldapConf({ suffix: secure.suffix, user: secure.rootDn, password: secure.rootPassword, tls_cacertfile: secure.caFile!, pool_retry_max: 0, ...options });
  const check = async (options: Record<string, string | number | boolean>) => {
    const d = new LdapIdentityDriver(conf(options));
    try {
      assert.equal((await d.getUser('u-alice'))?.name, 'alice');
      assert.equal(await d.authenticate('u-alice', 'alice-secret-1'), true);
      assert.equal(await d.authenticate('u-alice', 'alice-secret-2'), false);
    } finally {
      await d.close();
    }
  };

  before(async () => {
    // The server refuses every operation but StartTLS on a connection without TLS.
    secure = await startSlapd({ tls: true, global: ['security tls=1'] });
    const c = new Client({ url: secure.ldapsUrl!, tlsOptions: { ca: [readFileSync(secure.caFile!)] } });
    await c.bind(secure.rootDn, secure.rootPassword);
    await c.add(`ou=Users,${secure.suffix}`, { objectClass: 'organizationalUnit', ou: 'Users' });
    await c.add(`cn=u-alice,ou=Users,${secure.suffix}`, { objectClass: 'inetOrgPerson', cn: 'u-alice', sn: 'alice', userPassword: 'alice-secret-1' });
    await c.unbind();
  });
  after(() => secure?.stop());

  it('speaks LDAPS, verifying the server against tls_cacertfile', () => check({ url: secure.ldapsUrl! }));

  it('upgrades ldap:// with StartTLS (use_tls), again after the server dropped the connections', async () => {
    const d = new LdapIdentityDriver(conf({ url: secure.url, use_tls: true }));
    try {
      assert.equal((await d.getUser('u-alice'))?.name, 'alice');
      assert.equal(await d.authenticate('u-alice', 'alice-secret-1'), true);
      await secure.restart();
      // This server answers "confidentiality required" to anything sent in clear.
      assert.equal((await d.getUser('u-alice'))?.name, 'alice');
      assert.equal(await d.authenticate('u-alice', 'alice-secret-1'), true);
    } finally {
      await d.close();
    }
  });

  it('refuses a server its CA does not vouch for, unless tls_req_cert says otherwise', async () => {
    const other = tempDir('onestack-other-ca-');
    try {
      const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'k.pem', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=other'], { cwd: other.path });
      assert.equal(made.status, 0);
      const d = new LdapIdentityDriver(conf({ url: secure.ldapsUrl!, tls_cacertfile: join(other.path, 'ca.pem') }));
      await assert.rejects(d.getUser('u-alice'), LdapBackendError);
      await d.close();
      await check({ url: secure.ldapsUrl!, tls_cacertfile: join(other.path, 'ca.pem'), tls_req_cert: 'never' });
    } finally {
      other.remove();
    }
  });

  it('gets nothing from this server without TLS', async () => {
    const d = new LdapIdentityDriver(ldapConf({ url: secure.url, suffix: secure.suffix, user: secure.rootDn, password: secure.rootPassword, pool_retry_max: 0 }));
    await assert.rejects(d.getUser('u-alice'), /confidentiality required/i);
    await d.close();
  });
});

describe('DN handling', () => {
  it('parses escaped and multi-valued RDNs', () => {
    assert.deepEqual(parseDn('cn=carol\\, (ops)\\+1,ou=Users,dc=example,dc=org')?.[0], [['cn', 'carol, (ops)+1']]);
    assert.deepEqual(parseDn('CN=a\\2Cb+UID=x , OU=q')?.map((r) => r), [[['cn', 'a,b'], ['uid', 'x']], [['ou', 'q']]]);
    assert.deepEqual(parseDn('cn=zo\\C3\\AB,dc=x')?.[0], [['cn', 'zoë']]);
    assert.equal(parseDn('not a dn'), undefined);
    assert.equal(normalizeDn('CN=U-Alice , OU=users,DC=Example'), normalizeDn('cn=u-alice,ou=Users,dc=example'));
  });
});

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
