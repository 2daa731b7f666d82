import type { Kysely } from 'kysely';

/**
 * Moved on whenever a compute host writes its hypervisor record (at its start): the scheduler
 * reads every host's service row per boot, and with it reads the records (JSON) only of the
 * hosts whose generation moved since it last parsed them, in this process or another.
 */
export const migration = {
  version: 9,
  name: 'hypervisor-generation',
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('services').addColumn('hypervisor_generation', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  },
};
