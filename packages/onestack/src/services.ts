import type { ServiceDefinition } from '@onestack/core/service.ts';
import { cinderService } from '@onestack/cinder/index.ts';
import { glanceService } from '@onestack/glance/index.ts';
import { keystoneService } from '@onestack/keystone/index.ts';
import { neutronAgentService } from '@onestack/neutron/agent-service.ts';
import { neutronService } from '@onestack/neutron/index.ts';
import { novaService } from '@onestack/nova/index.ts';
import { placementService } from '@onestack/nova/placement/index.ts';
import { swiftService } from '@onestack/swift/index.ts';
import { swiftReplicatorService } from '@onestack/swift/replication/service.ts';
import { swiftStorageService } from '@onestack/swift/storage/services.ts';

/**
 * Every service onestack can run, in start order (Keystone first: the others
 * need tokens; Swift's storage node before its proxy: it builds the rings).
 */
export const SERVICES: readonly ServiceDefinition[] = [keystoneService, glanceService, neutronService, neutronAgentService, placementService, novaService, swiftStorageService, swiftReplicatorService, swiftService, cinderService];

export function serviceByName(name: string): ServiceDefinition {
  const s = SERVICES.find((x) => x.name === name);
  if (!s) throw new Error(`unknown service "${name}"; known: ${SERVICES.map((x) => x.name).join(', ')}`);
  return s;
}
