import { migration as initial } from './001-initial.ts';
import { migration as defaultFlavors } from './002-default-flavors.ts';
import { migration as aggregates } from './003-aggregates.ts';
import { migration as quotaClasses } from './004-quota-classes.ts';
import { migration as migrationRecords } from './005-migrations.ts';
import { migration as consoleAuthTokens } from './006-console-auth-tokens.ts';
import { migration as blockDeviceVolumes } from './007-block-device-volumes.ts';
import { migration as bdmSnapshotId } from './008-bdm-snapshot-id.ts';
import { migration as hypervisorGeneration } from './009-hypervisor-generation.ts';
import { migration as instancesListOrder } from './010-instances-list-order.ts';
import { migration as instanceDeviceMetadata } from './011-instance-device-metadata.ts';

export const migrations = [initial, defaultFlavors, aggregates, quotaClasses, migrationRecords, consoleAuthTokens, blockDeviceVolumes, bdmSnapshotId, hypervisorGeneration, instancesListOrder, instanceDeviceMetadata];
