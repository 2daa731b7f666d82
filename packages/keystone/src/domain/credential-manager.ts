import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Kysely } from 'kysely';
import { ApiError, notFound, validationError } from '@onestack/core/errors.ts';
import type { CredentialRow, KeystoneDB } from '../db/schema.ts';
import { FernetKey, MultiFernet } from '../tokens/fernet.ts';
import { loadKeys, setup as setupKeys } from '../tokens/fernet-keys.ts';
import { parseJson } from './json-columns.ts';
import type { Keystone } from './keystone.ts';

export interface Credential {
  id: string;
  userId: string;
  projectId: string | null;
  type: string;
  /** Always a string on the API, an ec2 blob being a JSON document. */
  blob: string;
  extra: Record<string, unknown>;
}

export interface CredentialInput {
  userId: string;
  projectId?: string | null;
  type: string;
  blob: string;
  extra?: Record<string, unknown>;
}

export type CredentialPatch = Partial<CredentialInput>;

/**
 * Upstream appends this all-zero key to the credential keys for decryption, so
 * blobs written before `keystone-manage credential_setup` stay readable.
 */
const NULL_KEY = new FernetKey(Buffer.alloc(32));

const VALIDATION_TAIL = 'The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.';

/** Upstream's `ValidationError(attribute=…, target='credential')` message. */
export function missingAttribute(attribute: string): ApiError {
  return validationError(`Expecting to find ${attribute} in credential. ${VALIDATION_TAIL}`);
}

/** An ec2 blob's fields, with upstream's checks: a JSON object carrying `access`. */
export function parseEc2Blob(blob: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(blob);
  } catch {
    throw validationError('Invalid blob in credential');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || Object.keys(parsed).length === 0) throw missingAttribute('blob');
  const fields = parsed as Record<string, unknown>;
  if (fields.access === undefined || fields.access === null) throw missingAttribute('access');
  return fields;
}

/** Upstream's `utils.hash_access_key`: an ec2 credential's id is the sha256 of its access key. */
export function ec2CredentialId(access: string): string {
  return createHash('sha256').update(access, 'utf8').digest('hex');
}

/**
 * Credentials (ec2, totp, cert …) with their blobs encrypted at rest as
 * upstream's Fernet credential provider does: Fernet tokens under the
 * credential key repository, each row carrying the sha1 of the primary key
 * that encrypted it (what `credential_rotate` and `credential_migrate` look at).
 */
export class CredentialManager {
  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  async list(filter: { userId?: string; type?: string } = {}): Promise<Credential[]> {
    let q = this.db.selectFrom('credential').selectAll();
    if (filter.userId !== undefined) q = q.where('user_id', '=', filter.userId);
    if (filter.type !== undefined) q = q.where('type', '=', filter.type);
    const rows = await q.orderBy('id').execute();
    return rows.map((r) => this.toCredential(r));
  }

  async find(id: string): Promise<Credential | undefined> {
    const row = await this.db.selectFrom('credential').selectAll().where('id', '=', id).executeTakeFirst();
    return row && this.toCredential(row);
  }

  async get(id: string): Promise<Credential> {
    const c = await this.find(id);
    if (!c) throw notFound(`Could not find credential: ${id}.`);
    return c;
  }

  async create(id: string, input: CredentialInput): Promise<Credential> {
    const row: CredentialRow = {
      id,
      user_id: input.userId,
      project_id: input.projectId ?? null,
      type: input.type,
      extra: JSON.stringify(input.extra ?? {}),
      ...this.encrypt(input.type, input.blob),
    };
    await this.ks.unique('credential', `Duplicate entry found with ID ${id}.`, () => this.db.insertInto('credential').values(row).execute());
    this.ks.notifier.emit('credential', 'created', id);
    return this.toCredential(row);
  }

  /** Re-encrypts the blob on every update, so an updated row is always under the current primary key. */
  async update(id: string, patch: CredentialPatch): Promise<Credential> {
    const current = await this.get(id);
    const type = patch.type ?? current.type;
    const projectId = patch.projectId !== undefined ? patch.projectId : current.projectId;
    // An ec2 credential is unusable without a project (upstream's _validate_credential_update).
    if (type.toLowerCase() === 'ec2' && !projectId) throw missingAttribute('project_id');
    const set: Partial<CredentialRow> = {
      user_id: patch.userId ?? current.userId,
      project_id: projectId,
      type,
      extra: JSON.stringify({ ...current.extra, ...patch.extra }),
      ...this.encrypt(type, patch.blob ?? current.blob),
    };
    await this.db.updateTable('credential').set(set).where('id', '=', id).execute();
    this.ks.notifier.emit('credential', 'updated', id);
    return this.get(id);
  }

  async delete(id: string): Promise<void> {
    const res = await this.db.deleteFrom('credential').where('id', '=', id).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound(`Could not find credential: ${id}.`);
    this.ks.notifier.emit('credential', 'deleted', id);
  }

  private keys(): readonly FernetKey[] {
    const dir = this.ks.config.credentialKeyRepository;
    // The all-in-one sets its credential keys up on first use, as it does its token keys at start.
    if (!existsSync(dir)) setupKeys(dir);
    return loadKeys(dir, this.ks.clock);
  }

  /**
   * ec2 blobs go through one more JSON encoding before encryption, as upstream
   * stores them; rows written by upstream therefore decrypt the same way.
   */
  private encrypt(type: string, blob: string): Pick<CredentialRow, 'encrypted_blob' | 'key_hash'> {
    const keys = this.keys();
    const plaintext = type === 'ec2' ? JSON.stringify(blob) : blob;
    return {
      encrypted_blob: new MultiFernet(keys).encrypt(Buffer.from(plaintext, 'utf8'), this.ks.clock.now() / 1000),
      key_hash: keyHash(keys[0]!),
    };
  }

  private decrypt(row: CredentialRow): string {
    let plaintext: string;
    try {
      plaintext = new MultiFernet([...this.keys(), NULL_KEY]).decrypt(row.encrypted_blob).plaintext.toString('utf8');
    } catch (err) {
      this.ks.logger.error({ err, credential_id: row.id }, 'Credential could not be decrypted. Please contact the administrator');
      throw new ApiError('internal', 'An unexpected error prevented the server from accessing encrypted credentials.', { cause: err });
    }
    if (row.type !== 'ec2') return plaintext;
    // Blobs written before upstream's fix for bug #1259584 are JSON objects, not strings.
    const decoded: unknown = JSON.parse(plaintext);
    return typeof decoded === 'string' ? decoded : JSON.stringify(decoded);
  }

  private toCredential(row: CredentialRow): Credential {
    return {
      id: row.id,
      userId: row.user_id,
      projectId: row.project_id,
      type: row.type,
      blob: this.decrypt(row),
      extra: parseJson(row.extra),
    };
  }
}

/** Upstream's primary_key_hash: sha1 of the key file's text (urlsafe base64 of the 32 bytes). */
function keyHash(key: FernetKey): string {
  const text = Buffer.concat([key.signing, key.encryption]).toString('base64url') + '=';
  return createHash('sha1').update(text).digest('hex');
}

// ---- EC2 request signatures ------------------------------------------------

/** What an EC2/S3 front end forwards to /v3/ec2tokens about the request it received. */
export interface Ec2SignedRequest {
  access: string;
  signature?: string;
  host?: string;
  verb?: string;
  path?: string;
  params?: Record<string, string>;
  headers?: Record<string, string>;
  body_hash?: string;
}

/** Python's urllib.parse.quote with safe='-_~' (and safe='' for keys: the same set). */
function awsQuote(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalQuery(params: Record<string, string>): string {
  return Object.keys(params)
    .sort()
    .map((k) => `${awsQuote(k)}=${awsQuote(String(params[k]))}`)
    .join('&');
}

const hmac = (alg: 'sha1' | 'sha256', key: string | Buffer, msg: string) => createHmac(alg, key).update(msg, 'utf8').digest();

/** AWS signature version 4 as keystoneclient's Ec2Signer computes it. */
function signatureV4(secret: string, r: Ec2SignedRequest, params: Record<string, string>): string {
  const headers = r.headers ?? {};
  const authorization = headers.Authorization;
  const authParam = (name: string): string => {
    if (authorization === undefined) return params[`X-Amz-${name}`] ?? '';
    const i = authorization.indexOf(`${name}=`);
    return i < 0 ? '' : authorization.slice(i + name.length + 1).split(',')[0]!;
  };
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase().trim(), String(v).trim()]));
  // Boto before 2.9.3 signed the host without its port.
  const stripPort = /^Boto\/2\.[0-9]\.[0-2]/.test(lower.get('user-agent') ?? '');
  const signedHeaders = authParam('SignedHeaders');
  const headerLines = signedHeaders
    .split(';')
    .filter((h) => lower.has(h))
    .map((h) => `${h}:${h === 'host' && stripPort ? lower.get(h)!.split(':')[0] : lower.get(h)}`);
  const verb = (r.verb ?? '').toUpperCase();
  // POST requests carry their parameters in the body, which body_hash covers.
  const canonical = [verb, r.path ?? '', verb === 'POST' ? '' : canonicalQuery(params), `${headerLines.join('\n')}\n`, signedHeaders, r.body_hash ?? ''].join('\n');
  const scope = authParam('Credential').split('/');
  const [, date = '', region = '', service = ''] = scope;
  const requestDate = headers['X-Amz-Date'] ?? params['X-Amz-Date'] ?? '';
  if (!requestDate.startsWith(date)) throw new Error('Request date mismatch error');
  const toSign = ['AWS4-HMAC-SHA256', requestDate, scope.slice(1).join('/'), createHash('sha256').update(canonical, 'utf8').digest('hex')].join('\n');
  let key = hmac('sha256', `AWS4${secret}`, date);
  for (const part of [region, service, 'aws4_request']) key = hmac('sha256', key, part);
  return createHmac('sha256', key).update(toSign, 'utf8').digest('hex');
}

/** keystoneclient's Ec2Signer.generate: signature versions 0, 1, 2 and 4. */
export function ec2Signature(secret: string, r: Ec2SignedRequest): string {
  const params = { ...r.params };
  const version = params.SignatureVersion;
  if (version === '0') return hmac('sha1', secret, `${params.Action}${params.Timestamp}`).toString('base64');
  if (version === '1') {
    const mac = createHmac('sha1', secret);
    for (const k of Object.keys(params).sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : a.toLowerCase() > b.toLowerCase() ? 1 : 0))) {
      mac.update(k, 'utf8').update(String(params[k]), 'utf8');
    }
    return mac.digest('base64');
  }
  if (version === '2') {
    params.SignatureMethod = 'HmacSHA256';
    return hmac('sha256', secret, `${r.verb}\n${r.host}\n${r.path}\n${canonicalQuery(params)}`).toString('base64');
  }
  if (r.headers?.Authorization?.startsWith('AWS4-HMAC-SHA256') || params['X-Amz-Algorithm'] === 'AWS4-HMAC-SHA256') return signatureV4(secret, r, params);
  throw new Error(version === undefined ? 'Unexpected signature format' : `Unknown signature version: ${version}`);
}

/**
 * Whether the request's signature is the secret's, retrying without the
 * port in `host` as upstream does (some clients sign the bare host name).
 */
export function ec2SignatureMatches(secret: string, r: Ec2SignedRequest): boolean {
  if (!r.signature) return false;
  const same = (a: string) => {
    const x = Buffer.from(a);
    const y = Buffer.from(r.signature!);
    return x.length === y.length && timingSafeEqual(x, y);
  };
  try {
    if (same(ec2Signature(secret, r))) return true;
    return r.host !== undefined && r.host.includes(':') && same(ec2Signature(secret, { ...r, host: new URL(`http://${r.host}`).hostname }));
  } catch {
    return false;
  }
}
