import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { basePolicies } from './base.ts';
import { corePolicies } from './core.ts';
import { routerPolicies } from './routers.ts';
import { securityGroupPolicies } from './security-groups.ts';

/**
 * Every Neutron rule, upstream's names. Each area keeps its rules in its own
 * file (routers, security groups …) and adds one entry here.
 */
export const neutronPolicies: RuleDefault[] = [...basePolicies, ...corePolicies, ...securityGroupPolicies, ...routerPolicies];
