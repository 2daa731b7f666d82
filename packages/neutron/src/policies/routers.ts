import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { ADMIN, ADMIN_OR_PROJECT_MEMBER, ADMIN_OR_PROJECT_READER, rule } from './base.ts';

/**
 * Router, floating IP and floating IP pool policies (neutron/conf/policies/
 * router.py, floatingip.py, floatingip_pools.py). The gateway's sub-attributes
 * have rules of their own: a project sets the network, only an admin sets
 * SNAT or the gateway's fixed IPs.
 */
const ADMIN_OR_PROJECT_MANAGER = `(${ADMIN}) or (role:manager and project_id:%(project_id)s)`;
const ROUTERS = '/routers';
const ROUTER = '/routers/{id}';
const FIPS = '/floatingips';
const FIP = '/floatingips/{id}';
const GW = 'external_gateway_info';

const routerAttrRules = (action: 'create' | 'update', path: string, method: string): RuleDefault[] => [
  rule(`${action}_router:distributed`, ADMIN, `Specify \`\`distributed\`\` attribute when ${action === 'create' ? 'creating' : 'updating'} a router`, path, method),
  rule(`${action}_router:ha`, ADMIN, `Specify \`\`ha\`\` attribute when ${action === 'create' ? 'creating' : 'updating'} a router`, path, method),
  rule(`${action}_router:${GW}`, ADMIN_OR_PROJECT_MEMBER, `Specify \`\`${GW}\`\` information`, path, method),
  rule(`${action}_router:${GW}:network_id`, ADMIN_OR_PROJECT_MEMBER, `Specify \`\`network_id\`\` in \`\`${GW}\`\` information`, path, method),
  rule(`${action}_router:${GW}:enable_snat`, ADMIN, `Specify \`\`enable_snat\`\` in \`\`${GW}\`\` information`, path, method),
  rule(`${action}_router:${GW}:external_fixed_ips`, ADMIN, `Specify \`\`external_fixed_ips\`\` in \`\`${GW}\`\` information`, path, method),
  rule(`${action}_router:tags`, ADMIN_OR_PROJECT_MEMBER, `Specify the router tags`, path, method),
];

export const routerPolicies: RuleDefault[] = [
  rule('create_router', ADMIN_OR_PROJECT_MEMBER, 'Create a router', ROUTERS, 'POST'),
  ...routerAttrRules('create', ROUTERS, 'POST'),
  rule('get_router', ADMIN_OR_PROJECT_READER, 'Get a router', ROUTER, 'GET'),
  rule('get_router:distributed', ADMIN, 'Get ``distributed`` attribute of a router', ROUTER, 'GET'),
  rule('get_router:ha', ADMIN, 'Get ``ha`` attribute of a router', ROUTER, 'GET'),
  rule('get_router:tags', ADMIN_OR_PROJECT_READER, 'Get the router tags', ROUTER, 'GET'),
  rule('update_router', ADMIN_OR_PROJECT_MEMBER, 'Update a router', ROUTER, 'PUT'),
  ...routerAttrRules('update', ROUTER, 'PUT'),
  rule('delete_router', ADMIN_OR_PROJECT_MEMBER, 'Delete a router', ROUTER, 'DELETE'),
  rule('delete_router:tags', ADMIN_OR_PROJECT_MEMBER, 'Delete the router tags', ROUTER, 'DELETE'),
  rule('add_router_interface', ADMIN_OR_PROJECT_MEMBER, 'Add an interface to a router', `${ROUTER}/add_router_interface`, 'PUT'),
  rule('remove_router_interface', ADMIN_OR_PROJECT_MEMBER, 'Remove an interface from a router', `${ROUTER}/remove_router_interface`, 'PUT'),
  rule('add_extraroutes', ADMIN_OR_PROJECT_MEMBER, 'Add extra route to a router', `${ROUTER}/add_extraroutes`, 'PUT'),
  rule('remove_extraroutes', ADMIN_OR_PROJECT_MEMBER, 'Remove extra route from a router', `${ROUTER}/remove_extraroutes`, 'PUT'),

  rule('create_floatingip', ADMIN_OR_PROJECT_MEMBER, 'Create a floating IP', FIPS, 'POST'),
  rule('create_floatingip:floating_ip_address', ADMIN_OR_PROJECT_MANAGER, 'Create a floating IP with a specific IP address', FIPS, 'POST'),
  rule('create_floatingip:tags', ADMIN_OR_PROJECT_MEMBER, 'Create the floating IP tags', FIPS, 'POST'),
  rule('get_floatingip', ADMIN_OR_PROJECT_READER, 'Get a floating IP', FIP, 'GET'),
  rule('get_floatingip:tags', ADMIN_OR_PROJECT_READER, 'Get the floating IP tags', FIP, 'GET'),
  rule('update_floatingip', ADMIN_OR_PROJECT_MEMBER, 'Update a floating IP', FIP, 'PUT'),
  rule('update_floatingip:tags', ADMIN_OR_PROJECT_MEMBER, 'Update the floating IP tags', FIP, 'PUT'),
  rule('delete_floatingip', ADMIN_OR_PROJECT_MEMBER, 'Delete a floating IP', FIP, 'DELETE'),
  rule('delete_floatingip:tags', ADMIN_OR_PROJECT_MEMBER, 'Delete the floating IP tags', FIP, 'DELETE'),
  rule('get_floatingip_pool', ADMIN_OR_PROJECT_READER, 'Get floating IP pools', '/floatingip_pools', 'GET'),
];
