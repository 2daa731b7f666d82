import type { Kysely } from 'kysely';

/**
 * Volume migration between backends as upstream: `_name_id` names the backend
 * data once a migration has swapped it in (the row keeps its id, the data keeps
 * the temporary volume's name), `previous_status` is what the volume returns to.
 */
export const migration = {
  version: 4,
  name: 'migration-fields',
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('volumes').addColumn('name_id', 'varchar(36)').execute();
    await db.schema.alterTable('volumes').addColumn('previous_status', 'varchar(255)').execute();
  },
};
