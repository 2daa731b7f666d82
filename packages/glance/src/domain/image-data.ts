import { pipeline } from 'node:stream';
import { ApiError, badRequest, conflict, notFound } from '@onestack/core/errors.ts';
import { StoreSizeLimitError, type ImageStore, type StoreWriteResult } from '../drivers/image-store.ts';
import type { StagingArea } from '../drivers/staging-area.ts';
import { checkDiskFormat, createInspector, qemuImgInfo, virtualSizeFor, type Inspection } from '@onestack/core/images/format-inspector.ts';
import { missingFormats, transitionMessage, type Image } from './image.ts';
import type { ImageService, Viewer } from './images.ts';

/** Formats with headers qemu-img reads for a second opinion (raw has nothing to check). */
const QEMU_CHECKED = new Set(['qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi']);

export interface DataRequest {
  data: NodeJS.ReadableStream;
  /** What the client announced (x-openstack-image-size or Content-Length), for quota checks. */
  size?: number;
  signal?: AbortSignal;
}

/** Store ids import and copy work on: x-image-meta-store, `stores`, or `all_stores`. */
export interface ImportRequest {
  method: 'glance-direct' | 'copy-image';
  stores: string[];
  allStoresMustSucceed: boolean;
  allStores: boolean;
}

/** Upstream keeps an import lock this long before another import may take it over. */
const IMPORT_LOCK_EXPIRY_MS = 60 * 60_000;

/**
 * The image data paths: upload (PUT …/file), staging (PUT …/stage),
 * interoperable import (glance-direct, copy-image) and download. Bytes stream
 * from the request through the format inspector into a store; nothing is
 * held in memory whole.
 */
export class ImageData {
  constructor(private readonly images: ImageService) {}

  private get deps() {
    return this.images.deps;
  }

  private get staging(): StagingArea {
    return this.images.deps.staging;
  }

  /** PUT /v2/images/{id}/file (image_data.py upload): queued → saving → active. */
  async upload(image: Image, req: DataRequest, viewer: Viewer, storeId?: string): Promise<void> {
    const { quotas, config, notifier, logger } = this.deps;
    await quotas.imageSizeTotal(viewer.projectId, req.size ?? 0);
    const store = this.images.storeFor(storeId ?? config.defaultBackend);
    if (!store) throw badRequest(`Unknown scheme '${storeId}' found in URI`);
    if (image.status === 'queued') {
      const missing = missingFormats(image);
      if (missing) throw badRequest(missing);
    }
    await this.images.transitionOrConflict(image, 'queued', 'saving');
    notifier.image('image.prepare', { ...image, status: 'saving' }, viewer.ctx, importProperties(image));
    let written: StoreWriteResult | undefined;
    try {
      await quotas.imageCountUploading(viewer.projectId);
      const { result, virtualSize } = await this.store(image, store, req);
      written = result;
      const activated = await this.images.repo.transition(image.id, 'saving', 'active', storedColumns(result, virtualSize), {
        addLocations: [{ id: this.deps.ids.uuid(), store: storeId ?? config.defaultBackend, url: result.location }],
      });
      if (!activated) {
        await store.delete(result.location).catch(() => undefined);
        throw new ApiError(
          'gone',
          `Image ${image.id} could not be found after upload. The image may have been deleted during the upload, cleaning up the chunks uploaded.`,
        );
      }
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'gone')) {
        if (written) await store.delete(written.location).catch(() => undefined);
        await this.images.repo.transition(image.id, 'saving', 'queued').catch((err: unknown) => logger.error({ err, image_id: image.id }, 'cannot restore image to queued'));
      }
      notifier.uploadFailed(`Failed to upload image data for image ${image.id}: ${(e as Error).message}`, viewer.ctx);
      throw uploadError(e);
    }
    const active = await this.images.get(image.id, { isAdmin: true });
    notifier.image('image.upload', active, viewer.ctx, importProperties(active));
    notifier.image('image.activate', active, viewer.ctx);
  }

  /**
   * Streams `req` through the format inspector into `store` and checks what
   * arrived against the image's disk_format (upstream inspects bare
   * containers only); on refusal the bytes are deleted again.
   */
  private async store(image: Image, store: ImageStore, req: DataRequest): Promise<{ result: StoreWriteResult; virtualSize: number | null }> {
    const diskFormat = image.containerFormat === 'bare' ? image.diskFormat : null;
    const inspector = diskFormat ? createInspector() : undefined;
    let source: NodeJS.ReadableStream = req.data;
    if (inspector) {
      // pipeline, not pipe: a client that goes away mid-upload must fail the store write.
      pipeline(req.data, inspector.stream, () => undefined);
      source = inspector.stream;
    }
    const result = await store.write(image.id, source, { maxBytes: this.deps.config.imageSizeCap, signal: req.signal, size: req.size });
    if (!inspector || !diskFormat) return { result, virtualSize: null };
    try {
      return { result, virtualSize: await this.verdict(inspector.result(), diskFormat, store, result.location) };
    } catch (e) {
      await store.delete(result.location).catch(() => undefined);
      throw e;
    }
  }

  /**
   * The virtual size of accepted content, or upstream's refusal (415) of
   * content that is unsafe or not what disk_format says. Where the store has
   * a local file, qemu-img gives a second opinion on structured formats: its
   * refusal counts too, and its virtual size fills in when the header said none.
   */
  private async verdict(inspection: Inspection, diskFormat: string, store: ImageStore, location: string): Promise<number | null> {
    const refusal = this.deps.config.requireImageFormatMatch ? checkDiskFormat(inspection, diskFormat) : inspection.unsafe && 'Image failed safety checks';
    if (refusal) throw new ApiError('unsupported_media_type', refusal);
    const virtualSize = virtualSizeFor(inspection, diskFormat) ?? null;
    const path = store.capabilities.localPath ? store.localPath?.(location) : undefined;
    if (!path || !QEMU_CHECKED.has(diskFormat) || inspection.format !== diskFormat) return virtualSize;
    const info = await qemuImgInfo(path, diskFormat, { logger: this.deps.logger }).catch((err: unknown) => {
      this.deps.logger.warn({ err, disk_format: diskFormat }, "qemu-img info failed; keeping the inspector's verdict");
      return undefined;
    });
    if (info?.unsafe) throw new ApiError('unsupported_media_type', `Image failed safety checks: ${info.unsafe}`);
    return virtualSize ?? info?.virtualSize ?? null;
  }

  /** PUT /v2/images/{id}/stage: queued → uploading, the bytes kept in the staging store. */
  async stage(image: Image, req: DataRequest, viewer: Viewer): Promise<void> {
    const { quotas, config, logger } = this.deps;
    if (!config.importMethods.includes('glance-direct')) throw notFound("'glance-direct' method is not available at this site.");
    await quotas.imageStageTotal(viewer.projectId, req.size ?? 0);
    await this.images.transitionOrConflict(image, 'queued', 'uploading');
    try {
      await quotas.imageCountUploading(viewer.projectId);
      const written = await this.staging.write(image.id, req.data, { maxBytes: config.imageSizeCap, signal: req.signal });
      if (!(await this.images.repo.update(image.id, { columns: { size: written.size } }, 'uploading'))) {
        throw new ApiError('gone', `Image ${image.id} could not be found after upload. The image may have been deleted during the upload.`);
      }
    } catch (e) {
      await this.staging.delete(this.staging.locationOf(image.id)).catch(() => undefined);
      await this.images.repo.transition(image.id, 'uploading', 'queued').catch((err: unknown) => logger.error({ err, image_id: image.id }, 'cannot restore image to queued'));
      throw uploadError(e);
    }
  }

  /**
   * POST /v2/images/{id}/import: checks, takes the import lock, marks the
   * image and leaves the copying to a background task (202, as upstream).
   * `authorize` runs where upstream checks policy: after the status checks.
   */
  async startImport(image: Image, req: ImportRequest, viewer: Viewer, authorize: () => void): Promise<void> {
    const { quotas, config, repo } = this.deps;
    await quotas.imageSizeTotal(viewer.projectId);
    if (image.status === 'active' && req.method !== 'copy-image') throw conflict('Image with status active cannot be target for import');
    if (image.status !== 'active' && req.method === 'copy-image') throw conflict('Only images with status active can be targeted for copying');
    if (image.status !== 'uploading' && req.method === 'glance-direct') throw conflict("Image needs to be staged before 'glance-direct' method can be used");
    if (!image.containerFormat) throw conflict("'container_format' needs to be set before import");
    if (!image.diskFormat) throw conflict("'disk_format' needs to be set before import");
    authorize();
    const staleTask = 'os_glance_import_task' in image.properties ? await this.expiredLock(image) : undefined;
    let stores = req.allStores ? config.stores.map((s) => s.id) : req.stores;
    for (const s of stores) if (!this.images.storeFor(s)) throw conflict(`Unknown scheme '${s}' found in URI`);
    if (req.method === 'copy-image') {
      const present = new Set(image.locations.map((l) => l.store));
      if (req.allStores) {
        stores = stores.filter((s) => !present.has(s));
        if (stores.length === 0) return;
      } else {
        for (const s of stores) if (present.has(s)) throw badRequest(`Image is already present at store '${s}'`);
      }
    }
    const taskId = this.deps.ids.uuid();
    await repo.createTask({ id: taskId, imageId: image.id, type: 'api_image_import', owner: viewer.projectId ?? null, userId: viewer.userId ?? null, requestId: viewer.ctx?.requestId ?? null, input: { image_id: image.id, import_req: { method: { name: req.method } }, backend: stores } });
    if (staleTask !== undefined) await repo.deletePropertyAtomic(image.id, 'os_glance_import_task', staleTask);
    if (!(await repo.setPropertyAtomic(image.id, 'os_glance_import_task', taskId))) {
      await repo.finishTask(taskId, 'failure', 'Image has active task');
      throw conflict(`New operation on image '${image.id}' is not permitted as prior operation is still in progress`);
    }
    const progress = progressOf(image, stores);
    const marked = await repo.update(
      image.id,
      { columns: req.method === 'glance-direct' ? { status: 'importing' } : {}, setProperties: progress, removeProperties: ['os_glance_stage_host'] },
      req.method === 'glance-direct' ? 'uploading' : 'active',
    );
    try {
      if (!marked) throw conflict(transitionMessage((await repo.find(image.id))?.status ?? 'deleted', req.method === 'glance-direct' ? 'importing' : 'active'));
      if (req.method === 'glance-direct') {
        await quotas.imageSizeTotal(viewer.projectId, image.size ?? 0);
      } else {
        await quotas.imageStageTotal(viewer.projectId, image.size ?? 0);
        await quotas.imageCountUploading(viewer.projectId);
      }
    } catch (e) {
      if (marked) {
        await repo.update(
          image.id,
          { columns: req.method === 'glance-direct' ? { status: 'uploading' } : {}, setProperties: { os_glance_importing_to_stores: image.properties.os_glance_importing_to_stores ?? '' } },
          req.method === 'glance-direct' ? 'importing' : 'active',
        );
      }
      await this.releaseLock(image.id, taskId, 'failure', (e as Error).message);
      throw e;
    }
    const job = req.method === 'glance-direct' ? this.runGlanceDirect(image, stores, req.allStoresMustSucceed, viewer) : this.runCopy(image, stores, req.allStoresMustSucceed, viewer);
    void job
      .then(() => this.releaseLock(image.id, taskId, 'success', ''))
      .catch(async (e: unknown) => {
        this.deps.logger.warn({ err: e, image_id: image.id, task_id: taskId }, 'image import failed');
        await this.releaseLock(image.id, taskId, 'failure', (e as Error).message);
      });
  }

  /** The id of a lock holder that has expired (or vanished), which a new import may take over; 409 while it is alive. */
  private async expiredLock(image: Image): Promise<string> {
    const holder = image.properties.os_glance_import_task;
    const task = await this.images.repo.findTask(holder);
    if (!task) return holder;
    const expiry = task.status === 'pending' ? IMPORT_LOCK_EXPIRY_MS * 2 : IMPORT_LOCK_EXPIRY_MS;
    if (this.deps.clock.now() - task.updatedAt >= expiry) return holder;
    throw conflict('Image has active task');
  }

  private async releaseLock(imageId: string, taskId: string, status: 'success' | 'failure', message: string): Promise<void> {
    await this.images.repo.deletePropertyAtomic(imageId, 'os_glance_import_task', taskId).catch(() => false);
    await this.images.repo.finishTask(taskId, status, message, status === 'success' ? { image_id: imageId } : null).catch(() => undefined);
  }

  /** Staged bytes into each store in turn; the image goes active with the first copy, and back to queued if none succeed. */
  private async runGlanceDirect(image: Image, stores: string[], allMustSucceed: boolean, viewer: Viewer): Promise<void> {
    const { repo } = this.images;
    let activated = false;
    const written: { store: string; location: string }[] = [];
    try {
      for (const storeId of stores) {
        try {
          const { stream, size } = await this.staging.read(this.staging.locationOf(image.id));
          const current = (await repo.find(image.id)) ?? image;
          const { result, virtualSize } = await this.store(current, this.images.storeFor(storeId)!, { data: stream, size });
          written.push({ store: storeId, location: result.location });
          const progress = progressAfter(current, storeId, true);
          const loc = [{ id: this.deps.ids.uuid(), store: storeId, url: result.location }];
          const ok = activated
            ? await repo.update(image.id, { columns: {}, setProperties: progress, addLocations: loc }, 'active')
            : await repo.transition(image.id, 'importing', 'active', storedColumns(result, virtualSize), { setProperties: progress, addLocations: loc });
          if (!ok) throw new Error('Image has been deleted, aborting import.');
          activated = true;
        } catch (e) {
          if (allMustSucceed) throw e;
          const current = await repo.find(image.id);
          if (current) await repo.update(image.id, { columns: {}, setProperties: progressAfter(current, storeId, false) });
        }
      }
      if (!activated) throw new Error('None of the uploads finished!');
    } catch (e) {
      for (const w of written) await this.images.storeFor(w.store)?.delete(w.location).catch(() => undefined);
      const current = await repo.find(image.id);
      if (current) {
        const failed = stores.filter((s) => !written.some((w) => w.store === s) || allMustSucceed);
        await repo.update(
          image.id,
          {
            columns: { status: 'queued', size: null, virtual_size: null, checksum: null, os_hash_algo: null, os_hash_value: null },
            setProperties: { os_glance_importing_to_stores: '', os_glance_failed_import: joinStores(current.properties.os_glance_failed_import, failed) },
            removeLocations: current.locations.map((l) => l.id),
          },
          ['importing', 'active'],
        );
      }
      await this.staging.delete(this.staging.locationOf(image.id)).catch(() => undefined);
      this.deps.notifier.uploadFailed(`Failed to import image data for image ${image.id}: ${(e as Error).message}`, viewer.ctx);
      throw e;
    }
    await this.staging.delete(this.staging.locationOf(image.id)).catch(() => undefined);
    const active = await this.images.get(image.id, { isAdmin: true });
    this.deps.notifier.image('image.upload', active, viewer.ctx, importProperties(active));
    this.deps.notifier.image('image.activate', active, viewer.ctx);
  }

  /** An active image's bytes copied from its first location into more stores; the image stays active throughout. */
  private async runCopy(image: Image, stores: string[], allMustSucceed: boolean, viewer: Viewer): Promise<void> {
    const { repo } = this.images;
    const source = image.locations.find((l) => this.images.storeFor(l.store));
    for (const storeId of stores) {
      const current = await repo.find(image.id);
      if (!current) throw new Error('Image has been deleted, aborting import.');
      try {
        if (!source) throw new Error('no readable copy of the image');
        const { stream, size } = await this.images.storeFor(source.store)!.read(source.url);
        const target = this.images.storeFor(storeId)!;
        const result = await target.write(image.id, stream, { maxBytes: this.deps.config.imageSizeCap, size });
        if (result.checksum !== current.checksum) {
          await target.delete(result.location).catch(() => undefined);
          throw new Error(`checksum of the copy in ${storeId} differs from the image's`);
        }
        const ok = await repo.update(image.id, { columns: {}, setProperties: progressAfter(current, storeId, true), addLocations: [{ id: this.deps.ids.uuid(), store: storeId, url: result.location }] }, 'active');
        if (!ok) {
          await target.delete(result.location).catch(() => undefined);
          throw new Error('Image has been deleted, aborting import.');
        }
      } catch (e) {
        await repo.update(image.id, { columns: {}, setProperties: progressAfter(current, storeId, false) });
        if (allMustSucceed) throw e;
      }
    }
    const done = await this.images.get(image.id, { isAdmin: true });
    this.deps.notifier.image('image.upload', done, viewer.ctx, importProperties(done));
  }

  /** GET /v2/images/{id}/file: the bytes of the first readable copy, whole or a range. */
  async download(image: Image, range?: { start: number; end: number }): Promise<{ stream: NodeJS.ReadableStream; size: number } | undefined> {
    for (const loc of image.locations) {
      const store = this.images.storeFor(loc.store);
      if (!store) continue;
      try {
        return await store.read(loc.url, range);
      } catch (e) {
        if (e instanceof ApiError && e.status === 416) throw e;
        this.deps.logger.warn({ err: e, image_id: image.id, store: loc.store }, 'Get image data failed');
      }
    }
    return undefined;
  }
}

/** The columns a successful write sets, as upstream's _upload_to_store. */
function storedColumns(r: StoreWriteResult, virtualSize: number | null) {
  return { size: r.size, checksum: r.checksum, os_hash_algo: r.osHashAlgo, os_hash_value: r.osHashValue, ...(virtualSize ? { virtual_size: virtualSize } : {}) };
}

/** Upstream's messages for data that could not be stored. */
function uploadError(e: unknown): unknown {
  if (e instanceof StoreSizeLimitError) return new ApiError('payload_too_large', `The incoming image is too large: ${e.message}`);
  return e;
}

/** The import progress properties notifications carry (_format_import_properties). */
function importProperties(image: Image): Record<string, unknown> {
  const list = (v: string | undefined) => (v ? v.split(',') : []);
  return {
    os_glance_importing_to_stores: list(image.properties.os_glance_importing_to_stores),
    os_glance_failed_import: list(image.properties.os_glance_failed_import),
  };
}

function joinStores(current: string | undefined, add: string[]): string {
  return [...new Set([...(current ? current.split(',') : []), ...add])].join(',');
}

function withoutStores(current: string | undefined, remove: string[]): string {
  return (current ? current.split(',') : []).filter((s) => !remove.includes(s)).join(',');
}

/** The stores an import is now copying to, none of them marked failed any longer. */
function progressOf(image: Image, stores: string[]): Record<string, string> {
  return {
    os_glance_importing_to_stores: joinStores(image.properties.os_glance_importing_to_stores, stores),
    os_glance_failed_import: withoutStores(image.properties.os_glance_failed_import, stores),
  };
}

/** A store finished: off the importing list, and on the failed one if it failed. */
function progressAfter(image: Image, store: string, succeeded: boolean): Record<string, string> {
  return {
    os_glance_importing_to_stores: withoutStores(image.properties.os_glance_importing_to_stores, [store]),
    ...(succeeded ? {} : { os_glance_failed_import: joinStores(image.properties.os_glance_failed_import, [store]) }),
  };
}
