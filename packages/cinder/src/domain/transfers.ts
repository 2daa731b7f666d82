import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '@onestack/core/clock.ts';
import { casUpdate } from '@onestack/core/db/index.ts';
import { badRequest, notFound } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { CinderDB, TransferRow } from '../db/schema.ts';
import { invalidVolume } from './errors.ts';
import type { CinderNotifier } from './notifier.ts';
import { pageAfterMarker, type RowPage } from './paging.ts';
import type { Quotas } from './quotas.ts';
import { volumePayload, type Caller, type VolumeService } from './volumes.ts';

/** Columns a transfer list may be sorted on: the model's, less the key material. */
export const TRANSFER_SORT_KEYS = new Set(['id', 'volume_id', 'display_name', 'no_snapshots', 'source_project_id', 'destination_project_id', 'accepted', 'created_at', 'updated_at']);
type TransferSortKey = 'id' | 'volume_id' | 'display_name' | 'no_snapshots' | 'source_project_id' | 'destination_project_id' | 'accepted' | 'created_at' | 'updated_at';

export interface TransferPage extends RowPage {
  sort: (readonly [TransferSortKey, 'asc' | 'desc'])[];
}

export const transferNotFound = (id: string) => notFound(`Transfer ${id} could not be found.`);

/** upstream's generate_password alphabet without look-alikes. */
const KEY_CHARS = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

function randomKey(length: number): string {
  return [...randomBytes(length)].map((b) => KEY_CHARS[b % KEY_CHARS.length]).join('');
}

/** upstream's _get_crypt_hash: sha1 of salt and key. */
function cryptHash(salt: string, key: string): string {
  return createHash('sha1').update(salt).update(key).digest('hex');
}

/**
 * Volume transfers as upstream's cinder/transfer/api.py: the owner offers an
 * available volume (it becomes `awaiting-transfer`) and hands the auth key over
 * out of band; any project that presents id and key takes the volume (and its
 * snapshots unless no_snapshots) within its own quota.
 */
export class TransferService {
  constructor(
    private readonly db: Kysely<CinderDB>,
    private readonly o: { clock: Clock; ids: IdSource; volumes: VolumeService; quotas: Quotas; notifier: CinderNotifier },
  ) {}

  /** The owner's view: another project's transfer is a 404 (an admin sees all). */
  async get(id: string, caller: Caller): Promise<TransferRow> {
    const t = await this.db.selectFrom('transfers').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!t || (!caller.isAdmin && t.source_project_id !== caller.projectId)) throw transferNotFound(id);
    return t;
  }

  /**
   * Sorted on `page.sort` (id appended as the tie-break, as upstream's
   * _process_sort_params); a marker outside the caller's view is the
   * transfer's 404, as upstream's paginate query looks it up with transfer_get.
   */
  async list(caller: Caller, allTenants: boolean, filters: Record<string, string>, page: TransferPage): Promise<TransferRow[]> {
    let q = this.db.selectFrom('transfers').selectAll().where('deleted', '=', 0);
    if (!(caller.isAdmin && allTenants)) q = q.where('source_project_id', '=', caller.projectId);
    if (filters.name !== undefined) q = q.where('display_name', '=', filters.name);
    if (filters.volume_id !== undefined) q = q.where('volume_id', '=', filters.volume_id);
    const sort = page.sort.some(([k]) => k === 'id') ? page.sort : [...page.sort, ['id', page.sort[0]?.[1] ?? 'asc'] as const];
    for (const [k, d] of sort) q = q.orderBy(k, d);
    return pageAfterMarker(await q.execute(), page, transferNotFound);
  }

  async create(input: { volumeId: string; name: string | null; noSnapshots: boolean }, caller: Caller): Promise<TransferRow & { auth_key: string }> {
    const volume = await this.o.volumes.get(input.volumeId, caller);
    if (volume.status !== 'available') throw invalidVolume('status must be available');
    if (volume.encrypted) throw invalidVolume('transferring encrypted volumes is not supported');
    if (!input.noSnapshots) {
      const busy = await this.db.selectFrom('snapshots').select('id').where('volume_id', '=', volume.id).where('deleted', '=', 0).where('status', '!=', 'available').executeTakeFirst();
      if (busy) throw invalidVolume('snapshot status must be available');
    }
    const authKey = randomKey(16);
    const salt = randomKey(8);
    const now = this.o.clock.now();
    const row: TransferRow = {
      id: this.o.ids.uuid(),
      volume_id: volume.id,
      display_name: input.name,
      salt,
      crypt_hash: cryptHash(salt, authKey),
      no_snapshots: input.noSnapshots ? 1 : 0,
      source_project_id: volume.project_id,
      destination_project_id: null,
      accepted: 0,
      created_at: now,
      updated_at: null,
      deleted: 0,
      deleted_at: null,
    };
    if ((await casUpdate(this.db, 'volumes', { set: { status: 'awaiting-transfer', updated_at: now }, where: { id: volume.id, status: 'available' } })) !== 1) throw invalidVolume('status must be available');
    await this.db.insertInto('transfers').values(row).execute();
    this.o.notifier.send('transfer.create.end', transferPayload(row), caller.ctx);
    return { ...row, auth_key: authKey };
  }

  async delete(t: TransferRow, caller: Caller): Promise<void> {
    const now = this.o.clock.now();
    await this.db.updateTable('transfers').set({ deleted: 1, deleted_at: now, updated_at: now }).where('id', '=', t.id).where('deleted', '=', 0).execute();
    await casUpdate(this.db, 'volumes', { set: { status: 'available', updated_at: now }, where: { id: t.volume_id, status: 'awaiting-transfer' } });
    this.o.notifier.send('transfer.delete.end', transferPayload(t), caller.ctx);
  }

  /** Any project may accept with the right key; the volume then counts in its quota. */
  async accept(id: string, authKey: string, caller: Caller): Promise<TransferRow> {
    const t = await this.db.selectFrom('transfers').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!t) throw transferNotFound(id);
    const expected = Buffer.from(t.crypt_hash);
    const given = Buffer.from(cryptHash(t.salt, authKey));
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw badRequest(`Invalid auth key: Attempt to transfer ${id} with invalid auth key.`);
    const volume = await this.db.selectFrom('volumes').selectAll().where('id', '=', t.volume_id).where('deleted', '=', 0).executeTakeFirst();
    if (!volume || volume.status !== 'awaiting-transfer') throw invalidVolume('status must be awaiting-transfer');
    const snaps = t.no_snapshots ? [] : await this.db.selectFrom('snapshots').select(['id', 'volume_size']).where('volume_id', '=', volume.id).where('deleted', '=', 0).execute();
    await this.o.quotas.check(caller.projectId, { volumes: 1, snapshots: snaps.length, gigabytes: volume.size + snaps.reduce((n, s) => n + s.volume_size, 0) }, volume.size);
    const now = this.o.clock.now();
    if ((await casUpdate(this.db, 'volumes', { set: { status: 'available', project_id: caller.projectId, user_id: caller.userId, updated_at: now }, where: { id: volume.id, status: 'awaiting-transfer' } })) !== 1) {
      throw invalidVolume('status must be awaiting-transfer');
    }
    if (snaps.length) await this.db.updateTable('snapshots').set({ project_id: caller.projectId, user_id: caller.userId, updated_at: now }).where('volume_id', '=', volume.id).where('deleted', '=', 0).execute();
    const accepted = { ...t, destination_project_id: caller.projectId, accepted: 1, deleted: 1, deleted_at: now, updated_at: now };
    await this.db.updateTable('transfers').set({ destination_project_id: caller.projectId, accepted: 1, deleted: 1, deleted_at: now, updated_at: now }).where('id', '=', t.id).execute();
    this.o.notifier.send('transfer.accept.end', transferPayload(accepted), caller.ctx);
    this.o.notifier.send('volume.transfer.accept.end', volumePayload({ ...volume, status: 'available', project_id: caller.projectId }), caller.ctx);
    return accepted;
  }
}

/** upstream's _usage_from_transfer (transfer.* notifications). */
function transferPayload(t: TransferRow): Record<string, unknown> {
  return { id: t.id, volume_id: t.volume_id, display_name: t.display_name, created_at: new Date(t.created_at).toISOString() };
}
