/**
 * The grouped backend PUT (onestack's, not upstream's): when several of an
 * object's primaries are devices of one storage node (same ip:port in the
 * ring), the proxy sends the body once, to the first device's path, and names
 * the others in COLOCATED_HEADER, each with its own share of the container
 * update targets (what X-Container-Host/-Device/-Partition carry for a single
 * PUT). The node writes every replica from the one stream and hashes it once,
 * and answers each replica's status in REPLICA_RESULTS_HEADER, so the proxy
 * counts replicas towards quorum as if it had sent one PUT each.
 */
export const COLOCATED_HEADER = 'x-backend-colocated-replicas';
export const REPLICA_RESULTS_HEADER = 'x-backend-replica-results';

export interface ReplicaTarget {
  device: string;
  containerHost?: string;
  containerDevice?: string;
  containerPartition?: string;
}

export interface ReplicaResult {
  device: string;
  status: number;
  /** X-Backend-Timestamp of a 409. */
  timestamp?: string;
}

const optionalString = (v: unknown) => v === undefined || typeof v === 'string';
const isDevice = (d: unknown) => typeof d === 'string' && /^[^/]+$/.test(d) && d !== '.' && d !== '..';

/** The extra replicas a grouped PUT names (JSON list); [] when absent, undefined when malformed. */
export function colocatedReplicas(raw: string | undefined): ReplicaTarget[] | undefined {
  if (!raw) return [];
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!Array.isArray(list)) return undefined;
  const ok = list.every((t: ReplicaTarget) => t && isDevice(t.device) && optionalString(t.containerHost) && optionalString(t.containerDevice) && optionalString(t.containerPartition));
  return ok ? (list as ReplicaTarget[]) : undefined;
}

/** A grouped PUT's per-replica answers; undefined when the header is missing or malformed (the caller then uses the HTTP status). */
export function replicaResults(raw: string | undefined): ReplicaResult[] | undefined {
  if (!raw) return undefined;
  try {
    const list: unknown = JSON.parse(raw);
    if (Array.isArray(list) && list.every((r: ReplicaResult) => r && typeof r.device === 'string' && Number.isInteger(r.status))) return list as ReplicaResult[];
  } catch {
    // fall through: treated as absent
  }
  return undefined;
}
