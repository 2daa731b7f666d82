/**
 * The Fernet spec (github.com/fernet/spec) on node:crypto, as Python's
 * `cryptography.fernet.MultiFernet` does it: encrypt with the first key, decrypt with
 * whichever key's HMAC matches. Tokens are interchangeable with Python's.
 */
import { createCipheriv, createDecipheriv, createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';

const VERSION = 0x80;
const HEADER_LEN = 1 + 8 + 16;
const HMAC_LEN = 32;
const BLOCK = 16;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

export class InvalidFernetToken extends Error {
  constructor(readonly reason: 'malformed' | 'version' | 'signature' | 'padding') {
    super(`invalid Fernet token (${reason})`);
    this.name = 'InvalidFernetToken';
  }
}

/** A 32-byte Fernet key: the first half signs, the second half encrypts. */
export class FernetKey {
  readonly signing: Buffer;
  readonly encryption: Buffer;

  constructor(raw: Buffer) {
    if (raw.length !== 32) throw new RangeError('a Fernet key is 32 bytes');
    this.signing = raw.subarray(0, 16);
    this.encryption = raw.subarray(16, 32);
  }

  /** The file format: 32 bytes in urlsafe base64 with padding (44 characters). */
  static fromString(text: string): FernetKey {
    const trimmed = text.trim();
    if (trimmed.length !== 44 || !BASE64URL.test(trimmed)) throw new RangeError('a Fernet key is 32 bytes of urlsafe base64');
    return new FernetKey(Buffer.from(trimmed, 'base64url'));
  }
}

export function generateFernetKey(): string {
  return randomFillSync(Buffer.alloc(32)).toString('base64url') + '=';
}

// IVs are drawn from a pooled buffer: one syscall per 256 tokens instead of one per token.
const IV_POOL = Buffer.alloc(BLOCK * 256);
let ivOffset = IV_POOL.length;

function nextIv(): Buffer {
  if (ivOffset === IV_POOL.length) {
    randomFillSync(IV_POOL);
    ivOffset = 0;
  }
  const iv = Buffer.from(IV_POOL.subarray(ivOffset, ivOffset + BLOCK));
  ivOffset += BLOCK;
  return iv;
}

export class MultiFernet {
  private readonly keys: readonly FernetKey[];

  /** `keys[0]` encrypts; every key is tried to decrypt. */
  constructor(keys: readonly FernetKey[]) {
    if (keys.length === 0) throw new RangeError('MultiFernet needs at least one key');
    this.keys = keys;
  }

  /** A spec token (urlsafe base64 with its padding), stamped with `atSeconds`. */
  encrypt(plaintext: Uint8Array, atSeconds: number): string {
    const key = this.keys[0];
    const iv = nextIv();
    const cipher = createCipheriv('aes-128-cbc', key.encryption, iv);
    const head = cipher.update(plaintext);
    const tail = cipher.final();
    const total = HEADER_LEN + head.length + tail.length;
    const out = Buffer.allocUnsafe(total + HMAC_LEN);
    out[0] = VERSION;
    out.writeBigUInt64BE(BigInt(Math.floor(atSeconds)), 1);
    iv.copy(out, 9);
    head.copy(out, HEADER_LEN);
    tail.copy(out, HEADER_LEN + head.length);
    createHmac('sha256', key.signing).update(out.subarray(0, total)).digest().copy(out, total);
    const b64 = out.toString('base64url');
    return b64 + '='.repeat((4 - (b64.length % 4)) % 4);
  }

  /** Accepts the token with or without its base64 padding. */
  decrypt(token: string): { plaintext: Buffer; timestamp: number } {
    if (!BASE64URL.test(token) || token.replace(/=+$/, '').length % 4 === 1) throw new InvalidFernetToken('malformed');
    const data = Buffer.from(token, 'base64url');
    const bodyLen = data.length - HEADER_LEN - HMAC_LEN;
    if (bodyLen < BLOCK || bodyLen % BLOCK !== 0) throw new InvalidFernetToken('malformed');
    if (data[0] !== VERSION) throw new InvalidFernetToken('version');
    const signed = data.subarray(0, data.length - HMAC_LEN);
    const mac = data.subarray(data.length - HMAC_LEN);
    for (const key of this.keys) {
      if (!timingSafeEqual(createHmac('sha256', key.signing).update(signed).digest(), mac)) continue;
      const decipher = createDecipheriv('aes-128-cbc', key.encryption, data.subarray(9, HEADER_LEN));
      let plaintext: Buffer;
      try {
        plaintext = Buffer.concat([decipher.update(data.subarray(HEADER_LEN, signed.length)), decipher.final()]);
      } catch {
        throw new InvalidFernetToken('padding');
      }
      return { plaintext, timestamp: Number(data.readBigUInt64BE(1)) };
    }
    throw new InvalidFernetToken('signature');
  }
}
