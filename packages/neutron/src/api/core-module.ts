import type { FastifyInstance } from 'fastify';
import { createMechanismDrivers } from '../domain/ml2/mechanism-driver.ts';
import { createTypeDrivers } from '../domain/ml2/type-drivers.ts';
import { NetworkService } from '../domain/networks.ts';
import { PortRules } from '../domain/ports.ts';
import { SubnetRules } from '../domain/subnets.ts';
import type { ApiDeps, NeutronModule } from './context.ts';
import { registerNetworkRoutes } from './network-routes.ts';
import { networkDeleter, registerPortRoutes } from './port-routes.ts';
import { registerSubnetRoutes } from './subnet-routes.ts';
import { registerCoreExtras } from './core-extras.ts';
import { registerRbacRoutes } from './rbac-routes.ts';

const ext = (alias: string, name: string, description: string) => ({ alias, name, description });

/** Networks, subnets, subnet pools, ports, quotas, RBAC, agents and tags. */
export const coreModule: NeutronModule = {
  name: 'core',
  extensions: [
    ext('project-id', 'project_id field enabled', 'Extension that indicates that project_id field is enabled.'),
    ext('filter-validation', 'Filter parameters validation', 'Provides validation on filter parameters.'),
    ext('empty-string-filtering', 'Empty String Filtering Extension', 'Allow filtering by attributes with empty string value'),
    ext('pagination', 'Pagination support', 'Extension that indicates that pagination is enabled.'),
    ext('sorting', 'Sorting support', 'Extension that indicates that sorting is enabled.'),
    ext('external-net', 'Neutron external network', 'Adds external network attribute to network resource.'),
    ext('provider', 'Provider Network', 'Expose mapping of virtual networks to physical networks'),
    ext('net-mtu', 'Network MTU', 'Provides MTU attribute for a network resource.'),
    ext('net-mtu-writable', 'Network MTU (writable)', 'Provides a writable MTU attribute for a network resource.'),
    ext('port-security', 'Port Security', 'Provides port security'),
    ext('allowed-address-pairs', 'Allowed Address Pairs', 'Provides allowed address pairs'),
    ext('binding', 'Port Binding', 'Expose port bindings of a virtual port to external application'),
    ext('standard-attr-tag', 'Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip', 'Enables to set tag on resources with standard attribute.'),
    ext('standard-attr-description', 'standard-attr-description', 'Extension to add descriptions to standard attributes'),
    ext('standard-attr-timestamp', 'Resource timestamps', 'Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.'),
    ext('standard-attr-revisions', 'Resource revision numbers', 'This extension will display the revision number of neutron resources.'),
    ext('revision-if-match', 'If-Match constraints based on revision_number', "Extension indicating that If-Match based on revision_number is supported."),
    ext('subnet_allocation', 'Subnet Allocation', 'Enables allocation of subnets from a subnet pool'),
    ext('default-subnetpools', 'Default Subnetpools', 'Provides ability to mark and use a subnetpool as the default.'),
    ext('availability_zone', 'Availability Zone', 'The availability zone extension.'),
    ext('network_availability_zone', 'Network Availability Zone', 'Availability zone support for network.'),
    ext('agent', 'agent', 'The agent management extension.'),
    ext('quotas', 'Quota management support', 'Expose functions for quotas management per tenant'),
    ext('quota_details', 'Quota details management support', 'Expose functions for quotas usage statistics per project'),
    ext('rbac-policies', 'RBAC Policies', 'Allows creation and modification of policies that control tenant access to resources.'),
    ext('network-ip-availability', 'Network IP Availability', 'Provides IP availability data for each network and subnet.'),
    ext('dns-integration', 'DNS Integration', 'Provides integration with DNS.'),
    ext('multi-provider', 'Multi Provider Network', 'Expose mapping of virtual networks to multiple physical networks'),
  ].filter((e) => !['network-ip-availability', 'multi-provider'].includes(e.alias)),
  resources: [
    { name: 'network', collection: 'networks' },
    { name: 'subnet', collection: 'subnets' },
    { name: 'subnetpool', collection: 'subnetpools' },
    { name: 'port', collection: 'ports' },
  ],
  register(app: FastifyInstance, deps: ApiDeps) {
    const typeDrivers = createTypeDrivers(deps.config);
    const nets = new NetworkService({ ...deps, typeDrivers });
    const ports = new PortRules({ ...deps, mechanisms: createMechanismDrivers(deps.config.mechanismDrivers) });
    const subnets = new SubnetRules(deps);
    app.addHook('onReady', () => nets.syncAllocations());
    registerNetworkRoutes(app, deps, nets, networkDeleter(deps, nets, ports));
    const dhcp = registerPortRoutes(app, deps, nets, ports);
    registerSubnetRoutes(app, deps, nets, subnets, dhcp);
    registerCoreExtras(app, deps);
    registerRbacRoutes(app, deps, nets);
  },
};
