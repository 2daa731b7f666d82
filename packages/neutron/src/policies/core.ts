import type { RuleDefault } from '@onestack/core/policy/index.ts';
import {
  ADMIN,
  ADMIN_OR_NET_OWNER_MEMBER,
  ADMIN_OR_NET_OWNER_READER,
  ADMIN_OR_PROJECT_MEMBER,
  ADMIN_OR_PROJECT_READER,
  PROJECT_MEMBER,
  PROJECT_READER,
  rule,
} from './base.ts';

/**
 * Rules of networks, subnets, subnet pools, ports, quotas, RBAC policies and
 * agents (neutron/conf/policies/*.py), upstream's names and defaults.
 * Attribute rules (`create_network:shared`) are checked only when the request
 * sets the attribute; `get_<resource>:<attr>` rules hide an attribute from
 * whoever they refuse.
 */
const NETS = '/networks';
const NET = '/networks/{id}';
const SUBNETS = '/subnets';
const SUBNET = '/subnets/{id}';
const POOLS = '/subnetpools';
const POOL = '/subnetpools/{id}';
const PORTS = '/ports';
const PORT = '/ports/{id}';

const attrs = (action: string, res: string, names: string[], check: string, path: string, method: string) =>
  names.map((n) => rule(`${action}_${res}:${n}`, check, `Specify \`\`${n}\`\` attribute when ${action === 'get' ? 'getting' : `${action.replace(/e$/, '')}ing`} a ${res}`, path, method));

const PROVIDER = ['provider:network_type', 'provider:physical_network', 'provider:segmentation_id', 'segments'];
/** Only admins share with every project (`*`). */
const NO_WILDCARD = '(not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*)';
const NETWORK_DEVICE_OK = `not rule:network_device or rule:context_is_advsvc or (${ADMIN_OR_NET_OWNER_MEMBER})`;

const ADVSVC = 'rule:context_is_advsvc';
const PROJECT_MEMBER_OR_NET_OWNER = `(${PROJECT_MEMBER}) or (${ADMIN_OR_NET_OWNER_MEMBER})`;

/** `<action>_<member>:tags` (upstream's names since 2025.1) for the tags API of networks, subnets, ports and subnet pools. */
const tagRules = (member: string, path: string, checks: Record<'create' | 'get' | 'update' | 'delete', string>): RuleDefault[] => [
  rule(`create_${member}:tags`, checks.create, `Create the ${member} tags`, `${path}/tags`, 'POST'),
  rule(`get_${member}:tags`, checks.get, `Get the ${member} tags`, `${path}/tags`, 'GET'),
  rule(`update_${member}:tags`, checks.update, `Update the ${member} tags`, `${path}/tags`, 'PUT'),
  rule(`delete_${member}:tags`, checks.delete, `Delete the ${member} tags`, `${path}/tags`, 'DELETE'),
];

export const corePolicies: RuleDefault[] = [
  { name: 'external_network', checkStr: 'field:subnets:router:external=True', description: 'Definition of a subnet that belongs to an external network' },
  ...tagRules('network', NET, {
    create: ADMIN_OR_PROJECT_MEMBER,
    get: `${ADMIN_OR_PROJECT_READER} or rule:shared or rule:external or ${ADVSVC}`,
    update: ADMIN_OR_PROJECT_MEMBER,
    delete: ADMIN_OR_PROJECT_MEMBER,
  }),
  ...tagRules('subnet', SUBNET, {
    create: PROJECT_MEMBER_OR_NET_OWNER,
    get: `(${PROJECT_READER}) or rule:shared or rule:external_network or (${ADMIN_OR_NET_OWNER_READER})`,
    update: PROJECT_MEMBER_OR_NET_OWNER,
    delete: PROJECT_MEMBER_OR_NET_OWNER,
  }),
  ...tagRules('port', PORT, {
    create: `${ADMIN_OR_PROJECT_MEMBER} or ${ADVSVC}`,
    get: `${ADVSVC} or (${ADMIN_OR_NET_OWNER_READER}) or (${PROJECT_READER})`,
    update: `${ADMIN_OR_PROJECT_MEMBER} or ${ADVSVC}`,
    delete: `${ADVSVC} or (${PROJECT_MEMBER}) or (${ADMIN_OR_NET_OWNER_MEMBER})`,
  }),
  ...tagRules('subnetpool', POOL, {
    create: ADMIN_OR_PROJECT_MEMBER,
    get: `${ADMIN_OR_PROJECT_READER} or rule:shared_subnetpools`,
    update: ADMIN_OR_PROJECT_MEMBER,
    delete: ADMIN_OR_PROJECT_MEMBER,
  }),
  rule('create_network', ADMIN_OR_PROJECT_MEMBER, 'Create a network', NETS, 'POST'),
  ...attrs('create', 'network', ['shared', 'router:external', 'is_default', ...PROVIDER, 'availability_zone_hints'], ADMIN, NETS, 'POST').map((r) =>
    r.name === 'create_network:availability_zone_hints' ? { ...r, checkStr: ADMIN_OR_PROJECT_MEMBER } : r,
  ),
  rule('create_network:port_security_enabled', ADMIN_OR_PROJECT_MEMBER, 'Specify ``port_security_enabled`` when creating a network', NETS, 'POST'),
  rule('get_network', `${ADMIN_OR_PROJECT_READER} or rule:shared or rule:external or rule:context_is_advsvc`, 'Get a network', NET, 'GET'),
  rule('get_network:router:external', 'rule:regular_user', 'Get ``router:external`` attribute of a network', NET, 'GET'),
  ...attrs('get', 'network', PROVIDER, ADMIN, NET, 'GET'),
  rule('update_network', ADMIN_OR_PROJECT_MEMBER, 'Update a network', NET, 'PUT'),
  ...attrs('update', 'network', ['shared', 'router:external', 'is_default', ...PROVIDER], ADMIN, NET, 'PUT'),
  rule('update_network:port_security_enabled', ADMIN_OR_PROJECT_MEMBER, 'Update ``port_security_enabled`` of a network', NET, 'PUT'),
  rule('delete_network', ADMIN_OR_PROJECT_MEMBER, 'Delete a network', NET, 'DELETE'),

  rule('create_subnet', ADMIN_OR_NET_OWNER_MEMBER, 'Create a subnet', SUBNETS, 'POST'),
  rule('create_subnet:segment_id', ADMIN, 'Specify ``segment_id`` when creating a subnet', SUBNETS, 'POST'),
  rule('create_subnet:service_types', ADMIN, 'Specify ``service_types`` when creating a subnet', SUBNETS, 'POST'),
  rule('get_subnet', `${ADMIN_OR_PROJECT_READER} or rule:shared or (${ADMIN_OR_NET_OWNER_READER})`, 'Get a subnet', SUBNET, 'GET'),
  rule('get_subnet:segment_id', ADMIN, 'Get ``segment_id`` of a subnet', SUBNET, 'GET'),
  rule('update_subnet', ADMIN_OR_NET_OWNER_MEMBER, 'Update a subnet', SUBNET, 'PUT'),
  rule('update_subnet:segment_id', ADMIN, 'Update ``segment_id`` of a subnet', SUBNET, 'PUT'),
  rule('update_subnet:service_types', ADMIN, 'Update ``service_types`` of a subnet', SUBNET, 'PUT'),
  rule('delete_subnet', ADMIN_OR_NET_OWNER_MEMBER, 'Delete a subnet', SUBNET, 'DELETE'),

  rule('create_subnetpool', ADMIN_OR_PROJECT_MEMBER, 'Create a subnetpool', POOLS, 'POST'),
  rule('create_subnetpool:shared', ADMIN, 'Create a shared subnetpool', POOLS, 'POST'),
  rule('create_subnetpool:is_default', ADMIN, 'Specify ``is_default`` attribute when creating a subnetpool', POOLS, 'POST'),
  rule('get_subnetpool', `${ADMIN_OR_PROJECT_READER} or rule:shared_subnetpools`, 'Get a subnetpool', POOL, 'GET'),
  rule('update_subnetpool', ADMIN_OR_PROJECT_MEMBER, 'Update a subnetpool', POOL, 'PUT'),
  rule('update_subnetpool:is_default', ADMIN, 'Update ``is_default`` attribute of a subnetpool', POOL, 'PUT'),
  rule('delete_subnetpool', ADMIN_OR_PROJECT_MEMBER, 'Delete a subnetpool', POOL, 'DELETE'),
  rule('add_prefixes', ADMIN_OR_PROJECT_MEMBER, 'Add prefixes to a subnetpool', `${POOL}/add_prefixes`, 'PUT'),
  rule('remove_prefixes', ADMIN_OR_PROJECT_MEMBER, 'Remove unallocated prefixes from a subnetpool', `${POOL}/remove_prefixes`, 'PUT'),

  rule('create_port', ADMIN_OR_PROJECT_MEMBER, 'Create a port', PORTS, 'POST'),
  rule('create_port:device_owner', NETWORK_DEVICE_OK, 'Specify ``device_owner`` attribute when creating a port', PORTS, 'POST'),
  ...attrs('create', 'port', ['mac_address', 'fixed_ips', 'fixed_ips:ip_address', 'port_security_enabled', 'allowed_address_pairs', 'allowed_address_pairs:mac_address', 'allowed_address_pairs:ip_address'], `rule:context_is_advsvc or (${ADMIN_OR_NET_OWNER_MEMBER})`, PORTS, 'POST'),
  rule('create_port:fixed_ips:subnet_id', `rule:context_is_advsvc or (${ADMIN_OR_NET_OWNER_MEMBER}) or rule:shared`, 'Specify ``subnet_id`` in ``fixed_ips`` when creating a port', PORTS, 'POST'),
  ...attrs('create', 'port', ['binding:host_id', 'binding:profile'], `${'rule:service_api'} or (${ADMIN})`, PORTS, 'POST'),
  rule('create_port:binding:vnic_type', ADMIN_OR_PROJECT_MEMBER, 'Specify ``binding:vnic_type`` attribute when creating a port', PORTS, 'POST'),
  rule('get_port', `rule:context_is_advsvc or (${ADMIN_OR_PROJECT_READER}) or (${ADMIN_OR_NET_OWNER_READER})`, 'Get a port', PORT, 'GET'),
  ...attrs('get', 'port', ['binding:vif_type', 'binding:vif_details', 'binding:host_id', 'binding:profile', 'resource_request'], ADMIN, PORT, 'GET'),
  rule('update_port', `rule:context_is_advsvc or (${ADMIN_OR_PROJECT_MEMBER})`, 'Update a port', PORT, 'PUT'),
  rule('update_port:device_owner', NETWORK_DEVICE_OK, 'Update ``device_owner`` attribute of a port', PORT, 'PUT'),
  rule('update_port:mac_address', `${ADMIN} or rule:context_is_advsvc`, 'Update ``mac_address`` attribute of a port', PORT, 'PUT'),
  ...attrs('update', 'port', ['fixed_ips', 'fixed_ips:ip_address', 'port_security_enabled', 'allowed_address_pairs', 'allowed_address_pairs:mac_address', 'allowed_address_pairs:ip_address'], `rule:context_is_advsvc or (${ADMIN_OR_NET_OWNER_MEMBER})`, PORT, 'PUT'),
  rule('update_port:fixed_ips:subnet_id', `rule:context_is_advsvc or (${ADMIN_OR_NET_OWNER_MEMBER}) or rule:shared`, 'Specify ``subnet_id`` in ``fixed_ips`` when updating a port', PORT, 'PUT'),
  ...attrs('update', 'port', ['binding:host_id', 'binding:profile'], `rule:service_api or (${ADMIN})`, PORT, 'PUT'),
  rule('update_port:binding:vnic_type', `rule:context_is_advsvc or (${ADMIN_OR_PROJECT_MEMBER})`, 'Update ``binding:vnic_type`` attribute of a port', PORT, 'PUT'),
  rule('delete_port', `rule:context_is_advsvc or (${ADMIN_OR_PROJECT_MEMBER}) or (${ADMIN_OR_NET_OWNER_MEMBER})`, 'Delete a port', PORT, 'DELETE'),

  rule('get_quota', ADMIN_OR_PROJECT_READER, 'Get a resource quota', '/quota/{id}', 'GET'),
  rule('update_quota', ADMIN, 'Update a resource quota', '/quota/{id}', 'PUT'),
  rule('delete_quota', ADMIN, 'Delete a resource quota', '/quota/{id}', 'DELETE'),

  { name: 'restrict_wildcard', checkStr: `${NO_WILDCARD} or ${ADMIN}`, description: 'Definition of a wildcard target_project' },
  rule('create_rbac_policy', ADMIN_OR_PROJECT_MEMBER, 'Create an RBAC policy', '/rbac-policies', 'POST'),
  rule('create_rbac_policy:target_tenant', `(${ADMIN}) or ${NO_WILDCARD}`, 'Specify ``target_tenant`` when creating an RBAC policy', '/rbac-policies', 'POST'),
  rule('create_rbac_policy:target_project', `(${ADMIN}) or (not field:rbac_policy:target_project=*)`, 'Specify ``target_project`` when creating an RBAC policy', '/rbac-policies', 'POST'),
  rule('update_rbac_policy', ADMIN_OR_PROJECT_MEMBER, 'Update an RBAC policy', '/rbac-policies/{id}', 'PUT'),
  rule('update_rbac_policy:target_tenant', `(${ADMIN}) or ${NO_WILDCARD}`, 'Update ``target_tenant`` attribute of an RBAC policy', '/rbac-policies/{id}', 'PUT'),
  rule('update_rbac_policy:target_project', `(${ADMIN}) or (not field:rbac_policy:target_project=*)`, 'Update ``target_project`` attribute of an RBAC policy', '/rbac-policies/{id}', 'PUT'),
  rule('get_rbac_policy', ADMIN_OR_PROJECT_READER, 'Get an RBAC policy', '/rbac-policies/{id}', 'GET'),
  rule('delete_rbac_policy', ADMIN_OR_PROJECT_MEMBER, 'Delete an RBAC policy', '/rbac-policies/{id}', 'DELETE'),

  rule('get_agent', ADMIN, 'Get an agent', '/agents/{id}', 'GET'),
  rule('update_agent', ADMIN, 'Update an agent', '/agents/{id}', 'PUT'),
  rule('delete_agent', ADMIN, 'Delete an agent', '/agents/{id}', 'DELETE'),
];
