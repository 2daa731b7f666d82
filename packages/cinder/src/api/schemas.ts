import type { FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import { isAtLeast } from '@onestack/core/http/microversion.ts';
import { pyRepr, UpstreamSchemaValidator, type UpstreamFormat } from '@onestack/core/http/upstream-schema.ts';

/**
 * upstream's request body schemas (cinder/api/schemas/*.py and
 * validation/parameter_types.py), key order kept: the first error reported
 * is the one Python's validator meets first.
 */

const DB_MAX_INT = 2147483647;
const UUID_LIKE = /^[0-9a-f]{32}$/;

/** oslo's check_string_length, raised as upstream's InvalidInput. */
function lengthChecked(field: string, max: number): UpstreamFormat {
  return {
    check: (v) => typeof v !== 'string' || v.trim().length <= max,
    error: (v) => badRequest(`Invalid input received: ${field} has ${String(v).trim().length} characters, more than ${max}.`),
  };
}

/** upstream's InvalidName, whose message replaces the validation one. */
function nameChecked(trim: boolean): UpstreamFormat {
  const why = (v: unknown) => {
    const s = String(v ?? '');
    if (!s) return "The 'name' can not be None.";
    if (!s.trim()) return "The 'name' can not be empty.";
    if (trim && s.trim().length > 255) return "The 'name' can not be greater than 255 characters.";
    return undefined;
  };
  return { check: (v) => why(v) === undefined, error: (v) => badRequest(`An invalid 'name' value was provided. ${why(v)}`) };
}

/** A status format of upstream's validators: InvalidParameterValue with the valid list. */
function statusChecked(what: string, valid: readonly string[], emptyOk: boolean): UpstreamFormat {
  return {
    check: (v) => (emptyOk && !v) || valid.includes(String(v ?? '').toLowerCase()),
    error: (v) => badRequest(`${what}: ${pyRepr(v ?? null).replace(/^'(.*)'$/, '$1')} is invalid, valid statuses are: ${pyRepr(valid)}.`),
  };
}

/**
 * upstream's _validate_progress: `N%` with 0 <= N <= 100; its InvalidInput escapes the schema
 * check, so the answer is the plain "Invalid input received" 400 with one of its two wordings.
 */
function progressChecked(): UpstreamFormat {
  const why = (v: unknown): string | undefined => {
    const p = String(v ?? '');
    if (!p) return undefined;
    const n = p.slice(0, -1).trim();
    if (!/^[+-]?\d+$/.test(n)) return 'progress must be an integer percentage';
    if (Number(n) < 0 || Number(n) > 100 || !p.endsWith('%')) return 'progress must be an integer percentage between 0 and 100';
    return undefined;
  };
  return { check: (v) => why(v) === undefined, error: (v) => badRequest(`Invalid input received: ${why(v)}`) };
}

export const VOLUME_STATUSES = ['creating', 'available', 'deleting', 'error', 'error_deleting', 'error_managing', 'managing', 'attaching', 'in-use', 'detaching', 'maintenance', 'restoring-backup', 'error_restoring', 'reserved', 'awaiting-transfer', 'backing-up', 'error_backing-up', 'error_extending', 'downloading', 'uploading', 'retyping', 'extending'] as const;
export const SNAPSHOT_STATUSES = ['error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'error_deleting', 'unmanaging', 'backing-up', 'restoring'] as const;
const MIGRATION_STATUSES = ['migrating', 'error', 'success', 'completing', 'none', 'starting'];

const validator = new UpstreamSchemaValidator({
  formats: {
    uuid: { check: (v) => UUID_LIKE.test(String(v).toLowerCase().replace(/^urn:/, '').replace(/^uuid:/, '').replace(/[{}-]/g, '')) },
    name: nameChecked(false),
    name_skip_leading_trailing_spaces: nameChecked(true),
    name_non_mandatory_remove_white_spaces: lengthChecked('name', 255),
    description_non_mandatory_remove_white_spaces: lengthChecked('description', 255),
    volume_status: statusChecked('Volume status', VOLUME_STATUSES, true),
    volume_attach_status: statusChecked('Volume attach status', ['attached', 'detached'], true),
    volume_migration_status: statusChecked('Volume migration status', MIGRATION_STATUSES, true),
    snapshot_status: statusChecked('Snapshot status', SNAPSHOT_STATUSES, false),
    backup_status: statusChecked('Backup status', ['available', 'error'], false),
    progress: progressChecked(),
    base64: { check: (v) => typeof v === 'string' },
    mysql_text: { check: (v) => Buffer.byteLength(String(v)) <= 65535 },
  },
});

/** One schema and the microversions it applies to (upstream's @validation.schema(schema, min, max)). */
export type Versioned = readonly { schema: object; min?: string; max?: string }[];

/**
 * upstream's @validation.schema decorators of a handler: the schema whose range
 * holds the request's microversion checks the body (none: the body passes).
 */
export function validBody<T = Record<string, unknown>>(req: FastifyRequest, schemas: Versioned | object): T {
  const body = req.body ?? {};
  const list = Array.isArray(schemas) ? (schemas as Versioned) : [{ schema: schemas }];
  const v = req.ctx.microversion;
  const chosen = list.find((s) => (!s.min || isAtLeast(v, s.min)) && (!s.max || !isAtLeast(v, next(s.max))));
  if (chosen) validator.check(chosen.schema, body);
  return body as T;
}

/** The version after `x.y` (upstream's ranges are inclusive; isAtLeast compares from below). */
function next(version: string): string {
  const [major, minor] = version.split('.').map(Number);
  return `${major}.${minor + 1}`;
}

// ---- parameter_types
const str = (o: Record<string, unknown> = {}) => ({ type: 'string', ...o });
const uuid = { type: 'string', format: 'uuid' };
const boolean = {
  type: ['boolean', 'string'],
  enum: [true, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', 'y', 't', false, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no', 'n', 'f'],
};
const name = { type: 'string', minLength: 1, maxLength: 255, format: 'name' };
const updateName = { type: ['string', 'null'], minLength: 1, maxLength: 255 };
// upstream's pattern admits printable characters only (no control characters).
const description = { type: ['string', 'null'], minLength: 0, maxLength: 255, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]*$' };
const specs = (key: string, value: object) => ({ type: 'object', patternProperties: { [key]: value }, additionalProperties: false });
const extraSpecs = specs('^[a-zA-Z0-9-_:. /]{1,255}$', { type: 'string', maxLength: 255 });
const extraSpecsWithNull = specs('^[a-zA-Z0-9-_:. /]{1,255}$', { type: ['string', 'null'], maxLength: 255 });
const extraSpecsNoSpacesKey = specs('^[a-zA-Z0-9-_:.]{1,255}$', { type: ['string', 'null'], minLength: 0, maxLength: 255 });
const nameAllowZeroMinLength = { type: ['string', 'null'], minLength: 0, maxLength: 255 };
const uuidAllowNull = { oneOf: [uuid, { type: 'null' }] };
const metadataAllowsNull = { ...extraSpecs, type: ['object', 'null'] };
const container = { type: ['string', 'null'], minLength: 0, maxLength: 255 };
const nullableString = { type: ['string', 'null'], minLength: 0, maxLength: 255 };
const volumeSize = { type: ['integer', 'string'], pattern: '^[0-9]+$', minimum: 1, maximum: DB_MAX_INT, numericString: true };
const volumeSizeAllowsNull = { ...volumeSize, type: ['integer', 'string', 'null'] };
const optionalUuid = { oneOf: [{ type: 'null' }, uuid] };
const availabilityZone = { type: ['string', 'null'], minLength: 1, maxLength: 255 };
const optionalBoolean = { oneOf: [{ type: 'null' }, boolean] };
const trimmedName = { type: ['string', 'null'], format: 'name_non_mandatory_remove_white_spaces' };
const trimmedDescription = { type: ['string', 'null'], format: 'description_non_mandatory_remove_white_spaces' };

/** `{ key: {properties, required?, …} }` as the whole body, nothing else beside it. */
function wrapped(key: string, inner: object, extra: Record<string, object> = {}) {
  return { type: 'object', properties: { [key]: inner, ...extra }, required: [key], additionalProperties: false };
}
const obj = (properties: Record<string, object>, rest: Record<string, unknown> = {}) => ({ type: 'object', properties, ...rest, additionalProperties: rest.additionalProperties ?? false });
const emptyAction = (key: string) => wrapped(key, {});

// ---- volumes (schemas/volumes.py)
const volumeCreateProps = {
  name: trimmedName,
  description: trimmedDescription,
  display_name: trimmedName,
  display_description: trimmedDescription,
  volume_type: nameAllowZeroMinLength,
  metadata: metadataAllowsNull,
  snapshot_id: optionalUuid,
  source_volid: optionalUuid,
  consistencygroup_id: optionalUuid,
  size: volumeSizeAllowsNull,
  availability_zone: availabilityZone,
  multiattach: optionalBoolean,
  image_id: { type: ['string', 'null'], minLength: 0, maxLength: 255 },
  imageRef: { type: ['string', 'null'], minLength: 0, maxLength: 255 },
};
const volumeCreate = (props: Record<string, object>, additional: boolean) =>
  wrapped('volume', { type: 'object', properties: props, additionalProperties: additional }, { 'OS-SCH-HNT:scheduler_hints': { type: ['object', 'null'] } });
const groupId = { group_id: { type: ['string', 'null'], minLength: 0, maxLength: 255 } };
export const VOLUME_CREATE: Versioned = [
  { schema: volumeCreate(volumeCreateProps, true), max: '3.12' },
  { schema: volumeCreate({ ...volumeCreateProps, ...groupId }, true), min: '3.13', max: '3.46' },
  { schema: volumeCreate({ ...volumeCreateProps, ...groupId, backup_id: optionalUuid }, true), min: '3.47', max: '3.52' },
  { schema: volumeCreate({ ...volumeCreateProps, ...groupId, backup_id: optionalUuid }, false), min: '3.53' },
];
const volumeUpdateProps = { name: trimmedName, description: trimmedDescription, display_name: trimmedName, display_description: trimmedDescription, metadata: extraSpecs };
export const VOLUME_UPDATE: Versioned = [
  { schema: wrapped('volume', obj(volumeUpdateProps)), max: '3.52' },
  { schema: wrapped('volume', { ...obj(volumeUpdateProps), anyOf: ['name', 'description', 'display_name', 'display_description', 'metadata'].map((k) => ({ required: [k] })) }), min: '3.53' },
];
export const VOLUME_REVERT = wrapped('revert', obj({ snapshot_id: { type: ['string', 'null'] } }, { additionalProperties: true }));

// ---- metadata (schemas/volume_metadata.py, snapshot_metadata.py)
export const VOLUME_METADATA = wrapped('metadata', extraSpecs);
export const VOLUME_META_ITEM = wrapped('meta', { ...extraSpecs, minProperties: 1, maxProperties: 1 });

// ---- volume actions (schemas/volume_actions.py, admin_actions.py)
export const VOLUME_ACTIONS: Record<string, Versioned | object> = {
  'os-attach': wrapped('os-attach', {
    type: 'object',
    properties: { instance_uuid: uuid, mountpoint: str({ minLength: 1, maxLength: 255 }), host_name: str({ maxLength: 255 }), mode: str({ enum: ['rw', 'ro'] }) },
    required: ['mountpoint'],
    anyOf: [{ required: ['instance_uuid'] }, { required: ['host_name'] }],
    additionalProperties: false,
  }),
  'os-detach': wrapped('os-detach', { type: ['object', 'null'], properties: { attachment_id: uuidAllowNull }, additionalProperties: false }),
  'os-reserve': emptyAction('os-reserve'),
  'os-unreserve': emptyAction('os-unreserve'),
  'os-begin_detaching': emptyAction('os-begin_detaching'),
  'os-roll_detaching': emptyAction('os-roll_detaching'),
  'os-extend': wrapped('os-extend', obj({ new_size: volumeSize }, { required: ['new_size'] })),
  'os-retype': wrapped('os-retype', obj({ new_type: str(), migration_policy: { type: ['string', 'null'], enum: ['on-demand', 'never'] } }, { required: ['new_type'] })),
  'os-set_bootable': wrapped('os-set_bootable', obj({ bootable: boolean }, { required: ['bootable'] })),
  'os-volume_upload_image': [
    { schema: uploadImage({}), max: '3.0' },
    { schema: uploadImage({ visibility: str({ enum: ['community', 'public', 'private', 'shared'] }), protected: boolean }), min: '3.1' },
  ],
  'os-initialize_connection': wrapped('os-initialize_connection', obj({ connector: { type: ['object', 'string'] } }, { required: ['connector'] })),
  'os-terminate_connection': wrapped('os-terminate_connection', obj({ connector: { type: ['string', 'object', 'null'] } }, { required: ['connector'] })),
  'os-update_readonly_flag': wrapped('os-update_readonly_flag', obj({ readonly: boolean }, { required: ['readonly'] })),
  revert: [{ schema: VOLUME_REVERT, min: '3.40' }],
  'os-force_delete': emptyAction('os-force_delete'),
  'os-unmanage': emptyAction('os-unmanage'),
  'os-reset_status': wrapped('os-reset_status', obj({ status: { type: ['string', 'null'], format: 'volume_status' }, attach_status: { type: ['string', 'null'], format: 'volume_attach_status' }, migration_status: { type: ['string', 'null'], format: 'volume_migration_status' } })),
  'os-migrate_volume': [
    { schema: wrapped('os-migrate_volume', obj({ host: str({ maxLength: 255 }), force_host_copy: boolean, lock_volume: boolean }, { required: ['host'] })), max: '3.15' },
    { schema: wrapped('os-migrate_volume', obj({ host: { type: ['string', 'null'], maxLength: 255 }, force_host_copy: boolean, lock_volume: boolean, cluster: nameAllowZeroMinLength })), min: '3.16' },
  ],
  'os-migrate_volume_completion': wrapped('os-migrate_volume_completion', obj({ new_volume: uuid, error: { type: ['string', 'null', 'boolean'] } }, { required: ['new_volume'] })),
};

function uploadImage(more: Record<string, object>) {
  return wrapped(
    'os-volume_upload_image',
    obj(
      { image_name: str({ minLength: 1, maxLength: 255 }), force: boolean, disk_format: str({ enum: ['raw', 'vmdk', 'vdi', 'qcow2', 'vhd', 'vhdx', 'ploop'] }), container_format: description, ...more },
      { required: ['image_name'] },
    ),
  );
}

// ---- snapshots (schemas/snapshots.py, admin_actions.py)
export const SNAPSHOT_CREATE = wrapped(
  'snapshot',
  obj({ name: nameAllowZeroMinLength, display_name: nameAllowZeroMinLength, description, volume_id: uuidAllowNull, force: boolean, metadata: metadataAllowsNull }, { required: ['volume_id'] }),
);
export const SNAPSHOT_UPDATE = wrapped('snapshot', {
  ...obj({ name: nameAllowZeroMinLength, description, display_name: nameAllowZeroMinLength, display_description: description }),
  anyOf: ['name', 'description', 'display_name', 'display_description'].map((k) => ({ required: [k] })),
});
const statusReset = (format: string) => wrapped('os-reset_status', obj({ status: { type: 'string', format } }, { required: ['status'] }));
export const SNAPSHOT_ACTIONS: Record<string, object> = {
  'os-reset_status': statusReset('snapshot_status'),
  'os-force_delete': emptyAction('os-force_delete'),
  'os-unmanage': emptyAction('os-unmanage'),
  // schemas/snapshot_actions.py: any status string (the action checks it), progress a percentage.
  'os-update_snapshot_status': wrapped('os-update_snapshot_status', obj({ status: { type: 'string' }, progress: { format: 'progress' } }, { required: ['status'] })),
};

// ---- backups (schemas/backups.py)
const backupCreateProps = { volume_id: uuid, container, description, incremental: boolean, force: boolean, name: nameAllowZeroMinLength, snapshot_id: uuidAllowNull };
const backupCreate = (more: Record<string, object>) => wrapped('backup', obj({ ...backupCreateProps, ...more }, { required: ['volume_id'] }));
export const BACKUP_CREATE: Versioned = [
  { schema: backupCreate({}), max: '3.42' },
  { schema: backupCreate({ metadata: metadataAllowsNull }), min: '3.43', max: '3.50' },
  { schema: backupCreate({ metadata: metadataAllowsNull, availability_zone: nullableString }), min: '3.51' },
];
const backupUpdate = (more: Record<string, object>) => wrapped('backup', { type: ['object', 'null'], properties: { name: nameAllowZeroMinLength, description, ...more }, additionalProperties: false });
export const BACKUP_UPDATE: Versioned = [
  { schema: backupUpdate({}), min: '3.9', max: '3.42' },
  { schema: backupUpdate({ metadata: extraSpecs }), min: '3.43' },
];
export const BACKUP_RESTORE = wrapped('restore', { type: ['object', 'null'], properties: { name: nameAllowZeroMinLength, volume_id: uuidAllowNull }, additionalProperties: false });
export const BACKUP_IMPORT = wrapped(
  'backup-record',
  obj({ backup_service: str({ minLength: 0, maxLength: 255 }), backup_url: str({ minLength: 1, format: 'base64' }) }, { required: ['backup_service', 'backup_url'] }),
);
export const BACKUP_ACTIONS: Record<string, object> = { 'os-reset_status': statusReset('backup_status'), 'os-force_delete': emptyAction('os-force_delete') };

// ---- attachments (schemas/attachments.py)
const attachmentCreate = (more: Record<string, object>) => wrapped('attachment', obj({ instance_uuid: uuid, connector: { type: ['object', 'null'] }, volume_uuid: uuid, ...more }, { required: ['volume_uuid'] }));
export const ATTACHMENT_CREATE: Versioned = [
  { schema: attachmentCreate({}), min: '3.27', max: '3.53' },
  { schema: attachmentCreate({ mode: str({ enum: ['rw', 'ro'] }) }), min: '3.54' },
];
export const ATTACHMENT_UPDATE = wrapped('attachment', obj({ connector: { type: 'object', minProperties: 1 } }, { required: ['connector'] }));
export const ATTACHMENT_COMPLETE = emptyAction('os-complete');

// ---- transfers (schemas/volume_transfer.py)
const transferName = { oneOf: [{ type: 'string', format: 'name_skip_leading_trailing_spaces' }, { type: 'null' }] };
/** os-volume-transfer (contrib) at every version; volume-transfers (3.55+) with no_snapshots. */
export const TRANSFER_CREATE = wrapped('transfer', obj({ volume_id: uuid, name: transferName }, { required: ['volume_id'] }));
export const TRANSFER_CREATE_V355 = wrapped('transfer', obj({ volume_id: uuid, name: transferName, no_snapshots: boolean }, { required: ['volume_id'] }));
export const TRANSFER_ACCEPT = wrapped('accept', obj({ auth_key: { type: ['string', 'integer'] } }, { required: ['auth_key'] }));

// ---- volume types (schemas/volume_types.py, types_extra_specs.py, volume_type_access.py)
export const TYPE_CREATE = wrapped('volume_type', obj({ name, description, extra_specs: extraSpecsWithNull, 'os-volume-type-access:is_public': boolean }, { required: ['name'] }));
export const TYPE_UPDATE = wrapped('volume_type', obj({ name: updateName, description, is_public: boolean }));
export const EXTRA_SPECS_CREATE = wrapped('extra_specs', extraSpecsNoSpacesKey);
export const EXTRA_SPEC_UPDATE = { ...extraSpecsNoSpacesKey, minProperties: 1, maxProperties: 1 };
const projectAccess = (key: string) => wrapped(key, obj({ project: str({ minLength: 1, maxLength: 255 }) }, { required: ['project'] }));
export const TYPE_ACCESS: Record<string, object> = { addProjectAccess: projectAccess('addProjectAccess'), removeProjectAccess: projectAccess('removeProjectAccess') };

// ---- quotas (schemas/quotas.py; the keys and values are checked by the route as upstream's quota_set format)
export const QUOTA_UPDATE = wrapped('quota_set', { type: 'object', minProperties: 1 });

/** The one key of an action body (upstream's action_peek: anything else is a malformed body). */
export function actionOf(req: FastifyRequest): string {
  const body = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length !== 1) throw badRequest('Malformed request body');
  return Object.keys(body)[0];
}
