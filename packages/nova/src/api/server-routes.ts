import type { FastifyInstance, FastifyRequest } from 'fastify';
import { boolFromDb } from '@onestack/core/db/index.ts';
import { badRequest, conflict, forbidden, notFound } from '@onestack/core/errors.ts';
import type { Instance, InstanceFilters, RequestedNetwork } from '../domain/instances.ts';
import type { CreateServerInput } from '../domain/servers.ts';
import { vmStatesForStatus } from '../domain/states.ts';
import { allowed, callerOf, enforce, isAdmin, mv, serverFor, ISO, type ApiDeps } from './context.ts';
import { parseBlockDeviceMappings } from './block-device-mapping.ts';
import { baseOf, obfuscatedHost, reducedView, serverBrief, serverDetail } from './server-views.ts';
import { bool, hostname, int, invalid, metadata, name, noExtra, obj, str, tag, UUID } from './validate.ts';

/**
 * 2.58 paging of instance actions (limit, marker = request id) and its changes-since filter,
 * with 2.66's changes-before; from 2.58 other query parameters are refused.
 */
function actionsPage(req: FastifyRequest, maxLimit: number): { limit: number; marker?: string; since?: number; before?: number } {
  const q = req.query as Record<string, string>;
  const allowedKeys = ['limit', 'marker', 'changes-since', ...(mv(req, '2.66') ? ['changes-before'] : [])];
  noExtra(q, allowedKeys);
  const when = (k: string) => {
    if (q[k] === undefined) return undefined;
    const t = Date.parse(q[k]);
    if (Number.isNaN(t)) throw invalid(k, q[k], `'${q[k]}' is not a 'date-time'`);
    return t;
  };
  const since = when('changes-since');
  const before = when('changes-before');
  if (since !== undefined && before !== undefined && before < since) throw badRequest('The value of changes-since must be less than or equal to changes-before.');
  const limit = q.limit === undefined ? maxLimit : Math.min(int(q.limit, 'limit', { min: 0 }) || maxLimit, maxLimit);
  return { limit, marker: q.marker, since, before };
}

const CREATE_KEYS = [
  'name', 'imageRef', 'flavorRef', 'networks', 'key_name', 'security_groups', 'user_data', 'metadata', 'availability_zone', 'config_drive', 'adminPass',
  'description', 'tags', 'hostname', 'min_count', 'max_count', 'return_reservation_id', 'accessIPv4', 'accessIPv6', 'OS-DCF:diskConfig', 'block_device_mapping_v2',
  'personality', 'trusted_image_certificates', 'host', 'hypervisor_hostname', 'block_device_mapping',
];

function parseNetworks(req: FastifyRequest, v: unknown): CreateServerInput['networks'] {
  if (v === undefined) {
    if (mv(req, '2.37')) throw badRequest("Invalid input for field/attribute server. Value: None. 'networks' is a required property");
    return undefined;
  }
  if (v === 'auto' || v === 'none') {
    if (!mv(req, '2.37')) throw invalid('networks', v, `'${v}' is not of type 'array'`);
    return v;
  }
  if (!Array.isArray(v)) throw invalid('networks', v, `${JSON.stringify(v)} is not of type 'array'`);
  const out: RequestedNetwork[] = [];
  for (const n of v) {
    const o = obj(n, 'networks');
    noExtra(o, ['uuid', 'port', 'fixed_ip', 'tag'], 'networks');
    const r: RequestedNetwork = {};
    if (o.uuid !== undefined) {
      const u = str(o.uuid, 'uuid');
      if (!UUID.test(u)) throw badRequest(`Bad networks format: network uuid is not in proper format (${u})`);
      r.networkId = u;
    }
    if (o.port !== undefined && o.port !== null) {
      const p = str(o.port, 'port');
      if (!UUID.test(p)) throw invalid('port', p, `'${p}' is not a 'uuid'`);
      r.portId = p;
    }
    if (o.fixed_ip !== undefined) {
      const ip = str(o.fixed_ip, 'fixed_ip');
      if (!/^[\d.]+$|:/.test(ip)) throw badRequest(`Invalid fixed IP address (${ip})`);
      r.fixedIp = ip;
    }
    if (o.tag !== undefined) {
      // Tags on networks: 2.32–2.36, dropped by mistake in 2.37, back from 2.42.
      if (!(mv(req, '2.42') || (mv(req, '2.32') && !mv(req, '2.37')))) throw badRequest("Additional properties are not allowed ('tag' was unexpected)");
      r.tag = tag(o.tag);
    }
    if (!r.networkId && !r.portId) throw badRequest('Bad network format: missing uuid');
    if (r.networkId && !r.portId && out.some((x) => x.networkId === r.networkId) && false) throw badRequest('duplicate network');
    out.push(r);
  }
  return out;
}

function parseCreate(req: FastifyRequest, deps: ApiDeps, body: unknown): CreateServerInput & { returnReservationId: boolean } {
  const root = obj(body, 'body');
  if (root.server === undefined) throw badRequest("Invalid input for field/attribute server. Value: None. 'server' is a required property");
  const s = obj(root.server, 'server');
  noExtra(s, CREATE_KEYS);
  for (const k of ['name', 'flavorRef'] as const) if (s[k] === undefined) throw badRequest(`Invalid input for field/attribute server. Value: ${JSON.stringify(s)}. '${k}' is a required property`);
  const blockDevices = parseBlockDeviceMappings(req, s);
  // _image_from_req_data: the image may be left out (or empty) only when block devices say what to boot.
  let imageRef: string | undefined;
  if (s.imageRef !== undefined && s.imageRef !== null && s.imageRef !== '') {
    imageRef = str(s.imageRef, 'imageRef');
    if (!UUID.test(imageRef)) throw invalid('imageRef', imageRef, `'${imageRef}' is not valid under any of the given schemas`);
  } else if (!blockDevices.length) {
    throw badRequest('Missing imageRef attribute');
  }
  const flavorRef = typeof s.flavorRef === 'number' ? String(s.flavorRef) : str(s.flavorRef, 'flavorRef', { min: 1 });
  const md = s.metadata === undefined ? undefined : metadata(s.metadata);
  let userData: string | undefined;
  if (s.user_data !== undefined && s.user_data !== null) {
    userData = str(s.user_data, 'user_data');
    if (userData.length > 65535) throw invalid('user_data', userData.slice(0, 20) + '…', `'${userData.slice(0, 20)}…' is too long`);
    if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(userData) || userData.replace(/\s/g, '').length % 4 !== 0) throw badRequest('User data needs to be valid base 64.');
  }
  const minCount = s.min_count === undefined ? 1 : int(s.min_count, 'min_count', { min: 1 });
  const maxCount = s.max_count === undefined ? minCount : int(s.max_count, 'max_count', { min: 1 });
  if (minCount > maxCount) throw badRequest('min_count must be <= max_count');
  if (s.hostname !== undefined && maxCount > 1) throw badRequest('Unable to allocate a single hostname to multiple instances');
  const hintsRaw = (root['os:scheduler_hints'] ?? root['OS-SCH-HNT:scheduler_hints'] ?? {}) as Record<string, unknown>;
  const list = (v: unknown) => (v === undefined ? undefined : (Array.isArray(v) ? v : [v]).map((x) => str(x, 'scheduler_hints')));
  const hints = { sameHost: list(hintsRaw.same_host), differentHost: list(hintsRaw.different_host), group: hintsRaw.group === undefined ? undefined : str(hintsRaw.group, 'group') };
  if (hints.group !== undefined && !UUID.test(hints.group)) throw invalid('group', hints.group, `'${hints.group}' is not a 'uuid'`);
  const sgs = s.security_groups === undefined ? undefined : (s.security_groups as unknown[]).map((g) => str(obj(g, 'security_groups').name, 'name', { min: 1, max: 255 }));
  const tags = s.tags === undefined ? undefined : (Array.isArray(s.tags) ? s.tags : [s.tags]).map(tag);
  if (tags && !mv(req, '2.52')) throw badRequest("Additional properties are not allowed ('tags' was unexpected)");
  if (tags && tags.length > 50) throw invalid('tags', tags, 'is too long');
  if (s.description !== undefined && !mv(req, '2.19')) throw badRequest("Additional properties are not allowed ('description' was unexpected)");
  if (s.hostname !== undefined && !mv(req, '2.90')) throw badRequest("Additional properties are not allowed ('hostname' was unexpected)");
  if (s.personality !== undefined) throw badRequest("Additional properties are not allowed ('personality' was unexpected)");
  // Accepted from 2.63 and 2.74 upstream; refused before, as the schema of those versions does.
  for (const [k, v] of [['trusted_image_certificates', '2.63'], ['host', '2.74'], ['hypervisor_hostname', '2.74']] as const) {
    if (s[k] !== undefined && !mv(req, v)) throw badRequest(`Additional properties are not allowed ('${k}' was unexpected)`);
  }
  return {
    name: name(s.name),
    imageRef,
    blockDevices,
    multiattach: mv(req, '2.60'),
    flavorRef,
    networks: parseNetworks(req, s.networks),
    keyName: s.key_name === undefined || s.key_name === null ? undefined : str(s.key_name, 'key_name', { min: 1, max: 255 }),
    securityGroups: sgs,
    userData,
    metadata: md,
    availabilityZone: s.availability_zone === undefined || s.availability_zone === null ? undefined : str(s.availability_zone, 'availability_zone', { min: 1, max: 255 }),
    configDrive: s.config_drive === undefined ? undefined : bool(s.config_drive, 'config_drive'),
    adminPass: s.adminPass === undefined ? undefined : str(s.adminPass, 'adminPass'),
    description: s.description === undefined ? undefined : s.description === null ? null : str(s.description, 'description', { max: 255 }),
    tags,
    hostname: s.hostname === undefined ? undefined : hostname(s.hostname),
    minCount,
    maxCount,
    hints,
    accessIpV4: s.accessIPv4 === undefined ? undefined : str(s.accessIPv4, 'accessIPv4'),
    accessIpV6: s.accessIPv6 === undefined ? undefined : str(s.accessIPv6, 'accessIPv6'),
    returnReservationId: s.return_reservation_id === undefined ? false : bool(s.return_reservation_id, 'return_reservation_id'),
    trustedCerts: trustedCerts(s.trusted_image_certificates),
    requestedHost: s.host === undefined ? undefined : str(s.host, 'host', { min: 1, max: 255, pattern: /^[a-zA-Z0-9\-._]*$/ }),
    requestedNode: s.hypervisor_hostname === undefined ? undefined : str(s.hypervisor_hostname, 'hypervisor_hostname', { min: 1, max: 255, pattern: /^[a-zA-Z0-9\-._]*$/ }),
  };
}

/** parameter_types.trusted_certs: 1–50 distinct non-empty certificate ids, or null. */
export function trustedCerts(v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid('trusted_image_certificates', v, `${JSON.stringify(v)} is not of type 'array', 'null'`);
  if (v.length < 1 || v.length > 50) throw invalid('trusted_image_certificates', v, v.length ? 'is too long' : '[] is too short');
  const ids = v.map((x) => str(x, 'trusted_image_certificates', { min: 1 }));
  if (new Set(ids).size !== ids.length) throw invalid('trusted_image_certificates', v, 'has non-unique elements');
  return ids;
}

/** The volumes of each instance (one query for a page of servers), boot volume first. */
async function volumesOf(deps: ApiDeps, uuids: string[]): Promise<Map<string, { id: string; deleteOnTermination: boolean }[]>> {
  const out = new Map<string, { id: string; deleteOnTermination: boolean }[]>();
  if (!uuids.length) return out;
  const rows = await deps.instances.db
    .selectFrom('block_device_mapping')
    .select(['instance_uuid', 'volume_id', 'delete_on_termination', 'boot_index'])
    .where('instance_uuid', 'in', uuids)
    .where('destination_type', '=', 'volume')
    .where('volume_id', 'is not', null)
    .orderBy('created_at')
    .execute();
  const bootFirst = (b: number | null) => (b === null || Number(b) < 0 ? Number.MAX_SAFE_INTEGER : Number(b));
  rows.sort((a, b) => bootFirst(a.boot_index) - bootFirst(b.boot_index));
  for (const r of rows) {
    const list = out.get(r.instance_uuid) ?? [];
    list.push({ id: r.volume_id!, deleteOnTermination: boolFromDb(r.delete_on_termination) });
    out.set(r.instance_uuid, list);
  }
  return out;
}

async function detailOf(deps: ApiDeps, req: FastifyRequest, list: Instance[]) {
  const uuids = list.map((i) => i.uuid);
  const [md, tags, faults, volumes] = await Promise.all([deps.instances.metadataOf(uuids), deps.instances.tagsOf(uuids), deps.instances.latestFaults(uuids), volumesOf(deps, uuids)]);
  const hostsUp = await deps.services.computesUp([...new Set(list.flatMap((i) => (i.host ? [i.host] : [])))]);
  return list.map((i) => serverDetail(deps, req, i, { metadata: md.get(i.uuid) ?? {}, tags: [...(tags.get(i.uuid) ?? [])].sort(), fault: faults.get(i.uuid), hostUp: i.host ? hostsUp.get(i.host) : undefined, volumes: volumes.get(i.uuid) }));
}

export async function showServer(deps: ApiDeps, req: FastifyRequest, i: Instance) {
  const s = (await detailOf(deps, req, [i]))[0];
  // 2.71: the server's groups, on show, update and rebuild only (lists would need a query per server).
  if (mv(req, '2.71')) s.server_groups = (await deps.instances.db.selectFrom('server_group_members').select('group_uuid').where('instance_uuid', '=', i.uuid).execute()).map((r) => r.group_uuid);
  return s;
}

/** Sort keys upstream took before its schemas and now drops (with their directions) instead of refusing; 2.73 lets `locked` through. */
const IGNORED_SORT_KEYS = [
  'architecture', 'cell_name', 'cleaned', 'default_ephemeral_device', 'default_swap_device', 'deleted', 'deleted_at', 'disable_terminate', 'ephemeral_gb',
  'ephemeral_key_uuid', 'id', 'key_data', 'launched_on', 'locked', 'memory_mb', 'os_type', 'reservation_id', 'root_gb', 'shutdown_terminate', 'user_data', 'vcpus', 'vm_mode',
];
const SORT_KEYS = [
  'access_ip_v4', 'access_ip_v6', 'auto_disk_config', 'availability_zone', 'config_drive', 'created_at', 'display_description', 'display_name', 'host', 'hostname',
  'image_ref', 'instance_type_id', 'kernel_id', 'key_name', 'launch_index', 'launched_at', 'locked_by', 'node', 'power_state', 'progress', 'project_id', 'ramdisk_id',
  'root_device_name', 'task_state', 'terminated_at', 'updated_at', 'user_id', 'uuid', 'vm_state',
];
/** Joined tables upstream's schema names so that an admin asking to filter by them gets a 400, not a silent no-op. */
const JOINED_TABLE_PARAMS = ['block_device_mapping', 'services', 'metadata', 'system_metadata', 'info_cache', 'security_groups', 'pci_devices'];
/** index_query of schemas/servers.py: from 2.75 nothing else is accepted. */
const LIST_PARAMS = [
  'user_id', 'project_id', 'tenant_id', 'launch_index', 'image_ref', 'image', 'kernel_id', 'ramdisk_id', 'hostname', 'key_name', 'power_state', 'vm_state', 'task_state',
  'host', 'node', 'flavor', 'reservation_id', 'launched_at', 'terminated_at', 'availability_zone', 'name', 'display_name', 'description', 'display_description',
  'locked_by', 'uuid', 'root_device_name', 'config_drive', 'access_ip_v4', 'access_ip_v6', 'auto_disk_config', 'progress', 'sort_key', 'sort_dir', 'all_tenants',
  'soft_deleted', 'deleted', 'status', 'changes-since', 'ip', 'ip6', 'created_at', 'limit', 'marker', 'tags', 'tags-any', 'not-tags', 'not-tags-any', 'changes-before',
  'locked', ...JOINED_TABLE_PARAMS,
];

/**
 * The sort keys a list request may name at its microversion (the schema's enum, checked for
 * every key) and those dropped silently: 2.73 makes `locked` a real key, 2.75 refuses the rest.
 */
function sortKeysFor(req: FastifyRequest): { valid: string[]; ignored: string[] } {
  const ignored = mv(req, '2.75') ? [] : IGNORED_SORT_KEYS.filter((k) => k !== 'locked' || !mv(req, '2.73'));
  return { valid: [...SORT_KEYS, ...(mv(req, '2.73') ? ['locked'] : []), ...ignored], ignored };
}

const time = (v: unknown, field: string): number => {
  const t = Date.parse(String(v));
  if (Number.isNaN(t)) throw invalid(field, v, `'${String(v)}' is not a 'date-time'`);
  return t;
};

/** A database datetime as upstream's REGEXP filters see it (`2026-01-02 03:04:05`). */
const dbTime = (ms: number | null) => (ms === null ? '' : new Date(ms).toISOString().slice(0, 19).replace('T', ' '));

/**
 * Filters on one instance column: upstream's database layer matches `user_id`, `vm_state` and
 * `task_state` exactly and the others as a regular expression against the column's text.
 */
const COLUMN_FILTERS: Record<string, { exact?: boolean; of: (i: Instance) => string | null }> = {
  user_id: { exact: true, of: (i) => i.userId },
  vm_state: { exact: true, of: (i) => i.vmState },
  task_state: { exact: true, of: (i) => i.taskState },
  availability_zone: { of: (i) => i.availabilityZone },
  config_drive: { of: (i) => (i.configDrive ? 'True' : '') },
  key_name: { of: (i) => i.keyName },
  created_at: { of: (i) => dbTime(i.createdAt) },
  launched_at: { of: (i) => dbTime(i.launchedAt) },
  terminated_at: { of: (i) => dbTime(i.terminatedAt) },
  power_state: { of: (i) => String(i.powerState) },
  progress: { of: (i) => String(i.progress) },
  hostname: { of: (i) => i.hostname },
};

/** What non-admins may filter on (servers.py _get_server_search_options): 2.83 opens most columns, 2.90 the hostname. */
function nonAdminColumnFilters(req: FastifyRequest): string[] {
  if (!mv(req, '2.83')) return [];
  return Object.keys(COLUMN_FILTERS).filter((k) => k !== 'hostname' || mv(req, '2.90'));
}

/** A pattern from the query; one that is no valid expression matches itself literally, as the name filter does. */
function pattern(v: string): RegExp {
  try {
    return new RegExp(v);
  } catch {
    return new RegExp(v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  }
}

function columnFilters(q: Record<string, string | string[]>, keys: string[]): ((i: Instance) => boolean) | undefined {
  const tests: ((i: Instance) => boolean)[] = [];
  for (const k of keys) {
    const raw = q[k];
    if (raw === undefined || (k === 'vm_state' && q.status !== undefined)) continue;
    const v = Array.isArray(raw) ? raw.at(-1)! : raw;
    const { exact, of } = COLUMN_FILTERS[k];
    if (exact) tests.push((i) => of(i) === v);
    else {
      const re = pattern(v);
      tests.push((i) => re.test(of(i) ?? ''));
    }
  }
  return tests.length ? (i) => tests.every((t) => t(i)) : undefined;
}

const pyList = (xs: string[]) => `[${xs.map((x) => `'${x}'`).join(', ')}]`;

async function listServers(deps: ApiDeps, req: FastifyRequest, detail: boolean) {
  const q = req.query as Record<string, string | string[]>;
  if (mv(req, '2.75')) noExtra(Object.fromEntries(Object.entries(q).filter(([k]) => !k.startsWith('_'))), LIST_PARAMS);
  const one = (k: string) => (Array.isArray(q[k]) ? (q[k] as string[]).at(-1) : (q[k] as string | undefined));
  const sortable = sortKeysFor(req);
  const sortKeys = ([] as string[]).concat(q.sort_key ?? []);
  for (const k of sortKeys) if (!sortable.valid.includes(k)) throw badRequest(`Invalid input for query parameters sort_key. Value: ${k}. '${k}' is not one of ${pyList(sortable.valid)}`);
  const admin = isAdmin(deps, req);
  const auth = req.ctx.auth!;
  enforce(deps, req, detail ? 'os_compute_api:servers:detail' : 'os_compute_api:servers:index');
  // Non-admins' unknown filters are dropped (remove_invalid_options); an admin's reach the database layer, which refuses these.
  const unfilterable = admin ? Object.keys(q).find((k) => JOINED_TABLE_PARAMS.includes(k) || k.startsWith('_')) : undefined;
  if (unfilterable) throw badRequest(`Invalid filter field: ${unfilterable}.`);
  const adminSort = admin ? undefined : sortKeys.find((k) => k === 'host' || k === 'node');
  if (adminSort) throw forbidden(`Only administrators can sort servers by ${adminSort}`);
  const f: InstanceFilters = { deleted: false };
  const allTenants = one('all_tenants') !== undefined && one('all_tenants') !== 'false' && one('all_tenants') !== '0';
  if (allTenants) enforce(deps, req, detail ? 'os_compute_api:servers:detail:get_all_tenants' : 'os_compute_api:servers:index:get_all_tenants');
  if (!allTenants) f.projectId = auth.projectId;
  if (one('project_id') || one('tenant_id')) {
    if (admin && allTenants) f.projectId = one('project_id') ?? one('tenant_id');
  }
  if (one('name')) f.name = one('name');
  if (one('status')) {
    const st = vmStatesForStatus(one('status')!);
    if (!st) {
      if (mv(req, '2.38')) throw badRequest(`Invalid status value`);
      return { servers: [] };
    }
    f.vmStates = st.vm;
    if (one('status')!.toUpperCase() === 'ACTIVE') f.taskStates = [null, 'image_snapshot', 'image_pending_upload', 'image_uploading', 'deleting', 'powering-off', 'powering-on', 'pausing', 'unpausing', 'suspending', 'resuming', 'block_device_mapping', 'networking', 'spawning', 'scheduling'];
  }
  if (one('image')) f.image = one('image')!.split('/').pop();
  if (one('flavor')) f.flavor = one('flavor')!.split('/').pop();
  if (one('reservation_id')) f.reservationId = one('reservation_id');
  if (one('ip')) f.ip = one('ip');
  // Non-admins' ip6 filter was silently dropped before 2.5.
  if (one('ip6') && (admin || mv(req, '2.5'))) f.ip6 = one('ip6');
  if (one('changes-since')) f.changesSince = time(one('changes-since'), 'changes-since');
  if (one('changes-before') && mv(req, '2.66')) f.changesBefore = time(one('changes-before'), 'changes-before');
  if (f.changesSince !== undefined && f.changesBefore !== undefined && f.changesBefore < f.changesSince) throw badRequest(`The value of changes-since must be less than or equal to changes-before.`);
  if (mv(req, '2.26')) {
    if (one('tags')) f.tags = one('tags')!.split(',');
    if (one('tags-any')) f.tagsAny = one('tags-any')!.split(',');
    if (one('not-tags')) f.notTags = one('not-tags')!.split(',');
    if (one('not-tags-any')) f.notTagsAny = one('not-tags-any')!.split(',');
  }
  f.match = columnFilters(q, admin ? Object.keys(COLUMN_FILTERS) : nonAdminColumnFilters(req));
  if (one('locked') !== undefined && mv(req, '2.73')) f.lockedOnly = bool(one('locked'), 'locked');
  if (admin && (one('host') || one('node'))) f.host = one('host');
  if (admin && one('uuid')) f.uuid = one('uuid');
  const delFilter = one('deleted');
  if (delFilter !== undefined && admin) {
    f.deleted = bool(delFilter, 'deleted');
  }
  if (f.changesSince !== undefined && delFilter === undefined) delete f.deleted;
  const sortDirs = ([] as string[]).concat(q.sort_dir ?? []).map((d) => {
    if (d !== 'asc' && d !== 'desc') throw badRequest(`Invalid sort_dir ${d}`);
    return d as 'asc' | 'desc';
  });
  // remove_invalid_sort_keys: an ignored key goes with its direction.
  for (let i = sortKeys.length - 1; i >= 0; i--) {
    if (!sortable.ignored.includes(sortKeys[i])) continue;
    sortKeys.splice(i, 1);
    sortDirs.splice(i, 1);
  }
  const limit = one('limit') === undefined ? undefined : Math.min(int(one('limit'), 'limit', { min: 0 }), deps.config.maxLimit);
  let servers: Instance[];
  try {
    servers = await deps.instances.list(f, { sortKeys: sortKeys.length ? sortKeys : ['created_at'], sortDirs: sortDirs.length ? sortDirs : ['desc'], limit: limit ?? deps.config.maxLimit, marker: one('marker') });
  } catch (e) {
    const m = (e as { markerNotFound?: string }).markerNotFound;
    if (m) throw badRequest(`marker [${m}] not found`);
    throw e;
  }
  const body: Record<string, unknown> = { servers: detail ? await detailOf(deps, req, servers) : servers.map((i) => serverBrief(req, i)) };
  const effLimit = limit ?? deps.config.maxLimit;
  if (servers.length === effLimit && servers.length > 0) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (k !== 'marker') for (const x of ([] as string[]).concat(v)) params.append(k, x);
    params.set('marker', servers[servers.length - 1].uuid);
    body.servers_links = [{ rel: 'next', href: `${baseOf(req)}/v2.1/servers${detail ? '/detail' : ''}?${params}` }];
  }
  return body;
}

export function registerServerRoutes(app: FastifyInstance, deps: ApiDeps): void {
  for (const prefix of ['/v2.1']) {
    app.post(`${prefix}/servers`, async (req, reply) => {
      enforce(deps, req, 'os_compute_api:servers:create');
      const input = parseCreate(req, deps, req.body);
      if (input.networks && input.networks !== 'auto' && input.networks !== 'none') enforce(deps, req, 'os_compute_api:servers:create:attach_network');
      if (input.trustedCerts) enforce(deps, req, 'os_compute_api:servers:create:trusted_certs');
      if (input.blockDevices.length) enforce(deps, req, 'os_compute_api:servers:create:attach_volume');
      if (input.requestedHost || input.requestedNode) {
        enforce(deps, req, 'compute:servers:create:requested_destination');
        if (input.availabilityZone?.includes(':')) throw badRequest('One mechanism with host and/or hypervisor_hostname and another mechanism with zone:host:node are mutually exclusive.');
      }
      const caller = callerOf(deps, req);
      const r = await deps.compute.create(caller, { ...input, zeroDiskAllowed: allowed(deps, req, 'os_compute_api:servers:create:zero_disk_flavor') });
      reply.code(202);
      if (input.returnReservationId) return { reservation_id: r.reservationId };
      const first = r.instances[0];
      return {
        server: {
          id: first.uuid,
          links: serverBrief(req, first).links,
          'OS-DCF:diskConfig': 'MANUAL',
          security_groups: first.requestSpec.securityGroups.map((n) => ({ name: n })),
          adminPass: r.adminPass,
        },
      };
    });
    app.get(`${prefix}/servers`, async (req) => listServers(deps, req, false));
    app.get(`${prefix}/servers/detail`, async (req) => listServers(deps, req, true));
    app.get(`${prefix}/servers/:server_id`, async (req) => {
      const id = (req.params as { server_id: string }).server_id;
      // A deleted server is gone for admins too (upstream reads with read_deleted=no): `server delete --wait` polls for this 404.
      let inst = await deps.instances.find(id);
      if (!inst || (inst.projectId !== req.ctx.auth?.projectId && !isAdmin(deps, req))) throw notFound(`Instance ${id} could not be found.`);
      enforce(deps, req, 'os_compute_api:servers:show', { project_id: inst.projectId });
      return { server: await showServer(deps, req, inst) };
    });
    app.put(`${prefix}/servers/:server_id`, async (req) => {
      const inst = await serverFor(deps, req, 'os_compute_api:servers:update');
      const body = obj(req.body, 'body');
      const s = obj(body.server, 'server');
      noExtra(s, ['name', 'description', 'accessIPv4', 'accessIPv6', 'OS-DCF:diskConfig', 'hostname']);
      const set: Record<string, unknown> = {};
      if (s.name !== undefined) set.display_name = name(s.name);
      if (s.description !== undefined) {
        if (!mv(req, '2.19')) throw badRequest("Additional properties are not allowed ('description' was unexpected)");
        set.display_description = s.description === null ? null : str(s.description, 'description', { max: 255 });
      }
      if (s.accessIPv4 !== undefined) set.access_ip_v4 = s.accessIPv4 || null;
      if (s.accessIPv6 !== undefined) set.access_ip_v6 = s.accessIPv6 || null;
      if (s.hostname !== undefined) {
        if (!mv(req, '2.90')) throw badRequest("Additional properties are not allowed ('hostname' was unexpected)");
        set.hostname = hostname(s.hostname);
      }
      await deps.instances.update(inst.uuid, set);
      const server = await showServer(deps, req, await deps.instances.get(inst.uuid));
      // 2.75: the full view, as GET; before, the reduced one.
      return { server: mv(req, '2.75') ? server : reducedView(server) };
    });
    app.delete(`${prefix}/servers/:server_id`, async (req, reply) => {
      const inst = await serverFor(deps, req, 'os_compute_api:servers:delete');
      await deps.compute.delete(callerOf(deps, req), inst);
      reply.code(204);
      return '';
    });

    // server metadata
    const md = `${prefix}/servers/:server_id/metadata`;
    app.get(md, async (req) => {
      const inst = await serverFor(deps, req, 'os_compute_api:server-metadata:index');
      return { metadata: await deps.instances.metadata(inst.uuid) };
    });
    const writeMd = async (req: FastifyRequest, replace: boolean, rule: string) => {
      const inst = await serverFor(deps, req, rule);
      deps.compute.checkLock(inst, callerOf(deps, req));
      const body = obj(req.body, 'body');
      const m = metadata(body.metadata);
      const current = replace ? {} : await deps.instances.metadata(inst.uuid);
      const limit = (await deps.quotas.limits(inst.projectId)).metadata_items;
      const total = Object.keys({ ...current, ...m }).length;
      if (limit >= 0 && total > limit) throw Object.assign(new (await import('@onestack/core/errors.ts')).ApiError('forbidden', `Quota exceeded for metadata_items: Requested ${Object.keys(m).length}, but already used ${Object.keys(current).length} of ${limit} metadata_items`));
      if (inst.vmState === 'building' && false) throw conflict('building');
      await deps.instances.setMetadata(inst.uuid, m, replace);
      return { metadata: await deps.instances.metadata(inst.uuid) };
    };
    app.post(md, async (req) => writeMd(req, false, 'os_compute_api:server-metadata:create'));
    app.put(md, async (req) => writeMd(req, true, 'os_compute_api:server-metadata:update_all'));
    app.get(`${md}/:key`, async (req) => {
      const inst = await serverFor(deps, req, 'os_compute_api:server-metadata:show');
      const key = (req.params as { key: string }).key;
      const all = await deps.instances.metadata(inst.uuid);
      if (!(key in all)) throw notFound('Metadata item was not found');
      return { meta: { [key]: all[key] } };
    });
    app.put(`${md}/:key`, async (req) => {
      const inst = await serverFor(deps, req, 'os_compute_api:server-metadata:update');
      deps.compute.checkLock(inst, callerOf(deps, req));
      const key = (req.params as { key: string }).key;
      const body = obj(req.body, 'body');
      const meta = metadata(body.meta, 'meta');
      if (Object.keys(meta).length !== 1) throw badRequest('Request body contains too many items');
      if (!(key in meta)) throw badRequest('Request body and URI mismatch');
      await deps.instances.setMetadata(inst.uuid, meta, false);
      return { meta };
    });
    app.delete(`${md}/:key`, async (req, reply) => {
      const inst = await serverFor(deps, req, 'os_compute_api:server-metadata:delete');
      deps.compute.checkLock(inst, callerOf(deps, req));
      if (!(await deps.instances.deleteMetadataKey(inst.uuid, (req.params as { key: string }).key))) throw notFound('Metadata item was not found');
      reply.code(204);
      return '';
    });

    // server tags (2.26)
    const tags = `${prefix}/servers/:server_id/tags`;
    const needTags = (req: FastifyRequest) => {
      if (!mv(req, '2.26')) throw notFound('The resource could not be found.');
    };
    app.get(tags, async (req) => {
      needTags(req);
      const inst = await serverFor(deps, req, 'os_compute_api:os-server-tags:index');
      return { tags: await deps.instances.tags(inst.uuid) };
    });
    app.put(tags, async (req) => {
      needTags(req);
      const inst = await serverFor(deps, req, 'os_compute_api:os-server-tags:update_all');
      const body = obj(req.body, 'body');
      if (!Array.isArray(body.tags)) throw invalid('tags', body.tags, "is not of type 'array'");
      const t = body.tags.map(tag);
      if (t.length > 50) throw badRequest('The number of tags exceeded the per-server limit 50');
      await deps.instances.setTags(inst.uuid, t);
      return { tags: await deps.instances.tags(inst.uuid) };
    });
    app.delete(tags, async (req, reply) => {
      needTags(req);
      const inst = await serverFor(deps, req, 'os_compute_api:os-server-tags:delete_all');
      await deps.instances.setTags(inst.uuid, []);
      reply.code(204);
      return '';
    });
    app.get(`${tags}/:tag`, async (req, reply) => {
      needTags(req);
      const inst = await serverFor(deps, req, 'os_compute_api:os-server-tags:show');
      const t = (req.params as { tag: string }).tag;
      if (!(await deps.instances.tags(inst.uuid)).includes(t)) throw notFound(`Tag ${t} could not be found.`);
      reply.code(204);
      return '';
    });
    app.put(`${tags}/:tag`, async (req, reply) => {
      needTags(req);
      const inst = await serverFor(deps, req, 'os_compute_api:os-server-tags:update');
      const t = tag((req.params as { tag: string }).tag);
      const current = await deps.instances.tags(inst.uuid);
      if (!current.includes(t) && current.length >= 50) throw badRequest('The number of tags exceeded the per-server limit 50');
      const added = await deps.instances.addTag(inst.uuid, t);
      reply.code(added ? 201 : 204);
      reply.header('location', `${baseOf(req)}/v2.1/servers/${inst.uuid}/tags/${t}`);
      return '';
    });
    app.delete(`${tags}/:tag`, async (req, reply) => {
      needTags(req);
      const inst = await serverFor(deps, req, 'os_compute_api:os-server-tags:delete');
      const t = (req.params as { tag: string }).tag;
      if (!(await deps.instances.deleteTag(inst.uuid, t))) throw notFound(`Tag ${t} could not be found.`);
      reply.code(204);
      return '';
    });

    // instance actions
    app.get(`${prefix}/servers/:server_id/os-instance-actions`, async (req) => {
      const id = (req.params as { server_id: string }).server_id;
      // 2.21: actions of deleted servers too.
      const inst = await deps.instances.find(id, { includeDeleted: mv(req, '2.21') });
      if (!inst || (inst.projectId !== req.ctx.auth?.projectId && !isAdmin(deps, req))) throw notFound(`Instance ${id} could not be found.`);
      enforce(deps, req, 'os_compute_api:os-instance-actions:list', { project_id: inst.projectId });
      const page = mv(req, '2.58') ? actionsPage(req, deps.config.maxLimit) : undefined;
      let rows = await deps.actions.list(inst.uuid);
      if (page) {
        rows = rows.filter((a) => (page.since === undefined || Number(a.updated_at) >= page.since) && (page.before === undefined || Number(a.updated_at) <= page.before));
        if (page.marker !== undefined) {
          const at = rows.findIndex((a) => a.request_id === page.marker);
          if (at < 0) throw badRequest(`Marker ${page.marker} could not be found.`);
          rows = rows.slice(at + 1);
        }
        rows = rows.slice(0, page.limit);
      }
      const links =
        page && rows.length === page.limit && rows.length > 0
          ? { links: [{ rel: 'next', href: `${baseOf(req)}/v2.1/servers/${inst.uuid}/os-instance-actions?limit=${page.limit}&marker=${encodeURIComponent(rows.at(-1)!.request_id)}` }] }
          : {};
      return {
        ...links,
        instanceActions: rows.map((a) => ({
          action: a.action,
          instance_uuid: a.instance_uuid,
          message: a.message,
          project_id: a.project_id,
          request_id: a.request_id,
          start_time: ISO(Number(a.start_time))?.replace('Z', '.000000'),
          user_id: a.user_id,
          ...(mv(req, '2.58') ? { updated_at: ISO(Number(a.updated_at)) } : {}),
        })),
      };
    });
    app.get(`${prefix}/servers/:server_id/os-instance-actions/:request_id`, async (req) => {
      const { server_id: id, request_id: rid } = req.params as { server_id: string; request_id: string };
      const inst = await deps.instances.find(id, { includeDeleted: mv(req, '2.21') });
      if (!inst || (inst.projectId !== req.ctx.auth?.projectId && !isAdmin(deps, req))) throw notFound(`Instance ${id} could not be found.`);
      enforce(deps, req, 'os_compute_api:os-instance-actions:show', { project_id: inst.projectId });
      const r = await deps.actions.get(inst.uuid, rid);
      if (!r) throw notFound(`Action ${rid} not found`);
      const a = r.action;
      const body: Record<string, unknown> = {
        action: a.action,
        instance_uuid: a.instance_uuid,
        message: a.message,
        project_id: a.project_id,
        request_id: a.request_id,
        start_time: ISO(Number(a.start_time))?.replace('Z', '.000000'),
        user_id: a.user_id,
      };
      const admin = allowed(deps, req, 'os_compute_api:os-instance-actions:events', { project_id: inst.projectId });
      // 2.84: a failed event's message (the exception's, as the fault shows it), policy permitting.
      const details = mv(req, '2.84') && allowed(deps, req, 'os_compute_api:os-instance-actions:events:details', { project_id: inst.projectId });
      if (admin || mv(req, '2.51')) {
        body.events = r.events.map((e) => ({
          event: e.event,
          start_time: ISO(Number(e.start_time))?.replace('Z', '.000000'),
          finish_time: e.finish_time === null ? null : ISO(Number(e.finish_time))?.replace('Z', '.000000'),
          result: e.result,
          ...(admin ? { traceback: e.traceback } : {}),
          ...(admin && mv(req, '2.62') ? { host: e.host } : {}),
          // 2.62: everyone who sees events sees the obfuscated host, as servers show hostId.
          ...(mv(req, '2.62') ? { hostId: obfuscatedHost(inst.projectId, e.host) } : {}),
          ...(details ? { details: e.details } : {}),
        }));
      }
      return { instanceAction: body };
    });
  }
}
