import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from '@msgpack/msgpack';
import { FernetKey, generateFernetKey, MultiFernet } from './fernet.ts';
import type { TokenPayload } from './token-formatter.ts';
import { FernetTokenFormatter, InvalidTokenError, randomAuditId } from './token-formatter.ts';

const USER = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const PROJECT = '0123456789abcdef0123456789abcdef';
const ISSUED = Date.UTC(2026, 0, 1);
const EXPIRES = Date.UTC(2026, 0, 1, 2);
const AUDIT = ['8a2QKdNvQu6IUoO8u6Pj3g', 'ZBzb0kq1SeqOIuBGRWmO4A'];

/**
 * Tokens made in Python exactly as upstream's token_formatters.py assembles them
 * (cryptography.fernet + msgpack 1.0, issued at 2026-01-01T00:00:00Z) with this key.
 */
const PY_KEY = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const PY_TOKENS: Record<string, [string, TokenPayload]> = {
  unscoped: [
    'gAAAAABpVbkAtSnizGePaDjPub99dgJSvfnL6k-ass8pzRSyTIKBwFod02706NToBX4JwHo8hkhXsCK9zaKPkiK7TkVUjyby2TMbgC4bqzswbHKFlh0fyfQA9G4cpVGY6FeeBw638qweJMI519gSG_wSK0GLaSiwSQ',
    { userId: USER, methods: ['password'], issuedAt: ISSUED, expiresAt: EXPIRES, auditIds: [AUDIT[0]] },
  ],
  'domain (the default domain, a non-UUID user)': [
    'gAAAAABpVbkALQEmqdr_LfCFTsTlsPuqlW8jT3hTW9wWcHa8x5KDdX-jPbI7DdhALEi91yflnx4D_k4Jsu_uz0seS7mLHUcgpZX9LhOawHBW8Kxy98xYO4t6uPWUB94BgsM2Mh6RgURj2HGUxci4X9Ap406d8fneww',
    {
      userId: 'ldap-user@example',
      methods: ['password'],
      issuedAt: ISSUED,
      domainId: 'default',
      expiresAt: EXPIRES + 123,
      auditIds: [AUDIT[0]],
    },
  ],
  'project (password + token, two audit ids)': [
    'gAAAAABpVbkAz28L-RLlBXCiBwq_UfzP50879v1y8BMk06BSYjkEZXBwatSHS535lPjwERO2ZMQi30FDBFG55E7oo2iFQPC9Wa7EZoR6NvseVmivjXNYrGqqfSVKTpbuUsNQtN_fvwscpL6R7nTnVooIEdnwmsZp_KweXT5zI8ZzqVIbUQxNbm9pwZn7gDWQAPz5SWoIYgNp',
    { userId: USER, methods: ['token', 'password'], issuedAt: ISSUED, projectId: PROJECT, expiresAt: EXPIRES, auditIds: AUDIT },
  ],
  system: [
    'gAAAAABpVbkA1cZTnI_TOzsmAYxfcdz8aVMYZYTCorekwBcJvgQ5nXZgyDE30Y7Dm1KNYgj-zPxDv4VvRunBP7dEnH_X3EJE8YAZqkT7vGRkXG9YBSPWb060Wn-h_sP840WYeyAE9Oijp7aNzlk2Une0SpDUrFLQCg',
    { userId: USER, methods: ['password'], issuedAt: ISSUED, system: 'all', expiresAt: EXPIRES, auditIds: [AUDIT[0]] },
  ],
  'application credential': [
    'gAAAAABpVbkAsLbd9QxgOJvOgbBg2fuYo6JXVFt345uYn3FYBHHZh4eurx6kt9TaTnyL9DJQfP4f4gtkjCtJC_wpmJBrSzYQM0mafNkC-8AxMQGXqKScFkMsAHE9WuZTlW-IwyXQ-isOJFWrObKz45oJJN4mKA1MaIDMDHrJrYZC7zaq1jhQAxqHHncuovADXlZtKUsFF176',
    {
      userId: USER,
      methods: ['application_credential'],
      issuedAt: ISSUED,
      projectId: PROJECT,
      expiresAt: EXPIRES,
      auditIds: [AUDIT[0]],
      appCredId: 'fedcba9876543210fedcba9876543210',
    },
  ],
};

function formatter(keyText = generateFernetKey()) {
  const key = FernetKey.fromString(keyText);
  return { key, f: new FernetTokenFormatter({ keys: () => [key] }) };
}

function base(extra: Partial<TokenPayload> = {}): TokenPayload {
  return { userId: USER, methods: ['password'], issuedAt: ISSUED, expiresAt: EXPIRES, auditIds: [randomAuditId()], ...extra };
}

function unrecognized(err: unknown): boolean {
  return err instanceof InvalidTokenError && err.reason === 'unrecognized' && err.message === 'Could not recognize Fernet token';
}

describe('Fernet token formatter', () => {
  for (const [name, [token, payload]] of Object.entries(PY_TOKENS)) {
    it(`validates an upstream-made ${name} token`, () => {
      assert.deepEqual(formatter(PY_KEY).f.validate(token), payload);
    });
  }

  const scopes: Record<string, Partial<TokenPayload>> = {
    unscoped: {},
    'domain-scoped (UUID)': { domainId: 'ffeeddccbbaa99887766554433221100' },
    'domain-scoped (default domain)': { domainId: 'default' },
    'project-scoped': { projectId: PROJECT },
    'project-scoped, non-UUID ids': { userId: 'Ldap User', projectId: 'admin-project' },
    'system-scoped': { system: 'all' },
    'application credential': { projectId: PROJECT, appCredId: 'fedcba9876543210fedcba9876543210', methods: ['application_credential'] },
    'rescoped (two audit ids)': { projectId: PROJECT, methods: ['token', 'password'], auditIds: [randomAuditId(), randomAuditId()] },
  };
  for (const [name, extra] of Object.entries(scopes)) {
    it(`round-trips a ${name} token`, () => {
      const { f } = formatter();
      const payload = base(extra);
      const token = f.create(payload);
      assert.match(token, /^[A-Za-z0-9_-]+$/);
      assert.deepEqual(f.validate(token), payload);
    });
  }

  it('packs ids as upstream: canonical UUID hex as bytes, anything else as the string', () => {
    const { f } = formatter();
    const upper = 'A1B2C3D4E5F60718293A4B5C6D7E8F90';
    assert.equal(f.validate(f.create(base({ userId: upper }))).userId, upper);
    const hexShort = f.create(base({ userId: USER })).length;
    const hexLong = f.create(base({ userId: upper })).length;
    assert.ok(hexShort < hexLong);
  });

  it('makes tokens of the usual length', () => {
    const { f } = formatter();
    const token = f.create(base({ projectId: PROJECT, auditIds: [randomAuditId(), randomAuditId()] }));
    assert.ok(token.length >= 180 && token.length <= 250, `length ${token.length}`);
  });

  it('keeps expiry to the millisecond and the issue time to the second', () => {
    const { f } = formatter();
    const out = f.validate(f.create(base({ issuedAt: ISSUED + 1999, expiresAt: EXPIRES + 7 })));
    assert.equal(out.issuedAt, ISSUED + 1000);
    assert.equal(out.expiresAt, EXPIRES + 7);
  });

  it('encodes methods as the bitmask of [auth] methods, listed highest bit first as upstream', () => {
    const { f } = formatter();
    const out = f.validate(f.create(base({ methods: ['password', 'token', 'kerberos', 'external'] })));
    assert.deepEqual(out.methods, ['token', 'password', 'external']);
    const key = FernetKey.fromString(generateFernetKey());
    const custom = new FernetTokenFormatter({ keys: () => [key], authMethods: ['password', 'totp'] });
    assert.deepEqual(custom.validate(custom.create(base({ methods: ['totp', 'password'] }))).methods, ['totp', 'password']);
  });

  it('honours a configured default domain id', () => {
    const key = FernetKey.fromString(generateFernetKey());
    const f = new FernetTokenFormatter({ keys: () => [key], defaultDomainId: 'home' });
    assert.equal(f.validate(f.create(base({ domainId: 'home' }))).domainId, 'home');
    assert.throws(() => f.create(base({ domainId: 'default' })), TypeError);
  });

  it('refuses payloads upstream could not express', () => {
    const { f } = formatter();
    assert.throws(() => f.create(base({ projectId: PROJECT, domainId: 'default' })), TypeError);
    assert.throws(() => f.create(base({ projectId: PROJECT, system: 'all' })), TypeError);
    assert.throws(() => f.create(base({ appCredId: PROJECT })), TypeError);
  });

  it('rejects tampered, foreign and malformed tokens as unrecognized', () => {
    const { f } = formatter();
    const token = f.create(base({ projectId: PROJECT }));
    const mid = Math.floor(token.length / 2);
    const flipped = token.slice(0, mid) + (token[mid] === 'A' ? 'B' : 'A') + token.slice(mid + 1);
    assert.throws(() => f.validate(flipped), unrecognized);
    assert.throws(() => formatter().f.validate(token), unrecognized);
    for (const junk of ['', 'garbage', 'gAAAAA', `${token}!`, token.slice(0, -10), 'a'.repeat(200)]) {
      assert.throws(() => f.validate(junk), unrecognized, junk);
    }
  });

  it('rejects payload versions it does not know, and payloads that are not its own', () => {
    const { key, f } = formatter();
    const mf = new MultiFernet([key]);
    const seal = (data: Uint8Array) => mf.encrypt(data, ISSUED / 1000).replace(/=+$/, '');
    const trust = encode([3, [true, Buffer.from(USER, 'hex')], 2, [true, Buffer.from(PROJECT, 'hex')], EXPIRES / 1000, [], Buffer.alloc(16)]);
    assert.throws(
      () => f.validate(seal(trust)),
      (err: unknown) =>
        err instanceof InvalidTokenError &&
        err.reason === 'payload_version' &&
        err.message === 'This is not a recognized Fernet payload version: 3',
    );
    for (const bad of [Buffer.from([0xc1]), encode('not a tuple'), encode([0, 'user', 2, EXPIRES / 1000, []]), encode([8, [false, 'u'], 2, 'domain', 0, []])]) {
      assert.throws(() => f.validate(seal(bad)), (err: unknown) => err instanceof InvalidTokenError && err.reason === 'payload');
    }
  });

  it('makes audit ids as upstream: 22 urlsafe characters of 16 random bytes', () => {
    const id = randomAuditId();
    assert.match(id, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(Buffer.from(id, 'base64url').length, 16);
    assert.notEqual(randomAuditId(), id);
  });

  it('creates and validates 10,000 tokens a second each, in one thread', () => {
    const { f } = formatter();
    const payload = base({ projectId: PROJECT, auditIds: [randomAuditId(), randomAuditId()] });
    let token = '';
    let start = performance.now();
    for (let i = 0; i < 10_000; i++) token = f.create(payload);
    const createMs = performance.now() - start;
    start = performance.now();
    for (let i = 0; i < 10_000; i++) f.validate(token);
    const validateMs = performance.now() - start;
    assert.ok(createMs < 1000, `create: ${createMs} ms`);
    assert.ok(validateMs < 1000, `validate: ${validateMs} ms`);
  });
});
