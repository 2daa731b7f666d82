import type { Kysely } from 'kysely';
import type { NeutronDB } from '../../db/schema.ts';

/** One L2 segment of a network, as the provider attributes describe it. */
export interface Segment {
  networkType: string;
  physicalNetwork: string | null;
  segmentationId: number | null;
}

export interface TypeDriverCapabilities {
  /** Tenant networks may get a segment of this type without asking (vxlan, vlan with ranges, local). */
  tenantAllocatable: boolean;
  /** The segment needs a physical_network (flat, vlan). */
  needsPhysnet: boolean;
  /** Segment ids that exist: [min, max]; absent for types without one. */
  segmentationIdRange?: [number, number];
}

/**
 * An ML2 type driver (upstream's TypeDriver): validates, reserves, allocates
 * and releases segments of one network type.
 *
 * Contract (ml2/type-driver-contract.ts; type-drivers.test.ts runs it against every driver):
 * - `validateProvider` normalizes a provider request or throws 400 InvalidInput;
 *   it does not touch the database.
 * - `reserveProvider` claims exactly that segment inside `trx`; a segment
 *   someone already holds is a 409 and leaves nothing claimed.
 * - `allocateTenant` claims a free segment from the configured ranges inside
 *   `trx`, or returns undefined when none is left; two concurrent
 *   transactions never get the same segment (the claim is a compare-and-swap
 *   on the allocation row, or a primary key).
 * - `release` frees a segment it handed out or reserved; releasing twice is a no-op.
 * - `syncAllocations` makes the allocation table match the configured ranges
 *   (idempotent; allocated rows are never dropped).
 * - A failed call leaves the allocation table as it was (it runs in the caller's transaction).
 */
export interface TypeDriver {
  readonly type: string;
  readonly capabilities: TypeDriverCapabilities;
  validateProvider(seg: Partial<Segment>): Segment;
  reserveProvider(trx: Kysely<NeutronDB>, seg: Segment): Promise<Segment>;
  allocateTenant(trx: Kysely<NeutronDB>): Promise<Segment | undefined>;
  release(trx: Kysely<NeutronDB>, seg: Segment): Promise<void>;
  syncAllocations(db: Kysely<NeutronDB>): Promise<void>;
  /** MTU of a network on this segment, from the physical network's. */
  mtu(seg: Segment): number;
}
