/** Row types of the identity schema (see migrations/001-initial.ts for the conventions). */
export interface ProjectRow {
  id: string;
  name: string;
  description: string | null;
  enabled: number;
  domain_id: string;
  parent_id: string | null;
  is_domain: number;
  extra: string;
  options: string;
}
export interface ProjectTagRow {
  project_id: string;
  name: string;
}
export interface UserRow {
  id: string;
  domain_id: string;
  name: string;
  enabled: number;
  default_project_id: string | null;
  description: string | null;
  email: string | null;
  extra: string;
  options: string;
  created_at: number;
  last_active_at: number | null;
  failed_auth_count: number;
  failed_auth_at: number | null;
}
export interface PasswordRow {
  id: string;
  user_id: string;
  hash: string;
  created_at: number;
  expires_at: number | null;
  self_service: number;
}
export interface GroupRow {
  id: string;
  domain_id: string;
  name: string;
  description: string | null;
  extra: string;
}
export interface MembershipRow {
  user_id: string;
  group_id: string;
}
export interface RoleRow {
  id: string;
  name: string;
  domain_id: string;
  description: string | null;
  extra: string;
  options: string;
}
export interface ImpliedRoleRow {
  prior_role_id: string;
  implied_role_id: string;
}
export type AssignmentType = 'UserProject' | 'GroupProject' | 'UserDomain' | 'GroupDomain' | 'UserSystem' | 'GroupSystem';
export interface AssignmentRow {
  type: AssignmentType;
  actor_id: string;
  target_id: string;
  role_id: string;
  inherited: number;
}
export interface RegionRow {
  id: string;
  description: string | null;
  parent_region_id: string | null;
  extra: string;
}
export interface ServiceRow {
  id: string;
  type: string;
  enabled: number;
  extra: string;
}
export interface EndpointRow {
  id: string;
  interface: string;
  service_id: string;
  url: string;
  region_id: string | null;
  enabled: number;
  extra: string;
}
export interface ApplicationCredentialRow {
  id: string;
  name: string;
  secret_hash: string;
  description: string | null;
  user_id: string;
  project_id: string | null;
  system: string | null;
  expires_at: number | null;
  unrestricted: number;
  created_at: number;
}
export interface ApplicationCredentialRoleRow {
  application_credential_id: string;
  role_id: string;
}
export interface AccessRuleRow {
  id: string;
  user_id: string;
  service: string;
  path: string;
  method: string;
}
export interface ApplicationCredentialAccessRuleRow {
  application_credential_id: string;
  access_rule_id: string;
}
export interface CredentialRow {
  id: string;
  user_id: string;
  project_id: string | null;
  type: string;
  encrypted_blob: string;
  key_hash: string;
  extra: string;
}
export interface RegisteredLimitRow {
  id: string;
  service_id: string;
  region_id: string | null;
  resource_name: string;
  default_limit: number;
  description: string | null;
}
export interface ProjectLimitRow {
  id: string;
  project_id: string | null;
  domain_id: string | null;
  service_id: string;
  region_id: string | null;
  resource_name: string;
  resource_limit: number;
  description: string | null;
}
export interface RevocationEventRow {
  id: string;
  domain_id: string | null;
  project_id: string | null;
  user_id: string | null;
  role_id: string | null;
  audit_id: string | null;
  audit_chain_id: string | null;
  issued_before: number;
  expires_at: number | null;
  revoked_at: number;
}
export interface IdMappingRow {
  public_id: string;
  domain_id: string;
  local_id: string;
  entity_type: 'user' | 'group';
}

export interface CacheGenerationRow {
  id: number;
  value: number;
}

export interface KeystoneDB {
  project: ProjectRow;
  project_tag: ProjectTagRow;
  user: UserRow;
  password: PasswordRow;
  group: GroupRow;
  user_group_membership: MembershipRow;
  role: RoleRow;
  implied_role: ImpliedRoleRow;
  assignment: AssignmentRow;
  region: RegionRow;
  service: ServiceRow;
  endpoint: EndpointRow;
  application_credential: ApplicationCredentialRow;
  application_credential_role: ApplicationCredentialRoleRow;
  access_rule: AccessRuleRow;
  application_credential_access_rule: ApplicationCredentialAccessRuleRow;
  credential: CredentialRow;
  registered_limit: RegisteredLimitRow;
  project_limit: ProjectLimitRow;
  revocation_event: RevocationEventRow;
  id_mapping: IdMappingRow;
  cache_generation: CacheGenerationRow;
}

/** Upstream's marker for "this project row is a domain" in domain_id. */
export const ROOT_DOMAIN = '<<keystone.domain.root>>';
export const DEFAULT_DOMAIN_ID = 'default';
