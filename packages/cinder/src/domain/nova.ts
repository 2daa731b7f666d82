import type { Logger } from 'pino';
import type { AssistedCreateInfo } from '../drivers/volume-driver.ts';

/** What Cinder tells Nova (upstream's cinder/compute/nova.py API). */
export interface ComputeApi {
  /** The servers that have the volume attached see it grow; false when Nova took none of the events (never throws: upstream logs a failure). */
  extendVolume(serverIds: string[], volumeId: string): Promise<boolean>;
  /**
   * upstream's update_server_volume: Nova copies the server's disk of the volume to the new
   * one and pivots to it, then calls os-migrate_volume_completion. Throws when Nova refused
   * (then nothing happened on its side). Absent: attached volumes do not move.
   */
  swapVolume?(serverId: string, oldVolumeId: string, newVolumeId: string): Promise<void>;
  /**
   * upstream's create_volume_snapshot: Nova has the instance that holds the volume open write
   * the copy, and reports back with os-update_snapshot_status. Throws when Nova refused
   * (then it will not report). Absent: snapshots of in-use volumes are made without Nova.
   */
  createVolumeSnapshot?(volumeId: string, createInfo: AssistedCreateInfo): Promise<void>;
}

/** Cinder's service user: a token and the catalog it came with. */
export interface ServiceSession {
  tokenId(): Promise<string>;
  endpointUrl(type: string): Promise<string>;
}

/**
 * Nova's API with Cinder's service credentials (the service role Nova's policy asks for),
 * at the compute endpoint of the service token's catalog.
 */
export class NovaHttp implements ComputeApi {
  constructor(private readonly o: { session: ServiceSession; logger: Pick<Logger, 'error'> }) {}

  private async send(method: string, path: string, body: unknown, microversion: string): Promise<Response> {
    const base = (await this.o.session.endpointUrl('compute')).replace(/\/+$/, '').replace(/\/v2(\.1)?(\/.*)?$/, '');
    return fetch(`${base}/v2.1${path}`, {
      method,
      headers: { 'x-auth-token': await this.o.session.tokenId(), 'content-type': 'application/json', accept: 'application/json', 'openstack-api-version': `compute ${microversion}`, 'x-openstack-nova-api-version': microversion },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  }

  /** os-server-external-events at 2.51, where volume-extended came. */
  async extendVolume(serverIds: string[], volumeId: string): Promise<boolean> {
    if (!serverIds.length) return true;
    const events = serverIds.map((server_uuid) => ({ name: 'volume-extended', server_uuid, tag: volumeId }));
    try {
      const res = await this.send('POST', '/os-server-external-events', { events }, '2.51');
      if (res.status === 200) return true;
      // 207: some servers took it, some did not (gone, on no host); anything else: none did.
      const text = await res.text().catch(() => '');
      this.o.logger.error({ volume: volumeId, status: res.status, answer: text.slice(0, 500) }, 'Nova did not take every volume-extended event');
      return res.status === 207;
    } catch (err) {
      this.o.logger.error({ volume: volumeId, err: (err as Error).message }, 'Failed to notify Nova of the volume extend');
      return false;
    }
  }

  /** PUT os-volume_attachments/{old} with the new volumeId; at 2.1 every such update is a swap. */
  async swapVolume(serverId: string, oldVolumeId: string, newVolumeId: string): Promise<void> {
    const res = await this.send('PUT', `/servers/${encodeURIComponent(serverId)}/os-volume_attachments/${encodeURIComponent(oldVolumeId)}`, { volumeAttachment: { volumeId: newVolumeId } }, '2.1');
    if (res.status === 202) return;
    const text = await res.text().catch(() => '');
    throw new Error(`Nova answered ${res.status} to swapping volume ${oldVolumeId} for ${newVolumeId} on server ${serverId}: ${text.slice(0, 500)}`);
  }

  /** POST os-assisted-volume-snapshots (2.1: the API has no microversion of its own). */
  async createVolumeSnapshot(volumeId: string, createInfo: AssistedCreateInfo): Promise<void> {
    const res = await this.send('POST', '/os-assisted-volume-snapshots', { snapshot: { volume_id: volumeId, create_info: createInfo } }, '2.1');
    if (res.status === 200) return;
    const text = await res.text().catch(() => '');
    throw new Error(`Nova answered ${res.status} to snapshotting volume ${volumeId}: ${text.slice(0, 500)}`);
  }
}
