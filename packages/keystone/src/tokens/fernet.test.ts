import assert from 'node:assert/strict';
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FernetKey, generateFernetKey, InvalidFernetToken, MultiFernet } from './fernet.ts';

// Made by Python's cryptography.fernet (encrypt_at_time(msgpack payload, 1767225600)) with this key.
const PY_KEY = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const PY_TOKEN =
  'gAAAAABpVbkAtSnizGePaDjPub99dgJSvfnL6k-ass8pzRSyTIKBwFod02706NToBX4JwHo8hkhXsCK9zaKPkiK7TkVUjyby2TMbgC4bqzswbHKFlh0fyfQA9G4cpVGY6FeeBw638qweJMI519gSG_wSK0GLaSiwSQ';
const PY_PLAINTEXT = '950092c3c410a1b2c3d4e5f60718293a4b5c6d7e8f9002cb41da55754800000091c410f1ad9029d36f42ee885283bcbba3e3de';

const newKey = () => FernetKey.fromString(generateFernetKey());

function rejects(f: () => unknown, reason: InvalidFernetToken['reason']): void {
  assert.throws(f, (err: unknown) => err instanceof InvalidFernetToken && err.reason === reason);
}

/** A token whose HMAC is right but whose plaintext padding is not. */
function badPaddingToken(key: Buffer): string {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-128-cbc', key.subarray(16), iv).setAutoPadding(false);
  const body = Buffer.concat([cipher.update(Buffer.alloc(16)), cipher.final()]);
  const signed = Buffer.concat([Buffer.from([0x80]), Buffer.alloc(8), iv, body]);
  const mac = createHmac('sha256', key.subarray(0, 16)).update(signed).digest();
  return Buffer.concat([signed, mac]).toString('base64url');
}

describe('Fernet', () => {
  it('decrypts a token made by Python cryptography, padded or not', () => {
    const f = new MultiFernet([FernetKey.fromString(PY_KEY)]);
    for (const token of [PY_TOKEN, PY_TOKEN + '='.repeat((4 - (PY_TOKEN.length % 4)) % 4)]) {
      const { plaintext, timestamp } = f.decrypt(token);
      assert.equal(plaintext.toString('hex'), PY_PLAINTEXT);
      assert.equal(timestamp, 1767225600);
    }
  });

  it('round-trips and produces spec tokens (version byte, timestamp, padded urlsafe base64)', () => {
    const f = new MultiFernet([newKey()]);
    for (const size of [0, 1, 15, 16, 17, 100]) {
      const data = randomBytes(size);
      const token = f.encrypt(data, 1767225600.9);
      assert.match(token, /^[A-Za-z0-9_-]+=*$/);
      assert.equal(token.length % 4, 0);
      const raw = Buffer.from(token, 'base64url');
      assert.equal(raw[0], 0x80);
      assert.equal(raw.readBigUInt64BE(1), 1767225600n);
      const out = f.decrypt(token);
      assert.deepEqual(out.plaintext, data);
      assert.equal(out.timestamp, 1767225600);
    }
  });

  it('uses a fresh IV for every token', () => {
    const f = new MultiFernet([newKey()]);
    const tokens = new Set(Array.from({ length: 1000 }, () => f.encrypt(Buffer.from('same'), 0)));
    assert.equal(tokens.size, 1000);
  });

  it('encrypts with the first key and decrypts with any', () => {
    const [k1, k2] = [newKey(), newKey()];
    const old = new MultiFernet([k2]).encrypt(Buffer.from('old'), 0);
    const both = new MultiFernet([k1, k2]);
    assert.equal(both.decrypt(old).plaintext.toString(), 'old');
    const fresh = both.encrypt(Buffer.from('new'), 0);
    rejects(() => new MultiFernet([k2]).decrypt(fresh), 'signature');
    assert.equal(new MultiFernet([k1]).decrypt(fresh).plaintext.toString(), 'new');
  });

  it('rejects any altered byte', () => {
    const f = new MultiFernet([newKey()]);
    const raw = Buffer.from(f.encrypt(Buffer.from('payload of some length'), 1000), 'base64url');
    for (const at of [1, 8, 9, 24, 25, raw.length - 33, raw.length - 1]) {
      const bad = Buffer.from(raw);
      bad[at] ^= 0x01;
      rejects(() => f.decrypt(bad.toString('base64url')), 'signature');
    }
    const badVersion = Buffer.from(raw);
    badVersion[0] = 0x81;
    rejects(() => f.decrypt(badVersion.toString('base64url')), 'version');
  });

  it('rejects what is not a token at all', () => {
    const f = new MultiFernet([newKey()]);
    const token = f.encrypt(Buffer.from('x'), 0);
    rejects(() => f.decrypt(''), 'malformed');
    rejects(() => f.decrypt('not a token'), 'malformed');
    rejects(() => f.decrypt(token.replace(/.$/, '+')), 'malformed');
    rejects(() => f.decrypt(token.slice(0, 40)), 'malformed');
    rejects(() => f.decrypt(`${token.replace(/=+$/, '')}A`), 'malformed');
    rejects(() => f.decrypt(Buffer.alloc(90).toString('base64url')), 'malformed');
  });

  it('rejects a correctly signed token whose padding is wrong', () => {
    const raw = randomBytes(32);
    rejects(() => new MultiFernet([new FernetKey(raw)]).decrypt(badPaddingToken(raw)), 'padding');
  });

  it('reads and writes keys in the key file format', () => {
    const text = generateFernetKey();
    assert.match(text, /^[A-Za-z0-9_-]{43}=$/);
    assert.equal(FernetKey.fromString(`${text}\n`).signing.length, 16);
    assert.throws(() => FernetKey.fromString('short='), RangeError);
    assert.throws(() => FernetKey.fromString(`${text.slice(0, 42)}+=`), RangeError);
    assert.throws(() => new FernetKey(Buffer.alloc(16)), RangeError);
    assert.throws(() => new MultiFernet([]), RangeError);
  });
});
