/**
 * Keystone's Fernet token payloads, byte-compatible with upstream's
 * keystone/token/token_formatters.py: a msgpack'd tuple `(version, ...fields)`
 * encrypted with the primary key of the repository. A token minted here validates
 * on an upstream Keystone sharing the key repository and the reverse.
 */
import { randomBytes } from 'node:crypto';
import { Decoder, Encoder } from '@msgpack/msgpack';
import type { FernetKey } from './fernet.ts';
import { InvalidFernetToken, MultiFernet } from './fernet.ts';

/** Upstream's default `[auth] methods`; a method's bit in a token is 2^(its index). */
export const DEFAULT_AUTH_METHODS: readonly string[] = [
  'external',
  'password',
  'token',
  'oauth1',
  'mapped',
  'application_credential',
];

export interface TokenPayload {
  userId: string;
  methods: string[];
  projectId?: string;
  domainId?: string;
  system?: 'all';
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** Milliseconds since the epoch; tokens carry it in whole seconds, so it validates floored. */
  issuedAt: number;
  /** The token's own audit id, then its parent chain's when it was made from another token. */
  auditIds: string[];
  appCredId?: string;
}

export interface TokenFormatter {
  create(payload: TokenPayload): string;
  /** Throws InvalidTokenError for anything that is not a token this deployment made. Expiry is the caller's. */
  validate(token: string): TokenPayload;
}

export type InvalidTokenReason = 'unrecognized' | 'payload_version' | 'payload';

export class InvalidTokenError extends Error {
  constructor(
    readonly reason: InvalidTokenReason,
    message: string,
  ) {
    super(message);
    this.name = 'InvalidTokenError';
  }
}

/** Upstream's `random_urlsafe_str`: 16 random bytes, urlsafe base64 without padding (22 characters). */
export function randomAuditId(): string {
  return randomBytes(16).toString('base64url');
}

const VERSION = { unscoped: 0, domain: 1, project: 2, system: 8, appCred: 9 } as const;
const UUID_HEX = /^[0-9a-f]{32}$/;

type PackedId = [boolean, Uint8Array | string];

/**
 * Upstream packs anything `uuid.UUID()` parses as its 16 bytes; only canonical
 * lowercase hex is packed so here, since other spellings would not come back as
 * they went in.
 */
function packId(id: string): PackedId {
  return UUID_HEX.test(id) ? [true, Buffer.from(id, 'hex')] : [false, id];
}

const badPayload = () => new InvalidTokenError('payload', 'Could not recognize Fernet token');

function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  throw badPayload();
}

function uuidHex(v: unknown): string {
  if (!(v instanceof Uint8Array) || v.length !== 16) throw badPayload();
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
}

function unpackId(v: unknown): string {
  if (!Array.isArray(v) || v.length !== 2) throw badPayload();
  return v[0] === true ? uuidHex(v[1]) : text(v[1]);
}

function unpackTime(v: unknown): number {
  if (typeof v !== 'number') throw badPayload();
  return Math.round(v * 1000);
}

function unpackAuditIds(v: unknown): string[] {
  if (!Array.isArray(v)) throw badPayload();
  return v.map((a) => {
    if (!(a instanceof Uint8Array)) throw badPayload();
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64url');
  });
}

export interface FernetTokenFormatterOptions {
  /** Primary first, as fernet-keys.ts `loadKeys` returns them; called on every token. */
  keys: () => readonly FernetKey[];
  /** `[auth] methods`; its order fixes the bit of each method, so it must match every node's. */
  authMethods?: readonly string[];
  /** `[identity] default_domain_id`: the one non-UUID domain id a domain-scoped token can carry. */
  defaultDomainId?: string;
}

export class FernetTokenFormatter implements TokenFormatter {
  private readonly keys: () => readonly FernetKey[];
  private readonly authMethods: readonly string[];
  private readonly defaultDomainId: string;
  private readonly encoder = new Encoder();
  private readonly decoder = new Decoder();
  private fernetFor: readonly FernetKey[] | undefined;
  private fernet: MultiFernet | undefined;

  constructor(opts: FernetTokenFormatterOptions) {
    this.keys = opts.keys;
    this.authMethods = opts.authMethods ?? DEFAULT_AUTH_METHODS;
    this.defaultDomainId = opts.defaultDomainId ?? 'default';
  }

  private crypto(): MultiFernet {
    const keys = this.keys();
    if (keys !== this.fernetFor || !this.fernet) {
      this.fernet = new MultiFernet(keys);
      this.fernetFor = keys;
    }
    return this.fernet;
  }

  create(p: TokenPayload): string {
    const scopes = Number(p.projectId !== undefined) + Number(p.domainId !== undefined) + Number(p.system !== undefined);
    if (scopes > 1) throw new TypeError('a token has at most one scope');
    if (p.appCredId !== undefined && p.projectId === undefined) {
      throw new TypeError('an application credential token is project-scoped');
    }
    const user = packId(p.userId);
    const methods = this.methodsToInt(p.methods);
    const expires = p.expiresAt / 1000;
    const audit = p.auditIds.map((a) => Buffer.from(a, 'base64url'));
    let tuple: unknown[];
    if (p.appCredId !== undefined) {
      tuple = [VERSION.appCred, user, methods, packId(p.projectId!), expires, audit, packId(p.appCredId)];
    } else if (p.system !== undefined) {
      tuple = [VERSION.system, user, methods, p.system, expires, audit];
    } else if (p.projectId !== undefined) {
      tuple = [VERSION.project, user, methods, packId(p.projectId), expires, audit];
    } else if (p.domainId !== undefined) {
      tuple = [VERSION.domain, user, methods, this.packDomainId(p.domainId), expires, audit];
    } else {
      tuple = [VERSION.unscoped, user, methods, expires, audit];
    }
    // Upstream strips the padding: `=` is not URL-safe.
    return this.crypto()
      .encrypt(this.encoder.encodeSharedRef(tuple), p.issuedAt / 1000)
      .replace(/=+$/, '');
  }

  validate(token: string): TokenPayload {
    let plaintext: Buffer;
    let timestamp: number;
    try {
      ({ plaintext, timestamp } = this.crypto().decrypt(token));
    } catch (err) {
      if (err instanceof InvalidFernetToken) throw new InvalidTokenError('unrecognized', 'Could not recognize Fernet token');
      throw err;
    }
    let tuple: unknown;
    try {
      tuple = this.decoder.decode(plaintext);
    } catch {
      throw badPayload();
    }
    if (!Array.isArray(tuple)) throw badPayload();
    const [version, user, methods] = tuple;
    const base = { userId: unpackId(user), methods: this.intToMethods(methods), issuedAt: timestamp * 1000 };
    switch (version) {
      case VERSION.unscoped:
        return { ...base, expiresAt: unpackTime(tuple[3]), auditIds: unpackAuditIds(tuple[4]) };
      case VERSION.domain:
        return {
          ...base,
          domainId: this.unpackDomainId(tuple[3]),
          expiresAt: unpackTime(tuple[4]),
          auditIds: unpackAuditIds(tuple[5]),
        };
      case VERSION.project:
        return {
          ...base,
          projectId: unpackId(tuple[3]),
          expiresAt: unpackTime(tuple[4]),
          auditIds: unpackAuditIds(tuple[5]),
        };
      case VERSION.system: {
        if (text(tuple[3]) !== 'all') throw badPayload();
        return { ...base, system: 'all', expiresAt: unpackTime(tuple[4]), auditIds: unpackAuditIds(tuple[5]) };
      }
      case VERSION.appCred:
        return {
          ...base,
          projectId: unpackId(tuple[3]),
          expiresAt: unpackTime(tuple[4]),
          auditIds: unpackAuditIds(tuple[5]),
          appCredId: unpackId(tuple[6]),
        };
      default:
        throw new InvalidTokenError('payload_version', `This is not a recognized Fernet payload version: ${String(version)}`);
    }
  }

  /** Methods missing from `[auth] methods` are dropped, as upstream drops them. */
  private methodsToInt(methods: readonly string[]): number {
    let n = 0;
    this.authMethods.forEach((m, i) => {
      if (methods.includes(m)) n += 2 ** i;
    });
    return n;
  }

  /** Highest bit first, the order upstream lists a token's methods in. */
  private intToMethods(v: unknown): string[] {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw badPayload();
    const methods: string[] = [];
    for (let i = this.authMethods.length - 1; i >= 0; i--) {
      if (Math.floor(v / 2 ** i) % 2 === 1) methods.push(this.authMethods[i]);
    }
    return methods;
  }

  /** Unlike the other ids, upstream packs a domain id as bare bytes, or as the bare default domain id. */
  private packDomainId(id: string): Uint8Array | string {
    if (UUID_HEX.test(id)) return Buffer.from(id, 'hex');
    if (id === this.defaultDomainId) return id;
    throw new TypeError(`domain id ${id} is neither a UUID nor the default domain id`);
  }

  private unpackDomainId(v: unknown): string {
    if (v instanceof Uint8Array && v.length === 16) return uuidHex(v);
    if (text(v) === this.defaultDomainId) return this.defaultDomainId;
    throw badPayload();
  }
}
