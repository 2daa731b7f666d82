import { VolumeDriverError, type ExistingRef } from './volume-driver.ts';

/** Python's repr of the reference, as upstream's messages print the dict. */
function pyRepr(v: unknown): string {
  if (typeof v === 'string') return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'object' && !Array.isArray(v)) return `{${Object.entries(v).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  return JSON.stringify(v);
}

/** upstream's ManageExistingInvalidReference. */
export function invalidReference(ref: ExistingRef, reason: string): VolumeDriverError {
  return new VolumeDriverError(`Manage existing volume failed due to invalid backend reference ${pyRepr(ref)}: ${reason}`, 'invalid_reference');
}

/**
 * The `source-name` of a reference to an object in a backend's one flat namespace (a
 * directory): a plain name, never a path, never hidden (the driver's own scratch space).
 */
export function sourceNameOf(ref: ExistingRef): string {
  const name = ref['source-name'];
  if (typeof name !== 'string' || name === '') throw invalidReference(ref, 'Reference must contain source-name element.');
  if (name.includes('/') || name.includes('\0') || name.startsWith('.') || Buffer.byteLength(name) > 255) {
    throw invalidReference(ref, 'source-name must name a file in the backend directory, not a path.');
  }
  return name;
}
