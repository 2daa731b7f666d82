import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { baseRules } from './base.ts';
import { catalogRules } from './catalog.ts';
import { limitRules } from './limit.ts';
import { tokenRules } from './token.ts';

/** Every identity:* default, in upstream's names (see base.ts for the personas). */
export const keystonePolicies: RuleDefault[] = [...baseRules, ...tokenRules, ...catalogRules, ...limitRules];
