import type { CreateTableBuilder } from 'kysely';
import { timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * The id and upstream's standard attributes (project, name, description,
 * revision, timestamps) that every Neutron API resource table starts with.
 * Changing it changes what later migrations create: add columns in a new
 * migration instead.
 */
export function withStandardColumns<T extends string>(t: CreateTableBuilder<T, any>, dialect: Dialect): CreateTableBuilder<T, any> {
  const time = timestampColumn(dialect);
  return t
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('project_id', 'varchar(255)')
    .addColumn('name', 'varchar(255)', (c) => c.notNull().defaultTo(''))
    .addColumn('description', 'varchar(255)', (c) => c.notNull().defaultTo(''))
    .addColumn('revision_number', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', time, (c) => c.notNull())
    .addColumn('updated_at', time, (c) => c.notNull());
}
