import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import { QUOTA_RESOURCES, type QuotaResource } from '../domain/quotas.ts';
import { enforce, mv, type ApiDeps } from './context.ts';
import { int, obj } from './validate.ts';

const NETWORK_QUOTAS = ['fixed_ips', 'floating_ips', 'security_group_rules', 'security_groups'];
const INJECTED_QUOTAS = ['injected_files', 'injected_file_content_bytes', 'injected_file_path_bytes'];
const GROUP_QUOTAS = ['server_groups', 'server_group_members'];

/**
 * The resources a quota class shows at this microversion: before 2.50 the nova-network ones
 * (always -1 here) and no server group ones; from 2.57 no injected files.
 */
function classView(req: FastifyRequest, limits: Record<QuotaResource, number>, id?: string) {
  const out: Record<string, unknown> = id === undefined ? {} : { id };
  for (const r of QUOTA_RESOURCES) {
    if (!mv(req, '2.50') && GROUP_QUOTAS.includes(r)) continue;
    if (mv(req, '2.57') && INJECTED_QUOTAS.includes(r)) continue;
    out[r] = limits[r];
  }
  if (!mv(req, '2.50')) for (const r of NETWORK_QUOTAS) out[r] = -1;
  return out;
}

/** os-quota-class-sets (admin): the `default` class is every project's default limits. */
export function registerQuotaClassRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get('/v2.1/os-quota-class-sets/:id', async (req) => {
    enforce(deps, req, 'os_compute_api:os-quota-class-sets:show');
    const id = (req.params as { id: string }).id;
    return { quota_class_set: classView(req, await deps.quotas.classLimits(id), id) };
  });
  app.put('/v2.1/os-quota-class-sets/:id', async (req) => {
    enforce(deps, req, 'os_compute_api:os-quota-class-sets:update');
    const id = (req.params as { id: string }).id;
    if (id.length > 255) throw badRequest('Invalid input received: quota_class_name has a maximum length of 255.');
    const body = obj(req.body, 'body');
    const qs = obj(body.quota_class_set, 'quota_class_set');
    const accepted = QUOTA_RESOURCES.filter((r) => (mv(req, '2.50') || !GROUP_QUOTAS.includes(r)) && !(mv(req, '2.57') && INJECTED_QUOTAS.includes(r)));
    const values: Partial<Record<QuotaResource, number>> = {};
    for (const [k, v] of Object.entries(qs)) {
      // Before 2.50 the nova-network quotas are accepted and mean nothing.
      if (!mv(req, '2.50') && NETWORK_QUOTAS.includes(k)) {
        int(v, k, { min: -1, max: 0x7fffffff });
        continue;
      }
      if (!(accepted as string[]).includes(k)) throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
      values[k as QuotaResource] = int(v, k, { min: -1, max: 0x7fffffff });
    }
    await deps.quotas.setClass(id, values);
    return { quota_class_set: classView(req, await deps.quotas.classLimits(id)) };
  });
}
