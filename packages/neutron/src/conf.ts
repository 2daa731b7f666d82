import { join } from 'node:path';
import { defineGroup, opt, serviceAuthOptions } from '@onestack/core/config/index.ts';

export const TYPE_DRIVERS = ['local', 'flat', 'vlan', 'vxlan'] as const;
export type NetworkType = (typeof TYPE_DRIVERS)[number];

/**
 * Neutron's options in the [neutron] section, named as upstream's neutron.conf,
 * ml2_conf.ini and quota options ([ml2] type_drivers, [ml2_type_vlan]
 * network_vlan_ranges, [quotas] quota_network …) so an operator's knowledge
 * carries over.
 */
export const neutronOptions = defineGroup('neutron', {
  port: opt.port({ default: 9696, help: 'Port of the Networking API.' }),
  database_connection: opt.string({
    default: '',
    secret: true,
    help: 'Database URL (sqlite:///path, postgresql://…, mysql://…). Empty: <state_dir>/neutron/neutron.db.',
  }),
  host: opt.string({ default: '', help: 'Name of this host as agents report it ([DEFAULT] host). Empty: the hostname.' }),
  network_host: opt.string({
    default: '',
    help: 'The host whose agent serves DHCP and runs every router (static scheduling instead of upstream\'s DHCP/L3 agent schedulers); DHCP ports are bound to it. Empty: this server\'s host.',
  }),
  base_mac: opt.string({ default: 'fa:16:3e:00:00:00', help: 'MAC prefix of ports; the first three octets are kept, the rest random ([DEFAULT] base_mac).' }),
  mac_generation_retries: opt.int({ default: 16, min: 1, help: 'Attempts to find a free MAC on a network before giving up.' }),
  global_physnet_mtu: opt.int({ default: 1500, min: 68, help: 'MTU of the underlying physical networks ([DEFAULT] global_physnet_mtu).' }),
  type_drivers: opt.list({ default: [...TYPE_DRIVERS], choices: TYPE_DRIVERS, help: 'Network types this server can create ([ml2] type_drivers).' }),
  tenant_network_types: opt.list({ default: ['vxlan', 'local'], choices: TYPE_DRIVERS, help: 'Types tried in order for networks without provider attributes ([ml2] tenant_network_types).' }),
  mechanism_drivers: opt.list({ default: ['linuxbridge'], help: 'Mechanism drivers that bind ports, in order ([ml2] mechanism_drivers).' }),
  flat_networks: opt.list({ default: ['public'], help: "Physical networks flat networks may use; '*' allows any ([ml2_type_flat] flat_networks)." }),
  network_vlan_ranges: opt.list({
    default: ['physnet1:100:199'],
    help: 'physnet:min:max ranges tenant VLANs are allocated from, or a bare physnet for provider networks only ([ml2_type_vlan]).',
  }),
  vni_ranges: opt.list({ default: ['1:1000'], help: 'min:max VXLAN VNI ranges tenant networks are allocated from ([ml2_type_vxlan] vni_ranges).' }),
  physical_network_mtus: opt.list({ default: [], help: 'physnet:mtu pairs overriding global_physnet_mtu ([ml2] physical_network_mtus).' }),
  default_availability_zones: opt.list({ default: [], help: 'Availability zones of networks without hints.' }),
  dns_domain: opt.string({ default: 'openstacklocal', help: 'Domain of the DNS names of ports ([DEFAULT] dns_domain).' }),
  agent_down_time: opt.int({ default: 75, min: 1, help: 'Seconds after the last heartbeat an agent counts as down ([DEFAULT] agent_down_time).' }),
  allow_overlapping_ips: opt.bool({ default: true, help: 'Let projects use overlapping CIDRs ([DEFAULT] allow_overlapping_ips).' }),
  pagination_max_limit: opt.int({ default: -1, min: -1, help: 'Most items one list page returns; -1 is unlimited ([DEFAULT] pagination_max_limit).' }),
  max_fixed_ips_per_port: opt.int({ default: 5, min: 1, help: 'Most fixed IPs on one port.' }),
  max_allowed_address_pair: opt.int({ default: 10, min: 0, help: 'Most allowed address pairs on one port.' }),
  max_dns_nameservers: opt.int({ default: 5, min: 0, help: 'Most DNS servers per subnet.' }),
  max_subnet_host_routes: opt.int({ default: 20, min: 0, help: 'Most host routes per subnet.' }),
  dhcp_ports: opt.bool({ default: true, help: 'Create a network:dhcp port on each network with a DHCP-enabled subnet, as the DHCP agent does upstream.' }),
  default_quota: opt.int({ default: -1, min: -1, help: 'Quota of resources without their own option; -1 is unlimited ([quotas] default_quota).' }),
  quota_network: opt.int({ default: 100, min: -1, help: 'Networks per project ([quotas] quota_network).' }),
  quota_subnet: opt.int({ default: 100, min: -1, help: 'Subnets per project ([quotas] quota_subnet).' }),
  quota_port: opt.int({ default: 500, min: -1, help: 'Ports per project ([quotas] quota_port).' }),
  quota_subnetpool: opt.int({ default: -1, min: -1, help: 'Subnet pools per project.' }),
  quota_rbac_policy: opt.int({ default: 10, min: -1, help: 'RBAC policies per project ([quotas] quota_rbac_policy).' }),
  quota_router: opt.int({ default: 10, min: -1, help: 'Routers per project ([quotas] quota_router).' }),
  quota_floatingip: opt.int({ default: 50, min: -1, help: 'Floating IPs per project ([quotas] quota_floatingip).' }),
  quota_security_group: opt.int({ default: 10, min: -1, help: 'Security groups per project ([quotas] quota_security_group).' }),
  quota_security_group_rule: opt.int({ default: 100, min: -1, help: 'Security group rules per project ([quotas] quota_security_group_rule).' }),
  ...serviceAuthOptions('neutron'),
  policy_file: opt.string({ default: '', help: 'Policy overrides in upstream YAML format. Empty: <state_dir>/neutron/policy.yaml when it exists.' }),
  enforce_scope: opt.bool({ default: true, help: "Refuse tokens whose scope a rule does not list ([oslo_policy] enforce_scope)." }),
});

export interface VlanRange {
  physnet: string;
  /** Absent: the physnet takes provider VLANs only, none are allocated to tenants. */
  min?: number;
  max?: number;
}

export interface NeutronConfig {
  publicUrl: string;
  host: string;
  /** The host serving DHCP and routers. */
  networkHost: string;
  stateDir: string;
  baseMac: string;
  macGenerationRetries: number;
  globalPhysnetMtu: number;
  physnetMtus: Map<string, number>;
  typeDrivers: NetworkType[];
  tenantNetworkTypes: NetworkType[];
  mechanismDrivers: string[];
  flatNetworks: string[];
  vlanRanges: VlanRange[];
  vniRanges: { min: number; max: number }[];
  defaultAvailabilityZones: string[];
  dnsDomain: string;
  agentDownTimeMs: number;
  allowOverlappingIps: boolean;
  paginationMaxLimit: number;
  maxFixedIpsPerPort: number;
  maxAllowedAddressPair: number;
  maxDnsNameservers: number;
  maxSubnetHostRoutes: number;
  dhcpPorts: boolean;
  /** Default quotas by resource (network, subnet, port …); other engineers' resources are in here too. */
  quotas: Record<string, number>;
  defaultQuota: number;
  policyFile: string;
  enforceScope: boolean;
}

export type NeutronValues = { [K in keyof typeof neutronOptions.options]: unknown };

function range(text: string, what: string): { min: number; max: number } {
  const [a, b] = text.split(':').map((s) => Number(s.trim()));
  if (!Number.isInteger(a) || !Number.isInteger(b) || a > b || a < 1) throw new Error(`[neutron] ${what}: invalid range "${text}"`);
  return { min: a, max: b };
}

export function parseVlanRanges(entries: string[]): VlanRange[] {
  return entries.map((e) => {
    const [physnet, ...rest] = e.split(':');
    if (!physnet) throw new Error(`[neutron] network_vlan_ranges: invalid entry "${e}"`);
    if (rest.length === 0) return { physnet };
    const r = range(rest.join(':'), 'network_vlan_ranges');
    if (r.max > 4094) throw new Error(`[neutron] network_vlan_ranges: VLAN ids go up to 4094 ("${e}")`);
    return { physnet, ...r };
  });
}

export function neutronConfig(v: NeutronValues, o: { stateDir: string; publicUrl: string; hostname: string }): NeutronConfig {
  const dir = join(o.stateDir, 'neutron');
  const list = (k: keyof NeutronValues) => [...(v[k] as string[])];
  const vniRanges = list('vni_ranges').map((r) => range(r, 'vni_ranges'));
  for (const r of vniRanges) if (r.max > 16777215) throw new Error(`[neutron] vni_ranges: VNIs go up to 16777215 ("${r.min}:${r.max}")`);
  const baseMac = String(v.base_mac).toLowerCase();
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(baseMac)) throw new Error(`[neutron] base_mac: invalid MAC "${baseMac}"`);
  return {
    publicUrl: o.publicUrl,
    host: String(v.host || o.hostname),
    networkHost: String(v.network_host || v.host || o.hostname),
    stateDir: o.stateDir,
    baseMac,
    macGenerationRetries: Number(v.mac_generation_retries),
    globalPhysnetMtu: Number(v.global_physnet_mtu),
    physnetMtus: new Map(list('physical_network_mtus').map((e) => [e.split(':')[0], Number(e.split(':')[1])])),
    typeDrivers: list('type_drivers') as NetworkType[],
    tenantNetworkTypes: list('tenant_network_types') as NetworkType[],
    mechanismDrivers: list('mechanism_drivers'),
    flatNetworks: list('flat_networks'),
    vlanRanges: parseVlanRanges(list('network_vlan_ranges')),
    vniRanges,
    defaultAvailabilityZones: list('default_availability_zones'),
    dnsDomain: String(v.dns_domain),
    agentDownTimeMs: Number(v.agent_down_time) * 1000,
    allowOverlappingIps: Boolean(v.allow_overlapping_ips),
    paginationMaxLimit: Number(v.pagination_max_limit),
    maxFixedIpsPerPort: Number(v.max_fixed_ips_per_port),
    maxAllowedAddressPair: Number(v.max_allowed_address_pair),
    maxDnsNameservers: Number(v.max_dns_nameservers),
    maxSubnetHostRoutes: Number(v.max_subnet_host_routes),
    dhcpPorts: Boolean(v.dhcp_ports),
    quotas: {
      network: Number(v.quota_network),
      subnet: Number(v.quota_subnet),
      port: Number(v.quota_port),
      subnetpool: Number(v.quota_subnetpool),
      rbac_policy: Number(v.quota_rbac_policy),
      router: Number(v.quota_router),
      floatingip: Number(v.quota_floatingip),
      security_group: Number(v.quota_security_group),
      security_group_rule: Number(v.quota_security_group_rule),
    },
    defaultQuota: Number(v.default_quota),
    policyFile: String(v.policy_file || join(dir, 'policy.yaml')),
    enforceScope: Boolean(v.enforce_scope),
  };
}

/** Defaults for tests and tools that build a Neutron without a config file. */
export function defaultNeutronValues(): NeutronValues {
  return Object.fromEntries(Object.entries(neutronOptions.options).map(([k, spec]) => [k, (spec as { default: unknown }).default])) as NeutronValues;
}
