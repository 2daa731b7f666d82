import type { StandardRow } from './schema.ts';

/** Rows of migrations/010-security-groups.ts. */
export interface SecurityGroupRow extends StandardRow {
  stateful: number;
}

export interface DefaultSecurityGroupRow {
  project_id: string;
  security_group_id: string;
}

export interface SecurityGroupRuleRow {
  id: string;
  project_id: string | null;
  description: string;
  revision_number: number;
  created_at: number;
  updated_at: number;
  security_group_id: string;
  direction: string;
  ethertype: string;
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
  remote_group_id: string | null;
  remote_address_group_id: string | null;
}

export interface SecurityGroupTables {
  security_groups: SecurityGroupRow;
  default_security_groups: DefaultSecurityGroupRow;
  security_group_rules: SecurityGroupRuleRow;
}
