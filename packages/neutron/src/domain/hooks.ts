import type { Kysely } from 'kysely';
import { notFound } from '@onestack/core/errors.ts';
import type { NeutronDB, PortRow } from '../db/schema.ts';
import type { PortChangeContext } from './affected-hosts.ts';

/**
 * Extension points of the core resources that other areas fill at start
 * (api/modules.ts): the security group area validates the groups a port asks
 * for and supplies the default group; routers and floating IPs guard and
 * follow port deletion. Functions run inside the core's transaction (`trx`),
 * so what they check and write commits or rolls back with the port.
 */
export interface Hooks {
  /** Throws (404 SecurityGroupNotFound) unless every id is a group the project may use. No groups area: any id is refused. */
  validateSecurityGroups(trx: Kysely<NeutronDB>, projectId: string, ids: string[]): Promise<void>;
  /** Groups a new port gets when it names none: upstream's project `default` group. No groups area: none. */
  defaultSecurityGroups(trx: Kysely<NeutronDB>, projectId: string): Promise<string[]>;
  /** Before a port is deleted; throw to refuse (409 for a router interface deleted through /ports). `viaApi` is false when the network or a router deletes it. */
  portDeleting: ((trx: Kysely<NeutronDB>, port: PortRow, viaApi: boolean) => Promise<void>)[];
  /** After a port is created, updated or deleted and the change committed (data plane resync, nova notifications). */
  portChanged: ((event: 'create' | 'update' | 'delete', port: { id: string; network_id: string; device_owner: string; device_id: string; binding_host_id: string }, ctx?: PortChangeContext) => void)[];
  /** Before a network is deleted, after its own ports were checked; throw to refuse. */
  networkDeleting: ((trx: Kysely<NeutronDB>, networkId: string) => Promise<void>)[];
  /** Before a subnet is deleted; throw to refuse (a router interface on it: 409 SubnetInUse). */
  subnetDeleting: ((trx: Kysely<NeutronDB>, subnetId: string) => Promise<void>)[];
}

export function defaultHooks(): Hooks {
  return {
    async validateSecurityGroups(_trx, _projectId, ids) {
      if (ids.length > 0) throw notFound(`Security group ${ids[0]} does not exist`, { type: 'SecurityGroupNotFound' });
    },
    async defaultSecurityGroups() {
      return [];
    },
    portDeleting: [],
    portChanged: [],
    networkDeleting: [],
    subnetDeleting: [],
  };
}
