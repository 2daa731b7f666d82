/** Version discovery documents, as each upstream service serves at `/` and `/vN`. */
export interface VersionEntry {
  id: string;
  status: 'CURRENT' | 'SUPPORTED' | 'DEPRECATED' | 'stable';
  /** ISO date (Keystone's `updated`). */
  updated: string;
  links: { rel: string; href: string; type?: string }[];
  'media-types'?: { base: string; type: string }[];
  min_version?: string;
  version?: string;
}

/** Base URL as the client reached us, so links work behind a proxy or a TLS terminator. */
export function baseUrlOf(req: { protocol: string; headers: Record<string, string | string[] | undefined> }, fallback: string): string {
  const host = req.headers['x-forwarded-host'] ?? req.headers.host;
  if (!host) return fallback;
  const proto = (req.headers['x-forwarded-proto'] as string | undefined) ?? req.protocol;
  return `${proto}://${Array.isArray(host) ? host[0] : host}`;
}
