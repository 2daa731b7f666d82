/**
 * Password hashing as upstream's keystone/common/password_hashing.py: new hashes in
 * the configured algorithm (bcrypt by default), and verification of every format
 * an upstream Keystone database may hold, so users keep their passwords when their
 * rows are imported. Hash strings are passlib's, byte for byte.
 */
import { createHash, createHmac, pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcrypt';
import { forbidden } from '@onestack/core/errors.ts';

const pbkdf2Async = promisify(pbkdf2);
const scryptAsync = promisify(scrypt) as (
  password: Buffer,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

export type PasswordHashAlgorithm = 'bcrypt' | 'bcrypt_sha256' | 'pbkdf2_sha512' | 'scrypt';

export interface PasswordPolicyOptions {
  /** `[identity] password_hash_algorithm`; also decides the length limit when verifying. */
  algorithm?: PasswordHashAlgorithm;
  /** `[identity] max_password_length`. */
  maxPasswordLength?: number;
  /** `[DEFAULT] strict_password_check`: refuse an over-long password instead of truncating it. */
  strictPasswordCheck?: boolean;
}

export interface PasswordHashOptions extends PasswordPolicyOptions {
  /** `[identity] password_hash_rounds`: bcrypt cost, PBKDF2 iterations, or scrypt log2(N). */
  rounds?: number;
  /** `[identity] salt_bytesize`, for pbkdf2_sha512 and scrypt. */
  saltBytes?: number;
  /** `[identity] scrypt_block_size`. */
  scryptBlockSize?: number;
  /** `[identity] scrypt_parallelism`. */
  scryptParallelism?: number;
}

const DEFAULT_ROUNDS: Record<PasswordHashAlgorithm, number> = {
  bcrypt: 12,
  bcrypt_sha256: 12,
  pbkdf2_sha512: 25000,
  scrypt: 16,
};
const BCRYPT_MAX_LENGTH = 72;

/**
 * Upstream's `verify_length_and_trunc_password`: bcrypt ignores everything past 72
 * bytes, so with bcrypt configured the limit drops to 72 for hashing and verifying
 * alike, and a longer password is truncated (or refused when strict).
 */
function truncate(password: string, opts: PasswordPolicyOptions): Buffer {
  const configured = opts.maxPasswordLength ?? 4096;
  const max = (opts.algorithm ?? 'bcrypt') === 'bcrypt' ? Math.min(configured, BCRYPT_MAX_LENGTH) : configured;
  const utf8 = Buffer.from(password, 'utf8');
  if (utf8.length <= max) return utf8;
  if (opts.strictPasswordCheck) {
    throw forbidden(
      `The password length must be less than or equal to ${max}. The server could not comply with the request because the password is invalid.`,
    );
  }
  return utf8.subarray(0, max);
}

/** passlib's "ab64": base64 with `.` for `+` and no padding. */
const ab64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '').replaceAll('+', '.');
const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
const unab64 = (s: string) => Buffer.from(s.replaceAll('.', '+'), 'base64');

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function malformed(): Error {
  return new Error('malformed password hash');
}

function checkRounds(rounds: number, min: number, max: number): number {
  if (!Number.isInteger(rounds) || rounds < min || rounds > max) {
    throw new RangeError(`password_hash_rounds must be an integer between ${min} and ${max}`);
  }
  return rounds;
}

/** bcrypt of passlib's bcrypt_sha256 v2 runs on base64(HMAC-SHA256(salt, password)), lifting the 72-byte limit. */
function bcryptSha256Input(salt: string, password: Buffer): string {
  return createHmac('sha256', salt).update(password).digest('base64');
}

export async function hashPassword(password: string, opts: PasswordHashOptions = {}): Promise<string> {
  const algorithm = opts.algorithm ?? 'bcrypt';
  const pw = truncate(password, opts);
  const rounds = opts.rounds ?? DEFAULT_ROUNDS[algorithm];
  const saltBytes = opts.saltBytes ?? 16;
  switch (algorithm) {
    case 'bcrypt':
      return bcrypt.hash(pw, checkRounds(rounds, 4, 31));
    case 'bcrypt_sha256': {
      const settings = await bcrypt.genSalt(checkRounds(rounds, 4, 31));
      const salt = settings.slice(-22);
      const digest = (await bcrypt.hash(bcryptSha256Input(salt, pw), settings)).slice(-31);
      return `$bcrypt-sha256$v=2,t=2b,r=${rounds}$${salt}$${digest}`;
    }
    case 'pbkdf2_sha512': {
      const salt = randomBytes(saltBytes);
      const dk = await pbkdf2Async(pw, salt, checkRounds(rounds, 1, 2 ** 32 - 1), 64, 'sha512');
      return `$pbkdf2-sha512$${rounds}$${ab64(salt)}$${ab64(dk)}`;
    }
    case 'scrypt': {
      const r = opts.scryptBlockSize ?? 8;
      const p = opts.scryptParallelism ?? 1;
      const salt = randomBytes(saltBytes);
      const dk = await scryptKey(pw, salt, checkRounds(rounds, 1, 31), r, p);
      return `$scrypt$ln=${rounds},r=${r},p=${p}$${b64(salt)}$${b64(dk)}`;
    }
  }
}

function scryptKey(pw: Buffer, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** ln;
  // node refuses to allocate more than 32 MiB unless told; scrypt needs 128·N·r bytes.
  return scryptAsync(pw, salt, 32, { N, r, p, maxmem: 256 * N * r + (1 << 20) });
}

/**
 * Whether `password` matches `hash`, whichever supported format the hash is in:
 * bcrypt `$2a$`/`$2b$`/`$2y$`, passlib's `$bcrypt-sha256$`, `$pbkdf2-sha512$` and
 * `$scrypt$`, and sha256/sha512-crypt `$5$`/`$6$`. A missing hash never matches; an
 * unknown format throws, as upstream does.
 */
export async function verifyPassword(
  password: string,
  hash: string | null | undefined,
  opts: PasswordPolicyOptions = {},
): Promise<boolean> {
  if (hash == null) return false;
  const pw = truncate(password, opts);
  const end = hash.indexOf('$', 1);
  const ident = end > 0 ? hash.slice(0, end + 1) : hash;
  switch (ident) {
    case '$2a$':
    case '$2b$':
      return bcrypt.compare(pw, hash);
    case '$2y$':
      // $2y$ (PHP's spelling) is the same algorithm as $2b$, which is all node's bcrypt reads.
      return bcrypt.compare(pw, `$2b$${hash.slice(4)}`);
    case '$bcrypt-sha256$':
      return verifyBcryptSha256(pw, hash);
    case '$pbkdf2-sha512$':
      return verifyPbkdf2(pw, hash);
    case '$scrypt$':
      return verifyScrypt(pw, hash);
    case '$5$':
      return sameBytes(Buffer.from(await shaCrypt('sha256', pw, hash)), Buffer.from(hash));
    case '$6$':
      return sameBytes(Buffer.from(await shaCrypt('sha512', pw, hash)), Buffer.from(hash));
    default:
      throw new Error(`Unsupported password hashing algorithm ident: ${ident}`);
  }
}

async function verifyBcryptSha256(pw: Buffer, hash: string): Promise<boolean> {
  const m = /^\$bcrypt-sha256\$v=2,t=(2a|2b),r=(\d{1,2})\$([./A-Za-z0-9]{22})\$([./A-Za-z0-9]{31})$/.exec(hash);
  if (!m) throw malformed();
  const [, ident, rounds, salt, digest] = m;
  return bcrypt.compare(bcryptSha256Input(salt, pw), `$${ident}$${rounds.padStart(2, '0')}$${salt}${digest}`);
}

async function verifyPbkdf2(pw: Buffer, hash: string): Promise<boolean> {
  const parts = hash.split('$');
  if (parts.length !== 5 || !/^\d+$/.test(parts[2])) throw malformed();
  const expected = unab64(parts[4]);
  if (expected.length === 0) throw malformed();
  const dk = await pbkdf2Async(pw, unab64(parts[3]), Number(parts[2]), expected.length, 'sha512');
  return sameBytes(dk, expected);
}

async function verifyScrypt(pw: Buffer, hash: string): Promise<boolean> {
  const parts = hash.split('$');
  if (parts.length !== 5) throw malformed();
  const params = Object.fromEntries(parts[2].split(',').map((kv) => kv.split('=', 2)));
  const [ln, r, p] = [params.ln, params.r, params.p].map(Number);
  if (![ln, r, p].every((n) => Number.isInteger(n) && n > 0)) throw malformed();
  const expected = unab64(parts[4]);
  return sameBytes(await scryptKey(pw, unab64(parts[3]), ln, r, p), expected);
}

const CRYPT64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * Ulrich Drepper's SHA-crypt (glibc's `$5$`/`$6$`), as passlib's sha256_crypt and
 * sha512_crypt: returns the full hash string for `pw` under the setting in `hash`.
 */
async function shaCrypt(alg: 'sha256' | 'sha512', pw: Buffer, hash: string): Promise<string> {
  const m = /^\$[56]\$(?:rounds=(\d+)\$)?([^$]{0,16})[^$]*(?:\$|$)/.exec(hash);
  if (!m) throw malformed();
  const explicitRounds = m[1] !== undefined;
  const rounds = explicitRounds ? Math.min(Math.max(Number(m[1]), 1000), 999_999_999) : 5000;
  const salt = Buffer.from(m[2]);
  const H = (...parts: Buffer[]) => {
    const h = createHash(alg);
    for (const part of parts) h.update(part);
    return h.digest();
  };
  const size = alg === 'sha256' ? 32 : 64;
  const repeat = (digest: Buffer, length: number) => Buffer.concat(Array(Math.ceil(length / size)).fill(digest)).subarray(0, length);

  const b = H(pw, salt, pw);
  const a = createHash(alg).update(pw).update(salt).update(repeat(b, pw.length));
  for (let n = pw.length; n > 0; n >>= 1) a.update(n & 1 ? b : pw);
  let c = a.digest();
  const p = repeat(H(...Array<Buffer>(pw.length).fill(pw)), pw.length);
  const s = repeat(H(...Array<Buffer>(16 + c[0]).fill(salt)), salt.length);
  for (let i = 0; i < rounds; i++) {
    const h = createHash(alg);
    h.update(i & 1 ? p : c);
    if (i % 3) h.update(s);
    if (i % 7) h.update(p);
    h.update(i & 1 ? c : p);
    c = h.digest();
    // Hashes with many rounds take seconds: let the event loop breathe meanwhile.
    if (i % 20000 === 19999) await new Promise((resolve) => setImmediate(resolve));
  }

  // The digest is emitted in groups of three bytes in a fixed interleaved order:
  // group g takes bytes g, g+k, g+2k (k = a third of the digest), rotated by g.
  const k = alg === 'sha256' ? 10 : 21;
  let out = '';
  const emit = (b2: number, b1: number, b0: number, chars: number) => {
    let w = (b2 << 16) | (b1 << 8) | b0;
    for (let j = 0; j < chars; j++, w >>= 6) out += CRYPT64[w & 0x3f];
  };
  for (let g = 0; g < k; g++) {
    const trio = [c[g], c[g + k], c[g + 2 * k]];
    const rot = alg === 'sha256' ? (3 - (g % 3)) % 3 : g % 3;
    emit(trio[rot], trio[(rot + 1) % 3], trio[(rot + 2) % 3], 4);
  }
  if (alg === 'sha256') emit(0, c[31], c[30], 3);
  else emit(0, 0, c[63], 2);
  return `$${alg === 'sha256' ? 5 : 6}$${explicitRounds ? `rounds=${rounds}$` : ''}${m[2]}$${out}`;
}
