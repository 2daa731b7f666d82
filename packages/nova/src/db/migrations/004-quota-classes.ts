import type { Kysely } from 'kysely';

/**
 * Quota classes (os-quota-class-sets): limits per class name; the `default` class
 * overrides the configured defaults of every project.
 */
export const migration = {
  version: 4,
  name: 'quota-classes',
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('quota_classes')
      .addColumn('class_name', 'varchar(255)', (c) => c.notNull())
      .addColumn('resource', 'varchar(255)', (c) => c.notNull())
      .addColumn('hard_limit', 'integer', (c) => c.notNull())
      .addPrimaryKeyConstraint('quota_classes_pk', ['class_name', 'resource'])
      .execute();
  },
};
