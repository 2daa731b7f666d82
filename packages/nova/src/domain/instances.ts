import type { Kysely, SelectQueryBuilder } from 'kysely';
import type { Clock } from '@onestack/core/clock.ts';
import { boolFromDb, casUpdate, jsonFromDb, jsonToDb, type Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { InstanceRow, NovaDB } from '../db/schema.ts';
import { instanceNotFound } from './errors.ts';
import type { DeviceMetadata } from './metadata-content.ts';
import { statusFromState } from './states.ts';

/** A flavor as the instance keeps it (upstream embeds a copy: later flavor changes do not touch servers). */
export interface FlavorSnapshot {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
  ephemeral: number;
  swap: number;
  extraSpecs: Record<string, string>;
}

export interface ImageSnapshot {
  id: string;
  name: string;
  diskFormat: string;
  containerFormat: string;
  properties: Record<string, string>;
  minRam: number;
  minDisk: number;
}

export interface RequestedNetwork {
  networkId?: string;
  portId?: string;
  fixedIp?: string;
  tag?: string;
}

/** What the scheduler and the compute manager need to build an instance (upstream's RequestSpec). */
export interface RequestSpec {
  flavor: FlavorSnapshot;
  image: ImageSnapshot;
  networks: RequestedNetwork[];
  securityGroups: string[];
  availabilityZone?: string;
  forcedHost?: string;
  /** 2.74: a destination asked for by host and/or node; unlike forcedHost the filters still run. */
  requestedHost?: string;
  requestedNode?: string;
  hints: { sameHost?: string[]; differentHost?: string[]; group?: string };
  group?: { uuid: string; policy: string; rules: Record<string, unknown> };
  numInstances: number;
  requestId: string;
  adminPass?: string;
  /** Booted from a volume: the image is what the volume was made of (its volume_image_metadata). */
  isBfv?: boolean;
}

export interface VifIp {
  address: string;
  version: 4 | 6;
  type: 'fixed' | 'floating';
}

export interface Vif {
  portId: string;
  networkId: string;
  networkName: string;
  mac: string;
  ips: VifIp[];
  createdByNova: boolean;
  tapName: string;
  mtu?: number;
  tag?: string;
}

export interface Instance {
  uuid: string;
  projectId: string;
  userId: string;
  name: string;
  description: string | null;
  hostname: string;
  imageRef: string;
  flavor: FlavorSnapshot;
  vmState: string;
  taskState: string | null;
  powerState: number;
  status: string;
  host: string | null;
  node: string | null;
  availabilityZone: string | null;
  keyName: string | null;
  keyData: string | null;
  userData: string | null;
  configDrive: boolean;
  accessIpV4: string | null;
  accessIpV6: string | null;
  reservationId: string;
  launchIndex: number;
  lockedBy: string | null;
  lockedReason: string | null;
  networkInfo: Vif[];
  requestSpec: RequestSpec;
  systemMetadata: Record<string, string>;
  /** The tagged devices and where the guest finds them, as the compute host last recorded them. */
  deviceMetadata: DeviceMetadata[];
  progress: number;
  createdAt: number;
  updatedAt: number;
  launchedAt: number | null;
  terminatedAt: number | null;
  deletedAt: number | null;
  deleted: boolean;
}

export function fromRow(r: InstanceRow): Instance {
  return {
    uuid: r.uuid,
    projectId: r.project_id,
    userId: r.user_id,
    name: r.display_name,
    description: r.display_description,
    hostname: r.hostname,
    imageRef: r.image_ref,
    flavor: jsonFromDb(r.flavor),
    vmState: r.vm_state,
    taskState: r.task_state,
    powerState: r.power_state,
    status: statusFromState(r.vm_state, r.task_state),
    host: r.host,
    node: r.node,
    availabilityZone: r.availability_zone,
    keyName: r.key_name,
    keyData: r.key_data,
    userData: r.user_data,
    configDrive: boolFromDb(r.config_drive),
    accessIpV4: r.access_ip_v4,
    accessIpV6: r.access_ip_v6,
    reservationId: r.reservation_id,
    launchIndex: r.launch_index,
    lockedBy: r.locked_by,
    lockedReason: r.locked_reason,
    networkInfo: jsonFromDb(r.network_info),
    requestSpec: jsonFromDb(r.request_spec),
    systemMetadata: jsonFromDb(r.system_metadata),
    deviceMetadata: r.device_metadata ? jsonFromDb(r.device_metadata) : [],
    progress: r.progress,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    launchedAt: r.launched_at === null ? null : Number(r.launched_at),
    terminatedAt: r.terminated_at === null ? null : Number(r.terminated_at),
    deletedAt: r.deleted_at === null ? null : Number(r.deleted_at),
    deleted: boolFromDb(r.deleted),
  };
}

export interface InstanceFilters {
  projectId?: string;
  name?: string;
  vmStates?: string[];
  taskStates?: (string | null)[];
  host?: string;
  image?: string;
  flavor?: string;
  reservationId?: string;
  changesSince?: number;
  changesBefore?: number;
  deleted?: boolean;
  tags?: string[];
  tagsAny?: string[];
  notTags?: string[];
  notTagsAny?: string[];
  ip?: string;
  ip6?: string;
  uuid?: string;
  availabilityZone?: string;
  keyName?: string;
  lockedOnly?: boolean;
  /** Further conditions the API composes (the filters upstream matches by regular expression or exactly). */
  match?: (i: Instance) => boolean;
}

export interface Fault {
  code: number;
  message: string;
  details: string | null;
  createdAt: number;
  host: string | null;
}

export type InstanceUpdate = Partial<Omit<InstanceRow, 'uuid'>>;

interface SortKey {
  col: keyof InstanceRow;
  dir: 'asc' | 'desc';
}

/**
 * Sort columns that are never NULL: on them the order of ORDER BY and the comparisons of a
 * keyset bound agree on every backend (NULLs sort first or last depending on the database).
 */
const NEVER_NULL = new Set<keyof InstanceRow>([
  'uuid', 'created_at', 'updated_at', 'display_name', 'vm_state', 'power_state', 'hostname', 'image_ref',
  'launch_index', 'project_id', 'user_id', 'memory_mb', 'vcpus', 'root_gb',
]);

/** Instances in the database: rows, metadata, tags and faults; state changes are compare-and-swap. */
export class InstanceRepo {
  constructor(
    readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
  ) {}

  get db(): Kysely<NovaDB> {
    return this.database.db;
  }

  async insert(row: InstanceRow, metadata: Record<string, string>, tags: string[]): Promise<void> {
    await this.db.insertInto('instances').values(row).execute();
    for (const [key, value] of Object.entries(metadata)) await this.db.insertInto('instance_metadata').values({ instance_uuid: row.uuid, key, value }).execute();
    for (const tag of new Set(tags)) await this.db.insertInto('tags').values({ resource_id: row.uuid, tag }).execute();
  }

  async find(uuid: string, o: { includeDeleted?: boolean } = {}): Promise<Instance | undefined> {
    let q = this.db.selectFrom('instances').selectAll().where('uuid', '=', uuid);
    if (!o.includeDeleted) q = q.where('deleted', '=', 0);
    const r = await q.executeTakeFirst();
    return r ? fromRow(r) : undefined;
  }

  async get(uuid: string, o: { includeDeleted?: boolean } = {}): Promise<Instance> {
    const i = await this.find(uuid, o);
    if (!i) throw instanceNotFound(uuid);
    return i;
  }

  /** Sets `set` when the row still matches `where` (and is not deleted); returns whether it did. */
  async cas(uuid: string, where: { vmState?: string[]; taskState?: (string | null)[] }, set: InstanceUpdate): Promise<boolean> {
    const n = await casUpdate(this.db, 'instances', {
      set: { ...set, updated_at: this.clock.now() },
      where: (eb) => {
        const conds = [eb('uuid', '=', uuid), eb('deleted', '=', 0)];
        if (where.vmState) conds.push(eb('vm_state', 'in', where.vmState));
        if (where.taskState) {
          const vals = where.taskState.filter((t): t is string => t !== null);
          const withNull = where.taskState.includes(null);
          conds.push(eb.or([...(vals.length ? [eb('task_state', 'in', vals)] : []), ...(withNull ? [eb('task_state', 'is', null)] : [])]));
        }
        return eb.and(conds);
      },
    });
    return n === 1;
  }

  async update(uuid: string, set: InstanceUpdate): Promise<void> {
    await this.db.updateTable('instances').set({ ...set, updated_at: this.clock.now() }).where('uuid', '=', uuid).execute();
  }

  async markDeleted(uuid: string): Promise<void> {
    const now = this.clock.now();
    await this.db
      .updateTable('instances')
      .set({ deleted: 1, deleted_at: now, terminated_at: now, updated_at: now, vm_state: 'deleted', task_state: null, power_state: 0 })
      .where('uuid', '=', uuid)
      .execute();
    await this.db.deleteFrom('server_group_members').where('instance_uuid', '=', uuid).execute();
    // A console URL handed out earlier must not outlive its server.
    await this.db.deleteFrom('console_auth_tokens').where('instance_uuid', '=', uuid).execute();
  }

  async list(f: InstanceFilters, page: { sortKeys: string[]; sortDirs: ('asc' | 'desc')[]; limit?: number; marker?: string }): Promise<Instance[]> {
    let q = this.db.selectFrom('instances');
    if (f.deleted !== undefined) q = q.where('deleted', '=', f.deleted ? 1 : 0);
    if (f.projectId) q = q.where('project_id', '=', f.projectId);
    if (f.vmStates) q = q.where('vm_state', 'in', f.vmStates);
    if (f.host) q = q.where('host', '=', f.host);
    if (f.reservationId) q = q.where('reservation_id', '=', f.reservationId);
    if (f.image) q = q.where('image_ref', '=', f.image);
    if (f.changesSince !== undefined) q = q.where('updated_at', '>=', f.changesSince);
    if (f.changesBefore !== undefined) q = q.where('updated_at', '<=', f.changesBefore);
    if (f.uuid) q = q.where('uuid', '=', f.uuid);
    if (f.availabilityZone) q = q.where('availability_zone', '=', f.availabilityZone);
    if (f.keyName) q = q.where('key_name', '=', f.keyName);
    const cols: Record<string, keyof InstanceRow> = {
      created_at: 'created_at', updated_at: 'updated_at', display_name: 'display_name', uuid: 'uuid', vm_state: 'vm_state', task_state: 'task_state',
      power_state: 'power_state', host: 'host', node: 'node', hostname: 'hostname', image_ref: 'image_ref', key_name: 'key_name', launched_at: 'launched_at',
      terminated_at: 'terminated_at', availability_zone: 'availability_zone', launch_index: 'launch_index', project_id: 'project_id', user_id: 'user_id',
      memory_mb: 'memory_mb', vcpus: 'vcpus', root_gb: 'root_gb', display_description: 'display_description', locked: 'locked_by', access_ip_v4: 'access_ip_v4', access_ip_v6: 'access_ip_v6',
    };
    const order: SortKey[] = [...page.sortKeys.map((k, i) => ({ col: cols[k] ?? 'created_at', dir: page.sortDirs[i] ?? 'desc' })), { col: 'uuid', dir: page.sortDirs[0] ?? 'desc' }];
    for (const o of order) q = q.orderBy(o.col, o.dir);
    const filteredHere = f.name || f.flavor || f.taskStates || f.lockedOnly !== undefined || f.ip || f.ip6 || f.tags || f.tagsAny || f.notTags || f.notTagsAny || f.match;
    if (!filteredHere && order.every((o) => NEVER_NULL.has(o.col))) return this.keysetPage(q, order, page);
    if (!filteredHere) return this.page((await q.select('uuid').execute()).map((r) => r.uuid), page);
    let rows = (await q.selectAll().execute()).map(fromRow);
    if (f.name) {
      let re: RegExp;
      try {
        re = new RegExp(f.name);
      } catch {
        re = new RegExp(f.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
      }
      rows = rows.filter((i) => re.test(i.name));
    }
    if (f.flavor) rows = rows.filter((i) => i.flavor.id === f.flavor);
    if (f.taskStates) rows = rows.filter((i) => f.taskStates!.includes(i.taskState));
    if (f.lockedOnly !== undefined) rows = rows.filter((i) => (i.lockedBy !== null) === f.lockedOnly);
    if (f.match) rows = rows.filter(f.match);
    if (f.ip) {
      const re = new RegExp(f.ip);
      rows = rows.filter((i) => i.networkInfo.some((v) => v.ips.some((a) => a.version === 4 && re.test(a.address))));
    }
    if (f.ip6) {
      const re = new RegExp(f.ip6);
      rows = rows.filter((i) => i.networkInfo.some((v) => v.ips.some((a) => a.version === 6 && re.test(a.address))));
    }
    if (f.tags || f.tagsAny || f.notTags || f.notTagsAny) {
      const tags = await this.tagsOf(rows.map((r) => r.uuid));
      rows = rows.filter((i) => {
        const t = tags.get(i.uuid) ?? new Set<string>();
        if (f.tags && !f.tags.every((x) => t.has(x))) return false;
        if (f.tagsAny && !f.tagsAny.some((x) => t.has(x))) return false;
        if (f.notTags && f.notTags.every((x) => t.has(x))) return false;
        if (f.notTagsAny && f.notTagsAny.some((x) => t.has(x))) return false;
        return true;
      });
    }
    if (page.marker !== undefined) {
      const idx = rows.findIndex((r) => r.uuid === page.marker);
      if (idx < 0) throw Object.assign(new Error('marker'), { markerNotFound: page.marker });
      rows = rows.slice(idx + 1);
    }
    return page.limit !== undefined ? rows.slice(0, page.limit) : rows;
  }

  /**
   * One page bounded in SQL by the marker's sort values, as upstream's paginate_query does:
   * a page of 1,000 from 10,000 servers reads its 1,000 rows and no more. The marker is looked
   * up under the same filters, so a marker the list would not show is not found.
   */
  private async keysetPage(q: SelectQueryBuilder<NovaDB, 'instances', {}>, order: SortKey[], page: { limit?: number; marker?: string }): Promise<Instance[]> {
    if (page.marker !== undefined) {
      const m = await q.selectAll().where('uuid', '=', page.marker).executeTakeFirst();
      if (!m) throw Object.assign(new Error('marker'), { markerNotFound: page.marker });
      // After the marker: greater (or less, descending) on the first key that differs.
      q = q.where((eb) =>
        eb.or(order.map((o, i) => eb.and([...order.slice(0, i).map((p) => eb(p.col, '=', m[p.col] as never)), eb(o.col, o.dir === 'asc' ? '>' : '<', m[o.col] as never)]))),
      );
    }
    if (page.limit !== undefined) q = q.limit(page.limit);
    // The ids first: the default order comes from an index (instances_project_created), and
    // another order sorts ids rather than whole rows with their JSON.
    return this.rowsInOrder((await q.select('uuid').execute()).map((r) => r.uuid));
  }

  /**
   * One page of the ordered ids, and only its rows read and decoded: a page of 1,000 from
   * 10,000 servers would otherwise decode all 10,000 rows' JSON.
   */
  private async page(ordered: string[], page: { limit?: number; marker?: string }): Promise<Instance[]> {
    let start = 0;
    if (page.marker !== undefined) {
      start = ordered.indexOf(page.marker) + 1;
      if (start === 0) throw Object.assign(new Error('marker'), { markerNotFound: page.marker });
    }
    return this.rowsInOrder(ordered.slice(start, page.limit !== undefined ? start + page.limit : undefined));
  }

  private async rowsInOrder(ids: string[]): Promise<Instance[]> {
    const byId = new Map<string, Instance>();
    for (let i = 0; i < ids.length; i += 500) {
      for (const r of await this.db.selectFrom('instances').selectAll().where('uuid', 'in', ids.slice(i, i + 500)).execute()) byId.set(r.uuid, fromRow(r));
    }
    // A row deleted (purged) between the two reads is left out.
    return ids.flatMap((id) => byId.get(id) ?? []);
  }

  async metadata(uuid: string): Promise<Record<string, string>> {
    const rows = await this.db.selectFrom('instance_metadata').select(['key', 'value']).where('instance_uuid', '=', uuid).orderBy('key').execute();
    return Object.fromEntries(rows.map((r) => [r.key, r.value]));
  }

  async metadataOf(uuids: string[]): Promise<Map<string, Record<string, string>>> {
    const out = new Map<string, Record<string, string>>();
    for (let i = 0; i < uuids.length; i += 500) {
      const chunk = uuids.slice(i, i + 500);
      if (chunk.length === 0) continue;
      const rows = await this.db.selectFrom('instance_metadata').selectAll().where('instance_uuid', 'in', chunk).execute();
      for (const r of rows) (out.get(r.instance_uuid) ?? out.set(r.instance_uuid, {}).get(r.instance_uuid)!)[r.key] = r.value;
    }
    return out;
  }

  async setMetadata(uuid: string, md: Record<string, string>, replace: boolean): Promise<void> {
    if (replace) await this.db.deleteFrom('instance_metadata').where('instance_uuid', '=', uuid).execute();
    for (const [key, value] of Object.entries(md)) {
      await this.db.deleteFrom('instance_metadata').where('instance_uuid', '=', uuid).where('key', '=', key).execute();
      await this.db.insertInto('instance_metadata').values({ instance_uuid: uuid, key, value }).execute();
    }
    await this.update(uuid, {});
  }

  async deleteMetadataKey(uuid: string, key: string): Promise<boolean> {
    const r = await this.db.deleteFrom('instance_metadata').where('instance_uuid', '=', uuid).where('key', '=', key).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async tags(uuid: string): Promise<string[]> {
    return (await this.db.selectFrom('tags').select('tag').where('resource_id', '=', uuid).orderBy('tag').execute()).map((r) => r.tag);
  }

  async tagsOf(uuids: string[]): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    for (let i = 0; i < uuids.length; i += 500) {
      const chunk = uuids.slice(i, i + 500);
      if (chunk.length === 0) continue;
      for (const r of await this.db.selectFrom('tags').selectAll().where('resource_id', 'in', chunk).execute()) (out.get(r.resource_id) ?? out.set(r.resource_id, new Set()).get(r.resource_id)!).add(r.tag);
    }
    return out;
  }

  async setTags(uuid: string, tags: string[]): Promise<void> {
    await this.db.deleteFrom('tags').where('resource_id', '=', uuid).execute();
    for (const tag of new Set(tags)) await this.db.insertInto('tags').values({ resource_id: uuid, tag }).execute();
    await this.update(uuid, {});
  }

  async addTag(uuid: string, tag: string): Promise<boolean> {
    const has = await this.db.selectFrom('tags').select('tag').where('resource_id', '=', uuid).where('tag', '=', tag).executeTakeFirst();
    if (has) return false;
    await this.db.insertInto('tags').values({ resource_id: uuid, tag }).execute();
    await this.update(uuid, {});
    return true;
  }

  async deleteTag(uuid: string, tag: string): Promise<boolean> {
    const r = await this.db.deleteFrom('tags').where('resource_id', '=', uuid).where('tag', '=', tag).executeTakeFirst();
    await this.update(uuid, {});
    return Number(r.numDeletedRows) > 0;
  }

  async addFault(uuid: string, f: { code: number; message: string; details?: string; host?: string | null }): Promise<void> {
    await this.db
      .insertInto('instance_faults')
      .values({ id: this.ids.uuid(), instance_uuid: uuid, code: f.code, message: f.message.slice(0, 255), details: f.details ?? null, host: f.host ?? null, created_at: this.clock.now() })
      .execute();
  }

  async latestFaults(uuids: string[]): Promise<Map<string, Fault>> {
    const out = new Map<string, Fault>();
    if (uuids.length === 0) return out;
    for (let i = 0; i < uuids.length; i += 500) {
      const rows = await this.db.selectFrom('instance_faults').selectAll().where('instance_uuid', 'in', uuids.slice(i, i + 500)).orderBy('created_at', 'asc').execute();
      for (const r of rows) out.set(r.instance_uuid, { code: r.code, message: r.message, details: r.details, createdAt: Number(r.created_at), host: r.host });
    }
    return out;
  }

  /** Instances, vCPUs and RAM a project holds now (upstream counts usage from the instances rather than tracking it). */
  async usage(projectId: string): Promise<{ instances: number; cores: number; ram: number }> {
    const r = await this.db
      .selectFrom('instances')
      .select((eb) => [eb.fn.countAll().as('n'), eb.fn.sum('vcpus').as('cores'), eb.fn.sum('memory_mb').as('ram')])
      .where('project_id', '=', projectId)
      .where('deleted', '=', 0)
      .executeTakeFirstOrThrow();
    return { instances: Number(r.n), cores: Number(r.cores ?? 0), ram: Number(r.ram ?? 0) };
  }

  async onHost(host: string): Promise<Instance[]> {
    return (await this.db.selectFrom('instances').selectAll().where('host', '=', host).where('deleted', '=', 0).execute()).map(fromRow);
  }
}

export { jsonToDb };
