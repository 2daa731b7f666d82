import type { Clock } from '@onestack/core/clock.ts';
import { boolFromDb, type Database } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { BlockDeviceMappingRow, NovaDB } from '../db/schema.ts';
import type { ConnectionInfo } from './service-clients.ts';

/** One block device mapping (upstream's nova.objects.BlockDeviceMapping), volumes' rows in particular. */
export interface BlockDevice {
  /** 2.89's bdm_uuid. */
  uuid: string;
  instanceUuid: string;
  /** image, volume, snapshot or blank. */
  sourceType: string;
  /** local or volume. */
  destinationType: string;
  bootIndex: number | null;
  deviceName: string | null;
  volumeId: string | null;
  imageId: string | null;
  snapshotId?: string | null;
  volumeSize: number | null;
  deleteOnTermination: boolean;
  tag: string | null;
  attachmentId: string | null;
  connectionInfo: ConnectionInfo | null;
  volumeType: string | null;
  diskBus: string | null;
  deviceType: string | null;
  guestFormat: string | null;
  createdAt: number;
  updatedAt: number | null;
}

export type NewBlockDevice = Pick<BlockDevice, 'instanceUuid' | 'sourceType' | 'destinationType'> &
  Partial<Omit<BlockDevice, 'uuid' | 'instanceUuid' | 'sourceType' | 'destinationType' | 'createdAt' | 'updatedAt'>>;

export type BlockDevicePatch = Partial<Omit<BlockDevice, 'uuid' | 'instanceUuid' | 'createdAt' | 'updatedAt'>>;

function fromRow(r: BlockDeviceMappingRow): BlockDevice {
  return {
    uuid: r.id,
    instanceUuid: r.instance_uuid,
    sourceType: r.source_type,
    destinationType: r.destination_type,
    bootIndex: r.boot_index === null ? null : Number(r.boot_index),
    deviceName: r.device_name,
    volumeId: r.volume_id,
    imageId: r.image_id,
    snapshotId: r.snapshot_id,
    volumeSize: r.volume_size === null ? null : Number(r.volume_size),
    deleteOnTermination: boolFromDb(r.delete_on_termination),
    tag: r.tag,
    attachmentId: r.attachment_id,
    connectionInfo: r.connection_info ? (JSON.parse(r.connection_info) as ConnectionInfo) : null,
    volumeType: r.volume_type,
    diskBus: r.disk_bus,
    deviceType: r.device_type,
    guestFormat: r.guest_format,
    createdAt: Number(r.created_at),
    updatedAt: r.updated_at === null ? null : Number(r.updated_at),
  };
}

function toRow(b: BlockDevicePatch): Partial<BlockDeviceMappingRow> {
  const columns: [keyof BlockDevicePatch, keyof BlockDeviceMappingRow][] = [
    ['sourceType', 'source_type'],
    ['destinationType', 'destination_type'],
    ['bootIndex', 'boot_index'],
    ['deviceName', 'device_name'],
    ['volumeId', 'volume_id'],
    ['imageId', 'image_id'],
    ['snapshotId', 'snapshot_id'],
    ['volumeSize', 'volume_size'],
    ['tag', 'tag'],
    ['attachmentId', 'attachment_id'],
    ['volumeType', 'volume_type'],
    ['diskBus', 'disk_bus'],
    ['deviceType', 'device_type'],
    ['guestFormat', 'guest_format'],
  ];
  const row: Record<string, unknown> = {};
  for (const [k, col] of columns) if (b[k] !== undefined) row[col] = b[k];
  if (b.deleteOnTermination !== undefined) row.delete_on_termination = b.deleteOnTermination ? 1 : 0;
  if (b.connectionInfo !== undefined) row.connection_info = b.connectionInfo === null ? null : JSON.stringify(b.connectionInfo);
  return row as Partial<BlockDeviceMappingRow>;
}

/** The block device mappings of instances: boot disks, and volumes attached at boot or later. */
export class BlockDevices {
  constructor(
    private readonly database: Database<NovaDB>,
    private readonly clock: Clock,
    private readonly ids: IdSource,
  ) {}

  async create(b: NewBlockDevice): Promise<BlockDevice> {
    const uuid = this.ids.uuid();
    const row = {
      delete_on_termination: 0,
      boot_index: null,
      device_name: null,
      volume_id: null,
      image_id: null,
      snapshot_id: null,
      volume_size: null,
      tag: null,
      attachment_id: null,
      connection_info: null,
      volume_type: null,
      disk_bus: null,
      device_type: null,
      guest_format: null,
      ...toRow(b),
      id: uuid,
      instance_uuid: b.instanceUuid,
      source_type: b.sourceType,
      destination_type: b.destinationType,
      created_at: this.clock.now(),
      updated_at: null,
    };
    await this.database.db.insertInto('block_device_mapping').values(row).execute();
    return (await this.find(uuid))!;
  }

  async find(uuid: string): Promise<BlockDevice | undefined> {
    const r = await this.database.db.selectFrom('block_device_mapping').selectAll().where('id', '=', uuid).executeTakeFirst();
    return r && fromRow(r);
  }

  /** Boot order first (boot_index 0 …), then the others as they were made. */
  async forInstance(instanceUuid: string): Promise<BlockDevice[]> {
    const rows = await this.database.db.selectFrom('block_device_mapping').selectAll().where('instance_uuid', '=', instanceUuid).orderBy('created_at').orderBy('id').execute();
    const order = (b: BlockDevice) => (b.bootIndex === null || b.bootIndex < 0 ? Number.MAX_SAFE_INTEGER : b.bootIndex);
    return rows.map(fromRow).sort((a, b) => order(a) - order(b));
  }

  /** The instance's mapping of a volume (a volume is mapped at most once per instance). */
  async byVolume(instanceUuid: string, volumeId: string): Promise<BlockDevice | undefined> {
    const r = await this.database.db.selectFrom('block_device_mapping').selectAll().where('instance_uuid', '=', instanceUuid).where('volume_id', '=', volumeId).executeTakeFirst();
    return r && fromRow(r);
  }

  /** Every instance's mapping of a volume (more than one only for multiattach volumes). */
  async forVolume(volumeId: string): Promise<BlockDevice[]> {
    return (await this.database.db.selectFrom('block_device_mapping').selectAll().where('volume_id', '=', volumeId).orderBy('created_at').execute()).map(fromRow);
  }

  async update(uuid: string, patch: BlockDevicePatch): Promise<void> {
    await this.database.db.updateTable('block_device_mapping').set({ ...toRow(patch), updated_at: this.clock.now() }).where('id', '=', uuid).execute();
  }

  async delete(uuid: string): Promise<void> {
    await this.database.db.deleteFrom('block_device_mapping').where('id', '=', uuid).execute();
  }

  async deleteForInstance(instanceUuid: string): Promise<void> {
    await this.database.db.deleteFrom('block_device_mapping').where('instance_uuid', '=', instanceUuid).execute();
  }
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/**
 * The next free virtio disk name, as upstream's libvirt driver picks it: the root disk is
 * vda, the flavor's ephemeral and swap disks follow, then volumes in the first free slot.
 * Upstream gives up after 26 (one letter); so does this. undefined: none left.
 */
export function nextDeviceName(taken: (string | null)[], flavor: { ephemeral: number; swap: number }): string | undefined {
  const used = new Set(taken.filter((t): t is string => !!t).map((t) => t.replace(/^\/dev\//, '')));
  used.add('vda');
  const local = (flavor.ephemeral > 0 ? 1 : 0) + (flavor.swap > 0 ? 1 : 0);
  for (let i = 1; i <= local; i++) used.add(`vd${LETTERS[i]}`);
  for (const l of LETTERS) if (!used.has(`vd${l}`)) return `/dev/vd${l}`;
  return undefined;
}
