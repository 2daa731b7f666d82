/**
 * Where `PUT /v2/images/{id}/stage` puts data for interoperable import
 * (glance-direct), upstream's `os_glance_staging_store`: a FileStore over
 * `<state_dir>/glance/staging` (streamed, hashed, whole or absent, file://
 * locations), until the import task copies the data into a real store and deletes it.
 *
 * The staging quota (upstream's `image_stage_total`, per project) is counted from
 * what is actually on disk: usage() sums the staged files of the images asked about,
 * so the accounting survives restarts and is shared by every process using the
 * directory. The caller turns the remaining allowance into `maxBytes`.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FileStore } from './file-store.ts';
import { checkImageId, isImageId } from './image-store.ts';

export const STAGING_STORE_ID = 'os_glance_staging_store';

export interface StagedImage {
  imageId: string;
  size: number;
  /** When staging finished, ms since the epoch. */
  stagedAt: number;
}

function isMissing(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** An ImageStore (a FileStore) plus the per-image accounting the staging quota needs. */
export class StagingArea extends FileStore {
  constructor(stateDir: string) {
    super(join(stateDir, 'glance', 'staging'), { id: STAGING_STORE_ID });
  }

  /** Where an image's staged data is (or would be). */
  locationOf(imageId: string): string {
    return `file://${join(this.dir, checkImageId(imageId))}`;
  }

  /** Bytes staged for this image, undefined when nothing is staged. */
  async sizeOf(imageId: string): Promise<number | undefined> {
    try {
      return (await stat(join(this.dir, checkImageId(imageId)))).size;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  /** Bytes staged for the given images (a project's, for its quota), or for all images. */
  async usage(imageIds?: Iterable<string>): Promise<number> {
    const ids = imageIds ? [...new Set(imageIds)] : (await this.list()).map((s) => s.imageId);
    const sizes = await Promise.all(ids.map((id) => this.sizeOf(id)));
    return sizes.reduce<number>((sum, size) => sum + (size ?? 0), 0);
  }

  /** Everything staged, for removing what no image in `uploading`/`importing` owns any more. */
  async list(): Promise<StagedImage[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
    const staged = await Promise.all(
      names.filter(isImageId).map(async (imageId) => {
        const st = await stat(join(this.dir, imageId)).catch((e: unknown) => (isMissing(e) ? undefined : Promise.reject(e)));
        return st?.isFile() ? { imageId, size: st.size, stagedAt: Math.round(st.mtimeMs) } : undefined;
      }),
    );
    return staged.filter((s): s is StagedImage => s !== undefined);
  }
}
