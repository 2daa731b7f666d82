import type { Kysely } from 'kysely';
import { timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * Host aggregates (upstream's API database tables): integer ids as the API shows them
 * (2.41 adds the uuid), member hosts by compute host name, and metadata whose
 * `availability_zone` key makes the availability zone of the aggregate's hosts.
 */
export const migration = {
  version: 3,
  name: 'aggregates',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    const ts = timestampColumn(dialect);
    await s
      .createTable('aggregates')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('uuid', 'varchar(36)', (c) => c.notNull().unique())
      .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts)
      .execute();
    await s
      .createTable('aggregate_hosts')
      .addColumn('aggregate_id', 'integer', (c) => c.notNull())
      .addColumn('host', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('aggregate_hosts_pk', ['aggregate_id', 'host'])
      .execute();
    await s.createIndex('aggregate_hosts_host_idx').on('aggregate_hosts').column('host').execute();
    await s
      .createTable('aggregate_metadata')
      .addColumn('aggregate_id', 'integer', (c) => c.notNull())
      .addColumn('key', 'varchar(255)', (c) => c.notNull())
      .addColumn('value', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('aggregate_metadata_pk', ['aggregate_id', 'key'])
      .execute();
  },
};
