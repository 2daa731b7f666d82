/**
 * The external ("public") network's bridge. By default it lives in a namespace of
 * onestack's own (`onestack-ext`), so bringing a cloud up never touches the host's own
 * interfaces; the routers' qg- devices are plugged into it, and the host reaches floating
 * IPs from inside that namespace (`onestack ssh`, `ip netns exec onestack-ext …`) through
 * the gateway address the namespace gets on the bridge (devstack's 172.24.4.1/24).
 *
 * `external_interface` is the explicit opt-in to a real network: that host interface is
 * moved into the external namespace and enslaved to the bridge (the host itself loses it:
 * traffic of the external network then never mixes with the host's own stack).
 */
import { positional, runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { checkIfname, type IpLib } from '../linux/ip-lib.ts';
import { bridgeName } from './device-names.ts';

export const DEFAULT_EXTERNAL_NAMESPACE = 'onestack-ext';
/** devstack's public network and its gateway, used by `onestack up`'s default external network. */
export const DEFAULT_PUBLIC_CIDR = '172.24.4.0/24';
export const DEFAULT_PUBLIC_GATEWAY = '172.24.4.1/24';

export interface ExternalNetworkSpec {
  /** The namespace holding external bridges (`onestack-ext` unless configured). */
  namespace: string;
  networkId: string;
  mtu?: number;
  /** A real host interface to attach ([linux_bridge] external_interface); tests never set it. */
  externalInterface?: string;
}

/** Creates the namespace and the network's bridge in it (and attaches external_interface); idempotent. */
export async function ensureExternalNetwork(ip: IpLib, logger: ExecLogger, spec: ExternalNetworkSpec): Promise<string> {
  const bridge = bridgeName(spec.networkId);
  if (!(await ip.netnsExists(spec.namespace))) await ip.netnsAdd(spec.namespace, { mayExist: true });
  const present = new Set((await ip.linkList(spec.namespace)).map((l) => l.ifname));
  if (!present.has(bridge)) await ip.linkAddBridge(spec.namespace, bridge, { mtu: spec.mtu });
  await ip.linkSetUp(spec.namespace, bridge);
  if (spec.externalInterface) {
    const dev = checkIfname(spec.externalInterface, 'external interface');
    if (!present.has(dev)) {
      // The one deliberate change to the host's own namespace, and only when configured.
      await runCommand('ip', ['link', 'set', 'dev', positional(dev), 'netns', positional(spec.namespace)], { logger, timeoutMs: 15_000 });
    }
    await ip.linkSetMaster(spec.namespace, dev, bridge);
    await ip.linkSetUp(spec.namespace, dev);
  }
  return bridge;
}

/**
 * Gives the external namespace an address on the network's bridge (e.g. 172.24.4.1/24),
 * the "upstream gateway" routers default-route to and from which floating IPs are reached.
 */
export async function ensureExternalGatewayAddress(ip: IpLib, spec: { namespace: string; networkId: string; cidr: string }): Promise<void> {
  const bridge = bridgeName(spec.networkId);
  const have = await ip.addrCidrs(spec.namespace, bridge);
  if (!have.includes(spec.cidr)) await ip.addrAdd(spec.namespace, bridge, spec.cidr, { mayExist: true });
}

/** Removes the network's bridge (routers' qg- peers still on it are unplugged, not deleted). */
export async function removeExternalNetwork(ip: IpLib, spec: { namespace: string; networkId: string }): Promise<void> {
  await ip.linkDelete(spec.namespace, bridgeName(spec.networkId), { mayNotExist: true });
}
