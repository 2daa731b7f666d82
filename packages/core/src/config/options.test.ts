import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defineGroup, opt } from './options.ts';
import type { OptValue } from './options.ts';

describe('opt', () => {
  it('infers value types, including choices as a union', () => {
    const level = opt.string({ default: 'info', choices: ['debug', 'info'], help: 'x' });
    const levelValue: OptValue<typeof level> = 'debug';
    // @ts-expect-error not among the choices
    const badLevel: OptValue<typeof level> = 'loud';
    const free: OptValue<ReturnType<typeof opt.string>> = 'anything';
    const list: OptValue<ReturnType<typeof opt.list>> = ['a'];
    assert.ok(levelValue && badLevel && free && list);
  });

  it('parses integers and floats within bounds', () => {
    const o = opt.int({ default: 5, min: 1, max: 10, help: 'x' });
    assert.deepEqual(o.parse(' 7 '), { ok: true, value: 7 });
    assert.deepEqual(o.parse('0'), { ok: false, reason: 'must be at least 1' });
    assert.deepEqual(o.parse('1.5'), { ok: false, reason: 'must be an integer' });
    assert.deepEqual(o.parse('99999999999999999999'), { ok: false, reason: 'must be an integer' });
    const f = opt.float({ default: 1, help: 'x' });
    assert.deepEqual(f.parse('2.5e1'), { ok: true, value: 25 });
    assert.deepEqual(f.parse(''), { ok: false, reason: 'must be a number' });
    assert.deepEqual(f.parse('Infinity'), { ok: false, reason: 'must be a number' });
  });

  it('parses booleans as oslo.config does', () => {
    const b = opt.bool({ help: 'x' });
    assert.equal(b.default, false);
    for (const t of ['true', 'TRUE', 'yes', 'on', '1']) assert.deepEqual(b.parse(t), { ok: true, value: true });
    for (const f of ['false', 'No', 'off', '0']) assert.deepEqual(b.parse(f), { ok: true, value: false });
    assert.equal(b.parse('2').ok, false);
  });

  it('parses lists, URLs and paths', () => {
    const l = opt.list({ choices: ['a', 'b'], help: 'x' });
    assert.deepEqual(l.parse('a, b ,'), { ok: true, value: ['a', 'b'] });
    assert.deepEqual(l.parse('a,c'), { ok: false, reason: 'c not allowed: items must be among a, b' });
    const u = opt.url({ schemes: ['amqp'], help: 'x' });
    assert.deepEqual(u.parse(''), { ok: true, value: '' });
    assert.deepEqual(u.parse('amqp://h/'), { ok: true, value: 'amqp://h/' });
    assert.deepEqual(u.parse('not a url'), { ok: false, reason: 'must be a URL' });
    const p = opt.path({ help: 'x' });
    assert.deepEqual(p.parse('~/x'), { ok: true, value: join(homedir(), 'x') });
    assert.deepEqual(p.parse('x'), { ok: false, reason: 'must be an absolute path' });
  });

  it('refuses a default its own option would reject', () => {
    assert.throws(() => opt.int({ default: 0, min: 1, help: 'x' }), /invalid default "0": must be at least 1/);
    assert.throws(() => opt.string({ choices: ['a'], help: 'x' }), /invalid default "": must be one of a/);
  });
});

describe('defineGroup', () => {
  it('refuses names that cannot be sections, environment variables or snake_case options', () => {
    assert.throws(() => defineGroup('a.b', {}), /invalid option group name/);
    assert.throws(() => defineGroup('g', { 'Bad-Name': opt.bool({ help: 'x' }) }), /use lower_snake_case/);
  });
});
