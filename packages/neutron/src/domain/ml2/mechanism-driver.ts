import type { Segment } from './type-driver.ts';

/** What a mechanism driver sees of a port being bound (upstream's PortContext, reduced). */
export interface BindingRequest {
  portId: string;
  host: string;
  vnicType: string;
  profile: Record<string, unknown>;
  /** The network's segments, in order; the driver binds to one of them. */
  segments: Segment[];
}

export interface Binding {
  segment: Segment;
  vifType: string;
  vifDetails: Record<string, unknown>;
}

/**
 * An ML2 mechanism driver: decides whether and how a port is bound on a host.
 *
 * Contract (ml2/mechanism-driver-contract.ts, run by mechanism-driver.test.ts): `bindPort` is pure — it
 * returns a binding on one of the request's segments, or undefined when it
 * cannot bind this port (unsupported vnic_type or network type), and it never
 * throws for an ordinary refusal. The first driver in [ml2] mechanism_drivers
 * that binds wins; when none does the port's vif_type is `binding_failed`.
 */
export interface MechanismDriver {
  readonly name: string;
  readonly capabilities: { vnicTypes: readonly string[]; networkTypes: readonly string[] };
  bindPort(req: BindingRequest): Binding | undefined;
}

/** Linux bridge: a bridge per network on the host, a tap per port (vif_type `bridge`). */
export class LinuxBridgeMechanismDriver implements MechanismDriver {
  readonly name = 'linuxbridge';
  readonly capabilities = { vnicTypes: ['normal'], networkTypes: ['local', 'flat', 'vlan', 'vxlan'] };
  bindPort(req: BindingRequest): Binding | undefined {
    if (!this.capabilities.vnicTypes.includes(req.vnicType)) return undefined;
    const segment = req.segments.find((s) => this.capabilities.networkTypes.includes(s.networkType));
    if (!segment) return undefined;
    return { segment, vifType: 'bridge', vifDetails: { port_filter: true, connectivity: 'l2' } };
  }
}

/** A fake for tests: binds what it is told to (vif_type `fake`), records the requests. */
export class FakeMechanismDriver implements MechanismDriver {
  readonly name = 'fake';
  readonly requests: BindingRequest[] = [];
  constructor(readonly capabilities = { vnicTypes: ['normal', 'direct'] as readonly string[], networkTypes: ['local', 'flat', 'vlan', 'vxlan'] as readonly string[] }) {}
  bindPort(req: BindingRequest): Binding | undefined {
    this.requests.push(req);
    if (!this.capabilities.vnicTypes.includes(req.vnicType)) return undefined;
    const segment = req.segments.find((s) => this.capabilities.networkTypes.includes(s.networkType));
    return segment ? { segment, vifType: 'fake', vifDetails: { fake: true } } : undefined;
  }
}

export function createMechanismDrivers(names: readonly string[]): MechanismDriver[] {
  return names.map((n) => {
    if (n === 'linuxbridge') return new LinuxBridgeMechanismDriver();
    if (n === 'fake') return new FakeMechanismDriver();
    throw new Error(`[neutron] mechanism_drivers: unknown driver "${n}" (known: linuxbridge, fake)`);
  });
}

/** Tries the drivers in order, as ML2's _bind_port_level does for one level. */
export function bindPort(drivers: readonly MechanismDriver[], req: BindingRequest): Binding | undefined {
  for (const d of drivers) {
    const b = d.bindPort(req);
    if (b) return b;
  }
  return undefined;
}
