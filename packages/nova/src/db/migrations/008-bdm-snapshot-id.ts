import type { Kysely } from 'kysely';

/** The snapshot a boot volume is to be made of (source_type snapshot), as upstream's block_device_mapping keeps it. */
export const migration = {
  version: 8,
  name: 'bdm-snapshot-id',
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('block_device_mapping').addColumn('snapshot_id', 'varchar(36)').execute();
  },
};
