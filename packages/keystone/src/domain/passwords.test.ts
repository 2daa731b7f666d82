import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isApiError } from '@onestack/core/errors.ts';
import type { PasswordHashAlgorithm } from './passwords.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

/**
 * Hashes made by Python: bcrypt 3.2 (`bcrypt.hashpw`), passlib 1.7 (pbkdf2_sha512,
 * bcrypt_sha256, scrypt, sha256_crypt, sha512_crypt), and the glibc test vector for
 * sha512-crypt. Each pairs with the password it was made from.
 */
const FOREIGN: [string, string, string][] = [
  ['bcrypt $2b$', 'secret', '$2b$04$5yG0jl9F7o.y11Kpr2pdeeln0RqSZTbbc8eCvD2s9fDthKQWDbxDy'],
  ['bcrypt $2a$', 'secret', '$2a$04$yUSurQgA2lla60SUlvXx1.bqqAOF5J/uh99M55/wBSaSSZpHs1ppi'],
  ['bcrypt $2y$', 'secret', '$2y$04$5yG0jl9F7o.y11Kpr2pdeeln0RqSZTbbc8eCvD2s9fDthKQWDbxDy'],
  [
    'pbkdf2_sha512',
    'secret',
    '$pbkdf2-sha512$1000$w3ivlVJKaW3NWUvpfW.NEQ$afJ9PgjyooWo2ssaRlxTWjJGM3ozfqJInSzCIzmeEOVSjI8/CiTKVltUxbG.4ZtR/pYA0fcxEz/ykI2gKRTVAg',
  ],
  [
    'pbkdf2_sha512, passlib defaults, non-ASCII',
    'pässword',
    '$pbkdf2-sha512$25000$0zpHSMn5n5PyPidEaE0JQQ$77S0XS8A1FNPekiaymkjk/HX19TrWi2FZpguZtYkaklFqU1fK3xx9IZPIYlc9iD4NB4Xo7qC75cqig05PGVlPQ',
  ],
  ['bcrypt_sha256', 'secret', '$bcrypt-sha256$v=2,t=2b,r=4$UO1xtGWs9YGJ/RK8obgjXu$wcWURJ9GhB4R0Qct8YOMFcDNFfuVMXm'],
  ['scrypt', 'secret', '$scrypt$ln=10,r=8,p=1$mNNaay1FiBGi1Pqfs1ZKaQ$terhy3TTIj0DP8lZeF+Me1MsZatlcyLn+x6pRSFHYlE'],
  ['sha512_crypt', 'secret', '$6$P.p2Nbt8uJRxIMVT$VoStUBeW8Ro0IPwUbyL4oXj3GCnEZEQOUb5.xl8SD9I1Rc3DazwCA5o/zz97dq8IHHNWHPHx.gKV6/TR/RZ3L1'],
  [
    'sha512_crypt, explicit rounds',
    'secret',
    '$6$rounds=10000$no64uODBDKeRRuwJ$fpz598RhU32lXSNQ6uMzqSzdgnwCwQH/mUr3qwrVd74fmTJ.7ZocTMrsiO.Io74XQJs.OwS4NhgQl6qa0Wo6g.',
  ],
  [
    'sha512_crypt, glibc vector',
    'Hello world!',
    '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1',
  ],
  ['sha256_crypt', 'secret', '$5$yC4Y8LocC22rang4$p1qljAmqaMtssetyKEvzRhPn5YuTk0qJnKe/Xk8Cv4.'],
  [
    'sha256_crypt, explicit rounds, a password longer than the digest',
    'a much longer password with more than sixty-four bytes',
    '$5$rounds=12345$fyq4MWzhSyHeoTtD$SFkveEO7ztGMfDIfgV9M2hKotQC6raXQr/T80cLP726',
  ],
  [
    'sha512_crypt, a password longer than the digest',
    'a password of seventy bytes, longer than a sha-512 digest is: 64 bytes',
    '$6$GyNlWScvXnEsSgOG$nhCh3Oj8vQMffwmEnuNn.qF3NtgeR3R/0OAWLmulRTBXN6890y1K8yeopq42pz98OwMUGRz/4Ejy6.xWcQ.6c/',
  ],
];

describe('password hashing', () => {
  for (const [name, password, hash] of FOREIGN) {
    it(`verifies a ${name} hash made elsewhere`, async () => {
      assert.equal(await verifyPassword(password, hash), true);
      assert.equal(await verifyPassword(`${password}x`, hash), false);
      assert.equal(await verifyPassword('', hash), false);
    });
  }

  const FAST: Record<PasswordHashAlgorithm, number> = { bcrypt: 4, bcrypt_sha256: 4, pbkdf2_sha512: 1000, scrypt: 10 };
  for (const [algorithm, rounds] of Object.entries(FAST) as [PasswordHashAlgorithm, number][]) {
    it(`hashes with ${algorithm} in passlib's format and verifies it`, async () => {
      const hash = await hashPassword('correct horse', { algorithm, rounds });
      const shape = {
        bcrypt: /^\$2b\$04\$[./A-Za-z0-9]{53}$/,
        bcrypt_sha256: /^\$bcrypt-sha256\$v=2,t=2b,r=4\$[./A-Za-z0-9]{22}\$[./A-Za-z0-9]{31}$/,
        pbkdf2_sha512: /^\$pbkdf2-sha512\$1000\$[./A-Za-z0-9]{22}\$[./A-Za-z0-9]{86}$/,
        scrypt: /^\$scrypt\$ln=10,r=8,p=1\$[+/A-Za-z0-9]{22}\$[+/A-Za-z0-9]{43}$/,
      }[algorithm];
      assert.match(hash, shape);
      assert.equal(await verifyPassword('correct horse', hash, { algorithm }), true);
      assert.equal(await verifyPassword('correct horsE', hash, { algorithm }), false);
      assert.notEqual(await hashPassword('correct horse', { algorithm, rounds }), hash);
    });
  }

  it('keeps the event loop responsive while verifying a sha-crypt hash of many rounds', async () => {
    const hash = '$6$rounds=45000$Q96d9vXTPVq4mjPF$dNjhw0WNYmXJZ0AYUmLVzmg1.hnQNbsj7PnnutUIrotp9gQrVXZj3fLR4i3fy1cHwt0vKvlClqZr466yhonZ.0';
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      assert.equal(await verifyPassword('secret', hash), true);
    } finally {
      clearInterval(timer);
    }
    assert.ok(ticks > 0);
  });

  it('defaults to bcrypt with 12 rounds, as upstream', async () => {
    assert.match(await hashPassword('pw'), /^\$2b\$12\$/);
  });

  it('honours salt size and scrypt block size and parallelism', async () => {
    const pbkdf2 = await hashPassword('pw', { algorithm: 'pbkdf2_sha512', rounds: 1000, saltBytes: 32 });
    assert.equal(Buffer.from(pbkdf2.split('$')[3].replaceAll('.', '+'), 'base64').length, 32);
    const scrypt = await hashPassword('pw', { algorithm: 'scrypt', rounds: 8, scryptBlockSize: 4, scryptParallelism: 2 });
    assert.match(scrypt, /^\$scrypt\$ln=8,r=4,p=2\$/);
    assert.equal(await verifyPassword('pw', scrypt), true);
  });

  it('refuses rounds outside the algorithm range', async () => {
    await assert.rejects(hashPassword('pw', { rounds: 3 }), RangeError);
    await assert.rejects(hashPassword('pw', { algorithm: 'scrypt', rounds: 32 }), RangeError);
    await assert.rejects(hashPassword('pw', { algorithm: 'pbkdf2_sha512', rounds: 0 }), RangeError);
  });

  it('truncates to 72 bytes under bcrypt, as bcrypt itself would', async () => {
    const long = 'x'.repeat(80);
    // Made by Python bcrypt from the first 72 bytes of `long`.
    const fromPython = '$2b$04$w/K4YAA3yhHbOL3eFDU4E./HUvjH6YfOqGm/dKY/5SitHzPRRgw4m';
    assert.equal(await verifyPassword(long, fromPython), true);
    assert.equal(await verifyPassword('x'.repeat(72), fromPython), true);
    const hash = await hashPassword(long, { rounds: 4 });
    assert.equal(await verifyPassword(`${'x'.repeat(72)}different tail`, hash), true);
  });

  it('truncates to max_password_length under other algorithms, or refuses when strict', async () => {
    const opts = { algorithm: 'pbkdf2_sha512' as const, rounds: 1000, maxPasswordLength: 10 };
    const hash = await hashPassword('0123456789abc', opts);
    assert.equal(await verifyPassword('0123456789', hash, opts), true);
    assert.equal(await verifyPassword('0123456789abc', hash, { ...opts, maxPasswordLength: 4096 }), false);
    const strict = { ...opts, strictPasswordCheck: true };
    await assert.rejects(hashPassword('0123456789abc', strict), (err: unknown) => isApiError(err) && err.status === 403);
    await assert.rejects(verifyPassword('0123456789abc', hash, strict), (err: unknown) => isApiError(err) && err.status === 403);
    const euro = await hashPassword('€€€€', { ...opts, maxPasswordLength: 6 });
    assert.equal(await verifyPassword('€€', euro, opts), true, 'the limit counts UTF-8 bytes');
  });

  it('never matches a missing hash, and refuses formats it does not know', async () => {
    assert.equal(await verifyPassword('pw', null), false);
    assert.equal(await verifyPassword('pw', undefined), false);
    await assert.rejects(verifyPassword('pw', '$1$abc$def'), /Unsupported password hashing algorithm ident: \$1\$/);
    await assert.rejects(verifyPassword('pw', 'plaintext'), /Unsupported/);
    await assert.rejects(verifyPassword('pw', '$pbkdf2-sha512$x$salt$hash'), /malformed/);
    await assert.rejects(verifyPassword('pw', '$bcrypt-sha256$v=1,t=2b,r=4$salt$digest'), /malformed/);
    await assert.rejects(verifyPassword('pw', '$scrypt$ln=x$salt$digest'), /malformed/);
  });
});
