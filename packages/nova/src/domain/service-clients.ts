import type { Readable } from 'node:stream';
import { ApiError, badRequest } from '@onestack/core/errors.ts';

/** Where a service token comes from (KeystoneSession fits). */
export interface TokenSource {
  tokenId(): Promise<string>;
  forgetToken?(id: string): void;
  get?(path: string): Promise<unknown>;
}

/**
 * Finds a service's public URL: configured, or from the service catalog the
 * service user's Keystone session sees (GET /v3/auth/catalog).
 */
export class Endpoints {
  private catalog?: Promise<{ type: string; endpoints: { interface: string; url: string }[] }[]>;

  constructor(
    private readonly session: TokenSource,
    private readonly configured: Record<string, string>,
  ) {}

  async url(type: string): Promise<string> {
    if (this.configured[type]) return this.configured[type].replace(/\/+$/, '');
    if (!this.session.get) throw new ApiError('service_unavailable', `no ${type} endpoint configured`);
    this.catalog ??= (this.session.get('/v3/auth/catalog') as Promise<{ catalog: { type: string; endpoints: { interface: string; url: string }[] }[] }>).then((b) => b.catalog);
    const entry = (await this.catalog.catch((e) => {
      this.catalog = undefined;
      throw e;
    })).find((e) => e.type === type);
    const ep = entry?.endpoints.find((e) => e.interface === 'public') ?? entry?.endpoints[0];
    if (!ep) {
      this.catalog = undefined;
      throw new ApiError('service_unavailable', `no ${type} endpoint in the service catalog`);
    }
    return ep.url.replace(/\/+$/, '');
  }
}

export interface HttpAnswer {
  status: number;
  body: any;
}

/** A JSON request to another service with a given token (the user's, or the service user's). */
export async function callJson(url: string, token: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const res = await fetch(url, {
    method,
    headers: { 'x-auth-token': token, accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, body: parsed };
}

/** The Image API as Nova uses it. */
export class GlanceClient {
  constructor(private readonly endpoints: Endpoints) {}

  async getImage(token: string, id: string): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('image')}/v2/images/${encodeURIComponent(id)}`, token, 'GET');
  }

  /** Streams the image data into `write` (the service user downloads: the user's token may have expired by then). */
  async download(token: string, id: string): Promise<ReadableStream<Uint8Array>> {
    const res = await fetch(`${await this.endpoints.url('image')}/v2/images/${encodeURIComponent(id)}/file`, { headers: { 'x-auth-token': token } });
    if (res.status !== 200 || !res.body) throw new Error(`glance answered ${res.status} downloading image ${id}`);
    return res.body;
  }

  async createImage(token: string, body: Record<string, unknown>): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('image')}/v2/images`, token, 'POST', body);
  }

  async deleteImage(token: string, id: string): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('image')}/v2/images/${encodeURIComponent(id)}`, token, 'DELETE');
  }

  /** Shares the image with another project (upstream's _add_image_member: an admin's snapshot of someone's server). */
  async addMember(token: string, id: string, member: string): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('image')}/v2/images/${encodeURIComponent(id)}/members`, token, 'POST', { member });
  }

  async upload(token: string, id: string, data: Readable | Uint8Array): Promise<number> {
    const res = await fetch(`${await this.endpoints.url('image')}/v2/images/${id}/file`, {
      method: 'PUT',
      headers: { 'x-auth-token': token, 'content-type': 'application/octet-stream' },
      body: data as unknown as BodyInit,
      duplex: 'half',
    } as RequestInit);
    await res.body?.cancel();
    return res.status;
  }
}

/** The Networking API as Nova uses it (nova/network/neutron.py's job). */
export class NeutronClient {
  constructor(private readonly endpoints: Endpoints) {}

  async call(token: string, method: string, path: string, body?: unknown): Promise<HttpAnswer> {
    return callJson(`${await this.endpoints.url('network')}/v2.0${path}`, token, method, body);
  }

  async expect(token: string, method: string, path: string, body: unknown, ...ok: number[]): Promise<any> {
    const r = await this.call(token, method, path, body);
    if (!ok.includes(r.status)) {
      const msg = (r.body as { NeutronError?: { message?: string } })?.NeutronError?.message ?? JSON.stringify(r.body);
      if (r.status === 400 || r.status === 409) throw badRequest(msg);
      throw new Error(`neutron answered ${r.status} to ${method} ${path}: ${msg}`);
    }
    return r.body;
  }
}

/** A volume as Cinder shows it (the fields Nova reads). */
export interface CinderVolume {
  id: string;
  status: string;
  size: number;
  bootable: string;
  multiattach: boolean;
  availability_zone: string;
  attachments: { attachment_id: string; server_id: string; device?: string }[];
  volume_image_metadata?: Record<string, string>;
  description?: string | null;
}

/** A volume snapshot as Cinder shows it (the fields Nova reads). */
export interface CinderSnapshot {
  id: string;
  volume_id: string;
  status: string;
  size: number;
  name: string | null;
  description: string | null;
}

/** What a compute host tells Cinder about itself when it attaches (os-brick's connector properties). */
export interface VolumeConnector {
  host: string;
  ip?: string;
  initiator?: string;
  multipath?: boolean;
  platform?: string;
  os_type?: string;
  mountpoint?: string;
}

/** upstream's connection_info (what the virt driver needs to reach the disk: a file path, an NBD export …). */
export interface ConnectionInfo {
  driver_volume_type: string;
  data: Record<string, unknown>;
  [k: string]: unknown;
}

// 3.44 completes attachments; 3.27 created them. Nova asks for the newest it knows.
const CINDER_MICROVERSION = 'volume 3.44';

/**
 * The Block Storage API as Nova uses it (nova/volume/cinder.py's job): volumes and
 * the attachments API (3.27+/3.44). Cinder's catalog URL carries the project of the
 * token that read the catalog (Nova's service user), so every call names the
 * project of the instance instead.
 */
export class CinderClient {
  constructor(private readonly endpoints: Endpoints) {}

  private async base(projectId: string): Promise<string> {
    const url = await this.endpoints.url('block-storage');
    return `${url.replace(/\/v3(\/[^/]*)?$/, '')}/v3/${encodeURIComponent(projectId)}`;
  }

  async call(token: string, projectId: string, method: string, path: string, body?: unknown): Promise<HttpAnswer> {
    return callJson(`${await this.base(projectId)}${path}`, token, method, body, { 'openstack-api-version': CINDER_MICROVERSION });
  }

  /** Cinder's fault, raised as the same status and message to Nova's caller (400, 403, 404, 409, 413 …). */
  async expect(token: string, projectId: string, method: string, path: string, body: unknown, ...ok: number[]): Promise<any> {
    const r = await this.call(token, projectId, method, path, body);
    if (ok.includes(r.status)) return r.body;
    const fault = r.body && typeof r.body === 'object' ? (Object.values(r.body as object)[0] as { message?: string } | undefined) : undefined;
    const msg = fault?.message ?? `cinder answered ${r.status} to ${method} ${path}`;
    const code = ({ 400: 'bad_request', 403: 'forbidden', 404: 'not_found', 409: 'conflict', 413: 'over_quota' } as const)[r.status as 400];
    if (code) throw new ApiError(code, msg, { status: r.status });
    throw new Error(`cinder answered ${r.status} to ${method} ${path}: ${msg}`);
  }

  async getVolume(token: string, projectId: string, id: string): Promise<CinderVolume> {
    return (await this.expect(token, projectId, 'GET', `/volumes/${encodeURIComponent(id)}`, undefined, 200)).volume;
  }

  async createVolume(token: string, projectId: string, body: Record<string, unknown>): Promise<CinderVolume> {
    return (await this.expect(token, projectId, 'POST', '/volumes', { volume: body }, 202)).volume;
  }

  async deleteVolume(token: string, projectId: string, id: string): Promise<void> {
    await this.expect(token, projectId, 'DELETE', `/volumes/${encodeURIComponent(id)}`, undefined, 202, 404);
  }

  /** Reserves the volume for the instance (status `reserved`, or `attaching` with a connector). */
  async createAttachment(token: string, projectId: string, volumeId: string, instanceUuid: string, connector?: VolumeConnector, mode?: 'rw' | 'ro'): Promise<{ id: string; connection_info?: ConnectionInfo }> {
    const body = { attachment: { volume_uuid: volumeId, instance_uuid: instanceUuid, ...(connector ? { connector } : {}), ...(mode ? { mode } : {}) } };
    return (await this.expect(token, projectId, 'POST', '/attachments', body, 200)).attachment;
  }

  /** Gives Cinder the host's connector; answers the connection info. */
  async updateAttachment(token: string, projectId: string, attachmentId: string, connector: VolumeConnector): Promise<ConnectionInfo> {
    const a = (await this.expect(token, projectId, 'PUT', `/attachments/${encodeURIComponent(attachmentId)}`, { attachment: { connector } }, 200)).attachment;
    return a.connection_info as ConnectionInfo;
  }

  /** The volume is in use by the guest: `in-use`. */
  async completeAttachment(token: string, projectId: string, attachmentId: string): Promise<void> {
    await this.expect(token, projectId, 'POST', `/attachments/${encodeURIComponent(attachmentId)}/action`, { 'os-complete': null }, 204, 200);
  }

  /**
   * Tells Cinder a swap it asked for is done (or failed: `error`); answers the volume id the
   * guest's disk goes by from now on (upstream's save_volume_id: the old one for a migration).
   */
  async migrateVolumeCompletion(token: string, projectId: string, oldVolumeId: string, newVolumeId: string, error: boolean): Promise<string> {
    const body = { 'os-migrate_volume_completion': { new_volume: newVolumeId, error } };
    return (await this.expect(token, projectId, 'POST', `/volumes/${encodeURIComponent(oldVolumeId)}/action`, body, 200)).save_volume_id;
  }

  /** A snapshot even of an in-use volume (upstream's create_snapshot_force); Cinder makes it in the background. */
  async createSnapshot(token: string, projectId: string, volumeId: string, name: string, description: string | null): Promise<CinderSnapshot> {
    const body = { snapshot: { volume_id: volumeId, force: true, name, description } };
    return (await this.expect(token, projectId, 'POST', '/snapshots', body, 202)).snapshot;
  }

  /**
   * os-update_snapshot_status: how an assisted snapshot Cinder asked for went (upstream's
   * update_snapshot_status: `creating` when the copy is written, `error`; progress 90% both).
   */
  async updateSnapshotStatus(token: string, projectId: string, id: string, status: 'creating' | 'error', progress: string): Promise<void> {
    const body = { 'os-update_snapshot_status': { status, progress } };
    await this.expect(token, projectId, 'POST', `/snapshots/${encodeURIComponent(id)}/action`, body, 202);
  }

  async getSnapshot(token: string, projectId: string, id: string): Promise<CinderSnapshot> {
    return (await this.expect(token, projectId, 'GET', `/snapshots/${encodeURIComponent(id)}`, undefined, 200)).snapshot;
  }

  async deleteSnapshot(token: string, projectId: string, id: string): Promise<void> {
    await this.expect(token, projectId, 'DELETE', `/snapshots/${encodeURIComponent(id)}`, undefined, 202, 404);
  }

  /**
   * The snapshot once Cinder is done making it (any status but `creating`), or as it is when
   * `timeoutMs` runs out: a snapshot still being made can neither be deleted nor become a volume.
   */
  async settledSnapshot(token: string, projectId: string, id: string, timeoutMs: number, pollMs = 250): Promise<CinderSnapshot> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.getSnapshot(token, projectId, id);
      if (s.status !== 'creating' || Date.now() >= end) return s;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** The project's absolute limits and usage (GET /limits), as upstream's get_absolute_limits. */
  async absoluteLimits(token: string, projectId: string): Promise<Record<string, number>> {
    return (await this.expect(token, projectId, 'GET', '/limits', undefined, 200)).limits.absolute;
  }

  /** Detached (or never attached): the volume goes back to `available` once no attachment is left. */
  async deleteAttachment(token: string, projectId: string, attachmentId: string): Promise<void> {
    await this.expect(token, projectId, 'DELETE', `/attachments/${encodeURIComponent(attachmentId)}`, undefined, 200, 204, 404);
  }
}
