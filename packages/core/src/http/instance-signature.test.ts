import assert from 'node:assert/strict';
import { test } from 'node:test';
import { signInstanceId, verifyInstanceSignature } from './instance-signature.ts';

test('the signature is upstream’s: hex HMAC-SHA256 of the instance id', () => {
  // Computed independently: python3 -c "import hmac,hashlib;print(hmac.new(b'secret',b'abc',hashlib.sha256).hexdigest())"
  assert.equal(signInstanceId('secret', 'abc'), '9946dad4e00e913fc8be8e5d3f7e110a4a9e832f83fb09c345285d78638d8a0e');
});

test('verification accepts the right signature only', () => {
  const sig = signInstanceId('s3cret', 'inst-1');
  assert.equal(verifyInstanceSignature('s3cret', 'inst-1', sig), true);
  assert.equal(verifyInstanceSignature('s3cret', 'inst-1', sig.toUpperCase()), true);
  assert.equal(verifyInstanceSignature('s3cret', 'inst-2', sig), false);
  assert.equal(verifyInstanceSignature('other', 'inst-1', sig), false);
  assert.equal(verifyInstanceSignature('s3cret', 'inst-1', sig.slice(0, 63)), false);
  assert.equal(verifyInstanceSignature('s3cret', 'inst-1', undefined), false);
  assert.equal(verifyInstanceSignature('s3cret', 'inst-1', 'zz'.repeat(32)), false);
});
