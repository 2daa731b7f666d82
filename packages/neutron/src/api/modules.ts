import type { NeutronModule } from './context.ts';
import { coreModule } from './core-module.ts';
import { discoveryModule } from './discovery-routes.ts';
import { l3Module } from './router-routes.ts';
import { securityGroupsModule } from './security-group-routes.ts';

/**
 * Every area of the Networking API, in registration order. Another area
 * (routers and floating IPs, security groups …) adds its module here — one
 * line — and keeps its routes, hooks, quotas and taggable resources in its
 * own files.
 */
export const MODULES: readonly NeutronModule[] = [
  discoveryModule(() => MODULES),
  coreModule,
  securityGroupsModule(),
  l3Module(),
];
