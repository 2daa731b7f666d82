import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AndCheck, FalseCheck, GenericCheck, NotCheck, OrCheck, RoleCheck, RuleCheck, TrueCheck } from './checks.ts';
import { PolicyParseError, parseRule } from './parser.ts';

const str = (rule: Parameters<typeof parseRule>[0]) => parseRule(rule).toString();

describe('parseRule: text syntax', () => {
  it('parses the special checks and the empty rule', () => {
    assert.ok(parseRule('') instanceof TrueCheck);
    assert.ok(parseRule('@') instanceof TrueCheck);
    assert.ok(parseRule('!') instanceof FalseCheck);
  });

  it('dispatches on the check kind', () => {
    assert.ok(parseRule('rule:admin_required') instanceof RuleCheck);
    assert.ok(parseRule('role:admin') instanceof RoleCheck);
    assert.ok(parseRule('project_id:%(project_id)s') instanceof GenericCheck);
    assert.ok(parseRule("'member':%(role.name)s") instanceof GenericCheck);
    assert.equal(str('role:compute:admin'), 'role:compute:admin');
  });

  it('binds and tighter than or, as upstream', () => {
    assert.equal(str('role:a or role:b and role:c'), '(role:a or (role:b and role:c))');
    assert.equal(str('role:a and role:b or role:c'), '((role:a and role:b) or role:c)');
    assert.equal(str('role:a or role:b and role:c and role:d'), '(role:a or (role:b and role:c and role:d))');
    assert.equal(str('role:a and role:b and role:c or role:d and role:e'), '((role:a and role:b and role:c) or (role:d and role:e))');
    assert.equal(str('role:a or role:b or role:c'), '(role:a or role:b or role:c)');
  });

  it('binds not to the single check or group that follows', () => {
    const check = parseRule('not role:a and role:b');
    assert.ok(check instanceof AndCheck);
    assert.equal(check.toString(), '(not role:a and role:b)');
    assert.equal(str('not (role:a or role:b)'), 'not (role:a or role:b)');
    assert.equal(str('role:a or not role:b'), '(role:a or not role:b)');
    assert.equal(str('not not role:a'), 'not not role:a');
    assert.ok(parseRule('not role:a') instanceof NotCheck);
  });

  it('honours parentheses, stuck to checks or apart', () => {
    assert.equal(str('(role:a or role:b) and role:c'), '((role:a or role:b) and role:c)');
    assert.equal(str('( role:a or role:b ) and role:c'), '((role:a or role:b) and role:c)');
    assert.equal(str('role:admin or (role:reader and project_id:%(project_id)s)'), '(role:admin or (role:reader and project_id:%(project_id)s))');
    assert.equal(str('((role:a))'), 'role:a');
    assert.equal(str('user_id:%(target.user.id)s'), 'user_id:%(target.user.id)s');
  });

  it('accepts keywords in any case', () => {
    assert.ok(parseRule('role:a AND role:b') instanceof AndCheck);
    assert.ok(parseRule('role:a Or role:b') instanceof OrCheck);
    assert.ok(parseRule('NOT role:a') instanceof NotCheck);
  });

  it('rejects malformed rules with a message naming the rule', () => {
    for (const bad of [
      'role:admin and',
      'or role:admin',
      '(role:admin',
      'role:admin)',
      'role:a role:b',
      'not',
      '   ',
      'admin',
      ':admin',
      "'string'",
      'role:a or "quoted"',
    ]) {
      assert.throws(() => parseRule(bad), PolicyParseError, bad);
    }
    assert.throws(() => parseRule('role:a or'), /role:a or/);
  });

  it('rejects http checks and unsupported substitutions clearly', () => {
    assert.throws(() => parseRule('http://policy.example.com/check'), /http and https checks are not supported/);
    assert.throws(() => parseRule('role:a or https://x'), /not supported/);
    assert.throws(() => parseRule('project_id:%(project_id)d'), /%\(name\)s/);
    assert.throws(() => parseRule('quota:100%'), /%\(name\)s/);
    assert.throws(() => parseRule('project_id:%(project_id'), /%\(name\)s/);
    assert.equal(str('quota:100%%'), 'quota:100%%');
  });
});

describe('parseRule: legacy list syntax', () => {
  it('ors the outer list and ands the inner lists', () => {
    assert.equal(str([['role:a', 'role:b'], ['role:c']]), '((role:a and role:b) or role:c)');
    assert.equal(str([['role:a']]), 'role:a');
    assert.equal(str(['role:a', 'role:b']), '(role:a or role:b)');
  });

  it('treats an empty list as always and only empty inner lists as never', () => {
    assert.ok(parseRule([]) instanceof TrueCheck);
    assert.ok(parseRule([[]]) instanceof FalseCheck);
    assert.equal(str([[], ['role:a']]), 'role:a');
  });

  it('rejects malformed elements', () => {
    assert.throws(() => parseRule([['admin']]), PolicyParseError);
    assert.throws(() => parseRule([[1 as unknown as string]]), PolicyParseError);
    assert.throws(() => parseRule([3 as unknown as string]), PolicyParseError);
  });

  it('parses field checks and rejects malformed ones', () => {
    assert.equal(parseRule('field:networks:shared=True or role:admin').toString(), '(field:networks:shared=True or role:admin)');
    for (const bad of ['field:networks', 'field:networks:shared', 'field::shared=True', 'field:networks:=True']) {
      assert.throws(() => parseRule(bad), PolicyParseError, bad);
    }
  });
});

