import type { Kysely } from 'kysely';
import { timestampColumn, type Dialect } from '@onestack/core/db/index.ts';

/**
 * Console auth tokens (upstream's console_auth_tokens): only the token's SHA-256 is kept,
 * so a database dump hands out no console. Stored rather than held in memory so any
 * console proxy process can validate what any API process issued.
 */
export const migration = {
  version: 6,
  name: 'console-auth-tokens',
  async up(db: Kysely<any>, dialect: Dialect): Promise<void> {
    const ts = timestampColumn(dialect);
    await db.schema
      .createTable('console_auth_tokens')
      .addColumn('token_hash', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('console_type', 'varchar(255)', (c) => c.notNull())
      .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
      .addColumn('host', 'varchar(255)')
      .addColumn('port', 'integer')
      .addColumn('internal_access_path', 'varchar(255)')
      .addColumn('netns', 'varchar(255)')
      .addColumn('access_url_base', 'varchar(255)', (c) => c.notNull())
      .addColumn('expires', ts, (c) => c.notNull())
      .addColumn('created_at', ts, (c) => c.notNull())
      .execute();
    await db.schema.createIndex('console_auth_tokens_instance_idx').on('console_auth_tokens').column('instance_uuid').execute();
  },
};
