/**
 * Keystone's JWS token provider format (keystone/token/providers/jws/core.py):
 * an ES256 JWT whose claims are `sub`, `iat`, `exp` and the `openstack_*` private
 * claims, signed with `private.pem` from `[jwt_tokens] jws_private_key_repository`
 * and checked against every public key in `jws_public_key_repository`, so that
 * nodes verify each other's tokens by sharing public keys only.
 *
 * Signing and verifying use node:crypto directly rather than jose: jose is
 * async-only, and TokenFormatter is synchronous so that Fernet stays fast.
 */
import type { KeyObject } from 'node:crypto';
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '@onestack/core/clock.ts';
import { systemClock } from '@onestack/core/clock.ts';
import { ApiError } from '@onestack/core/errors.ts';
import type { TokenFormatter, TokenPayload } from './token-formatter.ts';
import { InvalidTokenError } from './token-formatter.ts';

const HEADER = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT' })).toString('base64url');
const RECHECK_MS = 1000;

/** `keystone-manage create_jws_keypair`: a NIST P-256 pair, PKCS#8 and SubjectPublicKeyInfo PEM. */
export function createJwsKeyPair(privateKeyPath: string, publicKeyPath: string): void {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(privateKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  chmodSync(privateKeyPath, 0o600);
  writeFileSync(publicKeyPath, publicKey.export({ type: 'spki', format: 'pem' }));
}

export interface JwsKeys {
  privateKey: KeyObject;
  publicKeys: readonly KeyObject[];
}

function p256(key: KeyObject, path: string): KeyObject {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ApiError('internal', `${path} is not an ES256 (NIST P-256) key`);
  }
  return key;
}

interface Cached {
  signature: string;
  checkedAt: number;
  keys: JwsKeys;
}

const cache = new Map<string, Cached>();

function stamp(path: string): string {
  const st = statSync(path);
  return `${path}:${st.size}:${st.mtimeMs}`;
}

/**
 * The signing key and the verification keys, re-read when a file in either
 * repository changes (looked at no more than once a second), as upstream re-reads
 * them for every token.
 */
export function loadJwsKeys(privateRepo: string, publicRepo: string, clock: Clock = systemClock): JwsKeys {
  const now = clock.now();
  const id = `${privateRepo}\0${publicRepo}`;
  const hit = cache.get(id);
  if (hit && now - hit.checkedAt < RECHECK_MS) return hit.keys;
  const privatePath = join(privateRepo, 'private.pem');
  let publicPaths: string[];
  let signature: string;
  try {
    publicPaths = readdirSync(publicRepo).map((name) => join(publicRepo, name));
    signature = [privatePath, ...publicPaths].map(stamp).join(',');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    cache.delete(id);
    throw new ApiError(
      'internal',
      `${privatePath} or ${publicRepo} does not exist. You can generate a key pair using \`keystone-manage create_jws_keypair\`.`,
    );
  }
  if (hit && hit.signature === signature) {
    hit.checkedAt = now;
    return hit.keys;
  }
  if (publicPaths.length === 0) {
    throw new ApiError(
      'internal',
      `${publicRepo} must contain at least one public key but it is empty. You can generate a key pair using \`keystone-manage create_jws_keypair\`.`,
    );
  }
  const keys = {
    privateKey: p256(createPrivateKey(readFileSync(privatePath)), privatePath),
    publicKeys: publicPaths.map((path) => p256(createPublicKey(readFileSync(path)), path)),
  };
  cache.set(id, { signature, checkedAt: now, keys });
  return keys;
}

interface Claims {
  sub: string;
  iat: number;
  exp: number;
  openstack_methods: string[];
  openstack_audit_ids: string[];
  openstack_system?: 'all';
  openstack_domain_id?: string;
  openstack_project_id?: string;
  openstack_app_cred_id?: string;
}

const notFound = () => new InvalidTokenError('unrecognized', 'Could not find token');

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const optionalString = (v: unknown) => v === undefined || typeof v === 'string';

function parseClaims(json: Buffer): Claims {
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw notFound();
  }
  const valid =
    typeof c === 'object' &&
    c !== null &&
    typeof c.sub === 'string' &&
    Number.isFinite(c.iat) &&
    Number.isFinite(c.exp) &&
    isStrings(c.openstack_methods) &&
    isStrings(c.openstack_audit_ids) &&
    (c.openstack_system === undefined || c.openstack_system === 'all') &&
    optionalString(c.openstack_domain_id) &&
    optionalString(c.openstack_project_id) &&
    optionalString(c.openstack_app_cred_id);
  if (!valid) throw new InvalidTokenError('payload', 'Could not find token');
  return c as unknown as Claims;
}

export class JwsTokenFormatter implements TokenFormatter {
  constructor(private readonly keys: () => JwsKeys) {}

  create(p: TokenPayload): string {
    // Claim order and whole-second times as upstream's JWSFormatter.create_token.
    const claims: Claims = {
      sub: p.userId,
      iat: Math.floor(p.issuedAt / 1000),
      exp: Math.floor(p.expiresAt / 1000),
      openstack_methods: p.methods,
      openstack_audit_ids: p.auditIds,
      openstack_system: p.system,
      openstack_domain_id: p.domainId,
      openstack_project_id: p.projectId,
      openstack_app_cred_id: p.appCredId,
    };
    const signingInput = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key: this.keys().privateKey, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${signature.toString('base64url')}`;
  }

  validate(token: string): TokenPayload {
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every((part) => /^[A-Za-z0-9_-]+$/.test(part))) throw notFound();
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    } catch {
      throw notFound();
    }
    // Only ES256: accepting the header's word for the algorithm is how `alg: none` forgeries get in.
    if (typeof header !== 'object' || header === null || (header as { alg?: unknown }).alg !== 'ES256') throw notFound();
    const signingInput = Buffer.from(`${parts[0]}.${parts[1]}`);
    const signature = Buffer.from(parts[2], 'base64url');
    const trusted = this.keys().publicKeys.some((key) =>
      verify('sha256', signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature),
    );
    if (!trusted) throw notFound();
    const c = parseClaims(Buffer.from(parts[1], 'base64url'));
    const payload: TokenPayload = {
      userId: c.sub,
      methods: c.openstack_methods,
      issuedAt: c.iat * 1000,
      expiresAt: c.exp * 1000,
      auditIds: c.openstack_audit_ids,
    };
    if (c.openstack_system !== undefined) payload.system = c.openstack_system;
    if (c.openstack_domain_id !== undefined) payload.domainId = c.openstack_domain_id;
    if (c.openstack_project_id !== undefined) payload.projectId = c.openstack_project_id;
    if (c.openstack_app_cred_id !== undefined) payload.appCredId = c.openstack_app_cred_id;
    return payload;
  }
}
