import type { Logger } from 'pino';
import type { Clock } from '@onestack/core/clock.ts';
import type { RequestContext } from '@onestack/core/context.ts';
import { ApiError, conflict, forbidden, notFound } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { GlanceConfig } from '../conf.ts';
import type { ImageStore } from '../drivers/image-store.ts';
import type { StagingArea } from '../drivers/staging-area.ts';
import type { ImageChanges, ImageRepo } from './image-repo.ts';
import { changesOf, checkImageQuotas, type CreateRequest, type Draft } from './image-rules.ts';
import { sourcesOf, transitionMessage, type Image, type ImageMember, type ImageStatus, type MemberStatus } from './image.ts';
import type { ImageNotifier } from './notifier.ts';
import type { Quotas } from './quotas.ts';
import { isoTime } from './time.ts';

/** Who is asking: the project its token is scoped to and whether it is an admin (context_is_admin). */
export interface Viewer {
  projectId?: string;
  userId?: string;
  isAdmin: boolean;
  ctx?: RequestContext;
}

export interface ImageServiceDeps {
  repo: ImageRepo;
  config: GlanceConfig;
  /** The enabled stores by id. */
  stores: Map<string, ImageStore>;
  /** Where glance-direct data waits for its import. */
  staging: StagingArea;
  notifier: ImageNotifier;
  quotas: Quotas;
  ids: IdSource;
  clock: Clock;
  logger: Logger;
}

/** How often a patch is re-applied when the image changed under it. */
const SAVE_ATTEMPTS = 3;

/**
 * Image metadata, lifecycle and membership: what the API routes call once
 * they have validated the request and checked policy. The image data paths
 * (upload, staging, import, download) are in image-data.ts.
 */
export class ImageService {
  constructor(readonly deps: ImageServiceDeps) {}

  get repo(): ImageRepo {
    return this.deps.repo;
  }

  /** An image the viewer may see (upstream's is_image_visible), else upstream's 404. */
  async get(id: string, viewer: Viewer): Promise<Image> {
    const image = await this.repo.find(id);
    if (!image || !(await this.visible(image, viewer))) throw notFound(`No image found with ID ${id}`);
    return image;
  }

  private async visible(image: Image, viewer: Viewer): Promise<boolean> {
    if (viewer.isAdmin || image.owner === null) return true;
    if (image.visibility === 'public' || image.visibility === 'community') return true;
    if (viewer.projectId === undefined) return false;
    if (image.owner === viewer.projectId) return true;
    return image.visibility === 'shared' && (await this.repo.findMember(image.id, viewer.projectId)) !== undefined;
  }

  async create(req: CreateRequest, viewer: Viewer): Promise<Image> {
    await this.deps.quotas.imageCountTotal(viewer.projectId);
    checkImageQuotas(req.properties, req.tags, this.deps.config);
    const image = await this.repo.create({
      id: req.id ?? this.deps.ids.uuid(),
      name: req.name,
      diskFormat: req.diskFormat,
      containerFormat: req.containerFormat,
      visibility: req.visibility,
      minDisk: req.minDisk,
      minRam: req.minRam,
      owner: req.owner === undefined ? (viewer.projectId ?? null) : req.owner,
      protected: req.protected,
      osHidden: req.osHidden,
      properties: req.properties,
      tags: req.tags,
    });
    this.deps.notifier.image('image.create', image, viewer.ctx);
    return image;
  }

  /**
   * Applies `edit` to the image and saves what it changed, provided the
   * image's status did not move meanwhile; if it did, `edit` runs again on
   * the fresh image, so rules that depend on the status see the right one.
   */
  async update(id: string, viewer: Viewer, edit: (image: Image) => Draft | undefined): Promise<Image> {
    for (let attempt = 1; ; attempt++) {
      const image = await this.get(id, viewer);
      const draft = edit(image);
      if (!draft) return image;
      const changes = changesOf(image, draft);
      if (isEmpty(changes)) return image;
      checkImageQuotas(draft.properties, draft.core.tags as string[], this.deps.config);
      if (await this.repo.update(id, changes, image.status)) {
        const saved = await this.get(id, viewer);
        this.deps.notifier.image('image.update', saved, viewer.ctx);
        return saved;
      }
      if (attempt >= SAVE_ATTEMPTS) throw conflict(`Image ${id} changed while it was being updated; try again.`);
    }
  }

  async delete(image: Image, viewer: Viewer): Promise<void> {
    if (image.protected) throw forbidden(`Image ${image.id} is protected and cannot be deleted.`);
    if (!(await this.repo.delete(image.id, sourcesOf('deleted')))) throw notFound(`Failed to find image ${image.id} to delete`);
    for (const loc of image.locations) await this.removeData(image.id, loc);
    await this.deps.staging.delete(this.deps.staging.locationOf(image.id)).catch((err: unknown) => this.deps.logger.error({ err, image_id: image.id }, 'cannot delete staged image data'));
    this.deps.notifier.image('image.delete', { ...image, status: 'deleted' }, viewer.ctx, { deleted: true, deleted_at: isoTime(this.deps.clock.now()) });
  }

  /** Deletes bytes an image no longer refers to; a failure is logged, never the caller's problem. */
  async removeData(imageId: string, loc: { store: string; url: string }): Promise<void> {
    const store = this.storeFor(loc.store);
    if (!store) {
      this.deps.logger.warn({ image_id: imageId, store: loc.store }, 'image data left in a store that is no longer enabled');
      return;
    }
    await store.delete(loc.url).catch((err: unknown) => this.deps.logger.error({ err, image_id: imageId, store: loc.store }, 'cannot delete image data'));
  }

  /** DELETE /v2/stores/{store}/{image}: one copy less, never the last one (upstream's delete_from_store). */
  async deleteFromStore(image: Image, storeId: string, viewer: Viewer): Promise<void> {
    if (!this.storeFor(storeId)) throw conflict(`The selected store ${storeId} is not available on this node.`);
    if (image.status !== 'active') throw conflict("It's not allowed to remove image data from store if image status is not 'active'");
    if (image.locations.length === 1) throw forbidden('Cannot delete image data from the only store containing it. Consider deleting the image instead.');
    const loc = image.locations.find((l) => l.store === storeId);
    if (!loc) throw notFound(`Image ${image.id} is not stored in store ${storeId}.`);
    if (!(await this.repo.update(image.id, { columns: {}, removeLocations: [loc.id] }, 'active'))) throw conflict(transitionMessage(image.status, 'active'));
    await this.removeData(image.id, loc);
    this.deps.notifier.image('image.update', await this.get(image.id, viewer), viewer.ctx);
  }

  storeFor(id: string): ImageStore | undefined {
    return this.deps.stores.get(id);
  }

  /** POST …/actions/deactivate: active → deactivated; already deactivated is fine. */
  deactivate(image: Image, viewer: Viewer): Promise<void> {
    return this.toggle(image, viewer, 'active', 'deactivated', 'deactivate');
  }

  reactivate(image: Image, viewer: Viewer): Promise<void> {
    return this.toggle(image, viewer, 'deactivated', 'active', 'reactivate');
  }

  private async toggle(image: Image, viewer: Viewer, from: ImageStatus, to: ImageStatus, verb: string): Promise<void> {
    if (image.status === to) return;
    if (image.status !== from || !(await this.repo.transition(image.id, from, to))) {
      const now = (await this.repo.find(image.id))?.status ?? image.status;
      if (now === to) return;
      throw forbidden(`Not allowed to ${verb} image in status '${now}'`);
    }
    this.deps.notifier.image('image.update', await this.get(image.id, viewer), viewer.ctx);
  }

  /** Moves an image from `from` to `to` or answers upstream's 409 with the status it really has. */
  async transitionOrConflict(image: Image, from: ImageStatus, to: ImageStatus, columns: ImageChanges['columns'] = {}): Promise<void> {
    if (await this.repo.transition(image.id, from, to, columns)) return;
    const now = await this.repo.find(image.id);
    if (!now) throw notFound(`No image found with ID ${image.id}`);
    throw conflict(transitionMessage(now.status, to));
  }

  // ---- members ------------------------------------------------------------

  /**
   * The members a viewer may see: all of them for the owner and admins, only
   * its own membership for anyone else (upstream's _image_member_find).
   */
  async members(image: Image, viewer: Viewer): Promise<ImageMember[]> {
    const all = await this.repo.listMembers(image.id);
    if (viewer.isAdmin || (viewer.projectId !== undefined && image.owner === viewer.projectId)) return all;
    return all.filter((m) => m.memberId === viewer.projectId);
  }

  async member(image: Image, memberId: string, viewer: Viewer): Promise<ImageMember> {
    const m = (await this.members(image, viewer)).find((x) => x.memberId === memberId);
    if (!m) throw notFound(`${memberId} not found in the member list of the image ${image.id}.`);
    return m;
  }

  async addMember(image: Image, memberId: string, viewer: Viewer): Promise<ImageMember> {
    const quota = this.deps.config.memberQuota;
    if (quota >= 0) {
      const attempted = (await this.repo.countMembers(image.id)) + 1;
      if (attempted > quota) {
        throw new ApiError(
          'payload_too_large',
          `Image member limit exceeded for image ${image.id}: The limit has been exceeded on the number of allowed image members for this image. Attempted: ${attempted}, Maximum: ${quota}:`,
        );
      }
    }
    const m = await this.repo.addMember(image.id, memberId);
    if (!m) throw conflict(`Member ${memberId} is duplicated for image ${image.id}`);
    this.deps.notifier.member('image.member.create', m, viewer.ctx);
    return m;
  }

  async setMemberStatus(image: Image, member: ImageMember, status: MemberStatus, viewer: Viewer): Promise<ImageMember> {
    const m = await this.repo.setMemberStatus(image.id, member.memberId, status);
    if (!m) throw notFound(`${member.memberId} not found in the member list of the image ${image.id}.`);
    this.deps.notifier.member('image.member.update', m, viewer.ctx);
    return m;
  }

  async removeMember(image: Image, member: ImageMember, viewer: Viewer): Promise<void> {
    if (!(await this.repo.removeMember(image.id, member.memberId))) throw notFound(`The specified member ${member.memberId} could not be found`);
    this.deps.notifier.member('image.member.delete', member, viewer.ctx, { deleted: true, deleted_at: isoTime(this.deps.clock.now()) });
  }
}

function isEmpty(c: ImageChanges): boolean {
  return Object.keys(c.columns).length === 0 && Object.keys(c.setProperties ?? {}).length === 0 && !c.removeProperties?.length && c.tags === undefined;
}
