import { ApiError } from '@onestack/core/errors.ts';

/** Where the client gets its service token: core's KeystoneSession fits (tokenId / forgetToken). */
export interface ServiceTokenSource {
  tokenId(): Promise<string>;
  forgetToken?(id: string): void;
}

export interface InventorySpec {
  total: number;
  reserved?: number;
  min_unit?: number;
  max_unit?: number;
  step_size?: number;
  allocation_ratio?: number;
}

export interface CandidateRequest {
  /** resource class → amount, e.g. { VCPU: 2, MEMORY_MB: 2048, DISK_GB: 20 } */
  resources: Record<string, number>;
  /** Traits every candidate must have; a name starting with ! must be absent. */
  required?: string[];
  /** Aggregate uuids, any of which the provider must be in. */
  memberOf?: string[];
  inTree?: string;
  limit?: number;
}

export interface AllocationCandidates {
  allocation_requests: { allocations: Record<string, { resources: Record<string, number> }>; mappings?: Record<string, string[]> }[];
  provider_summaries: Record<string, { resources: Record<string, { capacity: number; used: number }>; traits: string[]; parent_provider_uuid: string | null; root_provider_uuid: string }>;
}

export interface ConsumerAllocations {
  allocations: Record<string, { generation: number; resources: Record<string, number> }>;
  project_id?: string;
  user_id?: string;
  consumer_generation?: number;
  consumer_type?: string;
}

export interface ClaimOptions {
  projectId: string;
  userId: string;
  /** The consumer generation last seen (null for a new consumer). */
  consumerGeneration: number | null;
  /** INSTANCE or MIGRATION (placement 1.38). */
  consumerType?: string;
}

/** Placement's answer to a claim that lost a race or no longer fits. */
export class ClaimConflict extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}

const MICROVERSION = 'placement 1.39';

/**
 * A 409 that another writer's generation bump caused, worth a fresh read and
 * another try (an inventory still in use is not); the body is consumed then.
 */
async function isGenerationConflict(res: Response): Promise<boolean> {
  if (res.status !== 409) return false;
  const body = (await res.clone().json().catch(() => ({}))) as { errors?: { code?: string }[] };
  if (body.errors?.[0]?.code !== 'placement.concurrent_update') return false;
  await res.body?.cancel();
  return true;
}
const GENERATION_RETRIES = 5;

/**
 * What Nova's scheduler and compute manager need from Placement, over its
 * HTTP API with the service's token (nova/scheduler/client/report.py's job):
 * keep a compute host's provider and inventory current, ask for allocation
 * candidates, claim resources for an instance and give them back.
 */
export class PlacementClient {
  constructor(
    private readonly baseUrl: string,
    private readonly tokens: ServiceTokenSource,
    private readonly fetchImpl: typeof fetch = globalThis.fetch,
  ) {}

  /**
   * Makes sure a provider named `name` exists (created with `uuid` when given)
   * with exactly this inventory and these traits; retries when another writer
   * moved the generation meanwhile. Returns the provider's uuid and generation.
   */
  async ensureProvider(spec: { name: string; uuid?: string; inventories: Record<string, InventorySpec>; traits?: string[] }): Promise<{ uuid: string; generation: number }> {
    let rp = await this.findProvider(spec.name);
    if (!rp) {
      const res = await this.request('POST', '/resource_providers', { name: spec.name, ...(spec.uuid ? { uuid: spec.uuid } : {}) });
      if (res.status === 409) rp = await this.findProvider(spec.name);
      else rp = (await this.expect(res, 200)) as { uuid: string; generation: number };
    }
    if (!rp) throw new Error(`placement: provider ${spec.name} vanished while being created`);
    for (const custom of [...(spec.traits ?? [])].filter((t) => t.startsWith('CUSTOM_'))) await this.expect(await this.request('PUT', `/traits/${custom}`), 201, 204);
    for (let attempt = 0; ; attempt++) {
      const res = await this.request('PUT', `/resource_providers/${rp.uuid}/inventories`, { resource_provider_generation: rp.generation, inventories: spec.inventories });
      if ((await isGenerationConflict(res)) && attempt < GENERATION_RETRIES) {
        rp = (await this.expect(await this.request('GET', `/resource_providers/${rp.uuid}`), 200)) as { uuid: string; generation: number };
        continue;
      }
      rp = { uuid: rp.uuid, generation: ((await this.expect(res, 200)) as { resource_provider_generation: number }).resource_provider_generation };
      break;
    }
    if (spec.traits) {
      for (let attempt = 0; ; attempt++) {
        const res = await this.request('PUT', `/resource_providers/${rp.uuid}/traits`, { traits: spec.traits, resource_provider_generation: rp.generation });
        if ((await isGenerationConflict(res)) && attempt < GENERATION_RETRIES) {
          rp = (await this.expect(await this.request('GET', `/resource_providers/${rp.uuid}`), 200)) as { uuid: string; generation: number };
          continue;
        }
        rp = { uuid: rp.uuid, generation: ((await this.expect(res, 200)) as { resource_provider_generation: number }).resource_provider_generation };
        break;
      }
    }
    return rp;
  }

  async findProvider(name: string): Promise<{ uuid: string; generation: number } | undefined> {
    const body = (await this.expect(await this.request('GET', `/resource_providers?name=${encodeURIComponent(name)}`), 200)) as { resource_providers: { uuid: string; generation: number }[] };
    return body.resource_providers[0];
  }

  async deleteProvider(uuid: string): Promise<void> {
    await this.expect(await this.request('DELETE', `/resource_providers/${uuid}`), 204, 404);
  }

  async allocationCandidates(r: CandidateRequest): Promise<AllocationCandidates> {
    const q = new URLSearchParams();
    q.set('resources', Object.entries(r.resources).map(([rc, n]) => `${rc}:${n}`).join(','));
    if (r.required?.length) q.set('required', r.required.join(','));
    if (r.memberOf?.length) q.set('member_of', `in:${r.memberOf.join(',')}`);
    if (r.inTree) q.set('in_tree', r.inTree);
    if (r.limit) q.set('limit', String(r.limit));
    return (await this.expect(await this.request('GET', `/allocation_candidates?${q}`), 200)) as AllocationCandidates;
  }

  /** What a provider can hold per class ((total − reserved) × allocation ratio) and what is allocated of it. */
  async capacity(providerUuid: string): Promise<Record<string, { capacity: number; used: number }>> {
    const inv = (await this.expect(await this.request('GET', `/resource_providers/${providerUuid}/inventories`), 200)) as {
      inventories: Record<string, { total: number; reserved: number; allocation_ratio: number }>;
    };
    const use = (await this.expect(await this.request('GET', `/resource_providers/${providerUuid}/usages`), 200)) as { usages: Record<string, number> };
    return Object.fromEntries(
      Object.entries(inv.inventories).map(([rc, i]) => [rc, { capacity: Math.floor((i.total - i.reserved) * i.allocation_ratio), used: use.usages[rc] ?? 0 }]),
    );
  }

  /**
   * Claims `allocations` (provider → class → amount) for a consumer in one
   * atomic write. Throws ClaimConflict when it no longer fits or the consumer
   * changed since `consumerGeneration` (the scheduler then tries the next candidate).
   */
  async claim(consumerUuid: string, allocations: Record<string, Record<string, number>>, o: ClaimOptions): Promise<void> {
    const res = await this.request('PUT', `/allocations/${consumerUuid}`, {
      allocations: Object.fromEntries(Object.entries(allocations).map(([rp, resources]) => [rp, { resources }])),
      project_id: o.projectId,
      user_id: o.userId,
      consumer_generation: o.consumerGeneration,
      consumer_type: o.consumerType ?? 'INSTANCE',
    });
    if (res.status === 409) {
      const body = (await res.json().catch(() => ({}))) as { errors?: { code?: string; detail?: string }[] };
      const e = body.errors?.[0];
      throw new ClaimConflict(e?.code ?? 'placement.undefined_code', e?.detail ?? 'conflict');
    }
    await this.expect(res, 204);
  }

  async allocations(consumerUuid: string): Promise<ConsumerAllocations> {
    return (await this.expect(await this.request('GET', `/allocations/${consumerUuid}`), 200)) as ConsumerAllocations;
  }

  /**
   * Moves everything `from` holds to `to` in one write (POST /allocations), as upstream's
   * move_allocations: a resize parks the source host's allocation on the migration
   * consumer, a revert gives it back. No-op when `from` holds nothing.
   */
  async moveAllocations(from: string, to: string, toType: 'INSTANCE' | 'MIGRATION'): Promise<void> {
    const src = await this.allocations(from);
    if (Object.keys(src.allocations).length === 0) return;
    const target = await this.allocations(to);
    const owner = { project_id: src.project_id, user_id: src.user_id };
    const res = await this.request('POST', '/allocations', {
      [from]: { allocations: {}, ...owner, consumer_generation: src.consumer_generation ?? null, consumer_type: src.consumer_type ?? (toType === 'MIGRATION' ? 'INSTANCE' : 'MIGRATION') },
      [to]: {
        allocations: Object.fromEntries(Object.entries(src.allocations).map(([rp, a]) => [rp, { resources: a.resources }])),
        ...owner,
        consumer_generation: target.consumer_generation ?? null,
        consumer_type: toType,
      },
    });
    await this.expect(res, 204);
  }

  /** Gives back everything a consumer holds; false when it held nothing. */
  async deleteAllocations(consumerUuid: string): Promise<boolean> {
    const res = await this.request('DELETE', `/allocations/${consumerUuid}`);
    await this.expect(res, 204, 404);
    return res.status === 204;
  }

  private async request(method: string, path: string, body?: unknown): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.tokens.tokenId();
      const headers: Record<string, string> = { 'x-auth-token': token, 'openstack-api-version': MICROVERSION, accept: 'application/json' };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await this.fetchImpl(`${this.baseUrl.replace(/\/+$/, '')}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      if (res.status !== 401 || attempt > 0 || !this.tokens.forgetToken) return res;
      await res.body?.cancel();
      this.tokens.forgetToken(token);
    }
  }

  private async expect(res: Response, ...ok: number[]): Promise<unknown> {
    if (!ok.includes(res.status)) {
      const text = await res.text().catch(() => '');
      throw new ApiError('service_unavailable', `placement answered ${res.status}: ${text.slice(0, 500)}`);
    }
    // 201 and 204 of PUT /traits, /resource_classes carry no body; a 404 accepted as "gone" is not parsed.
    const text = res.status === 404 ? '' : await res.text();
    return text ? JSON.parse(text) : undefined;
  }
}
