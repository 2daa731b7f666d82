import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ManualClock } from '@onestack/core/clock.ts';
import { isApiError } from '@onestack/core/errors.ts';
import { generateFernetKey } from './fernet.ts';
import { loadKeys, rotate, setup } from './fernet-keys.ts';
import { FernetTokenFormatter, InvalidTokenError, randomAuditId } from './token-formatter.ts';

const root = mkdtempSync(join(tmpdir(), 'fernet-keys-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(root, `repo${++n}`, 'fernet-keys');

const names = (dir: string) =>
  readdirSync(dir)
    .map(Number)
    .sort((a, b) => a - b);
const read = (dir: string, name: number) => readFileSync(join(dir, String(name)), 'utf8');

describe('fernet key repository', () => {
  it('sets up a staged and a primary key, private to the owner', () => {
    const dir = freshDir();
    setup(dir);
    assert.deepEqual(names(dir), [0, 1]);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const name of [0, 1]) {
      assert.equal(statSync(join(dir, String(name))).mode & 0o777, 0o600);
      assert.match(read(dir, name), /^[A-Za-z0-9_-]{43}=$/);
    }
    assert.notEqual(read(dir, 0), read(dir, 1));
  });

  it('leaves an initialised repository alone', () => {
    const dir = freshDir();
    setup(dir);
    const before = [read(dir, 0), read(dir, 1)];
    setup(dir);
    assert.deepEqual(names(dir), [0, 1]);
    assert.deepEqual([read(dir, 0), read(dir, 1)], before);
  });

  it('rotates as upstream: staged becomes the next primary, the oldest beyond max_active_keys go', () => {
    const dir = freshDir();
    setup(dir);
    const staged = read(dir, 0);
    rotate(dir, 3);
    assert.deepEqual(names(dir), [0, 1, 2]);
    assert.equal(read(dir, 2), staged);
    assert.notEqual(read(dir, 0), staged);
    assert.equal(statSync(join(dir, '0')).mode & 0o777, 0o600);
    rotate(dir, 3);
    assert.deepEqual(names(dir), [0, 2, 3]);
    rotate(dir, 3);
    assert.deepEqual(names(dir), [0, 3, 4]);
    rotate(dir, 5);
    rotate(dir, 5);
    assert.deepEqual(names(dir), [0, 3, 4, 5, 6]);
    rotate(dir, 2);
    assert.deepEqual(names(dir), [0, 7]);
  });

  it('refuses to rotate without a staged key or with a nonsensical maximum', () => {
    const dir = freshDir();
    assert.throws(() => rotate(dir), /no staged key/);
    setup(dir);
    assert.throws(() => rotate(dir, 0), RangeError);
    assert.deepEqual(names(dir), [0, 1]);
  });

  it('loads the primary first, then the others newest first, staged last', () => {
    const dir = freshDir();
    setup(dir);
    rotate(dir);
    const keys = loadKeys(dir, new ManualClock());
    const expected = [2, 1, 0].map((k) => Buffer.from(read(dir, k).trim(), 'base64url'));
    assert.deepEqual(
      keys.map((k) => Buffer.concat([k.signing, k.encryption])),
      expected,
    );
  });

  it('ignores empty, temporary and non-numeric files', () => {
    const dir = freshDir();
    setup(dir);
    writeFileSync(join(dir, '7'), '');
    writeFileSync(join(dir, '0.tmp'), generateFernetKey());
    writeFileSync(join(dir, 'README'), 'not a key');
    assert.equal(loadKeys(dir, new ManualClock()).length, 2);
  });

  it('says how to fix a missing or empty repository, and names a corrupt key file', () => {
    const missing = freshDir();
    assert.throws(
      () => loadKeys(missing, new ManualClock()),
      (err: unknown) => isApiError(err) && err.code === 'internal' && /fernet_setup/.test(err.message),
    );
    const corrupt = freshDir();
    setup(corrupt);
    writeFileSync(join(corrupt, '1'), 'garbage');
    assert.throws(() => loadKeys(corrupt, new ManualClock()), /Invalid Fernet key in .*\/1$/);
  });

  it('looks at the directory at most once a second and keeps the same keys while nothing changed', () => {
    const dir = freshDir();
    setup(dir);
    const clock = new ManualClock();
    const first = loadKeys(dir, clock);
    rotate(dir);
    clock.advance(999);
    assert.equal(loadKeys(dir, clock), first);
    clock.advance(1);
    const second = loadKeys(dir, clock);
    assert.equal(second.length, 3);
    clock.advance(5000);
    assert.equal(loadKeys(dir, clock), second);
  });

  it('notices a key file replaced in place (a copy from another node)', () => {
    const dir = freshDir();
    setup(dir);
    const clock = new ManualClock();
    const first = loadKeys(dir, clock);
    writeFileSync(join(dir, '1'), `${generateFernetKey()}\n`);
    clock.advance(1000);
    const second = loadKeys(dir, clock);
    assert.notEqual(second, first);
    assert.notDeepEqual(second[0].signing, first[0].signing);
  });

  it('keeps tokens valid through rotations until their key is pruned', () => {
    const dir = freshDir();
    setup(dir);
    const clock = new ManualClock();
    const formatter = new FernetTokenFormatter({ keys: () => loadKeys(dir, clock) });
    const payload = {
      userId: 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
      methods: ['password'],
      projectId: '0123456789abcdef0123456789abcdef',
      issuedAt: clock.now(),
      expiresAt: clock.now() + 3_600_000,
      auditIds: [randomAuditId()],
    };
    const made = formatter.create(payload);
    const step = () => {
      rotate(dir, 3);
      clock.advance(1000);
    };
    step();
    assert.equal(formatter.validate(made).userId, payload.userId);
    const afterOne = formatter.create(payload);
    step();
    assert.throws(() => formatter.validate(made), InvalidTokenError);
    assert.equal(formatter.validate(afterOne).userId, payload.userId);
    step();
    assert.throws(() => formatter.validate(made), InvalidTokenError);
    assert.throws(() => formatter.validate(afterOne), InvalidTokenError);
  });

  it('accepts tokens from a node that already promoted the staged key', () => {
    const dir = freshDir();
    setup(dir);
    const clock = new ManualClock();
    const here = new FernetTokenFormatter({ keys: () => loadKeys(dir, clock) });
    const ahead = new FernetTokenFormatter({ keys: () => loadKeys(dir, clock).slice(-1) });
    const token = ahead.create({
      userId: 'u',
      methods: ['password'],
      issuedAt: clock.now(),
      expiresAt: clock.now() + 1000,
      auditIds: [randomAuditId()],
    });
    assert.equal(here.validate(token).userId, 'u');
  });
});
