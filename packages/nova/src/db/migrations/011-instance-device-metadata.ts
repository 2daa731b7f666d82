import type { Kysely } from 'kysely';
import { jsonColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * The guest's tagged devices with their bus and address, as the compute host last placed them
 * (upstream's instance_extra.device_metadata): meta_data.json's `devices`. NULL: none recorded.
 */
export const migration = {
  version: 11,
  name: 'instance-device-metadata',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    await db.schema.alterTable('instances').addColumn('device_metadata', jsonColumn(dialect)).execute();
  },
};
