import { badRequest } from '@onestack/core/errors.ts';

/**
 * The public URL of a service type in the caller's own catalog (GET /v3/auth/catalog
 * with their token), as upstream reads context.service_catalog: the endpoint they may use,
 * with their project substituted.
 */
export async function catalogUrl(identityUrl: string | undefined, token: string, type: string, what: string): Promise<string> {
  if (!identityUrl) throw badRequest(`Invalid input received: no ${what} service is configured for this cloud.`);
  const res = await fetch(`${identityUrl.replace(/\/$/, '')}/v3/auth/catalog`, { headers: { 'x-auth-token': token, accept: 'application/json' } });
  const body = (await res.json().catch(() => ({}))) as { catalog?: { type: string; endpoints: { interface: string; url: string }[] }[] };
  const url = body.catalog?.find((s) => s.type === type)?.endpoints.find((e) => e.interface === 'public')?.url;
  if (!url) throw badRequest(`Invalid input received: the ${what} service is not in the catalog.`);
  return url.replace(/\/$/, '');
}
