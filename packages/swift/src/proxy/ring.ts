/** A device of the ring as the proxy needs it (upstream's node dicts). */
export interface RingNode {
  id: number;
  ip: string;
  port: number;
  device: string;
  region?: number;
  zone?: number;
}

/**
 * What the proxy asks of a ring: primaries of a path and handoffs in
 * upstream's order. The ring package's Ring satisfies it (see service wiring).
 */
export interface ProxyRing {
  readonly replicaCount: number;
  getNodes(account: string, container?: string, obj?: string): { partition: number; nodes: RingNode[] };
  getMoreNodes(partition: number): Iterable<RingNode>;
}

export interface ProxyRings {
  account: ProxyRing;
  container: ProxyRing;
  /** Policy-0's object ring. */
  object: ProxyRing;
}
