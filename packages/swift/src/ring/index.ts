/** The ring: what proxy, storage and replication import. */
export { buildAllInOneRing, deviceName, RING_NAMES, type AllInOneRingOptions, type AllInOneRings, type RingName } from './all-in-one.ts';
export { loadBuilder, parseBuilder, ringFileFor, saveBuilder, serializeBuilder } from './builder-file.ts';
export { MAX_BALANCE, RingBuilder, RingValidationError, type BuilderDevice, type NewDevice, type RebalanceResult } from './builder.ts';
export { NONE_DEV, parseRing, readRingFile, serializeRing, writeRingFile, type RingData, type RingDevice } from './ring-data.ts';
export { DEFAULT_RELOAD_SECONDS, Ring, type HandoffNode, type PrimaryNode, type RingOptions } from './ring.ts';
