import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Bus } from '@onestack/core/bus/bus.ts';
import type { Logger } from 'pino';
import type { GlanceClient } from '../domain/service-clients.ts';
import type { ImageCache } from '../virt/image-cache.ts';

/** What a host reports per image (upstream's cache_images result). */
export type PrecacheResult = 'cached' | 'existing' | 'error' | 'unsupported';

interface HostDeps {
  driver: { capabilities: { hasImageCache: boolean } };
  imageCache?: ImageCache;
  glance: GlanceClient;
  logger: Pick<Logger, 'warn'>;
  serviceToken(): Promise<string>;
}

/**
 * nova-compute's cache_images RPC (2.81's aggregate image pre-cache): each image into this host's
 * image cache, the one boots use, so a later boot of it finds it there. A driver without a cache
 * answers `unsupported`.
 */
export function imagePrecacheHandlers(d: HostDeps) {
  return {
    cache_images: async (a: { imageIds: string[] }): Promise<Record<string, PrecacheResult>> => {
      const out: Record<string, PrecacheResult> = {};
      for (const id of a.imageIds) out[id] = await cacheOne(d, id);
      return out;
    },
  };
}

async function cacheOne(d: HostDeps, imageId: string): Promise<PrecacheResult> {
  const cache = d.imageCache;
  if (!d.driver.capabilities.hasImageCache || !cache) return 'unsupported';
  try {
    if ((await cache.list()).includes(imageId)) return 'existing';
    const token = await d.serviceToken();
    const meta = await d.glance.getImage(token, imageId);
    if (meta.status !== 200) throw new Error(`glance answered ${meta.status} for image ${imageId}`);
    await cache.ensure(imageId, (meta.body as { disk_format?: string }).disk_format === 'raw' ? 'raw' : 'qcow2', async (dest) => {
      await pipeline(Readable.fromWeb((await d.glance.download(token, imageId)) as never), createWriteStream(dest));
    });
    return 'cached';
  } catch (err) {
    d.logger.warn({ err, image: imageId }, 'image pre-cache failed');
    return 'error';
  }
}

/**
 * The conductor's side (upstream's ComputeTaskManager.cache_images): every host of the aggregate at
 * once; a host that does not answer counts as skipped. Returns per image how many hosts cached it,
 * had it, failed or could not.
 */
export async function precacheOnHosts(bus: Pick<Bus, 'call'>, topic: string, hosts: string[], imageIds: string[], logger: Pick<Logger, 'info' | 'warn'>) {
  const stats: Record<string, Record<PrecacheResult | 'skipped', number>> = Object.fromEntries(imageIds.map((id) => [id, { cached: 0, existing: 0, error: 0, unsupported: 0, skipped: 0 }]));
  await Promise.all(
    hosts.map(async (host) => {
      try {
        const r = await bus.call<Record<string, PrecacheResult>>(topic, 'cache_images', { imageIds }, { host, timeoutMs: 600_000 });
        for (const id of imageIds) stats[id][r[id] ?? 'error'] += 1;
      } catch (err) {
        logger.warn({ err, host }, 'image pre-cache: host did not answer');
        for (const id of imageIds) stats[id].skipped += 1;
      }
    }),
  );
  logger.info({ hosts: hosts.length, stats }, 'image pre-cache done');
  return stats;
}
