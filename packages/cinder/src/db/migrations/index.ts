import { migration as initial } from './001-initial.ts';
import { migration as backupFields } from './002-backup-fields.ts';
import { migration as transfers } from './003-transfers.ts';
import { migration as migrationFields } from './004-migration-fields.ts';
import { migration as backupMetadata } from './005-backup-metadata.ts';
import { migration as messages } from './006-messages.ts';
import { migration as groups } from './007-groups.ts';

export const migrations = [initial, backupFields, transfers, migrationFields, backupMetadata, messages, groups];
