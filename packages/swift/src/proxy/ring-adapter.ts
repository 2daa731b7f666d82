import type { HashPathConf } from '../common/hash-path.ts';
import { Ring } from '../ring/ring.ts';
import type { ProxyRing, ProxyRings } from './ring.ts';

/** The ring package's Ring as the proxy asks of it. */
export function proxyRing(ring: Ring): ProxyRing {
  return {
    get replicaCount() {
      return ring.replicaCount;
    },
    getNodes(account, container, obj) {
      return ring.getNodes(account, container, obj);
    },
    getMoreNodes: (partition) => ring.getMoreNodes(partition),
  };
}

/** account.ring.gz, container.ring.gz and object.ring.gz (Policy-0) from swift_dir, re-read when they change. */
export function loadProxyRings(swiftDir: string, hash: HashPathConf): ProxyRings {
  return {
    account: proxyRing(Ring.loadNamed(swiftDir, 'account', hash)),
    container: proxyRing(Ring.loadNamed(swiftDir, 'container', hash)),
    object: proxyRing(Ring.loadNamed(swiftDir, 'object', hash)),
  };
}
