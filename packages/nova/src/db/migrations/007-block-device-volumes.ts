import type { ColumnDataType, Expression, Kysely } from 'kysely';
import { bigTextColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * What a volume block device mapping needs once volumes are attached: the connection
 * info the host was given (to reconnect after a restart and to disconnect), the volume
 * type a boot volume was made with, the bus/device type and guest format as upstream
 * keeps them, and when the row last changed. Each column alone: SQLite alters one at a time.
 */
export const migration = {
  version: 7,
  name: 'block-device-volumes',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const columns: [string, ColumnDataType | Expression<unknown>][] = [
      ['connection_info', bigTextColumn(dialect)],
      ['volume_type', 'varchar(255)'],
      ['disk_bus', 'varchar(255)'],
      ['device_type', 'varchar(255)'],
      ['guest_format', 'varchar(255)'],
      ['updated_at', timestampColumn(dialect)],
    ];
    for (const [name, type] of columns) await db.schema.alterTable('block_device_mapping').addColumn(name, type).execute();
    await db.schema.createIndex('bdm_volume').on('block_device_mapping').column('volume_id').execute();
  },
};
