import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../clock.ts';
import type { AuthContext } from '../context.ts';
import { ApiError } from '../errors.ts';
import type { Credentials } from './checks.ts';
import {
  credentialsFromAuth,
  Enforcer,
  type EnforcerOptions,
  InvalidScopeError,
  PolicyNotRegisteredError,
  type RuleDefault,
} from './enforcer.ts';
import { PolicyParseError } from './parser.ts';

const dir = mkdtempSync(join(tmpdir(), 'policy-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
function policyFile(content?: string): string {
  const file = join(dir, `policy-${fileCount++}.yaml`);
  if (content !== undefined) writeFileSync(file, content);
  return file;
}

/** Rewrites the file with an mtime that surely differs, whatever the filesystem's granularity. */
function rewrite(file: string, content: string, mtimeSeconds: number): void {
  writeFileSync(file, content);
  utimesSync(file, mtimeSeconds, mtimeSeconds);
}

const defaults: RuleDefault[] = [
  { name: 'admin_required', checkStr: 'role:admin' },
  { name: 'owner', checkStr: 'user_id:%(target.user.id)s' },
  {
    name: 'identity:get_user',
    checkStr: 'rule:admin_required or (role:reader and rule:owner)',
    description: 'Show user details.',
    operations: [{ path: '/v3/users/{user_id}', method: 'GET' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:list_users',
    checkStr: 'role:reader and system_scope:all',
    description: 'List users.',
    scopeTypes: ['system'],
  },
  {
    name: 'compute:servers:show',
    checkStr: 'role:admin or (role:reader and project_id:%(project_id)s)',
    scopeTypes: ['project'],
  },
];

function auth(overrides: Partial<AuthContext> = {}): AuthContext {
  return {
    userId: 'u1',
    userDomainId: 'default',
    projectId: 'p1',
    projectDomainId: 'default',
    roles: ['reader', 'member'],
    methods: ['password'],
    auditIds: ['a1'],
    expiresAt: 0,
    ...overrides,
  };
}

const systemAuth = (): AuthContext => auth({ projectId: undefined, projectDomainId: undefined, system: 'all' });
const domainAuth = (): AuthContext => auth({ projectId: undefined, projectDomainId: undefined, domainId: 'd1' });

function enforcer(opts: Partial<EnforcerOptions> = {}): { enforcer: Enforcer; warnings: string[] } {
  const warnings: string[] = [];
  return {
    enforcer: new Enforcer({ defaults, logger: { warn: (m) => warnings.push(m) }, ...opts }),
    warnings,
  };
}

function denial(fn: () => void): ApiError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ApiError);
    return e;
  }
  assert.fail('expected a 403');
}

describe('credentialsFromAuth', () => {
  it('builds the oslo.context policy values', () => {
    assert.deepEqual(credentialsFromAuth(auth({ serviceUserId: 's1', serviceRoles: ['service'] })), {
      user_id: 'u1',
      user_domain_id: 'default',
      project_id: 'p1',
      project_domain_id: 'default',
      domain_id: undefined,
      system_scope: undefined,
      system: undefined,
      roles: ['reader', 'member'],
      is_admin_project: true,
      service_user_id: 's1',
      service_roles: ['service'],
    });
    const system = credentialsFromAuth(systemAuth());
    assert.equal(system.system_scope, 'all');
    assert.equal(system.system, 'all');
    assert.equal(credentialsFromAuth(auth({ isAdminProject: false })).is_admin_project, false);
  });
});

describe('Enforcer', () => {
  it('enforces the registered defaults', () => {
    const { enforcer: e } = enforcer();
    const creds = credentialsFromAuth(auth());
    assert.equal(e.enforce('identity:get_user', { target: { user: { id: 'u1' } } }, creds), true);
    assert.equal(e.enforce('identity:get_user', { 'target.user.id': 'u2' }, creds), false);
    assert.equal(e.enforce('identity:get_user', {}, credentialsFromAuth(auth({ roles: ['Admin'] }))), true);
    assert.equal(e.enforce('compute:servers:show', { project_id: 'p1' }, creds), true);
    assert.equal(e.enforce('compute:servers:show', { project_id: 'p2' }, creds), false);
  });

  it('authorize throws upstream 403 on denial and returns on success', () => {
    const { enforcer: e } = enforcer();
    e.authorize('compute:servers:show', { project_id: 'p1' }, auth());
    const err = denial(() => e.authorize('compute:servers:show', { project_id: 'p2' }, auth()));
    assert.equal(err.code, 'forbidden');
    assert.equal(err.status, 403);
    assert.equal(err.message, "Policy doesn't allow compute:servers:show to be performed.");
  });

  it('treats an unregistered rule name as a programming error', () => {
    const { enforcer: e } = enforcer();
    assert.throws(() => e.enforce('compute:nope', {}, { roles: [] }), PolicyNotRegisteredError);
    assert.throws(() => e.authorize('compute:nope', {}, auth()), PolicyNotRegisteredError);
  });

  it('refuses defaults that do not parse, are duplicated or loop', () => {
    assert.throws(() => new Enforcer({ defaults: [{ name: 'x', checkStr: 'role:a and' }] }), /x: .*role:a and/);
    assert.throws(() => new Enforcer({ defaults: [{ name: 'x', checkStr: '@' }, { name: 'x', checkStr: '!' }] }), /already registered/);
    assert.throws(
      () =>
        new Enforcer({
          defaults: [
            { name: 'a', checkStr: 'role:x or rule:b' },
            { name: 'b', checkStr: 'rule:a' },
          ],
        }),
      /cycle: a -> b -> a/,
    );
  });

  it('warns about rules referencing undefined rules, which stay false', () => {
    const { enforcer: e, warnings } = enforcer({ defaults: [{ name: 'x', checkStr: 'rule:typo or role:admin' }] });
    assert.match(warnings.join('\n'), /typo/);
    assert.equal(e.enforce('x', {}, { roles: ['reader'] }), false);
  });

  describe('scope types', () => {
    it('refuses a token whose scope the rule does not list', () => {
      const { enforcer: e } = enforcer();
      const project = credentialsFromAuth(auth());
      assert.equal(e.enforce('identity:list_users', {}, project), false);
      assert.equal(e.enforce('identity:list_users', {}, credentialsFromAuth(systemAuth())), true);
      assert.equal(e.enforce('compute:servers:show', { project_id: 'p1' }, credentialsFromAuth(systemAuth())), false);
      assert.equal(e.enforce('compute:servers:show', {}, credentialsFromAuth(domainAuth())), false);
      assert.equal(e.enforce('identity:get_user', { 'target.user.id': 'u1' }, credentialsFromAuth(domainAuth())), true);
    });

    it('detects the scope from system, system_scope or domain_id', () => {
      const { enforcer: e } = enforcer();
      const admin: Credentials = { roles: ['admin'], project_id: 'p1' };
      assert.equal(e.enforce('compute:servers:show', {}, admin), true);
      assert.equal(e.enforce('compute:servers:show', {}, { ...admin, system: 'all' }), false);
      assert.equal(e.enforce('compute:servers:show', {}, { ...admin, system_scope: 'all' }), false);
      assert.equal(e.enforce('compute:servers:show', {}, { ...admin, domain_id: 'd1' }), false);
    });

    it('authorize answers the same 403, with the scope error as its cause', () => {
      const { enforcer: e } = enforcer();
      const err = denial(() => e.authorize('identity:list_users', {}, auth({ roles: ['admin', 'reader'] })));
      assert.equal(err.status, 403);
      assert.equal(err.message, "Policy doesn't allow identity:list_users to be performed.");
      assert.ok(err.cause instanceof InvalidScopeError);
      assert.equal(
        err.cause.message,
        `"identity:list_users": "role:reader and system_scope:all" requires a scope of ['system'], request was made with project scope.`,
      );
    });

    it('only warns, once per rule, when enforceScope is off', () => {
      const { enforcer: e, warnings } = enforcer({ enforceScope: false });
      const admin = credentialsFromAuth(auth({ roles: ['admin'] }));
      assert.equal(e.enforce('compute:servers:show', {}, { ...admin, system: 'all' }), true);
      assert.equal(e.enforce('compute:servers:show', {}, { ...admin, system: 'all' }), true);
      assert.equal(warnings.filter((w) => w.includes('failed scope check')).length, 1);
      assert.equal(e.enforce('identity:list_users', {}, admin), false, 'the rule itself still applies');
    });
  });

  describe('overrides file', () => {
    it('applies YAML overrides and lets them define helper rules', () => {
      const file = policyFile(
        [
          '# operators comment',
          '"admin_required": "role:cloud_admin"',
          '"compute:servers:show": "rule:admin_required or rule:custom"',
          'custom: "role:auditor"',
        ].join('\n'),
      );
      const { enforcer: e } = enforcer({ overrideFile: file });
      assert.equal(e.enforce('compute:servers:show', {}, { roles: ['auditor'] }), true);
      assert.equal(e.enforce('compute:servers:show', {}, { roles: ['cloud_admin'] }), true);
      assert.equal(e.enforce('compute:servers:show', {}, { roles: ['admin'] }), false);
      assert.equal(e.enforce('identity:get_user', {}, { roles: ['cloud_admin'] }), true, 'rule: references see overrides');
    });

    it('reads JSON, including tab indentation and the list syntax', () => {
      const file = policyFile('{\n\t"compute:servers:show": [["role:a", "role:b"], ["role:c"]],\n\t"identity:list_users": ""\n}\n');
      const { enforcer: e } = enforcer({ overrideFile: file });
      assert.equal(e.enforce('compute:servers:show', {}, { roles: ['a', 'b'] }), true);
      assert.equal(e.enforce('compute:servers:show', {}, { roles: ['a'] }), false);
      assert.equal(e.enforce('compute:servers:show', {}, { roles: ['c'] }), true);
      assert.equal(e.enforce('identity:list_users', {}, { roles: [], system: 'all' }), true);
    });

    it('treats a missing or empty file as no overrides', () => {
      assert.equal(enforcer({ overrideFile: policyFile() }).enforcer.enforce('admin_required', {}, { roles: ['admin'] }), true);
      assert.equal(enforcer({ overrideFile: policyFile('') }).enforcer.enforce('admin_required', {}, { roles: ['admin'] }), true);
      assert.equal(enforcer({ overrideFile: policyFile('# nothing\n') }).enforcer.enforce('admin_required', {}, { roles: ['admin'] }), true);
    });

    it('refuses a malformed file at start', () => {
      assert.throws(() => enforcer({ overrideFile: policyFile('"admin_required": "role:admin or"') }), PolicyParseError);
      assert.throws(() => enforcer({ overrideFile: policyFile('"admin_required": 3') }), /neither a string nor a list/);
      assert.throws(() => enforcer({ overrideFile: policyFile('- role:admin') }), /mapping/);
      assert.throws(() => enforcer({ overrideFile: policyFile('"a": "x"\n"a": "y"\n') }));
      assert.throws(() => enforcer({ overrideFile: policyFile('"a": "rule:b"\n"b": "rule:a"\n') }), /cycle/);
    });

    it('reloads when the file changes, checking at most once per interval', () => {
      const clock = new ManualClock();
      const file = policyFile('"admin_required": "role:admin"');
      utimesSync(file, 1000, 1000);
      const { enforcer: e } = enforcer({ overrideFile: file, clock, reloadIntervalMs: 2000 });
      const operator: Credentials = { roles: ['operator'] };
      assert.equal(e.enforce('admin_required', {}, operator), false);

      rewrite(file, '"admin_required": "role:operator"', 2000);
      clock.advance(1999);
      assert.equal(e.enforce('admin_required', {}, operator), false, 'not checked again before the interval');
      clock.advance(1);
      assert.equal(e.enforce('admin_required', {}, operator), true);

      rewrite(file, '"admin_required": "role:admin"', 3000);
      clock.advance(2000);
      assert.equal(e.enforce('admin_required', {}, operator), false);
    });

    it('picks up a file created after start and reverts when it is removed', () => {
      const clock = new ManualClock();
      const file = policyFile();
      const { enforcer: e } = enforcer({ overrideFile: file, clock });
      const operator: Credentials = { roles: ['operator'] };
      assert.equal(e.enforce('admin_required', {}, operator), false);
      rewrite(file, '"admin_required": "role:operator"', 1000);
      clock.advance(5000);
      assert.equal(e.enforce('admin_required', {}, operator), true);
      rmSync(file);
      clock.advance(5000);
      assert.equal(e.enforce('admin_required', {}, operator), false);
    });

    it('keeps the previous rules and warns when a reload fails', () => {
      const clock = new ManualClock();
      const file = policyFile('"admin_required": "role:operator"');
      utimesSync(file, 1000, 1000);
      const { enforcer: e, warnings } = enforcer({ overrideFile: file, clock });
      const operator: Credentials = { roles: ['operator'] };
      rewrite(file, '"admin_required": "role:operator or"', 2000);
      clock.advance(5000);
      assert.equal(e.enforce('admin_required', {}, operator), true);
      assert.match(warnings.join('\n'), /keeping the previous policy/);
      rewrite(file, '"admin_required": "role:admin"', 3000);
      clock.advance(5000);
      assert.equal(e.enforce('admin_required', {}, operator), false);
    });
  });

  describe('deprecated rules', () => {
    const renamed: RuleDefault = {
      name: 'foo:create_bar',
      checkStr: 'role:member and project_id:%(project_id)s',
      scopeTypes: ['project'],
      deprecatedRule: { name: 'foo:post_bar', checkStr: 'role:fizz', deprecatedReason: 'renamed', deprecatedSince: 'N' },
    };
    const changed: RuleDefault = {
      name: 'foo:delete_bar',
      checkStr: 'role:admin',
      deprecatedRule: { name: 'foo:delete_bar', checkStr: 'role:fizz', deprecatedSince: 'N' },
    };
    const project = (roles: string[]): Credentials => ({ roles, project_id: 'p1' });
    const target = { project_id: 'p1' };

    it('applies an override of the old name to the new rule', () => {
      const file = policyFile('"foo:post_bar": "role:buzz"');
      const { enforcer: e, warnings } = enforcer({ defaults: [renamed], overrideFile: file });
      assert.equal(e.enforce('foo:create_bar', target, project(['buzz'])), true);
      assert.equal(e.enforce('foo:create_bar', target, project(['member'])), false, 'the override replaces the default');
      assert.match(warnings.join('\n'), /"foo:post_bar":"role:fizz" was deprecated in N in favor of "foo:create_bar"/);
    });

    it('ignores an override of the old name that is the old default or an alias of the new name', () => {
      for (const content of ['"foo:post_bar": "role:fizz"', '"foo:post_bar": "rule:foo:create_bar"']) {
        const { enforcer: e } = enforcer({ defaults: [renamed], overrideFile: policyFile(content) });
        assert.equal(e.enforce('foo:create_bar', target, project(['member'])), true, content);
        assert.equal(e.enforce('foo:create_bar', target, project(['fizz'])), false, content);
      }
    });

    it('prefers an override of the new name to one of the old', () => {
      const file = policyFile('"foo:post_bar": "role:buzz"\n"foo:create_bar": "role:bazz"');
      const { enforcer: e } = enforcer({ defaults: [renamed], overrideFile: file });
      assert.equal(e.enforce('foo:create_bar', target, project(['bazz'])), true);
      assert.equal(e.enforce('foo:create_bar', target, project(['buzz'])), false);
    });

    it('ors the old check string in only when enforceNewDefaults is off', () => {
      const strict = enforcer({ defaults: [renamed, changed] }).enforcer;
      assert.equal(strict.enforce('foo:create_bar', target, project(['fizz'])), false);
      assert.equal(strict.enforce('foo:delete_bar', target, project(['fizz'])), false);
      const lenient = enforcer({ defaults: [renamed, changed], enforceNewDefaults: false }).enforcer;
      assert.equal(lenient.enforce('foo:create_bar', target, project(['fizz'])), true);
      assert.equal(lenient.enforce('foo:create_bar', target, project(['member'])), true);
      assert.equal(lenient.enforce('foo:delete_bar', target, project(['fizz'])), true);
      assert.equal(lenient.enforce('foo:delete_bar', target, project(['admin'])), true);
      assert.equal(lenient.enforce('foo:delete_bar', target, project(['member'])), false);
    });

    it('keeps the new rule scope types whatever the check', () => {
      const lenient = enforcer({ defaults: [renamed], enforceNewDefaults: false }).enforcer;
      assert.equal(lenient.enforce('foo:create_bar', target, { ...project(['fizz']), system: 'all' }), false);
    });
  });

  it('evaluates 100k times in well under a second', () => {
    const { enforcer: e } = enforcer();
    const creds = credentialsFromAuth(auth());
    const targets = [{ project_id: 'p1' }, { project_id: 'p2' }];
    let allowed = 0;
    const start = process.hrtime.bigint();
    for (let i = 0; i < 100_000; i++) if (e.enforce('compute:servers:show', targets[i & 1], creds)) allowed++;
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    assert.equal(allowed, 50_000);
    assert.ok(ms < 1000, `100k evaluations took ${ms.toFixed(1)} ms`);
  });
});
