/**
 * The instance signature of the metadata path (upstream's X-Instance-ID-Signature):
 * the metadata proxy in a tenant's network namespace tells the metadata service which
 * instance is asking, and signs the instance id with a secret shared by both sides
 * ([neutron] metadata_proxy_shared_secret in Nova, [DEFAULT] metadata_proxy_shared_secret
 * in the metadata agent), so a guest that forges X-Instance-ID cannot read another
 * instance's metadata.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Hex HMAC-SHA256 of the instance id under the shared secret, as upstream computes it. */
export function signInstanceId(sharedSecret: string, instanceId: string): string {
  return createHmac('sha256', sharedSecret).update(instanceId, 'utf8').digest('hex');
}

/**
 * Whether `signature` is the instance id's signature. Constant-time, so the comparison
 * leaks nothing about how much of a forged signature was right.
 */
export function verifyInstanceSignature(sharedSecret: string, instanceId: string, signature: string | undefined): boolean {
  if (typeof signature !== 'string' || !/^[0-9a-f]{64}$/i.test(signature)) return false;
  const expected = Buffer.from(signInstanceId(sharedSecret, instanceId), 'hex');
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}
