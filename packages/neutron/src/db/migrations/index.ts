import type { Migration } from '@onestack/core/db/index.ts';
import { migration as initial } from './001-initial.ts';
import { migration as securityGroups } from './010-security-groups.ts';
import { migration as routers } from './020-routers.ts';
import { migration as quotaLocks } from './030-quota-locks.ts';

/**
 * Neutron's migrations in version order. Each area adds its own file
 * (002-…, 003-…) and one line here; versions must not collide.
 */
export const migrations: Migration[] = [initial, securityGroups, routers, quotaLocks];
