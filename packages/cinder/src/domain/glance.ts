import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import { catalogUrl } from './catalog.ts';

export interface GlanceImage {
  id: string;
  name: string | null;
  status: string;
  disk_format: string | null;
  container_format: string | null;
  size: number | null;
  virtual_size: number | null;
  min_disk: number;
  min_ram: number;
  checksum: string | null;
  [property: string]: unknown;
}

/** Where Cinder reads images: Glance's HTTP API with the caller's own token, as upstream's glance client does. */
export interface ImageSource {
  show(imageId: string, token: string): Promise<GlanceImage>;
  download(imageId: string, token: string, dest: string): Promise<void>;
  /** A queued image owned by the caller's project (POST /v2/images). */
  create(body: Record<string, unknown>, token: string): Promise<GlanceImage>;
  /** Uploads the file as the image's data (PUT /v2/images/{id}/file). */
  upload(imageId: string, token: string, src: string): Promise<void>;
}

/**
 * Glance over HTTP. Its URL is configured, or found in the caller's catalog
 * (GET /v3/auth/catalog with the caller's token: the image endpoint they may use).
 */
export class GlanceHttp implements ImageSource {
  constructor(private readonly o: { glanceUrl?: string; identityUrl?: string }) {}

  private async base(token: string): Promise<string> {
    if (this.o.glanceUrl) return this.o.glanceUrl.replace(/\/$/, '');
    return catalogUrl(this.o.identityUrl, token, 'image', 'Image');
  }

  async show(imageId: string, token: string): Promise<GlanceImage> {
    const res = await fetch(`${await this.base(token)}/v2/images/${encodeURIComponent(imageId)}`, { headers: { 'x-auth-token': token, accept: 'application/json' } });
    if (res.status === 404 || res.status === 403) throw notFound(`Image ${imageId} could not be found.`);
    if (!res.ok) throw new Error(`Glance answered ${res.status} for image ${imageId}`);
    return (await res.json()) as GlanceImage;
  }

  async create(body: Record<string, unknown>, token: string): Promise<GlanceImage> {
    const res = await fetch(`${await this.base(token)}/v2/images`, { method: 'POST', headers: { 'x-auth-token': token, 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) });
    if (res.status !== 201) throw await glanceRefusal(res, 'create the image');
    return (await res.json()) as GlanceImage;
  }

  async upload(imageId: string, token: string, src: string): Promise<void> {
    const size = (await stat(src)).size;
    const res = await fetch(`${await this.base(token)}/v2/images/${encodeURIComponent(imageId)}/file`, {
      method: 'PUT',
      headers: { 'x-auth-token': token, 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: Readable.toWeb(createReadStream(src)) as unknown as BodyInit,
      duplex: 'half',
    } as RequestInit);
    if (res.status !== 204) throw await glanceRefusal(res, `upload image ${imageId}`);
  }

  async download(imageId: string, token: string, dest: string): Promise<void> {
    const res = await fetch(`${await this.base(token)}/v2/images/${encodeURIComponent(imageId)}/file`, { headers: { 'x-auth-token': token } });
    if (!res.ok || !res.body) throw new Error(`Glance answered ${res.status} to the download of image ${imageId}`);
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(dest, { flags: 'wx' }));
  }
}

/** Glance's 4xx on create are the caller's (a bad disk_format, a quota): passed through as 400. */
async function glanceRefusal(res: Response, doing: string): Promise<Error> {
  const text = await res.text().catch(() => '');
  if (res.status >= 400 && res.status < 500) return badRequest(`Invalid input received: Glance refused to ${doing}: ${text.slice(0, 200)}`);
  return new Error(`Glance answered ${res.status} to ${doing}`);
}

/** The image properties copied to volume_image_metadata, as upstream's _capture_volume_image_metadata. */
export function imageMetadataOf(image: GlanceImage): Record<string, string> {
  const core = ['checksum', 'container_format', 'disk_format', 'min_disk', 'min_ram', 'size'];
  const skip = new Set(['id', 'name', 'status', 'visibility', 'protected', 'owner', 'tags', 'created_at', 'updated_at', 'file', 'schema', 'self', 'locations', 'direct_url', 'virtual_size', 'os_hidden', 'os_hash_algo', 'os_hash_value', 'stores', 'os_glance_import_task']);
  const out: Record<string, string> = { image_id: image.id, image_name: image.name ?? '' };
  for (const k of core) if (image[k] !== null && image[k] !== undefined) out[k] = String(image[k]);
  for (const [k, v] of Object.entries(image)) if (!skip.has(k) && !core.includes(k) && v !== null && v !== undefined && typeof v !== 'object') out[k] = String(v);
  return out;
}
