import { sql, type ExpressionBuilder, type Expression, type Kysely, type SqlBool } from 'kysely';
import { casUpdate, isUniqueViolation, withTransaction, type Database } from '@onestack/core/db/index.ts';
import { conflict } from '@onestack/core/errors.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { GlanceDB, ImageRow } from '../db/schema.ts';
import type { Image, ImageLocation, ImageMember, ImageStatus, MemberStatus, Visibility } from './image.ts';

type Eb = ExpressionBuilder<GlanceDB, 'image'>;

/** Columns a list may filter and sort on, by their wire names (which are the column names). */
const TEXT_COLUMNS = ['id', 'name', 'status', 'visibility', 'owner', 'disk_format', 'container_format', 'checksum', 'os_hash_algo', 'os_hash_value'] as const;
const NUMBER_COLUMNS = ['size', 'virtual_size', 'min_disk', 'min_ram', 'created_at', 'updated_at', 'protected', 'os_hidden'] as const;
export type ImageColumn = (typeof TEXT_COLUMNS)[number] | (typeof NUMBER_COLUMNS)[number];

export type FilterOp = 'eq' | 'neq' | 'gt' | 'gte' | 'lt' | 'lte' | 'in';
export interface ColumnFilter {
  column: ImageColumn;
  op: FilterOp;
  value: string | number | (string | number)[];
}

export interface ListQuery {
  /** The caller's project; undefined for a token without one. */
  projectId?: string;
  /** Admins see every image (upstream's context.is_admin). */
  isAdmin: boolean;
  /** Shared images are listed when the caller's membership has this status ('all': any). */
  memberStatus: MemberStatus | 'all';
  /** undefined: the default mix; 'all': every visibility; else only that one. */
  visibility?: Visibility | 'all';
  filters: ColumnFilter[];
  properties: { name: string; value: string }[];
  tags: string[];
  sort: { key: ImageColumn; dir: 'asc' | 'desc' }[];
  marker?: Image;
  limit: number;
}

/** Upstream's [task] task_time_to_live: 48 hours. */
const TASK_TIME_TO_LIVE_MS = 48 * 3600_000;

export interface Task {
  id: string;
  type: string;
  status: string;
  owner: string | null;
  imageId: string;
  requestId: string | null;
  userId: string | null;
  input: unknown;
  result: unknown;
  message: string;
  expiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** What an update changes: columns by wire name, properties set or removed, tags replaced. */
export interface ImageChanges {
  columns: Partial<Pick<ImageRow, 'name' | 'disk_format' | 'container_format' | 'visibility' | 'min_disk' | 'min_ram' | 'owner' | 'protected' | 'os_hidden' | 'status' | 'size' | 'virtual_size' | 'checksum' | 'os_hash_algo' | 'os_hash_value'>>;
  setProperties?: Record<string, string>;
  removeProperties?: string[];
  tags?: string[];
  addLocations?: { id: string; store: string; url: string }[];
  removeLocations?: string[];
}

export interface NewImage {
  id: string;
  name: string | null;
  diskFormat: string | null;
  containerFormat: string | null;
  visibility: Visibility;
  minDisk: number;
  minRam: number;
  owner: string | null;
  protected: boolean;
  osHidden: boolean;
  properties: Record<string, string>;
  tags: string[];
}

const STRING_DEFAULT = '';
const NUMBER_DEFAULT = 0;

/**
 * Persistence of images and their members. Every status change is a
 * compare-and-swap on the status column, so two requests racing on one image
 * (an upload and a delete) cannot both win.
 */
export class ImageRepo {
  constructor(
    private readonly database: Database<GlanceDB>,
    private readonly clock: Clock,
  ) {}

  private get db(): Kysely<GlanceDB> {
    return this.database.db;
  }

  async create(n: NewImage): Promise<Image> {
    const now = this.clock.now();
    try {
      await withTransaction(this.database, async (trx) => {
        await trx
          .insertInto('image')
          .values({
            id: n.id,
            name: n.name,
            disk_format: n.diskFormat,
            container_format: n.containerFormat,
            size: null,
            virtual_size: null,
            status: 'queued',
            visibility: n.visibility,
            checksum: null,
            os_hash_algo: null,
            os_hash_value: null,
            min_disk: n.minDisk,
            min_ram: n.minRam,
            owner: n.owner,
            protected: n.protected ? 1 : 0,
            os_hidden: n.osHidden ? 1 : 0,
            created_at: now,
            updated_at: now,
            deleted: 0,
            deleted_at: null,
          })
          .execute();
        const props = Object.entries(n.properties);
        if (props.length) await trx.insertInto('image_property').values(props.map(([name, value]) => ({ image_id: n.id, name, value }))).execute();
        if (n.tags.length) await trx.insertInto('image_tag').values(n.tags.map((value) => ({ image_id: n.id, value }))).execute();
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw conflict(`Image with identifier ${n.id} already exists!`);
      throw e;
    }
    return (await this.find(n.id))!;
  }

  /** An image that is not deleted, with its properties, tags and locations. */
  async find(id: string): Promise<Image | undefined> {
    const row = await this.db.selectFrom('image').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
    if (!row) return undefined;
    return (await this.hydrate([row]))[0];
  }

  async list(q: ListQuery): Promise<Image[]> {
    let query = this.db.selectFrom('image').selectAll().where('deleted', '=', 0).where('status', '!=', 'killed');
    query = query.where((eb) => this.visible(eb, q));
    for (const f of q.filters) query = query.where((eb) => columnFilter(eb, f));
    for (const p of q.properties) {
      query = query.where(({ exists, selectFrom }) =>
        exists(selectFrom('image_property').select('image_property.name').whereRef('image_property.image_id', '=', 'image.id').where('image_property.name', '=', p.name).where('image_property.value', '=', p.value)),
      );
    }
    for (const tag of q.tags) {
      query = query.where(({ exists, selectFrom }) =>
        exists(selectFrom('image_tag').select('image_tag.value').whereRef('image_tag.image_id', '=', 'image.id').where('image_tag.value', '=', tag)),
      );
    }
    const marker = q.marker;
    if (marker) query = query.where((eb) => afterMarker(eb, q.sort, marker));
    for (const s of q.sort) query = query.orderBy((eb) => sortValue(eb, s.key), s.dir);
    const rows = await query.limit(q.limit).execute();
    return this.hydrate(rows);
  }

  /** Upstream's image listing visibility (_select_images_query and the community rule of _image_get_all). */
  private visible(eb: Eb, q: ListQuery): Expression<SqlBool> {
    const conditions: Expression<SqlBool>[] = [];
    if (!q.isAdmin) {
      const seen: Expression<SqlBool>[] = [eb('visibility', 'in', ['public', 'community'])];
      if (q.projectId !== undefined) {
        seen.push(eb('owner', '=', q.projectId));
        let member = eb
          .selectFrom('image_member')
          .select('image_member.member')
          .whereRef('image_member.image_id', '=', 'image.id')
          .where('image_member.member', '=', q.projectId);
        if (q.memberStatus !== 'all') member = member.where('image_member.status', '=', q.memberStatus);
        seen.push(eb.and([eb('visibility', '=', 'shared'), eb.exists(member)]));
      }
      conditions.push(eb.or(seen));
    }
    if (q.visibility !== undefined) {
      if (q.visibility !== 'all') conditions.push(eb('visibility', '=', q.visibility));
    } else if (q.projectId === undefined) {
      conditions.push(eb('visibility', '!=', 'community'));
    } else {
      conditions.push(eb.or([eb('owner', '=', q.projectId), eb('visibility', '!=', 'community')]));
    }
    return eb.and(conditions);
  }

  /**
   * Changes an image whose status is still `expectStatus` (when given): false
   * when it moved on or went away meanwhile.
   */
  async update(id: string, changes: ImageChanges, expectStatus?: ImageStatus | ImageStatus[]): Promise<boolean> {
    return withTransaction(this.database, async (trx) => {
      const n = await casUpdate(trx, 'image', {
        set: { ...changes.columns, updated_at: this.clock.now() },
        where: (eb) => {
          const conds: Expression<SqlBool>[] = [eb('id', '=', id), eb('deleted', '=', 0)];
          if (expectStatus !== undefined) conds.push(eb('status', 'in', Array.isArray(expectStatus) ? expectStatus : [expectStatus]));
          return eb.and(conds);
        },
      });
      if (n === 0) return false;
      for (const [name, value] of Object.entries(changes.setProperties ?? {})) {
        await trx.deleteFrom('image_property').where('image_id', '=', id).where('name', '=', name).execute();
        await trx.insertInto('image_property').values({ image_id: id, name, value }).execute();
      }
      if (changes.removeProperties?.length) {
        await trx.deleteFrom('image_property').where('image_id', '=', id).where('name', 'in', changes.removeProperties).execute();
      }
      if (changes.tags) {
        await trx.deleteFrom('image_tag').where('image_id', '=', id).execute();
        if (changes.tags.length) await trx.insertInto('image_tag').values(changes.tags.map((value) => ({ image_id: id, value }))).execute();
      }
      const now = this.clock.now();
      for (const l of changes.addLocations ?? []) {
        await trx.insertInto('image_location').values({ id: l.id, image_id: id, store: l.store, url: l.url, created_at: now }).execute();
      }
      if (changes.removeLocations?.length) await trx.deleteFrom('image_location').where('id', 'in', changes.removeLocations).execute();
      return true;
    });
  }

  /** `status` from one of `from` to `to`, with other columns set alongside. */
  transition(id: string, from: ImageStatus | ImageStatus[], to: ImageStatus, columns: ImageChanges['columns'] = {}, extra: Omit<ImageChanges, 'columns'> = {}): Promise<boolean> {
    // Upstream's status setter: an image going back to queued forgets its size.
    const reset = to === 'queued' ? { size: null, virtual_size: null } : {};
    return this.update(id, { ...extra, columns: { ...reset, ...columns, status: to } }, from);
  }

  /** Soft-deletes the image row and drops everything hanging off it; false if it was not in `from`. */
  async delete(id: string, from: ImageStatus[]): Promise<boolean> {
    const now = this.clock.now();
    return withTransaction(this.database, async (trx) => {
      const n = await casUpdate(trx, 'image', {
        set: { status: 'deleted', deleted: 1, deleted_at: now, updated_at: now },
        where: (eb) => eb.and([eb('id', '=', id), eb('deleted', '=', 0), eb('status', 'in', from)]),
      });
      if (n === 0) return false;
      for (const table of ['image_property', 'image_tag', 'image_location', 'image_member'] as const) {
        await trx.deleteFrom(table).where('image_id', '=', id).execute();
      }
      return true;
    });
  }

  /** Takes a property only if nobody holds it (upstream's image_set_property_atomic, the import lock). */
  async setPropertyAtomic(id: string, name: string, value: string): Promise<boolean> {
    try {
      await this.db.insertInto('image_property').values({ image_id: id, name, value }).execute();
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  /** Drops a property only while it still has `value`. */
  async deletePropertyAtomic(id: string, name: string, value: string): Promise<boolean> {
    const r = await this.db.deleteFrom('image_property').where('image_id', '=', id).where('name', '=', name).where('value', '=', value).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  // ---- members ------------------------------------------------------------

  async listMembers(imageId: string): Promise<ImageMember[]> {
    const rows = await this.db.selectFrom('image_member').selectAll().where('image_id', '=', imageId).orderBy('created_at').orderBy('member').execute();
    return rows.map(memberOf);
  }

  async findMember(imageId: string, memberId: string): Promise<ImageMember | undefined> {
    const row = await this.db.selectFrom('image_member').selectAll().where('image_id', '=', imageId).where('member', '=', memberId).executeTakeFirst();
    return row ? memberOf(row) : undefined;
  }

  /** False when the member is already there. */
  async addMember(imageId: string, memberId: string): Promise<ImageMember | undefined> {
    const now = this.clock.now();
    try {
      await this.db.insertInto('image_member').values({ image_id: imageId, member: memberId, status: 'pending', created_at: now, updated_at: now }).execute();
    } catch (e) {
      if (isUniqueViolation(e)) return undefined;
      throw e;
    }
    return { imageId, memberId, status: 'pending', createdAt: now, updatedAt: now };
  }

  async setMemberStatus(imageId: string, memberId: string, status: MemberStatus): Promise<ImageMember | undefined> {
    await this.db.updateTable('image_member').set({ status, updated_at: this.clock.now() }).where('image_id', '=', imageId).where('member', '=', memberId).execute();
    return this.findMember(imageId, memberId);
  }

  async removeMember(imageId: string, memberId: string): Promise<boolean> {
    const r = await this.db.deleteFrom('image_member').where('image_id', '=', imageId).where('member', '=', memberId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async countMembers(imageId: string): Promise<number> {
    const r = await this.db.selectFrom('image_member').select((eb) => eb.fn.countAll<number>().as('n')).where('image_id', '=', imageId).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  // ---- usage, for quotas (glance/db/sqlalchemy/api.py user_get_*) ----------

  /** Bytes of the owner's images, once per copy in a store. */
  async storageUsage(owner: string): Promise<number> {
    const r = await this.db
      .selectFrom('image')
      .innerJoin('image_location', 'image_location.image_id', 'image.id')
      .select((eb) => eb.fn.sum<number>('image.size').as('total'))
      .where('image.owner', '=', owner)
      .where('image.size', '>', 0)
      .where('image.status', 'not in', ['killed', 'deleted', 'pending_delete'])
      .executeTakeFirst();
    return Number(r?.total ?? 0);
  }

  /** Bytes staged for the owner's imports under way. */
  async stagingUsage(owner: string): Promise<number> {
    const r = await this.db
      .selectFrom('image')
      .select((eb) => eb.fn.sum<number>('size').as('total'))
      .where('owner', '=', owner)
      .where('size', '>', 0)
      .where((eb) =>
        eb.or([
          eb('status', 'in', ['uploading', 'importing']),
          eb.and([
            eb('status', 'not in', ['uploading', 'importing', 'killed', 'deleted', 'pending_delete']),
            eb.exists(
              eb
                .selectFrom('image_property')
                .select('image_property.name')
                .whereRef('image_property.image_id', '=', 'image.id')
                .where('image_property.name', '=', 'os_glance_importing_to_stores')
                .where('image_property.value', '!=', ''),
            ),
          ]),
        ]),
      )
      .executeTakeFirst();
    return Number(r?.total ?? 0);
  }

  async imageCount(owner: string): Promise<number> {
    const r = await this.db
      .selectFrom('image')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('owner', '=', owner)
      .where('status', 'not in', ['killed', 'pending_delete', 'deleted'])
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async uploadingCount(owner: string): Promise<number> {
    const r = await this.db
      .selectFrom('image')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('owner', '=', owner)
      .where('deleted', '=', 0)
      .where((eb) =>
        eb.or([
          eb('status', 'in', ['saving', 'uploading', 'importing']),
          eb.exists(
            eb
              .selectFrom('image_property')
              .select('image_property.name')
              .whereRef('image_property.image_id', '=', 'image.id')
              .where('image_property.name', '=', 'os_glance_importing_to_stores')
              .where('image_property.value', '!=', ''),
          ),
        ]),
      )
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  // ---- tasks (the import lock's holder) ---------------------------------

  async createTask(t: { id: string; imageId: string; type: string; owner: string | null; userId: string | null; requestId: string | null; input: unknown }): Promise<void> {
    const now = this.clock.now();
    await this.db
      .insertInto('task')
      .values({
        id: t.id,
        image_id: t.imageId,
        type: t.type,
        status: 'processing',
        owner: t.owner,
        user_id: t.userId,
        request_id: t.requestId,
        input: JSON.stringify(t.input),
        result: null,
        message: '',
        expires_at: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
  }

  /** A finished task is kept for TASK_TIME_TO_LIVE_MS (upstream's task_time_to_live), then no longer listed. */
  async finishTask(id: string, status: 'success' | 'failure', message: string, result: unknown = null): Promise<void> {
    const now = this.clock.now();
    await this.db
      .updateTable('task')
      .set({ status, message, result: result === null ? null : JSON.stringify(result), updated_at: now, expires_at: now + TASK_TIME_TO_LIVE_MS })
      .where('id', '=', id)
      .execute();
  }

  async findTask(id: string): Promise<{ status: string; updatedAt: number } | undefined> {
    const row = await this.db.selectFrom('task').select(['status', 'updated_at']).where('id', '=', id).executeTakeFirst();
    return row ? { status: row.status, updatedAt: Number(row.updated_at) } : undefined;
  }

  /** GET /v2/images/{id}/tasks: the image's tasks that have not expired, oldest first. */
  async tasksOf(imageId: string): Promise<Task[]> {
    const rows = await this.db
      .selectFrom('task')
      .selectAll()
      .where('image_id', '=', imageId)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>=', this.clock.now())]))
      .orderBy('created_at')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      type: r.type,
      status: r.status,
      owner: r.owner,
      imageId: r.image_id,
      requestId: r.request_id,
      userId: r.user_id,
      input: JSON.parse(r.input) as unknown,
      result: r.result === null ? null : (JSON.parse(r.result) as unknown),
      message: r.message,
      expiresAt: r.expires_at === null ? null : Number(r.expires_at),
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
    }));
  }

  private async hydrate(rows: ImageRow[]): Promise<Image[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const [props, tags, locations] = await Promise.all([
      this.db.selectFrom('image_property').selectAll().where('image_id', 'in', ids).execute(),
      this.db.selectFrom('image_tag').selectAll().where('image_id', 'in', ids).orderBy('value').execute(),
      this.db.selectFrom('image_location').selectAll().where('image_id', 'in', ids).orderBy('created_at').execute(),
    ]);
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      diskFormat: r.disk_format,
      containerFormat: r.container_format,
      size: r.size === null ? null : Number(r.size),
      virtualSize: r.virtual_size === null ? null : Number(r.virtual_size),
      status: r.status as ImageStatus,
      visibility: r.visibility as Visibility,
      checksum: r.checksum,
      osHashAlgo: r.os_hash_algo,
      osHashValue: r.os_hash_value,
      minDisk: Number(r.min_disk),
      minRam: Number(r.min_ram),
      owner: r.owner,
      protected: Number(r.protected) !== 0,
      osHidden: Number(r.os_hidden) !== 0,
      createdAt: Number(r.created_at),
      updatedAt: Number(r.updated_at),
      properties: Object.fromEntries(props.filter((p) => p.image_id === r.id).map((p) => [p.name, p.value])),
      tags: tags.filter((t) => t.image_id === r.id).map((t) => t.value),
      locations: locations.filter((l) => l.image_id === r.id).map(locationOf),
    }));
  }
}

function locationOf(l: { id: string; store: string; url: string; created_at: number }): ImageLocation {
  return { id: l.id, store: l.store, url: l.url, createdAt: Number(l.created_at) };
}

function memberOf(r: { image_id: string; member: string; status: string; created_at: number; updated_at: number }): ImageMember {
  return { imageId: r.image_id, memberId: r.member, status: r.status as MemberStatus, createdAt: Number(r.created_at), updatedAt: Number(r.updated_at) };
}

function isTextColumn(c: ImageColumn): boolean {
  return (TEXT_COLUMNS as readonly string[]).includes(c);
}

/**
 * A sort column with NULL read as '' or 0, as upstream's pagination reads
 * the marker: the same expression orders and pages, so every dialect agrees
 * on where NULLs go.
 */
function sortValue(eb: Eb, c: ImageColumn): Expression<unknown> {
  return eb.fn.coalesce(eb.ref(c), sql.lit(isTextColumn(c) ? STRING_DEFAULT : NUMBER_DEFAULT));
}

function markerValue(image: Image, c: ImageColumn): string | number {
  const v = rowValue(image, c);
  return v ?? (isTextColumn(c) ? STRING_DEFAULT : NUMBER_DEFAULT);
}

/** The value of a column on a domain image, as stored. */
function rowValue(image: Image, c: ImageColumn): string | number | null {
  switch (c) {
    case 'disk_format':
      return image.diskFormat;
    case 'container_format':
      return image.containerFormat;
    case 'virtual_size':
      return image.virtualSize;
    case 'min_disk':
      return image.minDisk;
    case 'min_ram':
      return image.minRam;
    case 'created_at':
      return image.createdAt;
    case 'updated_at':
      return image.updatedAt;
    case 'os_hash_algo':
      return image.osHashAlgo;
    case 'os_hash_value':
      return image.osHashValue;
    case 'os_hidden':
      return image.osHidden ? 1 : 0;
    case 'protected':
      return image.protected ? 1 : 0;
    default:
      return image[c];
  }
}

/** Rows after the marker in the sort order: (k1 > m1) or (k1 = m1 and k2 > m2) … */
function afterMarker(eb: Eb, sort: ListQuery['sort'], marker: Image): Expression<SqlBool> {
  const alternatives: Expression<SqlBool>[] = [];
  for (let i = 0; i < sort.length; i++) {
    const conds: Expression<SqlBool>[] = [];
    for (let j = 0; j < i; j++) conds.push(eb(sortValue(eb, sort[j].key), '=', markerValue(marker, sort[j].key)));
    conds.push(eb(sortValue(eb, sort[i].key), sort[i].dir === 'desc' ? '<' : '>', markerValue(marker, sort[i].key)));
    alternatives.push(eb.and(conds));
  }
  return eb.or(alternatives);
}

const SQL_OPS = { eq: '=', neq: '!=', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;

function columnFilter(eb: Eb, f: ColumnFilter): Expression<SqlBool> {
  if (f.op === 'in') return eb(f.column, 'in', f.value as never[]);
  return eb(f.column, SQL_OPS[f.op], f.value as never);
}
