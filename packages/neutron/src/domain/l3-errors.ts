import { ApiError, badRequest, conflict, notFound } from '@onestack/core/errors.ts';

/** neutron-lib's L3 exceptions, their types and wording. */
export const routerBadRequest = (msg: string) => badRequest(`Bad router request: ${msg}.`, { type: 'BadRequest' });
export const fipBadRequest = (msg: string) => badRequest(`Bad floatingip request: ${msg}.`, { type: 'BadRequest' });
export const routerNotFound = (id: string) => notFound(`Router ${id} could not be found`, { type: 'RouterNotFound' });
export const fipNotFound = (id: string) => notFound(`Floating IP ${id} could not be found`, { type: 'FloatingIPNotFound' });
export const routerInUse = (id: string, reason: string) => conflict(`Router ${id} ${reason}`, { type: 'RouterInUse' });
export const networkNotFound = (id: string) => notFound(`Network ${id} could not be found.`, { type: 'NetworkNotFound' });
export const subnetNotFound = (id: string) => notFound(`Subnet ${id} could not be found.`, { type: 'SubnetNotFound' });
export const portNotFound = (id: string) => notFound(`Port ${id} could not be found.`, { type: 'PortNotFound' });

export const interfaceNotFound = (routerId: string, portId: string) =>
  notFound(`Router ${routerId} does not have an interface with id ${portId}`, { type: 'RouterInterfaceNotFound' });
export const interfaceNotFoundForSubnet = (routerId: string, subnetId: string) =>
  notFound(`Router ${routerId} has no interface on subnet ${subnetId}`, { type: 'RouterInterfaceNotFoundForSubnet' });
export const interfaceInUseByFip = (routerId: string, subnetId: string) =>
  conflict(`Router interface for subnet ${subnetId} on router ${routerId} cannot be deleted, as it is required by one or more floating IPs.`, {
    type: 'RouterInterfaceInUseByFloatingIP',
  });
export const interfaceInUseByRoute = (routerId: string, subnetId: string) =>
  conflict(`Router interface for subnet ${subnetId} on router ${routerId} cannot be deleted, as it is required by one or more routes.`, {
    type: 'RouterInterfaceInUseByRoute',
  });
export const gatewayInUseByFip = (routerId: string, netId: string) =>
  conflict(`Gateway cannot be updated for router ${routerId}, since a gateway to external network ${netId} is required by one or more floating IPs.`, {
    type: 'RouterExternalGatewayInUseByFloatingIp',
  });
export const portInUse = (portId: string, netId: string, deviceId: string) =>
  conflict(`Unable to complete operation on port ${portId} for network ${netId}. Port already has an attached device ${deviceId}.`, { type: 'PortInUse' });
export const l3PortInUse = (portId: string, owner: string) =>
  conflict(`Port ${portId} has owner ${owner} and therefore cannot be deleted directly via the port API.`, { type: 'L3PortInUse' });
export const invalidRoutes = (routes: { destination: string; nexthop: string }[], reason: string) =>
  badRequest(`Invalid format for routes: ${pyRoutes(routes)}, ${reason}.`, { type: 'InvalidRoutes' });
export const routesExhausted = (routerId: string, quota: number) =>
  badRequest(`Unable to complete operation for ${routerId}. The number of routes exceeds the maximum ${quota}.`, { type: 'RoutesExhausted' });
export const externalGatewayNotFound = (extNetId: string, subnetId: string, portId: string) =>
  notFound(`External network ${extNetId} is not reachable from subnet ${subnetId}.  Therefore, cannot associate Port ${portId} with a Floating IP.`, {
    type: 'ExternalGatewayForFloatingIPNotFound',
  });
export const fipPortAlreadyAssociated = (a: { fipAddress: string; fipId: string; portId: string; fixedIp: string; netId: string }) =>
  new ApiError(
    'conflict',
    `Cannot associate floating IP ${a.fipAddress} (${a.fipId}) with port ${a.portId} using fixed IP ${a.fixedIp}, as that fixed IP already has a floating IP on external network ${a.netId}.`,
    { type: 'FloatingIPPortAlreadyAssociated' },
  );
export const externalIpExhausted = (netId: string) => badRequest(`Unable to find any IP address on external network ${netId}.`, { type: 'ExternalIpAddressExhausted' });

/** Routes as upstream's message prints them: a Python list of dicts. */
function pyRoutes(routes: { destination: string; nexthop: string }[]): string {
  return `[${routes.map((r) => `{'destination': '${r.destination}', 'nexthop': '${r.nexthop}'}`).join(', ')}]`;
}
