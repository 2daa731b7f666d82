import type { Kysely } from 'kysely';
import { booleanColumn, timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/** User messages (3.3) as upstream's messages table: what failed, for the project that asked, until expires_at. */
export const migration = {
  version: 6,
  name: 'messages',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const ts = timestampColumn(dialect);
    await db.schema
      .createTable('messages')
      .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
      .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('request_id', 'varchar(255)')
      .addColumn('resource_type', 'varchar(36)')
      .addColumn('resource_uuid', 'varchar(255)')
      .addColumn('event_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('action_id', 'varchar(10)')
      .addColumn('detail_id', 'varchar(10)')
      .addColumn('message_level', 'varchar(255)')
      .addColumn('created_at', ts, (c) => c.notNull())
      .addColumn('expires_at', ts)
      .addColumn('deleted', booleanColumn(dialect), (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('messages_project').on('messages').columns(['project_id', 'deleted']).execute();
  },
};
