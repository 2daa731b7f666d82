import type { Kysely } from 'kysely';
import { bigTextColumn, booleanColumn, jsonColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * The image catalogue: images with their free-form properties, tags, store
 * locations and members, and the import tasks that hold an image's import
 * lock. Deleted images stay as rows with deleted = 1 (as upstream keeps them),
 * so an id is never reused; their properties, tags, locations and members go.
 */
export const migration = {
  version: 1,
  name: 'initial',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const s = db.schema;
    await s
      .createTable('image')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)')
      .addColumn('disk_format', 'varchar(20)')
      .addColumn('container_format', 'varchar(20)')
      .addColumn('size', 'bigint')
      .addColumn('virtual_size', 'bigint')
      .addColumn('status', 'varchar(30)', (c) => c.notNull())
      .addColumn('visibility', 'varchar(20)', (c) => c.notNull())
      .addColumn('checksum', 'varchar(32)')
      .addColumn('os_hash_algo', 'varchar(64)')
      .addColumn('os_hash_value', 'varchar(128)')
      .addColumn('min_disk', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('min_ram', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('owner', 'varchar(255)')
      .addColumn('protected', booleanColumn(dialect), (c) => c.notNull().defaultTo(0))
      .addColumn('os_hidden', booleanColumn(dialect), (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', timestampColumn(dialect), (c) => c.notNull())
      .addColumn('updated_at', timestampColumn(dialect), (c) => c.notNull())
      .addColumn('deleted', booleanColumn(dialect), (c) => c.notNull().defaultTo(0))
      .addColumn('deleted_at', timestampColumn(dialect))
      .execute();
    for (const [name, columns] of [
      ['image_owner', ['owner']],
      ['image_status', ['status']],
      ['image_visibility', ['visibility']],
      ['image_created', ['created_at', 'id']],
      ['image_name', ['name']],
      ['image_checksum', ['checksum']],
      ['image_os_hash_value', ['os_hash_value']],
    ] as const) {
      await s.createIndex(name).on('image').columns([...columns]).execute();
    }
    await s
      .createTable('image_property')
      .addColumn('image_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('value', bigTextColumn(dialect), (c) => c.notNull())
      .addPrimaryKeyConstraint('image_property_pk', ['image_id', 'name'])
      .execute();
    await s.createIndex('image_property_name').on('image_property').column('name').execute();
    await s
      .createTable('image_tag')
      .addColumn('image_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('value', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('image_tag_pk', ['image_id', 'value'])
      .execute();
    await s.createIndex('image_tag_value').on('image_tag').column('value').execute();
    await s
      .createTable('image_location')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('image_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('store', 'varchar(255)', (c) => c.notNull())
      .addColumn('url', bigTextColumn(dialect), (c) => c.notNull())
      .addColumn('created_at', timestampColumn(dialect), (c) => c.notNull())
      .execute();
    await s.createIndex('image_location_image').on('image_location').column('image_id').execute();
    await s
      .createTable('image_member')
      .addColumn('image_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('member', 'varchar(255)', (c) => c.notNull())
      .addColumn('status', 'varchar(20)', (c) => c.notNull())
      .addColumn('created_at', timestampColumn(dialect), (c) => c.notNull())
      .addColumn('updated_at', timestampColumn(dialect), (c) => c.notNull())
      .addPrimaryKeyConstraint('image_member_pk', ['image_id', 'member'])
      .execute();
    await s.createIndex('image_member_member').on('image_member').columns(['member', 'status']).execute();
    await s
      .createTable('task')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('image_id', 'varchar(36)', (c) => c.notNull())
      .addColumn('type', 'varchar(30)', (c) => c.notNull())
      .addColumn('status', 'varchar(30)', (c) => c.notNull())
      .addColumn('owner', 'varchar(255)')
      .addColumn('user_id', 'varchar(64)')
      .addColumn('request_id', 'varchar(64)')
      .addColumn('input', jsonColumn(dialect), (c) => c.notNull())
      .addColumn('result', jsonColumn(dialect))
      .addColumn('message', bigTextColumn(dialect), (c) => c.notNull())
      .addColumn('expires_at', timestampColumn(dialect))
      .addColumn('created_at', timestampColumn(dialect), (c) => c.notNull())
      .addColumn('updated_at', timestampColumn(dialect), (c) => c.notNull())
      .execute();
    await s.createIndex('task_image').on('task').column('image_id').execute();
  },
};
