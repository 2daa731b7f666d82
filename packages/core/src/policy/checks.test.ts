import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Check, Credentials, RuleTable, Target } from './checks.ts';
import { parseRule } from './parser.ts';

const member: Credentials = {
  user_id: 'u1',
  project_id: 'p1',
  domain_id: undefined,
  roles: ['Member', 'reader'],
  is_admin_project: false,
  groups: [{ id: 'g1' }, { id: 'g2' }],
  token: { audit: { id: 'a1' } },
};

function check(rule: string, target: Target = {}, creds: Credentials = member, rules: RuleTable = new Map()): boolean {
  return parseRule(rule).evaluate(target, creds, rules);
}

describe('checks', () => {
  it('evaluates the constant checks', () => {
    assert.equal(check('@'), true);
    assert.equal(check('!'), false);
    assert.equal(check(''), true);
  });

  it('matches roles case-insensitively', () => {
    assert.equal(check('role:member'), true);
    assert.equal(check('role:MEMBER'), true);
    assert.equal(check('role:Reader'), true);
    assert.equal(check('role:admin'), false);
    assert.equal(check('role:member', {}, { roles: [] }), false);
    assert.equal(check('role:member', {}, {} as Credentials), false);
  });

  it('substitutes the target into role checks', () => {
    assert.equal(check('role:%(role_name)s', { role_name: 'READER' }), true);
    assert.equal(check('role:%(role_name)s', { role_name: 'admin' }), false);
    assert.equal(check('role:%(role_name)s', {}), false);
  });

  it('compares credentials with target substitutions', () => {
    assert.equal(check('project_id:%(project_id)s', { project_id: 'p1' }), true);
    assert.equal(check('project_id:%(project_id)s', { project_id: 'p2' }), false);
    assert.equal(check('user_id:u1'), true);
    assert.equal(check('user_id:u2'), false);
    assert.equal(check('is_admin_project:False'), true);
    assert.equal(check('project_id:pre-%(id)s-post', { id: 'p1' }), false);
    assert.equal(check('project_id:%(a)s%(b)s', { a: 'p', b: '1' }), true);
    assert.equal(check('name:100%%', {}, { roles: [], name: '100%' }), true);
  });

  it('looks target keys up flat first, then through nested objects', () => {
    assert.equal(check('user_id:%(target.user.id)s', { 'target.user.id': 'u1' }), true);
    assert.equal(check('user_id:%(target.user.id)s', { target: { user: { id: 'u1' } } }), true);
    assert.equal(check('user_id:%(target.user.id)s', { target: { user: { id: 'u2' } } }), false);
    assert.equal(
      check('user_id:%(target.user.id)s', { 'target.user.id': 'u2', target: { user: { id: 'u1' } } }),
      false,
    );
  });

  it('is false, not an error, when a substitution is missing', () => {
    assert.equal(check('project_id:%(project_id)s', {}), false);
    assert.equal(check('user_id:%(target.user.id)s', { target: {} }), false);
    assert.equal(check('user_id:%(target.user.id)s', { target: 'u1' }), false);
    assert.equal(check('user_id:%(target.user.id)s', { target: null }), false);
    assert.equal(check('project_id:%(project_id)s', { project_id: undefined }), false);
    assert.equal(check('project_id:%(constructor)s', {}), false);
    assert.equal(check('project_id:%(list)s', { list: ['p1'] }), false);
    assert.equal(check('not project_id:%(project_id)s', {}), true);
  });

  it('is false when the credentials lack the compared field', () => {
    assert.equal(check('domain_id:%(domain_id)s', { domain_id: 'd1' }), false);
    assert.equal(check('missing.path:x'), false);
    assert.equal(check('toString:x'), false);
  });

  it('walks dotted credential paths, matching any element of a list on the way', () => {
    assert.equal(check('token.audit.id:a1'), true);
    assert.equal(check('groups.id:g2'), true);
    assert.equal(check('groups.id:g3'), false);
    assert.equal(check('roles:reader'), true);
    assert.equal(check('roles:READER'), false);
  });

  it('compares Python literals on the left with the substituted match', () => {
    assert.equal(check("'member':%(role.name)s", { 'role.name': 'member' }), true);
    assert.equal(check('"member":%(role.name)s', { role: { name: 'member' } }), true);
    assert.equal(check("'member':%(role.name)s", { 'role.name': 'admin' }), false);
    assert.equal(check('True:%(user.enabled)s', { 'user.enabled': true }), true);
    assert.equal(check('True:%(user.enabled)s', { 'user.enabled': false }), false);
    assert.equal(check('False:%(user.enabled)s', { 'user.enabled': false }), true);
    assert.equal(check('None:%(owner)s', { owner: null }), true);
    assert.equal(check('3:%(n)s', { n: 3 }), true);
    assert.equal(check('-2:%(n)s', { n: -2 }), true);
    assert.equal(check('1.5:%(n)s', { n: 1.5 }), true);
    assert.equal(check('True:True'), true);
  });

  it('follows rule references and fails closed on unknown ones', () => {
    const rules = new Map<string, Check>([
      ['admin_required', parseRule('role:admin')],
      ['owner', parseRule('user_id:%(user_id)s')],
    ]);
    assert.equal(check('rule:admin_required or rule:owner', { user_id: 'u1' }, member, rules), true);
    assert.equal(check('rule:admin_required or rule:owner', { user_id: 'u9' }, member, rules), false);
    assert.equal(check('rule:nonexistent', {}, member, rules), false);
    assert.equal(check('not rule:nonexistent', {}, member, rules), true);
  });

  it('combines with and, or and not', () => {
    const rule = 'role:admin or (role:reader and project_id:%(project_id)s)';
    assert.equal(check(rule, { project_id: 'p1' }), true);
    assert.equal(check(rule, { project_id: 'p2' }), false);
    assert.equal(check(rule, { project_id: 'p2' }, { roles: ['admin'] }), true);
    assert.equal(check('role:reader and not role:member'), false);
    assert.equal(check('role:reader and not role:admin'), true);
  });

  it("compares neutron's field:resource:field=value against the target, converting to the target value's type", () => {
    assert.equal(check('field:networks:shared=True', { shared: true }), true);
    assert.equal(check('field:networks:shared=True', { shared: false }), false);
    assert.equal(check('field:networks:shared=true', { shared: true }), true);
    assert.equal(check('field:networks:shared=False', { shared: false }), true);
    // A field the target lacks (or holds null) never matches, so its negation does.
    assert.equal(check('field:networks:shared=True', {}), false);
    assert.equal(check('field:networks:shared=True', { shared: null }), false);
    assert.equal(check('not field:networks:shared=True', {}), true);
    // The field may itself contain a colon; the value is everything after the first =.
    assert.equal(check('field:networks:router:external=True', { 'router:external': true }), true);
    assert.equal(check('field:networks:router:external=True', { 'router:external': false }), false);
    assert.equal(check('field:rbac_policy:target_tenant=*', { target_tenant: '*' }), true);
    assert.equal(check('field:rbac_policy:target_tenant=*', { target_tenant: 'p2' }), false);
    assert.equal(check('field:ports:mtu=1500', { mtu: 1500 }), true);
    assert.equal(check('field:ports:mtu=1500', { mtu: 1450 }), false);
    // The target is never stringified: a string 'True' is not the boolean.
    assert.equal(check('field:networks:shared=True', { shared: 'yes' }), false);
  });

  it('matches field:…=~REGEX from the start of the value, as re.match does', () => {
    assert.equal(check('field:port:device_owner=~^network:', { device_owner: 'network:dhcp' }), true);
    assert.equal(check('field:port:device_owner=~network:', { device_owner: 'network:router_interface' }), true);
    assert.equal(check('field:port:device_owner=~network:', { device_owner: 'compute:nova' }), false);
    assert.equal(check('field:port:device_owner=~network:', { device_owner: 'xnetwork:' }), false);
    assert.equal(check('field:port:device_owner=~^network:', { device_owner: 7 }), false);
  });

  it('combines field checks as neutron writes them', () => {
    const rule = '(rule:admin_only) or (not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*)';
    const rules: RuleTable = new Map([['admin_only', parseRule('role:admin')]]);
    assert.equal(check(rule, { target_tenant: 'p2', target_project: 'p2' }, member, rules), true);
    assert.equal(check(rule, { target_tenant: '*', target_project: '*' }, member, rules), false);
    assert.equal(check(rule, { target_tenant: '*', target_project: '*' }, { roles: ['admin'] }, rules), true);
    assert.equal(parseRule('field:networks:router:external=True').toString(), 'field:networks:router:external=True');
  });
});

