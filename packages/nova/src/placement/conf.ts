import { join } from 'node:path';
import { defineGroup, opt, serviceAuthOptions } from '@onestack/core/config/index.ts';

/** Placement's options in [placement], named as upstream's placement.conf where one exists. */
export const placementOptions = defineGroup('placement', {
  port: opt.port({ default: 8778, help: 'Port of the Placement API.' }),
  database_connection: opt.string({
    default: '',
    secret: true,
    help: 'Database URL (sqlite:///path, postgresql://…, mysql://…) ([placement_database] connection). Empty: <state_dir>/placement/placement.db.',
  }),
  ...serviceAuthOptions('placement'),
  policy_file: opt.string({ default: '', help: 'Policy overrides in upstream YAML format. Empty: <state_dir>/placement/policy.yaml when it exists.' }),
  enforce_scope: opt.bool({ default: true, help: 'Refuse tokens whose scope a rule does not list ([oslo_policy] enforce_scope); every placement rule is project-scoped.' }),
});

export interface PlacementConfig {
  policyFile: string;
  enforceScope: boolean;
}

export type PlacementValues = { [K in keyof typeof placementOptions.options]: unknown };

export function placementConfig(v: PlacementValues, o: { stateDir: string }): PlacementConfig {
  return {
    policyFile: String(v.policy_file || join(o.stateDir, 'placement', 'policy.yaml')),
    enforceScope: Boolean(v.enforce_scope),
  };
}

export function defaultPlacementValues(): PlacementValues {
  return Object.fromEntries(Object.entries(placementOptions.options).map(([k, spec]) => [k, (spec as { default: unknown }).default])) as PlacementValues;
}
