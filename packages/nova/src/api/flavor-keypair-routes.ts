import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import type { Flavor } from '../domain/flavors.ts';
import type { KeyPair } from '../domain/keypairs.ts';
import { ISO, allowed, authOf, enforce, isAdmin, mv, strictQuery, type ApiDeps } from './context.ts';
import { validateExtraSpec } from './extra-specs.ts';
import { baseOf } from './server-views.ts';
import { bool, int, invalid, name, noExtra, obj, str } from './validate.ts';

function flavorView(req: FastifyRequest, f: Flavor, detail: boolean) {
  const base = baseOf(req);
  const v: Record<string, unknown> = { id: f.id, name: f.name };
  if (detail) {
    Object.assign(v, {
      ram: f.ram,
      disk: f.disk,
      swap: mv(req, '2.75') ? f.swap : f.swap === 0 ? '' : f.swap,
      vcpus: f.vcpus,
      'OS-FLV-EXT-DATA:ephemeral': f.ephemeral,
      'OS-FLV-DISABLED:disabled': f.disabled,
      rxtx_factor: f.rxtxFactor,
      'os-flavor-access:is_public': f.isPublic,
    });
  }
  if (mv(req, '2.55')) v.description = f.description;
  v.links = [
    { rel: 'self', href: `${base}/v2.1/flavors/${f.id}` },
    { rel: 'bookmark', href: `${base}/flavors/${f.id}` },
  ];
  return v;
}

/** 2.61: a flavor shows its extra specs, unless policy hides them from this caller. */
const extraSpecsOf = (deps: ApiDeps, req: FastifyRequest, f: Flavor) =>
  mv(req, '2.61') && allowed(deps, req, 'os_compute_api:os-flavor-extra-specs:index') ? { extra_specs: f.extraSpecs } : {};

const viewer = (deps: ApiDeps, req: FastifyRequest) => ({ projectId: authOf(req).projectId, isAdmin: isAdmin(deps, req) });

function keypairView(req: FastifyRequest, k: KeyPair & { privateKey?: string }, full: boolean) {
  const v: Record<string, unknown> = { name: k.name, public_key: k.publicKey, fingerprint: k.fingerprint };
  if (mv(req, '2.2')) v.type = k.type;
  if (k.privateKey) v.private_key = k.privateKey;
  if (full) Object.assign(v, { user_id: k.userId, created_at: ISO(k.createdAt)?.replace('Z', '.000000'), deleted: false, deleted_at: null, updated_at: null, id: 0 });
  return v;
}

export function registerFlavorRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const list = async (req: FastifyRequest, detail: boolean) => {
    strictQuery(req, ['limit', 'marker', 'is_public', 'minRam', 'minDisk', 'sort_key', 'sort_dir']);
    const q = req.query as Record<string, string>;
    const admin = isAdmin(deps, req);
    let isPublic: boolean | null | undefined;
    if (q.is_public !== undefined) isPublic = q.is_public.toLowerCase() === 'none' ? null : bool(q.is_public, 'is_public');
    const flavors = await deps.flavors.list(viewer(deps, req), {
      isPublic: admin ? isPublic : true,
      minRam: q.minRam === undefined ? undefined : int(q.minRam, 'minRam', { min: 0 }),
      minDisk: q.minDisk === undefined ? undefined : int(q.minDisk, 'minDisk', { min: 0 }),
      sortKey: q.sort_key,
      sortDir: q.sort_dir === 'desc' ? 'desc' : 'asc',
      limit: q.limit === undefined ? undefined : Math.min(int(q.limit, 'limit', { min: 0 }), deps.config.maxLimit),
      marker: q.marker,
    });
    return { flavors: flavors.map((f) => ({ ...flavorView(req, f, detail), ...(detail ? extraSpecsOf(deps, req, f) : {}) })) };
  };
  app.get('/v2.1/flavors', async (req) => list(req, false));
  app.get('/v2.1/flavors/detail', async (req) => list(req, true));
  app.get('/v2.1/flavors/:flavor_id', async (req) => {
    const f = await deps.flavors.getVisible((req.params as { flavor_id: string }).flavor_id, viewer(deps, req));
    return { flavor: { ...flavorView(req, f, true), ...extraSpecsOf(deps, req, f) } };
  });
  app.post('/v2.1/flavors', async (req) => {
    enforce(deps, req, 'os_compute_api:os-flavor-manage:create');
    const f = obj(obj(req.body, 'body').flavor, 'flavor');
    noExtra(f, ['name', 'id', 'ram', 'vcpus', 'disk', 'OS-FLV-EXT-DATA:ephemeral', 'swap', 'rxtx_factor', 'os-flavor-access:is_public', 'description']);
    if (f.description !== undefined && !mv(req, '2.55')) throw badRequest("Additional properties are not allowed ('description' was unexpected)");
    const id = f.id === undefined || f.id === null ? undefined : str(f.id, 'id', { min: 1, max: 255, pattern: /^(?! )[a-zA-Z0-9. _-]+(?<! )$/ });
    const created = await deps.flavors.create({
      id,
      name: name(f.name),
      ram: int(f.ram, 'ram', { min: 1, max: 2147483647 }),
      vcpus: int(f.vcpus, 'vcpus', { min: 1, max: 2147483647 }),
      disk: int(f.disk, 'disk', { min: 0, max: 2147483647 }),
      ephemeral: f['OS-FLV-EXT-DATA:ephemeral'] === undefined ? 0 : int(f['OS-FLV-EXT-DATA:ephemeral'], 'OS-FLV-EXT-DATA:ephemeral', { min: 0 }),
      swap: f.swap === undefined || f.swap === '' ? 0 : int(f.swap, 'swap', { min: 0 }),
      rxtxFactor: f.rxtx_factor === undefined ? 1 : Number(f.rxtx_factor),
      isPublic: f['os-flavor-access:is_public'] === undefined ? true : bool(f['os-flavor-access:is_public'], 'os-flavor-access:is_public'),
      description: f.description === undefined ? null : f.description === null ? null : str(f.description, 'description', { max: 65535 }),
    });
    return { flavor: { ...flavorView(req, created, true), ...extraSpecsOf(deps, req, created) } };
  });
  app.put('/v2.1/flavors/:flavor_id', async (req) => {
    if (!mv(req, '2.55')) throw Object.assign(badRequest('Method not allowed before 2.55'), { status: 405 });
    enforce(deps, req, 'os_compute_api:os-flavor-manage:update');
    const f = obj(obj(req.body, 'body').flavor, 'flavor');
    noExtra(f, ['description']);
    if (!('description' in f)) throw badRequest("Invalid input for field/attribute flavor. 'description' is a required property");
    const updated = await deps.flavors.update((req.params as { flavor_id: string }).flavor_id, f.description === null ? null : str(f.description, 'description', { max: 65535 }));
    return { flavor: { ...flavorView(req, updated, true), ...extraSpecsOf(deps, req, updated) } };
  });
  app.delete('/v2.1/flavors/:flavor_id', async (req, reply) => {
    enforce(deps, req, 'os_compute_api:os-flavor-manage:delete');
    await deps.flavors.delete((req.params as { flavor_id: string }).flavor_id);
    reply.code(202);
    return '';
  });
  const es = '/v2.1/flavors/:flavor_id/os-extra_specs';
  const fid = (req: FastifyRequest) => (req.params as { flavor_id: string }).flavor_id;
  app.get(es, async (req) => {
    enforce(deps, req, 'os_compute_api:os-flavor-extra-specs:index');
    return { extra_specs: (await deps.flavors.getVisible(fid(req), viewer(deps, req))).extraSpecs };
  });
  const specs = (v: unknown, field = 'extra_specs') => {
    const o = obj(v, field);
    for (const [k, val] of Object.entries(o)) {
      if (!/^[\w.: -]{1,255}$/.test(k)) throw invalid(field, o, `'${k}' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'`);
      if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') throw invalid(field, o, `${JSON.stringify(val)} is not of type 'string', 'number', 'boolean'`);
      o[k] = String(val);
      if ((o[k] as string).length > 255) throw invalid(field, o, 'is too long');
    }
    return o as Record<string, string>;
  };
  const checked = (req: FastifyRequest, o: Record<string, string>) => {
    if (mv(req, '2.86')) for (const [k, v] of Object.entries(o)) validateExtraSpec(k, v);
    return o;
  };
  app.post(es, async (req) => {
    enforce(deps, req, 'os_compute_api:os-flavor-extra-specs:create');
    const body = checked(req, specs(obj(req.body, 'body').extra_specs));
    await deps.flavors.setExtraSpecs(fid(req), body);
    return { extra_specs: body };
  });
  app.get(`${es}/:key`, async (req) => {
    enforce(deps, req, 'os_compute_api:os-flavor-extra-specs:show');
    const key = (req.params as { key: string }).key;
    const f = await deps.flavors.getVisible(fid(req), viewer(deps, req));
    if (!(key in f.extraSpecs)) throw notFound(`Flavor ${f.id} has no extra specs with key ${key}.`);
    return { [key]: f.extraSpecs[key] };
  });
  app.put(`${es}/:key`, async (req) => {
    enforce(deps, req, 'os_compute_api:os-flavor-extra-specs:update');
    const key = (req.params as { key: string }).key;
    const body = checked(req, specs(req.body, 'body'));
    if (Object.keys(body).length > 1) throw badRequest('Request body contains too many items');
    if (!(key in body)) throw badRequest('Request body and URI mismatch');
    await deps.flavors.setExtraSpecs(fid(req), body);
    return body;
  });
  app.delete(`${es}/:key`, async (req) => {
    enforce(deps, req, 'os_compute_api:os-flavor-extra-specs:delete');
    await deps.flavors.deleteExtraSpec(fid(req), (req.params as { key: string }).key);
    return '';
  });
  app.get('/v2.1/flavors/:flavor_id/os-flavor-access', async (req) => {
    enforce(deps, req, 'os_compute_api:os-flavor-access');
    const id = fid(req);
    return { flavor_access: (await deps.flavors.accessList(id)).map((p) => ({ flavor_id: id, tenant_id: p })) };
  });
  app.post('/v2.1/flavors/:flavor_id/action', async (req) => {
    const body = obj(req.body, 'body');
    const id = fid(req);
    let list: string[];
    if (body.addTenantAccess !== undefined) {
      enforce(deps, req, 'os_compute_api:os-flavor-access:add_tenant_access');
      list = await deps.flavors.addAccess(id, str(obj(body.addTenantAccess, 'addTenantAccess').tenant, 'tenant', { min: 1, max: 255 }));
    } else if (body.removeTenantAccess !== undefined) {
      enforce(deps, req, 'os_compute_api:os-flavor-access:remove_tenant_access');
      list = await deps.flavors.removeAccess(id, str(obj(body.removeTenantAccess, 'removeTenantAccess').tenant, 'tenant', { min: 1, max: 255 }));
    } else throw badRequest('There is no such action: ' + Object.keys(body)[0]);
    return { flavor_access: list.map((p) => ({ flavor_id: id, tenant_id: p })) };
  });
}

export function registerKeypairRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const userOf = (req: FastifyRequest, rule: string) => {
    const q = req.query as { user_id?: string };
    const auth = authOf(req);
    const userId = q.user_id && mv(req, '2.10') ? q.user_id : auth.userId;
    enforce(deps, req, rule, { user_id: userId });
    return userId;
  };
  app.get('/v2.1/os-keypairs', async (req) => {
    strictQuery(req, ['user_id', 'limit', 'marker']);
    const userId = userOf(req, 'os_compute_api:os-keypairs:index');
    const q = req.query as { limit?: string; marker?: string };
    const limit = q.limit !== undefined && mv(req, '2.35') ? int(q.limit, 'limit', { min: 0 }) : undefined;
    const list = await deps.keypairs.list(userId, { limit, marker: mv(req, '2.35') ? q.marker : undefined });
    const body: Record<string, unknown> = { keypairs: list.map((k) => ({ keypair: keypairView(req, k, false) })) };
    if (limit !== undefined && list.length === limit && list.length > 0) body.keypairs_links = [{ rel: 'next', href: `${baseOf(req)}/v2.1/os-keypairs?limit=${limit}&marker=${encodeURIComponent(list.at(-1)!.name)}` }];
    return body;
  });
  app.post('/v2.1/os-keypairs', async (req, reply) => {
    const k = obj(obj(req.body, 'body').keypair, 'keypair');
    noExtra(k, ['name', 'public_key', ...(mv(req, '2.2') ? ['type'] : []), ...(mv(req, '2.10') ? ['user_id'] : [])]);
    const auth = authOf(req);
    const userId = k.user_id !== undefined ? str(k.user_id, 'user_id') : auth.userId;
    enforce(deps, req, 'os_compute_api:os-keypairs:create', { user_id: userId });
    const type = k.type === undefined ? 'ssh' : str(k.type, 'type');
    if (type !== 'ssh' && type !== 'x509') throw invalid('type', type, `'${type}' is not one of ['ssh', 'x509']`);
    if (k.public_key === undefined && mv(req, '2.92')) throw badRequest("'public_key' is a required property");
    const created = await deps.keypairs.create({ userId, name: str(k.name, 'name', { min: 1, max: 255 }), type, publicKey: k.public_key === undefined ? undefined : str(k.public_key, 'public_key'), relaxedNames: mv(req, '2.92') });
    if (mv(req, '2.2')) reply.code(201);
    return { keypair: { ...keypairView(req, created, false), user_id: created.userId } };
  });
  app.get('/v2.1/os-keypairs/:name', async (req) => {
    strictQuery(req, ['user_id']);
    const userId = userOf(req, 'os_compute_api:os-keypairs:show');
    const k = await deps.keypairs.get(userId, (req.params as { name: string }).name);
    return { keypair: keypairView(req, k, true) };
  });
  app.delete('/v2.1/os-keypairs/:name', async (req, reply) => {
    strictQuery(req, ['user_id']);
    const userId = userOf(req, 'os_compute_api:os-keypairs:delete');
    await deps.keypairs.delete(userId, (req.params as { name: string }).name);
    reply.code(mv(req, '2.2') ? 204 : 202);
    return '';
  });
}
