import type { Kysely } from 'kysely';
import { timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * Placement's own schema (its own database, as upstream's placement is a service of
 * its own): providers in trees, their inventories, traits and aggregates, consumers
 * with their generations and the allocations they hold. Standard resource classes
 * and traits live in code; only custom ones are rows.
 */
export const migration = {
  version: 1,
  name: 'initial',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    const ts = timestampColumn(dialect);
    await s
      .createTable('resource_providers')
      .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(200)', (c) => c.notNull().unique())
      .addColumn('generation', 'integer', (c) => c.notNull())
      .addColumn('parent_provider_uuid', 'varchar(36)')
      .addColumn('root_provider_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .execute();
    await s.createIndex('resource_providers_parent').on('resource_providers').column('parent_provider_uuid').execute();
    await s.createIndex('resource_providers_root').on('resource_providers').column('root_provider_uuid').execute();
    await s
      .createTable('inventories')
      .addColumn('resource_provider_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('resource_class', 'varchar(255)', (c) => c.notNull())
      .addColumn('total', 'bigint', (c) => c.notNull())
      .addColumn('reserved', 'bigint', (c) => c.notNull())
      .addColumn('min_unit', 'bigint', (c) => c.notNull())
      .addColumn('max_unit', 'bigint', (c) => c.notNull())
      .addColumn('step_size', 'bigint', (c) => c.notNull())
      .addColumn('allocation_ratio', 'double precision', (c) => c.notNull())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .addPrimaryKeyConstraint('inventories_pk', ['resource_provider_uuid', 'resource_class'])
      .execute();
    await s
      .createTable('consumers')
      .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('generation', 'integer', (c) => c.notNull())
      .addColumn('consumer_type', 'varchar(255)')
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .execute();
    await s.createIndex('consumers_project_user').on('consumers').columns(['project_id', 'user_id']).execute();
    await s
      .createTable('allocations')
      .addColumn('consumer_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('resource_provider_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('resource_class', 'varchar(255)', (c) => c.notNull())
      .addColumn('used', 'bigint', (c) => c.notNull())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .addPrimaryKeyConstraint('allocations_pk', ['consumer_uuid', 'resource_provider_uuid', 'resource_class'])
      .execute();
    await s.createIndex('allocations_provider_class').on('allocations').columns(['resource_provider_uuid', 'resource_class']).execute();
    await s
      .createTable('resource_classes')
      .addColumn('name', 'varchar(255)', (c) => c.primaryKey())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .execute();
    await s
      .createTable('traits')
      .addColumn('name', 'varchar(255)', (c) => c.primaryKey())
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('updated_at', ts, (c) => c.notNull())
      .execute();
    await s
      .createTable('resource_provider_traits')
      .addColumn('resource_provider_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('trait', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('resource_provider_traits_pk', ['resource_provider_uuid', 'trait'])
      .execute();
    await s.createIndex('resource_provider_traits_trait').on('resource_provider_traits').column('trait').execute();
    await s
      .createTable('resource_provider_aggregates')
      .addColumn('resource_provider_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('aggregate_uuid', 'varchar(36)', (c) => c.notNull())
      .addPrimaryKeyConstraint('resource_provider_aggregates_pk', ['resource_provider_uuid', 'aggregate_uuid'])
      .execute();
    await s.createIndex('resource_provider_aggregates_agg').on('resource_provider_aggregates').column('aggregate_uuid').execute();
  },
};
