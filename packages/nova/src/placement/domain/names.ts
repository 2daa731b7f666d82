/** Upstream's CUSTOM_RC_PATTERN and custom trait rule (placement/schemas/common.py, handlers/trait.py). */
export const CUSTOM_RC_PATTERN = /^CUSTOM_[A-Z0-9_]+$/;
export const CUSTOM_TRAIT_PATTERN = /^CUSTOM_[A-Z0-9_]+$/;
const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;

export function isUuid(s: unknown): s is string {
  return typeof s === 'string' && UUID.test(s);
}

/** Python's str(uuid.UUID(s)): dashes restored, lower case. */
export function normalizeUuid(s: string): string {
  const h = s.replace(/-/g, '').toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
