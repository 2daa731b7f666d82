import type { RouterTables } from './router-schema.ts';
import type { SecurityGroupTables } from './security-group-schema.ts';

/**
 * Row types of Neutron's schema (see migrations/001-initial.ts). Booleans are
 * 0/1, times are epoch milliseconds, JSON columns are text. Other areas
 * (routers, security groups) extend NeutronDB with their own tables:
 * `type MyDB = NeutronDB & { routers: RouterRow }`.
 */
export interface StandardRow {
  id: string;
  project_id: string | null;
  name: string;
  description: string;
  revision_number: number;
  created_at: number;
  updated_at: number;
}

export interface NetworkRow extends StandardRow {
  status: string;
  admin_state_up: number;
  shared: number;
  router_external: number;
  is_default: number;
  mtu: number;
  port_security_enabled: number;
  availability_zone_hints: string;
  dns_domain: string | null;
}

export interface SegmentRow {
  id: string;
  network_id: string;
  network_type: string;
  physical_network: string | null;
  segmentation_id: number | null;
  segment_index: number;
}

export interface VlanAllocationRow {
  physical_network: string;
  vlan_id: number;
  allocated: number;
}

export interface VxlanAllocationRow {
  vxlan_vni: number;
  allocated: number;
}

export interface FlatAllocationRow {
  physical_network: string;
}

export interface SubnetPoolRow extends StandardRow {
  ip_version: number;
  default_prefixlen: number;
  min_prefixlen: number;
  max_prefixlen: number;
  shared: number;
  is_default: number;
  default_quota: number | null;
  address_scope_id: string | null;
  prefixes: string;
}

export interface SubnetRow extends StandardRow {
  network_id: string;
  ip_version: number;
  cidr: string;
  gateway_ip: string | null;
  enable_dhcp: number;
  ipv6_ra_mode: string | null;
  ipv6_address_mode: string | null;
  subnetpool_id: string | null;
  segment_id: string | null;
  allocation_pools: string;
  dns_nameservers: string;
  host_routes: string;
  service_types: string;
}

export interface PortRow extends StandardRow {
  network_id: string;
  mac_address: string;
  admin_state_up: number;
  status: string;
  device_id: string;
  device_owner: string;
  port_security_enabled: number;
  allowed_address_pairs: string;
  binding_host_id: string;
  binding_vif_type: string;
  binding_vif_details: string;
  binding_profile: string;
  binding_vnic_type: string;
  dns_name: string;
}

export interface IpAllocationRow {
  subnet_id: string;
  ip_address: string;
  port_id: string;
  network_id: string;
}

export interface PortSecurityGroupBindingRow {
  port_id: string;
  security_group_id: string;
}

export interface TagRow {
  resource_id: string;
  tag: string;
}

export interface QuotaRow {
  project_id: string;
  resource: string;
  limit: number;
}

/** The row a quota check locks (migrations/030-quota-locks.ts). */
export interface QuotaLockRow {
  project_id: string;
  resource: string;
  generation: number;
}

export interface RbacPolicyRow {
  id: string;
  project_id: string;
  object_type: string;
  object_id: string;
  action: string;
  target_project: string;
}

export interface AgentRow {
  id: string;
  agent_type: string;
  binary: string;
  topic: string;
  host: string;
  availability_zone: string | null;
  admin_state_up: number;
  description: string | null;
  configurations: string;
  resource_versions: string | null;
  load: number;
  resources_synced: number | null;
  created_at: number;
  started_at: number;
  heartbeat_timestamp: number;
}

export interface NeutronDB extends SecurityGroupTables, RouterTables {
  networks: NetworkRow;
  network_segments: SegmentRow;
  ml2_vlan_allocations: VlanAllocationRow;
  ml2_vxlan_allocations: VxlanAllocationRow;
  ml2_flat_allocations: FlatAllocationRow;
  subnetpools: SubnetPoolRow;
  subnets: SubnetRow;
  ports: PortRow;
  ipallocations: IpAllocationRow;
  port_security_group_bindings: PortSecurityGroupBindingRow;
  tags: TagRow;
  quotas: QuotaRow;
  quota_locks: QuotaLockRow;
  rbac_policies: RbacPolicyRow;
  agents: AgentRow;
}
