import type { Logger } from 'pino';

/** What Cinder tells Nova (upstream's cinder/compute/nova.py API). */
export interface ComputeApi {
  /** The servers that have the volume attached see it grow (never throws: upstream logs a failure). */
  extendVolume(serverIds: string[], volumeId: string): Promise<void>;
}

/** Cinder's service user: a token and the catalog it came with. */
export interface ServiceSession {
  tokenId(): Promise<string>;
  endpointUrl(type: string): Promise<string>;
}

/**
 * Nova's os-server-external-events with Cinder's service credentials (the service role Nova's
 * policy asks for), microversion 2.51 where volume-extended came, at the compute endpoint of
 * the service token's catalog.
 */
export class NovaHttp implements ComputeApi {
  constructor(private readonly o: { session: ServiceSession; logger: Pick<Logger, 'error'> }) {}

  async extendVolume(serverIds: string[], volumeId: string): Promise<void> {
    if (!serverIds.length) return;
    const events = serverIds.map((server_uuid) => ({ name: 'volume-extended', server_uuid, tag: volumeId }));
    try {
      const base = (await this.o.session.endpointUrl('compute')).replace(/\/+$/, '').replace(/\/v2(\.1)?(\/.*)?$/, '');
      const res = await fetch(`${base}/v2.1/os-server-external-events`, {
        method: 'POST',
        headers: { 'x-auth-token': await this.o.session.tokenId(), 'content-type': 'application/json', accept: 'application/json', 'openstack-api-version': 'compute 2.51', 'x-openstack-nova-api-version': '2.51' },
        body: JSON.stringify({ events }),
        signal: AbortSignal.timeout(30_000),
      });
      if (res.status === 200) return;
      // 207: some servers took it, some did not (gone, on no host); anything else: none did.
      const text = await res.text().catch(() => '');
      this.o.logger.error({ volume: volumeId, status: res.status, answer: text.slice(0, 500) }, 'Nova did not take every volume-extended event');
    } catch (err) {
      this.o.logger.error({ volume: volumeId, err: (err as Error).message }, 'Failed to notify Nova of the volume extend');
    }
  }
}
