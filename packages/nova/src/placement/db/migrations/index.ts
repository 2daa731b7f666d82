import { migration as initial } from './001-initial.ts';
import { migration as changeCounter } from './002-change-counter.ts';

/** Recorded in `placement_migration`: apart from Nova's own, so the two never clash. */
export const migrations = [initial, changeCounter];
