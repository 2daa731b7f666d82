import type { Kysely } from 'kysely';

/**
 * The whole identity schema. Portable across SQLite, PostgreSQL and MariaDB:
 * times are integer milliseconds since the epoch, booleans are 0/1 integers,
 * free-form attributes are JSON text (see packages/core/src/db).
 * Domains are rows of `project` with is_domain = 1 and domain_id = ROOT_DOMAIN,
 * as upstream stores them, so one unique index covers both name spaces.
 */
export const migration = {
  version: 1,
  name: 'initial',
  async up(db: Kysely<any>): Promise<void> {
    const s = db.schema;
    await s
      .createTable('project')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(64)', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('domain_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('parent_id', 'varchar(64)')
      .addColumn('is_domain', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('options', 'text', (c) => c.notNull().defaultTo('{}'))
      .addUniqueConstraint('project_domain_name', ['domain_id', 'name'])
      .execute();
    await s.createIndex('project_parent').on('project').column('parent_id').execute();
    await s
      .createTable('project_tag')
      .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addPrimaryKeyConstraint('project_tag_pk', ['project_id', 'name'])
      .execute();

    await s
      .createTable('user')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('domain_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('default_project_id', 'varchar(64)')
      .addColumn('description', 'text')
      .addColumn('email', 'varchar(255)')
      .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('options', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('last_active_at', 'bigint')
      .addColumn('failed_auth_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('failed_auth_at', 'bigint')
      .addUniqueConstraint('user_domain_name', ['domain_id', 'name'])
      .execute();
    await s
      .createTable('password')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('hash', 'varchar(255)', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint')
      .addColumn('self_service', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await s.createIndex('password_user').on('password').column('user_id').execute();

    await s
      .createTable('group')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('domain_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('name', 'varchar(64)', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
      .addUniqueConstraint('group_domain_name', ['domain_id', 'name'])
      .execute();
    await s
      .createTable('user_group_membership')
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('group_id', 'varchar(64)', (c) => c.notNull())
      .addPrimaryKeyConstraint('user_group_pk', ['user_id', 'group_id'])
      .execute();
    await s.createIndex('membership_group').on('user_group_membership').column('group_id').execute();

    await s
      .createTable('role')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('domain_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('options', 'text', (c) => c.notNull().defaultTo('{}'))
      .addUniqueConstraint('role_domain_name', ['domain_id', 'name'])
      .execute();
    await s
      .createTable('implied_role')
      .addColumn('prior_role_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('implied_role_id', 'varchar(64)', (c) => c.notNull())
      .addPrimaryKeyConstraint('implied_role_pk', ['prior_role_id', 'implied_role_id'])
      .execute();
    // type: UserProject, GroupProject, UserDomain, GroupDomain, UserSystem, GroupSystem
    await s
      .createTable('assignment')
      .addColumn('type', 'varchar(16)', (c) => c.notNull())
      .addColumn('actor_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('target_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('role_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('inherited', 'integer', (c) => c.notNull().defaultTo(0))
      .addPrimaryKeyConstraint('assignment_pk', ['type', 'actor_id', 'target_id', 'role_id', 'inherited'])
      .execute();
    await s.createIndex('assignment_actor').on('assignment').column('actor_id').execute();
    await s.createIndex('assignment_target').on('assignment').column('target_id').execute();
    await s.createIndex('assignment_role').on('assignment').column('role_id').execute();

    await s
      .createTable('region')
      .addColumn('id', 'varchar(255)', (c) => c.primaryKey())
      .addColumn('description', 'text')
      .addColumn('parent_region_id', 'varchar(255)')
      .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();
    await s
      .createTable('service')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('type', 'varchar(255)', (c) => c.notNull())
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();
    await s
      .createTable('endpoint')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('interface', 'varchar(8)', (c) => c.notNull())
      .addColumn('service_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('url', 'text', (c) => c.notNull())
      .addColumn('region_id', 'varchar(255)')
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();

    await s
      .createTable('application_credential')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('name', 'varchar(255)', (c) => c.notNull())
      .addColumn('secret_hash', 'varchar(255)', (c) => c.notNull())
      .addColumn('description', 'text')
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(64)')
      .addColumn('system', 'varchar(64)')
      .addColumn('expires_at', 'bigint')
      .addColumn('unrestricted', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addUniqueConstraint('app_cred_user_name', ['user_id', 'name'])
      .execute();
    await s
      .createTable('application_credential_role')
      .addColumn('application_credential_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('role_id', 'varchar(64)', (c) => c.notNull())
      .addPrimaryKeyConstraint('app_cred_role_pk', ['application_credential_id', 'role_id'])
      .execute();
    await s
      .createTable('access_rule')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('service', 'varchar(64)', (c) => c.notNull())
      .addColumn('path', 'varchar(128)', (c) => c.notNull())
      .addColumn('method', 'varchar(16)', (c) => c.notNull())
      .addUniqueConstraint('access_rule_unique', ['user_id', 'service', 'path', 'method'])
      .execute();
    await s
      .createTable('application_credential_access_rule')
      .addColumn('application_credential_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('access_rule_id', 'varchar(64)', (c) => c.notNull())
      .addPrimaryKeyConstraint('app_cred_rule_pk', ['application_credential_id', 'access_rule_id'])
      .execute();

    await s
      .createTable('credential')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('project_id', 'varchar(64)')
      .addColumn('type', 'varchar(255)', (c) => c.notNull())
      .addColumn('encrypted_blob', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'varchar(64)', (c) => c.notNull())
      .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();
    await s.createIndex('credential_user').on('credential').column('user_id').execute();

    await s
      .createTable('registered_limit')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('service_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('region_id', 'varchar(255)')
      .addColumn('resource_name', 'varchar(255)', (c) => c.notNull())
      .addColumn('default_limit', 'integer', (c) => c.notNull())
      .addColumn('description', 'text')
      .execute();
    await s
      .createTable('project_limit')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('project_id', 'varchar(64)')
      .addColumn('domain_id', 'varchar(64)')
      .addColumn('service_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('region_id', 'varchar(255)')
      .addColumn('resource_name', 'varchar(255)', (c) => c.notNull())
      .addColumn('resource_limit', 'integer', (c) => c.notNull())
      .addColumn('description', 'text')
      .execute();

    await s
      .createTable('revocation_event')
      .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('domain_id', 'varchar(64)')
      .addColumn('project_id', 'varchar(64)')
      .addColumn('user_id', 'varchar(64)')
      .addColumn('role_id', 'varchar(64)')
      .addColumn('audit_id', 'varchar(32)')
      .addColumn('audit_chain_id', 'varchar(32)')
      .addColumn('issued_before', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint')
      .addColumn('revoked_at', 'bigint', (c) => c.notNull())
      .execute();
    await s.createIndex('revocation_revoked_at').on('revocation_event').column('revoked_at').execute();

    // Public ids for users and groups that live in LDAP (upstream's id_mapping).
    await s
      .createTable('id_mapping')
      .addColumn('public_id', 'varchar(64)', (c) => c.primaryKey())
      .addColumn('domain_id', 'varchar(64)', (c) => c.notNull())
      .addColumn('local_id', 'varchar(255)', (c) => c.notNull())
      .addColumn('entity_type', 'varchar(8)', (c) => c.notNull())
      .addUniqueConstraint('id_mapping_local', ['domain_id', 'local_id', 'entity_type'])
      .execute();
  },
};
