/**
 * Device and namespace names of the L3 agent, upstream's: a prefix and the first 11
 * characters of the port id, which keeps every name within the kernel's 15 characters
 * and lets a reconcile recognise its own devices by prefix.
 */

export const ROUTER_NS_PREFIX = 'qrouter-';
export const INTERNAL_DEV_PREFIX = 'qr-';
export const GATEWAY_DEV_PREFIX = 'qg-';
/** The peer of a qr-/qg- device on the network's bridge, named like upstream linuxbridge's (it is the router port's tap). */
export const TAP_DEV_PREFIX = 'tap';
export const BRIDGE_PREFIX = 'brq';

const ID_CHARS = 11;

export function internalDevice(portId: string): string {
  return INTERNAL_DEV_PREFIX + portId.slice(0, ID_CHARS);
}

export function gatewayDevice(portId: string): string {
  return GATEWAY_DEV_PREFIX + portId.slice(0, ID_CHARS);
}

export function tapDevice(portId: string): string {
  return TAP_DEV_PREFIX + portId.slice(0, ID_CHARS);
}

export function bridgeName(networkId: string): string {
  return BRIDGE_PREFIX + networkId.slice(0, ID_CHARS);
}

/** `<prefix>qrouter-<router id>`; the prefix keeps namespaces of concurrent test runs (or hosts) apart. */
export function routerNamespace(routerId: string, prefix = ''): string {
  return `${prefix}${ROUTER_NS_PREFIX}${routerId}`;
}
