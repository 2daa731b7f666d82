import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { appCredRules } from './app-cred.ts';
import { assignmentRules } from './assignment.ts';
import { baseRules } from './base.ts';
import { catalogRules } from './catalog.ts';
import { credentialRules } from './credential.ts';
import { identityRules } from './identity.ts';
import { limitRules } from './limit.ts';
import { resourceRules } from './resource.ts';
import { roleRules } from './role.ts';
import { tokenRules } from './token.ts';

/** Every identity:* default, in upstream's names (see base.ts for the personas). */
export const keystonePolicies: RuleDefault[] = [...baseRules, ...tokenRules, ...resourceRules, ...identityRules, ...credentialRules, ...appCredRules, ...catalogRules, ...limitRules, ...roleRules, ...assignmentRules];
