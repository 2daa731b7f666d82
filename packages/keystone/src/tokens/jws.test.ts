import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeProtectedHeader, importPKCS8, importSPKI, jwtVerify, SignJWT } from 'jose';
import { ManualClock } from '@onestack/core/clock.ts';
import { isApiError } from '@onestack/core/errors.ts';
import { createJwsKeyPair, JwsTokenFormatter, loadJwsKeys } from './jws.ts';
import type { TokenPayload } from './token-formatter.ts';
import { InvalidTokenError, randomAuditId } from './token-formatter.ts';

const root = mkdtempSync(join(tmpdir(), 'jws-keys-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A private repository with private.pem and a public repository with its public key. */
function repos() {
  const dir = join(root, `node${++n}`);
  const priv = join(dir, 'private');
  const pub = join(dir, 'public');
  mkdirSync(priv, { recursive: true });
  mkdirSync(pub);
  createJwsKeyPair(join(priv, 'private.pem'), join(pub, 'node.pem'));
  return { priv, pub };
}

const ISSUED = Date.UTC(2026, 0, 1);
const payload = (extra: Partial<TokenPayload> = {}): TokenPayload => ({
  userId: 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
  methods: ['password'],
  issuedAt: ISSUED,
  expiresAt: ISSUED + 3_600_000,
  auditIds: [randomAuditId()],
  ...extra,
});

const unrecognized = (err: unknown) => err instanceof InvalidTokenError && err.reason === 'unrecognized';

describe('JWS token formatter', () => {
  it('writes a P-256 key pair as keystone-manage create_jws_keypair does', () => {
    const { priv, pub } = repos();
    const pem = readFileSync(join(priv, 'private.pem'), 'utf8');
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);
    assert.equal(statSync(join(priv, 'private.pem')).mode & 0o777, 0o600);
    assert.match(readFileSync(join(pub, 'node.pem'), 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
  });

  const scopes: Record<string, Partial<TokenPayload>> = {
    unscoped: {},
    'domain-scoped': { domainId: 'default' },
    'project-scoped': { projectId: '0123456789abcdef0123456789abcdef', methods: ['token', 'password'], auditIds: [randomAuditId(), randomAuditId()] },
    'system-scoped': { system: 'all' },
    'application credential': { projectId: 'p', appCredId: 'ac', methods: ['application_credential'] },
  };
  for (const [name, extra] of Object.entries(scopes)) {
    it(`round-trips a ${name} token`, () => {
      const { priv, pub } = repos();
      const f = new JwsTokenFormatter(() => loadJwsKeys(priv, pub, new ManualClock()));
      const p = payload(extra);
      assert.deepEqual(f.validate(f.create(p)), p);
    });
  }

  it('carries times in whole seconds, as upstream', () => {
    const { priv, pub } = repos();
    const f = new JwsTokenFormatter(() => loadJwsKeys(priv, pub));
    const out = f.validate(f.create(payload({ issuedAt: ISSUED + 999, expiresAt: ISSUED + 60_500 })));
    assert.equal(out.issuedAt, ISSUED);
    assert.equal(out.expiresAt, ISSUED + 60_000);
  });

  it('makes standard JWTs with upstream claim names, and reads ones a standard library made', async () => {
    const { priv, pub } = repos();
    const f = new JwsTokenFormatter(() => loadJwsKeys(priv, pub));
    const token = f.create(payload({ projectId: 'p1' }));
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'ES256', typ: 'JWT' });
    const publicKey = await importSPKI(readFileSync(join(pub, 'node.pem'), 'utf8'), 'ES256');
    const { payload: claims } = await jwtVerify(token, publicKey, { currentDate: new Date(ISSUED) });
    assert.deepEqual(Object.keys(claims), ['sub', 'iat', 'exp', 'openstack_methods', 'openstack_audit_ids', 'openstack_project_id']);
    assert.equal(claims.openstack_project_id, 'p1');

    const privateKey = await importPKCS8(readFileSync(join(priv, 'private.pem'), 'utf8'), 'ES256');
    const foreign = await new SignJWT({ openstack_methods: ['password'], openstack_audit_ids: ['a'], openstack_system: 'all' })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setSubject('u')
      .setIssuedAt(1767225600)
      .setExpirationTime(1767229200)
      .sign(privateKey);
    assert.deepEqual(f.validate(foreign), {
      userId: 'u',
      methods: ['password'],
      auditIds: ['a'],
      system: 'all',
      issuedAt: 1767225600_000,
      expiresAt: 1767229200_000,
    });
  });

  it('accepts tokens signed by any node whose public key it holds', () => {
    const a = repos();
    const b = repos();
    renameSync(join(b.pub, 'node.pem'), join(a.pub, 'other-node.pem'));
    const fa = new JwsTokenFormatter(() => loadJwsKeys(a.priv, a.pub));
    const fb = new JwsTokenFormatter(() => loadJwsKeys(b.priv, a.pub));
    assert.equal(fa.validate(fb.create(payload())).userId, payload().userId);
    const stranger = repos();
    const fStranger = new JwsTokenFormatter(() => loadJwsKeys(stranger.priv, stranger.pub));
    assert.throws(() => fa.validate(fStranger.create(payload())), unrecognized);
  });

  it('rejects tampered, unsigned and malformed tokens', () => {
    const { priv, pub } = repos();
    const f = new JwsTokenFormatter(() => loadJwsKeys(priv, pub));
    const [h, , s] = f.create(payload()).split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'admin', iat: 0, exp: 9e9, openstack_methods: [], openstack_audit_ids: [] })).toString('base64url');
    assert.throws(() => f.validate(`${h}.${forged}.${s}`), unrecognized);
    const none = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    assert.throws(() => f.validate(`${none}.${forged}.`), unrecognized);
    assert.throws(() => f.validate(`${none}.${forged}.${s}`), unrecognized);
    for (const junk of ['', 'a.b', 'a.b.c', 'gAAAAABpVbkA', `${h}.${forged}.${s}.x`]) {
      assert.throws(() => f.validate(junk), unrecognized, junk);
    }
  });

  it('rejects signed claims that are not a Keystone token', async () => {
    const { priv, pub } = repos();
    const f = new JwsTokenFormatter(() => loadJwsKeys(priv, pub));
    const privateKey = await importPKCS8(readFileSync(join(priv, 'private.pem'), 'utf8'), 'ES256');
    const token = await new SignJWT({ sub: 'u', iat: 0, exp: 1 }).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
    assert.throws(() => f.validate(token), (err: unknown) => err instanceof InvalidTokenError && err.reason === 'payload');
  });

  it('picks up a new public key within a second', () => {
    const a = repos();
    const b = repos();
    const clock = new ManualClock();
    const fa = new JwsTokenFormatter(() => loadJwsKeys(a.priv, a.pub, clock));
    const token = new JwsTokenFormatter(() => loadJwsKeys(b.priv, b.pub, clock)).create(payload());
    assert.throws(() => fa.validate(token), unrecognized);
    writeFileSync(join(a.pub, 'b.pem'), readFileSync(join(b.pub, 'node.pem')));
    assert.throws(() => fa.validate(token), unrecognized);
    clock.advance(1000);
    assert.equal(fa.validate(token).userId, payload().userId);
  });

  it('says how to fix a missing, empty or wrong key repository', () => {
    const dir = join(root, 'broken');
    mkdirSync(join(dir, 'public'), { recursive: true });
    const internal = (re: RegExp) => (err: unknown) => isApiError(err) && err.code === 'internal' && re.test(err.message);
    assert.throws(() => loadJwsKeys(join(dir, 'nowhere'), join(dir, 'public')), internal(/create_jws_keypair/));
    createJwsKeyPair(join(dir, 'private.pem'), join(dir, 'public.pem'));
    assert.throws(() => loadJwsKeys(dir, join(dir, 'public')), internal(/must contain at least one public key/));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' });
    writeFileSync(join(dir, 'public', 'rsa.pem'), rsa);
    assert.throws(() => loadJwsKeys(dir, join(dir, 'public')), internal(/not an ES256/));
  });
});
