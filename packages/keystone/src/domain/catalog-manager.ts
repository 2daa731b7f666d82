import type { Kysely } from 'kysely';
import { conflict, forbidden, notFound, validationError } from '@onestack/core/errors.ts';
import type { EndpointRow, KeystoneDB, RegionRow, ServiceRow } from '../db/schema.ts';
import { bool, int, parseJson } from './json-columns.ts';
import type { Keystone } from './keystone.ts';

export interface Service {
  id: string;
  type: string;
  name: string;
  description?: string;
  enabled: boolean;
  extra: Record<string, unknown>;
}

export interface Endpoint {
  id: string;
  interface: 'public' | 'internal' | 'admin';
  serviceId: string;
  url: string;
  regionId: string | null;
  enabled: boolean;
  extra: Record<string, unknown>;
}

export interface Region {
  id: string;
  description: string;
  parentRegionId: string | null;
  extra: Record<string, unknown>;
}

export interface CatalogEntry {
  id: string;
  type: string;
  name: string;
  endpoints: { id: string; interface: string; region: string | null; region_id: string | null; url: string }[];
}

/** Services, endpoints and regions, and the catalog built from them for tokens. */
export class CatalogManager {
  private cached?: { services: ServiceRow[]; endpoints: EndpointRow[] };

  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  /** Any catalog write calls this; the token path reads the catalog from memory. */
  invalidate(): void {
    this.cached = undefined;
  }

  /**
   * The catalog for a token: enabled services with enabled endpoints, with
   * `$(project_id)s`-style placeholders substituted (or endpoints needing a
   * project dropped when the token has none), as upstream's SQL catalog.
   */
  async catalogFor(projectId: string | undefined, userId: string): Promise<CatalogEntry[]> {
    if (!this.cached) {
      this.cached = {
        services: await this.db.selectFrom('service').selectAll().execute(),
        endpoints: await this.db.selectFrom('endpoint').selectAll().execute(),
      };
    }
    const { services, endpoints } = this.cached;
    const subst: Record<string, string | undefined> = { project_id: projectId, tenant_id: projectId, user_id: userId };
    const out: CatalogEntry[] = [];
    for (const s of services) {
      if (!bool(s.enabled)) continue;
      const extra = parseJson(s.extra);
      const eps: CatalogEntry['endpoints'] = [];
      for (const e of endpoints) {
        if (e.service_id !== s.id || !bool(e.enabled)) continue;
        const url = substitute(e.url, subst);
        if (url === undefined) continue;
        eps.push({ id: e.id, interface: e.interface, region: e.region_id, region_id: e.region_id, url });
      }
      out.push({ id: s.id, type: s.type, name: String(extra.name ?? ''), endpoints: eps });
    }
    return out;
  }

  // ---- services ----------------------------------------------------------

  async findService(id: string): Promise<Service | undefined> {
    const row = await this.db.selectFrom('service').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toService(row);
  }

  async getService(id: string): Promise<Service> {
    const service = await this.findService(id);
    if (!service) throw notFound(`Could not find service: ${id}.`);
    return service;
  }

  async listServices(filter: { type?: string; name?: string } = {}): Promise<Service[]> {
    let q = this.db.selectFrom('service').selectAll();
    if (filter.type) q = q.where('type', '=', filter.type);
    const rows = (await q.execute()).map(toService);
    return filter.name === undefined ? rows : rows.filter((s) => s.name === filter.name);
  }

  async createService(input: { id?: string; type: string; name?: string; description?: string; enabled?: boolean; extra?: Record<string, unknown> }): Promise<Service> {
    const extra: Record<string, unknown> = { ...(input.extra ?? {}) };
    if (input.name !== undefined) extra.name = input.name;
    if (input.description !== undefined) extra.description = input.description;
    const row: ServiceRow = { id: input.id ?? this.ks.ids.hex(), type: input.type, enabled: int(input.enabled ?? true), extra: JSON.stringify(extra) };
    await this.db.insertInto('service').values(row).execute();
    this.changed('service', 'created', row.id);
    return toService(row);
  }

  async updateService(id: string, patch: { type?: string; name?: string; description?: string; enabled?: boolean; extra?: Record<string, unknown> }): Promise<Service> {
    const current = await this.getService(id);
    const extra: Record<string, unknown> = { ...current.extra, name: current.name, ...(current.description !== undefined ? { description: current.description } : {}), ...patch.extra };
    if (patch.name !== undefined) extra.name = patch.name;
    if (patch.description !== undefined) extra.description = patch.description;
    const set: Partial<ServiceRow> = { extra: JSON.stringify(extra) };
    if (patch.type !== undefined) set.type = patch.type;
    if (patch.enabled !== undefined) set.enabled = int(patch.enabled);
    await this.db.updateTable('service').set(set).where('id', '=', id).execute();
    this.changed('service', 'updated', id);
    return this.getService(id);
  }

  async deleteService(id: string): Promise<void> {
    await this.getService(id);
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('endpoint').where('service_id', '=', id).execute();
      await tx.deleteFrom('service').where('id', '=', id).execute();
    });
    this.changed('service', 'deleted', id);
  }

  // ---- endpoints ---------------------------------------------------------

  async getEndpoint(id: string): Promise<Endpoint> {
    const row = await this.db.selectFrom('endpoint').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`Could not find endpoint: ${id}.`);
    return toEndpoint(row);
  }

  async listEndpoints(filter: { serviceId?: string; interface?: string; regionId?: string } = {}): Promise<Endpoint[]> {
    let q = this.db.selectFrom('endpoint').selectAll();
    if (filter.serviceId) q = q.where('service_id', '=', filter.serviceId);
    if (filter.interface) q = q.where('interface', '=', filter.interface);
    if (filter.regionId) q = q.where('region_id', '=', filter.regionId);
    return (await q.execute()).map(toEndpoint);
  }

  async createEndpoint(input: { id?: string; interface: Endpoint['interface']; serviceId: string; url: string; regionId?: string | null; enabled?: boolean; extra?: Record<string, unknown> }): Promise<Endpoint> {
    assertEndpointUrl(input.url);
    await this.assertEndpointRefs(input);
    const row: EndpointRow = {
      id: input.id ?? this.ks.ids.hex(),
      interface: input.interface,
      service_id: input.serviceId,
      url: input.url,
      region_id: input.regionId ?? null,
      enabled: int(input.enabled ?? true),
      extra: JSON.stringify(input.extra ?? {}),
    };
    await this.db.insertInto('endpoint').values(row).execute();
    this.changed('endpoint', 'created', row.id);
    return toEndpoint(row);
  }

  async updateEndpoint(id: string, patch: { interface?: Endpoint['interface']; serviceId?: string; url?: string; regionId?: string | null; enabled?: boolean; extra?: Record<string, unknown> }): Promise<Endpoint> {
    await this.assertEndpointRefs(patch);
    const current = await this.getEndpoint(id);
    const set: Partial<EndpointRow> = {};
    if (patch.interface !== undefined) set.interface = patch.interface;
    if (patch.serviceId !== undefined) set.service_id = patch.serviceId;
    if (patch.url !== undefined) set.url = patch.url;
    if (patch.regionId !== undefined) set.region_id = patch.regionId;
    if (patch.enabled !== undefined) set.enabled = int(patch.enabled);
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (Object.keys(set).length) await this.db.updateTable('endpoint').set(set).where('id', '=', id).execute();
    this.changed('endpoint', 'updated', id);
    return this.getEndpoint(id);
  }

  /** An endpoint naming a missing region or service is the caller's error (400), not a missing resource. */
  private async assertEndpointRefs(ref: { serviceId?: string; regionId?: string | null }): Promise<void> {
    if (ref.regionId && !(await this.findRegion(ref.regionId))) throw expectingToFind('endpoint region_id', 'region table');
    if (ref.serviceId !== undefined && !(await this.findService(ref.serviceId))) throw expectingToFind('endpoint service_id', 'service table');
  }

  async deleteEndpoint(id: string): Promise<void> {
    await this.getEndpoint(id);
    await this.db.deleteFrom('endpoint').where('id', '=', id).execute();
    this.changed('endpoint', 'deleted', id);
  }

  // ---- regions -----------------------------------------------------------

  async findRegion(id: string): Promise<Region | undefined> {
    const row = await this.db.selectFrom('region').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRegion(row);
  }

  async getRegion(id: string): Promise<Region> {
    const region = await this.findRegion(id);
    if (!region) throw notFound(`Could not find region: ${id}.`);
    return region;
  }

  async listRegions(filter: { parentRegionId?: string } = {}): Promise<Region[]> {
    let q = this.db.selectFrom('region').selectAll();
    if (filter.parentRegionId) q = q.where('parent_region_id', '=', filter.parentRegionId);
    return (await q.orderBy('id').execute()).map(toRegion);
  }

  async createRegion(input: { id?: string; description?: string | null; parentRegionId?: string | null; extra?: Record<string, unknown> }): Promise<Region> {
    const id = input.id ?? this.ks.ids.hex();
    const duplicate = `Duplicate ID, ${id}.`;
    if (await this.findRegion(id)) throw conflict(`Conflict occurred attempting to store region - ${duplicate}`);
    if (input.parentRegionId) await this.getRegion(input.parentRegionId);
    const row: RegionRow = { id, description: input.description ?? '', parent_region_id: input.parentRegionId ?? null, extra: JSON.stringify(input.extra ?? {}) };
    await this.ks.unique('region', duplicate, () => this.db.insertInto('region').values(row).execute());
    this.changed('region', 'created', row.id);
    return toRegion(row);
  }

  async updateRegion(id: string, patch: { description?: string | null; parentRegionId?: string | null; extra?: Record<string, unknown> }): Promise<Region> {
    if (patch.parentRegionId) await this.getRegion(patch.parentRegionId);
    const current = await this.getRegion(id);
    const set: Partial<RegionRow> = {};
    if (patch.description !== undefined) set.description = patch.description ?? '';
    if (patch.parentRegionId !== undefined) {
      await this.assertNoCycle(id, patch.parentRegionId);
      set.parent_region_id = patch.parentRegionId;
    }
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (Object.keys(set).length) await this.db.updateTable('region').set(set).where('id', '=', id).execute();
    this.changed('region', 'updated', id);
    return this.getRegion(id);
  }

  /** Walks up from the new parent: meeting the region itself means the change would close a loop. */
  private async assertNoCycle(id: string, parentId: string | null): Promise<void> {
    for (let p = parentId; p; p = (await this.getRegion(p)).parentRegionId) {
      if (p === id) throw validationError(`The specified parent region ${p} would create a circular region hierarchy.`);
    }
  }

  /** Deletes the region and its descendants, refused while any of them still holds endpoints (upstream). */
  async deleteRegion(id: string): Promise<void> {
    await this.getRegion(id);
    const all = await this.db.selectFrom('region').select(['id', 'parent_region_id']).execute();
    const subtree = [id];
    // Breadth-first over the adjacency list; `includes` stops on a (corrupt) circular hierarchy.
    for (let i = 0; i < subtree.length; i++) {
      for (const r of all) if (r.parent_region_id === subtree[i] && !subtree.includes(r.id)) subtree.push(r.id);
    }
    const used = await this.db.selectFrom('endpoint').select('id').where('region_id', 'in', subtree).executeTakeFirst();
    if (used) throw forbidden(`Unable to delete region ${id} because it or its child regions have associated endpoints.`);
    await this.db.deleteFrom('region').where('id', 'in', subtree).execute();
    this.changed('region', 'deleted', id);
  }

  private changed(resource: string, op: 'created' | 'updated' | 'deleted', id: string): void {
    this.invalidate();
    this.ks.invalidate();
    this.ks.notifier.emit(resource, op, id);
  }
}

/** keystone.exception.ValidationError's wording: a reference in the request that does not resolve. */
export function expectingToFind(attribute: string, target: string) {
  return validationError(
    `Expecting to find ${attribute} in ${target}. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.`,
  );
}

/** The only names an endpoint URL may substitute (upstream's WHITELISTED_PROPERTIES). */
const URL_SUBSTITUTIONS = ['tenant_id', 'project_id', 'user_id', 'compute_host', 'public_endpoint'];

/**
 * Refuses what Python's `url % {whitelisted: ''}` would fail on, as upstream's
 * check_endpoint_url does: unknown `%(name)s` keys, and `%` conversions a
 * string cannot satisfy (`%d`, a stray `%z`, `*` widths).
 */
function assertEndpointUrl(url: string): void {
  const spec = /%(?:\(([^)]*)\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.?)/gs;
  for (const m of url.replaceAll('$(', '%(').matchAll(spec)) {
    const [, key, width, precision, conversion] = m;
    const literalPercent = conversion === '%' && key === undefined;
    const stringConversion = /^[sra]$/.test(conversion ?? '') && width !== '*' && precision !== '*';
    const knownKey = key === undefined || URL_SUBSTITUTIONS.includes(key);
    if (!literalPercent && !(stringConversion && knownKey)) throw validationError(`Cannot create an endpoint with an invalid URL: ${url}.`);
  }
}

/** `%(project_id)s` and `$(project_id)s` as upstream; undefined when a needed value is missing. */
function substitute(url: string, values: Record<string, string | undefined>): string | undefined {
  let missing = false;
  const out = url.replace(/%%|[%$]\((\w+)\)s/g, (_m, key: string | undefined) => {
    if (key === undefined) return '%';
    const v = values[key];
    if (v === undefined) missing = true;
    return v ?? '';
  });
  return missing ? undefined : out;
}

function toService(row: ServiceRow): Service {
  const extra = parseJson(row.extra);
  const { name, description, ...rest } = extra as { name?: string; description?: string };
  return { id: row.id, type: row.type, name: name ?? '', ...(description !== undefined ? { description } : {}), enabled: bool(row.enabled), extra: rest };
}

function toEndpoint(row: EndpointRow): Endpoint {
  return {
    id: row.id,
    interface: row.interface as Endpoint['interface'],
    serviceId: row.service_id,
    url: row.url,
    regionId: row.region_id,
    enabled: bool(row.enabled),
    extra: parseJson(row.extra),
  };
}

function toRegion(row: RegionRow): Region {
  return { id: row.id, description: row.description ?? '', parentRegionId: row.parent_region_id, extra: parseJson(row.extra) };
}
