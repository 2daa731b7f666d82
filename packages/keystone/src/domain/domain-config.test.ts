import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '@onestack/core/config/index.ts';
import { tempDir } from '@onestack/testing/index.ts';
import { loadDomainConfigFile, loadDomainConfigs, publicIdFor } from './domain-config.ts';

const dirs: Array<{ path: string; remove: () => void }> = [];
after(() => dirs.forEach((d) => d.remove()));

function configDir(files: Record<string, string>): string {
  const dir = tempDir('onestack-domains-');
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir.path, name, '..'), { recursive: true });
    writeFileSync(join(dir.path, name), text);
  }
  return dir.path;
}

const problemsOf = (fn: () => unknown): readonly string[] => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail('expected a ConfigError');
};

describe('domain configuration files', () => {
  it('reads keystone.<domain>.conf files, recursively, ignoring everything else', () => {
    const ldap = '[identity]\ndriver = ldap\n[ldap]\nurl = ldap://a.example.org\n';
    const dir = configDir({
      'keystone.Corp.conf': ldap,
      'keystone.dotted.name.conf': ldap,
      'nested/keystone.Lab.conf': ldap,
      'keystone.conf': '[identity]\ndriver = sql\n',
      'README.txt': 'not a config',
      'keystone.Corp.conf.bak': ldap,
    });
    const { configs, warnings } = loadDomainConfigs(dir);
    assert.deepEqual(configs.map((c) => c.domainName).sort(), ['Corp', 'Lab', 'dotted.name']);
    assert.deepEqual(warnings, []);
    assert.ok(configs.every((c) => c.driver === 'ldap' && c.file.startsWith(dir)));
  });

  it('warns about a missing directory, as upstream', () => {
    assert.deepEqual(loadDomainConfigs('/nonexistent/domains'), { configs: [], warnings: ['Unable to locate domain config directory: /nonexistent/domains'] });
  });

  it('applies upstream defaults and names', () => {
    const dir = configDir({ 'keystone.d.conf': '[identity]\ndriver = ldap\n[ldap]\nsuffix = dc=corp,dc=example\n' });
    const { ldap } = loadDomainConfigFile(join(dir, 'keystone.d.conf')).config;
    assert.deepEqual(ldap.urls, ['ldap://localhost']);
    assert.equal(ldap.bind, undefined);
    assert.equal(ldap.scope, 'one');
    assert.equal(ldap.pageSize, 0);
    assert.equal(ldap.derefAliases, undefined);
    assert.deepEqual(
      { ...ldap.users, filter: undefined },
      {
        treeDn: 'ou=Users,dc=corp,dc=example',
        objectClass: 'inetOrgPerson',
        filter: undefined,
        idAttribute: 'cn',
        // default_project_id is in user_attribute_ignore by default.
        attributes: { name: 'sn', email: 'mail', description: 'description', enabled: 'enabled' },
        additional: {},
      },
    );
    assert.equal(ldap.groups.treeDn, 'ou=UserGroups,dc=corp,dc=example');
    assert.deepEqual(ldap.groups.attributes, { name: 'ou', description: 'description' });
    assert.equal(ldap.groups.memberAttribute, 'member');
    assert.equal(ldap.groups.membersAreIds, false);
    assert.deepEqual(ldap.enabled, { attribute: 'enabled', invert: false, mask: 0, default: 'True', emulation: undefined });
    assert.equal(ldap.tls, undefined);
    assert.deepEqual(ldap.pool, { size: 10, retryMax: 3, retryDelayMs: 100, lifetimeMs: 600_000 });
    assert.deepEqual(ldap.authPool, { size: 100, lifetimeMs: 60_000 });
    assert.equal(ldap.connectTimeoutMs, 10_000);
    assert.equal(ldap.operationTimeoutMs, 30_000);
  });

  it('reads every option an operator sets', () => {
    const dir = configDir({ 'ca.pem': 'not really a certificate' });
    writeFileSync(
      join(dir, 'keystone.ad.conf'),
      `[identity]
driver = ldap

[ldap]
url = ldap://dc1.example.org, ldap://dc2.example.org:3389
user = CN=svc,DC=example,DC=org
; a quoted value keeps ';' and '#'
password = "p;ss#word"
suffix = DC=example,DC=org
query_scope = sub
page_size = 500
alias_dereferencing = searching
user_tree_dn = OU=Staff,DC=example,DC=org
user_filter = (memberOf=CN=cloud,OU=Groups,DC=example,DC=org)
user_objectclass = person
user_id_attribute = sAMAccountName
user_name_attribute = sAMAccountName
user_mail_attribute = userPrincipalName
user_enabled_attribute = userAccountControl
user_enabled_mask = 2
user_enabled_default = 512
user_attribute_ignore =
user_default_project_id_attribute = extensionAttribute1
user_additional_attribute_mapping = telephoneNumber:phone, bad-entry
group_tree_dn = OU=Groups,DC=example,DC=org
group_filter = objectClass=group
group_objectclass = group
group_id_attribute = cn
group_name_attribute = name
group_member_attribute = member
group_desc_attribute = info
group_ad_nesting = true
use_tls = true
tls_cacertfile = ${join(dir, 'ca.pem')}
tls_req_cert = allow
connection_timeout = 5
pool_connection_timeout = 3
pool_size = 4
pool_retry_max = 1
pool_retry_delay = 0.5
pool_connection_lifetime = 30
use_auth_pool = false
`,
    );
    const { config, warnings } = loadDomainConfigFile(join(dir, 'keystone.ad.conf'));
    const { ldap } = config;
    assert.equal(config.domainName, 'ad');
    assert.deepEqual(ldap.urls, ['ldap://dc1.example.org', 'ldap://dc2.example.org:3389']);
    assert.equal(ldap.bind?.dn, 'CN=svc,DC=example,DC=org');
    assert.equal(ldap.bind?.password(), 'p;ss#word');
    assert.equal(ldap.scope, 'sub');
    assert.equal(ldap.pageSize, 500);
    assert.equal(ldap.derefAliases, 'search');
    assert.equal(ldap.users.treeDn, 'OU=Staff,DC=example,DC=org');
    assert.equal(ldap.users.filter?.toString(), '(memberOf=CN=cloud,OU=Groups,DC=example,DC=org)');
    assert.deepEqual(ldap.users.attributes, {
      name: 'sAMAccountName',
      email: 'userPrincipalName',
      description: 'description',
      enabled: 'userAccountControl',
      default_project_id: 'extensionAttribute1',
    });
    assert.deepEqual(ldap.users.additional, { telephoneNumber: 'phone' });
    assert.match(warnings.join('\n'), /Invalid additional attribute mapping: "bad-entry"/);
    assert.deepEqual(ldap.enabled, { attribute: 'userAccountControl', invert: false, mask: 2, default: '512', emulation: undefined });
    // Written without parentheses, as upstream accepts.
    assert.equal(ldap.groups.filter?.toString(), '(objectClass=group)');
    assert.deepEqual(ldap.groups.attributes, { name: 'name', description: 'info' });
    assert.equal(ldap.groups.adNesting, true);
    assert.deepEqual(ldap.tls, { startTls: true, ca: [join(dir, 'ca.pem')], rejectUnauthorized: false });
    assert.equal(ldap.connectTimeoutMs, 3000);
    assert.deepEqual(ldap.pool, { size: 4, retryMax: 1, retryDelayMs: 500, lifetimeMs: 30_000 });
    // Without the auth pool, every end-user bind gets a fresh connection.
    assert.deepEqual(ldap.authPool, { size: 1, lifetimeMs: 0 });
  });

  it('defaults the emulation group below the user tree', () => {
    const dir = configDir({
      'keystone.e.conf': '[identity]\ndriver = ldap\n[ldap]\nsuffix = dc=x\nuser_enabled_emulation = true\n',
      'keystone.f.conf':
        '[identity]\ndriver = ldap\n[ldap]\nsuffix = dc=x\nuser_enabled_emulation = true\nuser_enabled_emulation_dn = cn=on,dc=x\nuser_enabled_emulation_use_group_config = true\ngroup_objectclass = posixGroup\ngroup_member_attribute = memberUid\ngroup_members_are_ids = true\n',
    });
    assert.deepEqual(loadDomainConfigFile(join(dir, 'keystone.e.conf')).config.ldap.enabled.emulation, {
      dn: 'cn=enabled_users,ou=Users,dc=x',
      memberAttribute: 'member',
      objectClass: 'groupOfNames',
      membersAreIds: false,
    });
    assert.deepEqual(loadDomainConfigFile(join(dir, 'keystone.f.conf')).config.ldap.enabled.emulation, {
      dn: 'cn=on,dc=x',
      memberAttribute: 'memberUid',
      objectClass: 'posixGroup',
      membersAreIds: true,
    });
  });

  it('refuses a second SQL driver, as upstream', () => {
    const dir = configDir({ 'keystone.s.conf': '[identity]\ndriver = sql\n', 'keystone.t.conf': '[ldap]\nurl = ldap://x\n' });
    const problems = problemsOf(() => loadDomainConfigs(dir));
    assert.deepEqual(problems, [
      `${join(dir, 'keystone.s.conf')}: The Keystone domain-specific configuration has specified more than one SQL driver (only one is permitted): ${join(dir, 'keystone.s.conf')}.`,
      // No [identity] driver means the default, sql.
      `${join(dir, 'keystone.t.conf')}: The Keystone domain-specific configuration has specified more than one SQL driver (only one is permitted): ${join(dir, 'keystone.t.conf')}.`,
    ]);
  });

  it('reports every problem of every file at once, never showing the password', () => {
    const dir = configDir({
      'keystone.a.conf': `[identity]
driver = ldap
[ldap]
url = ldaps://ldap.example.org, http://wrong
password = TopSecret-pw
user = cn=svc
use_tls = true
query_scope = deep
page_size = -1
user_filter = (&(cn=x)
user_enabled_mask = 2
user_name_attribute =
`,
      'keystone.b.conf': '[identity]\ndriver = ldap\n[ldap]\ntls_req_cert = maybe\n',
    });
    const problems = problemsOf(() => loadDomainConfigs(dir));
    const a = join(dir, 'keystone.a.conf');
    const b = join(dir, 'keystone.b.conf');
    assert.ok(problems.some((p) => p.startsWith(`${a}: invalid value "deep" for option [ldap] query_scope`)), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith(`${a}: invalid value "-1" for option [ldap] page_size`)));
    assert.ok(problems.some((p) => p.startsWith(`${b}: invalid value "maybe" for option [ldap] tls_req_cert`)));
    // Option-level problems stop a file before the cross-option checks: fix them and look again.
    writeFileSync(a, readFileSync(a, 'utf8').replace(/query_scope = deep\npage_size = -1\n/, ''));
    writeFileSync(b, '[identity]\ndriver = ldap\n');
    const second = problemsOf(() => loadDomainConfigs(dir)).map((p) => p.slice(a.length + 2));
    assert.deepEqual(second.slice(0, 3), [
      '[ldap] url http://wrong is not an ldap:// or ldaps:// URL (host and port only)',
      'Invalid TLS / LDAPS combination',
      'You need to set tls_cacertfile or tls_cacertdir if use_tls is true or url uses ldaps: scheme.',
    ]);
    assert.match(second[3], /^\[ldap\] user_filter is not a valid LDAP filter/);
    assert.deepEqual(second.slice(4), [
      '"" is not a valid value for "user_name_attribute"',
      '[ldap] user_enabled_default must be an integer when user_enabled_mask is set, got "True"',
    ]);
    assert.ok(!problems.join('\n').includes('TopSecret-pw'));
  });

  it('warns about unknown options and keeps the service password out of sight', () => {
    const dir = configDir({ 'keystone.w.conf': '[identity]\ndriver = ldap\n[ldap]\nuser = cn=svc\npassword = TopSecret-pw\nuser_tree = ou=x\nchase_referrals = true\n' });
    const { config, warnings } = loadDomainConfigFile(join(dir, 'keystone.w.conf'));
    assert.ok(warnings.some((w) => /unknown option \[ldap\] user_tree .*did you mean user_tree_dn/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /chase_referrals is not supported/.test(w)));
    assert.equal(config.ldap.bind?.password(), 'TopSecret-pw');
    assert.ok(!JSON.stringify(config).includes('TopSecret-pw'));
    assert.ok(!inspect(config, { depth: 10 }).includes('TopSecret-pw'));
  });

  it('binds anonymously, with a warning, unless both user and password are set', () => {
    const dir = configDir({ 'keystone.u.conf': '[identity]\ndriver = ldap\n[ldap]\nuser = cn=svc\n' });
    const { config, warnings } = loadDomainConfigFile(join(dir, 'keystone.u.conf'));
    assert.equal(config.ldap.bind, undefined);
    assert.match(warnings.join('\n'), /user and password must both be set/);
  });
});

describe('publicIdFor', () => {
  it("matches upstream's sha256 id generator", () => {
    // hashlib.sha256 over the values of {'domain_id', 'entity_type', 'local_id'} in sorted key order.
    assert.equal(publicIdFor('d1', 'alice', 'user'), '502ff5f0c85158c9ee6b9bc1e118e32ec0c91e39452f67738b36d8543d0551fc');
    assert.notEqual(publicIdFor('d1', 'alice', 'group'), publicIdFor('d1', 'alice', 'user'));
    assert.notEqual(publicIdFor('d2', 'alice', 'user'), publicIdFor('d1', 'alice', 'user'));
    assert.equal(publicIdFor('default', 'zoë', 'user'), '1974f11ddae20affdf4ad587c6ad45d4fbfa5c4a3cb858307073ce61a432f28e');
  });
});
