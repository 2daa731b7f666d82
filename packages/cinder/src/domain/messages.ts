import type { Kysely } from 'kysely';
import type { Clock } from '@onestack/core/clock.ts';
import { notFound } from '@onestack/core/errors.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { CinderDB, MessageRow } from '../db/schema.ts';
import { pageAfterMarker, type RowPage } from './paging.ts';
import type { Caller } from './volumes.ts';

/** upstream's message_field actions and details (id, text) that this Cinder records. */
export const MessageAction = {
  SCHEDULE_ALLOCATE_VOLUME: ['001', 'schedule allocate volume'],
  COPY_VOLUME_TO_IMAGE: ['003', 'copy volume to image'],
  UPDATE_ATTACHMENT: ['004', 'update attachment'],
  EXTEND_VOLUME: ['007', 'extend volume'],
  CREATE_VOLUME_FROM_BACKEND: ['008', 'create volume from backend storage'],
  SNAPSHOT_CREATE: ['009', 'create snapshot'],
  SNAPSHOT_DELETE: ['010', 'delete snapshot'],
  BACKUP_CREATE: ['013', 'create backup'],
  BACKUP_DELETE: ['014', 'delete backup'],
  BACKUP_RESTORE: ['015', 'restore backup'],
} as const;
export const MessageDetail = {
  UNKNOWN_ERROR: ['001', 'An unknown error occurred.'],
  NO_BACKEND_AVAILABLE: ['003', 'Could not find any available weighted backend.'],
  FAILED_TO_UPLOAD_VOLUME: ['004', 'Failed to upload volume to image at backend.'],
  NOTIFY_COMPUTE_SERVICE_FAILED: ['009', 'Compute service failed to extend volume.'],
  DRIVER_FAILED_EXTEND: ['010', 'Volume Driver failed to extend volume.'],
  DRIVER_FAILED_CREATE: ['012', 'Driver failed to create the volume.'],
  SNAPSHOT_CREATE_ERROR: ['013', 'Snapshot failed to create.'],
  SNAPSHOT_DELETE_ERROR: ['016', 'Snapshot failed to delete.'],
  BACKUP_CREATE_DRIVER_ERROR: ['020', 'Backup driver failed to create backup.'],
  BACKUP_SCHEDULE_ERROR: ['024', 'Backup failed to schedule. Service not found for creating backup.'],
  BACKUP_DELETE_DRIVER_ERROR: ['025', 'Backup driver failed to delete backup.'],
  BACKUP_RESTORE_ERROR: ['026', 'Backup driver failed to restore backup.'],
} as const;
export type MessagePair = readonly [string, string];
type Pair = MessagePair;
/** upstream's message_field.Resource. */
export type MessageResource = 'VOLUME' | 'VOLUME_SNAPSHOT' | 'VOLUME_BACKUP';

/** Columns a message list may be filtered (3.5) and sorted on: upstream's model's. */
export const MESSAGE_COLUMNS = ['id', 'project_id', 'request_id', 'resource_type', 'resource_uuid', 'event_id', 'action_id', 'detail_id', 'message_level', 'created_at', 'expires_at'] as const;
type MessageColumn = (typeof MESSAGE_COLUMNS)[number];
export type MessageFilter = Exclude<MessageColumn, 'created_at' | 'expires_at'>;

export interface MessagePage extends RowPage {
  sort: (readonly [MessageColumn, 'asc' | 'desc'])[];
}

const ACTIONS = new Map<string, string>(Object.values(MessageAction));
const DETAILS = new Map<string, string>(Object.values(MessageDetail));

/** upstream's message_ttl default: 30 days. */
const TTL_MS = 2_592_000_000;

export const messageNotFound = (id: string) => notFound(`Message ${id} could not be found.`);

/** upstream's _build_user_message: "<action>:<detail>", the exception's own words never shown. */
export function userMessage(m: MessageRow): string {
  return `${ACTIONS.get(m.action_id ?? '') ?? 'unknown action'}:${DETAILS.get(m.detail_id ?? '') ?? 'unknown error'}`;
}

/**
 * User messages as upstream's cinder/message/api.py: a failure the project
 * should see (a volume left in error) is recorded for the requesting project
 * and expires after the TTL.
 */
export class UserMessages {
  constructor(
    private readonly db: Kysely<CinderDB>,
    private readonly o: { clock: Clock; ids: IdSource },
  ) {}

  async record(caller: Caller, e: { action: Pair; detail: Pair; resourceUuid: string; resourceType?: MessageResource }): Promise<void> {
    const now = this.o.clock.now();
    const resourceType = e.resourceType ?? 'VOLUME';
    await this.db
      .insertInto('messages')
      .values({
        id: this.o.ids.uuid(),
        project_id: caller.projectId,
        request_id: caller.ctx?.requestId ?? null,
        resource_type: resourceType,
        resource_uuid: e.resourceUuid,
        event_id: `VOLUME_${resourceType}_${e.action[0]}_${e.detail[0]}`,
        action_id: e.action[0],
        detail_id: e.detail[0],
        message_level: 'ERROR',
        created_at: now,
        expires_at: now + TTL_MS,
        deleted: 0,
      })
      .execute();
  }

  /** Another project's message is a 404 (an admin sees all). */
  async get(id: string, caller: Caller): Promise<MessageRow> {
    const m = await this.visible(caller).where('id', '=', id).executeTakeFirst();
    if (!m) throw messageNotFound(id);
    return m;
  }

  /** The caller's unexpired messages, filtered on equal columns, sorted (id the tie-break) and paged. */
  async list(caller: Caller, filters: Partial<Record<MessageFilter, string>>, page: MessagePage, like: Partial<Record<MessageFilter, string>> = {}): Promise<MessageRow[]> {
    let q = this.visible(caller);
    for (const [k, v] of Object.entries(filters)) q = q.where(k as MessageFilter, '=', v);
    for (const [k, v] of Object.entries(like)) q = q.where(k as MessageFilter, 'like', `%${v}%`);
    const sort = page.sort.some(([k]) => k === 'id') ? page.sort : [...page.sort, ['id', page.sort[0]?.[1] ?? 'asc'] as const];
    for (const [k, d] of sort) q = q.orderBy(k, d);
    return pageAfterMarker(await q.execute(), page, messageNotFound);
  }

  async delete(m: MessageRow): Promise<void> {
    await this.db.updateTable('messages').set({ deleted: 1 }).where('id', '=', m.id).execute();
  }

  private visible(caller: Caller) {
    let q = this.db.selectFrom('messages').selectAll().where('deleted', '=', 0).where('expires_at', '>', this.o.clock.now());
    if (!caller.isAdmin) q = q.where('project_id', '=', caller.projectId);
    return q;
  }
}
