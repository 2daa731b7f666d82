import { execFile } from 'node:child_process';
import { X509Certificate, createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Clock } from '@onestack/core/clock.ts';
import { isUniqueViolation, type Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { KeyPairRow, NovaDB } from '../db/schema.ts';
import { badRequest, conflict, forbidden, keypairNotFound } from './errors.ts';

export interface KeyPair {
  name: string;
  userId: string;
  fingerprint: string;
  publicKey: string;
  type: 'ssh' | 'x509';
  createdAt: number;
  id: string;
}

const sshString = (b: Buffer) => {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};

/** An unsigned big-endian integer as SSH's mpint (a leading zero byte when the top bit is set). */
const mpint = (b: Buffer) => sshString(b[0] & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);

/** A fresh RSA-2048 key pair, as upstream generates for type ssh: OpenSSH public key, PKCS#1 PEM private key. */
export function generateSshKey(comment: string): { publicKey: string; privateKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' }) as { n: string; e: string };
  const blob = Buffer.concat([sshString(Buffer.from('ssh-rsa')), mpint(Buffer.from(jwk.e, 'base64url')), mpint(Buffer.from(jwk.n, 'base64url'))]);
  return { publicKey: `ssh-rsa ${blob.toString('base64')} ${comment}`, privateKey: privateKey.export({ type: 'pkcs1', format: 'pem' }) as string };
}

const execFileAsync = promisify(execFile);

/**
 * A self-signed client certificate for the user (nova.crypto.generate_winrm_x509_cert, what
 * WinRM takes for passwordless logins): PEM certificate as the public key, the key and
 * certificate as a base64 PKCS#12 bundle with an empty password as the private key.
 */
export async function generateX509Cert(userId: string): Promise<{ publicKey: string; privateKey: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nova-x509-'));
  try {
    const conf = join(dir, 'req.conf');
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const p12 = join(dir, 'bundle.p12');
    await writeFile(conf, `distinguished_name = req_distinguished_name\n[req_distinguished_name]\n[v3_req_client]\nextendedKeyUsage = clientAuth\nsubjectAltName = otherName:1.3.6.1.4.1.311.20.2.3;UTF8:${userId}@localhost\n`);
    const opts = { timeout: 120_000 };
    await execFileAsync('openssl', ['req', '-x509', '-nodes', '-days', '3650', '-config', conf, '-newkey', 'rsa:2048', '-outform', 'PEM', '-keyout', key, '-out', cert, '-subj', `/CN=${userId}`, '-extensions', 'v3_req_client'], opts);
    await execFileAsync('openssl', ['pkcs12', '-export', '-inkey', key, '-in', cert, '-out', p12, '-password', 'pass:'], opts);
    return { publicKey: await readFile(cert, 'utf8'), privateKey: (await readFile(p12)).toString('base64') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const SSH_TYPES = ['ssh-rsa', 'ssh-ed25519', 'ssh-dss', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com'];

/** MD5 of the key blob, colon-separated (nova.crypto.generate_fingerprint); throws upstream's 400 on junk. */
export function sshFingerprint(publicKey: string): string {
  const parts = publicKey.trim().split(/\s+/);
  const invalid = () => badRequest('Keypair data is invalid: failed to generate fingerprint');
  if (parts.length < 2 || !SSH_TYPES.includes(parts[0])) throw invalid();
  const blob = Buffer.from(parts[1], 'base64');
  if (blob.length < 4) throw invalid();
  const n = blob.readUInt32BE(0);
  if (blob.length < 4 + n || blob.subarray(4, 4 + n).toString() !== parts[0]) throw invalid();
  return createHash('md5').update(blob).digest('hex').match(/../g)!.join(':');
}

export function x509Fingerprint(pem: string): string {
  try {
    return new X509Certificate(pem).fingerprint.toLowerCase();
  } catch {
    throw badRequest('Keypair data is invalid: failed to generate fingerprint');
  }
}

const NAME_RE = /^[a-zA-Z0-9 _-]+$/;
const NAME_RE_292 = /^[a-zA-Z0-9 _.@-]+$/;

export function fromRow(r: KeyPairRow): KeyPair {
  return { id: r.id, name: r.name, userId: r.user_id, fingerprint: r.fingerprint, publicKey: r.public_key, type: r.type as 'ssh' | 'x509', createdAt: r.created_at };
}

export class KeyPairs {
  constructor(
    private readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
    private readonly quota: () => Promise<number>,
  ) {}

  private get db() {
    return this.database.db;
  }

  /** Imports `publicKey` or, without one, generates a pair (the private key is returned once, never stored). */
  async create(o: { userId: string; name: string; type: 'ssh' | 'x509'; publicKey?: string; relaxedNames?: boolean }): Promise<KeyPair & { privateKey?: string }> {
    const name = o.name.trim() === o.name ? o.name : o.name;
    if (!(o.relaxedNames ? NAME_RE_292 : NAME_RE).test(name)) throw badRequest('Keypair data is invalid: Keypair name contains unsafe characters');
    if (name.length < 1 || name.length > 255) throw badRequest('Keypair data is invalid: Keypair name must be string and between 1 and 255 characters long');
    const limit = await this.quota();
    if (limit >= 0) {
      const count = Number((await this.db.selectFrom('key_pairs').select((eb) => eb.fn.countAll().as('n')).where('user_id', '=', o.userId).executeTakeFirstOrThrow()).n);
      if (count >= limit) throw forbidden('Quota exceeded, too many key pairs.');
    }
    let publicKey = o.publicKey;
    let privateKey: string | undefined;
    if (publicKey === undefined) ({ publicKey, privateKey } = o.type === 'x509' ? await generateX509Cert(o.userId) : generateSshKey(`Generated-by-Nova`));
    const fingerprint = o.type === 'x509' ? x509Fingerprint(publicKey) : sshFingerprint(publicKey);
    const row: KeyPairRow = { id: this.ids.uuid(), name, user_id: o.userId, fingerprint, public_key: publicKey, type: o.type, created_at: this.clock.now() };
    try {
      await this.db.insertInto('key_pairs').values(row).execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Key pair '${name}' already exists.`);
      throw e;
    }
    return { ...fromRow(row), ...(privateKey ? { privateKey } : {}) };
  }

  async get(userId: string, name: string): Promise<KeyPair> {
    const r = await this.db.selectFrom('key_pairs').selectAll().where('user_id', '=', userId).where('name', '=', name).executeTakeFirst();
    if (!r) throw keypairNotFound(name, userId);
    return fromRow(r);
  }

  async list(userId: string, o: { limit?: number; marker?: string } = {}): Promise<KeyPair[]> {
    let rows = (await this.db.selectFrom('key_pairs').selectAll().where('user_id', '=', userId).orderBy('name').execute()).map(fromRow);
    if (o.marker !== undefined) {
      const i = rows.findIndex((k) => k.name === o.marker);
      if (i < 0) throw badRequest(`marker [${o.marker}] not found`);
      rows = rows.slice(i + 1);
    }
    return o.limit !== undefined ? rows.slice(0, o.limit) : rows;
  }

  async delete(userId: string, name: string): Promise<void> {
    const n = await this.db.deleteFrom('key_pairs').where('user_id', '=', userId).where('name', '=', name).executeTakeFirst();
    if (Number(n.numDeletedRows) === 0) throw keypairNotFound(name, userId);
  }
}
