import type { Kysely } from 'kysely';
import { ApiError, badRequest } from '@onestack/core/errors.ts';
import { isUniqueViolation } from '@onestack/core/db/index.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NetworkRow, NeutronDB, RbacPolicyRow } from '../db/schema.ts';
import type { NetworkService, Viewer } from './networks.ts';
import type { QuotaRegistry } from './quotas.ts';

/** Object types and the actions upstream allows on them; only networks are served. */
export const RBAC_ACTIONS: Record<string, string[]> = { network: ['access_as_external', 'access_as_shared'] };

export interface RbacCreate {
  projectId: string;
  objectType: string;
  objectId: string;
  action: string;
  targetProject: string;
}

const duplicate = () => new ApiError('conflict', 'An RBAC policy already exists with those values.', { type: 'DuplicateRbacPolicy' });

export function rbacNotFound(id: string, objectType = 'unknown'): ApiError {
  return new ApiError('not_found', `RBAC policy of type ${objectType} with ID ${id} not found`, { type: 'RbacPolicyNotFound' });
}

/**
 * RBAC policies on networks (upstream's rbac_db_mixin with the network
 * plugin's callbacks): only the network's owner or an admin writes them; a
 * project losing access must not keep ports on the network (RbacPolicyInUse);
 * the wildcard `access_as_shared` entry is what `shared` means, so the
 * network's column follows it.
 */
export class RbacService {
  constructor(private readonly deps: { ids: IdSource; quotas: QuotaRegistry; networks: NetworkService }) {}

  validateType(objectType: string, action: string): void {
    const actions = RBAC_ACTIONS[objectType];
    if (!actions) {
      throw badRequest(`Invalid input for object_type. Reason: '${objectType}' is not in ${JSON.stringify(Object.keys(RBAC_ACTIONS))}.`, { type: 'InvalidInput' });
    }
    if (!actions.includes(action)) {
      throw badRequest(`Invalid action '${action}' for object type '${objectType}'. Valid actions: ${actions.join(', ')}`, { type: 'InvalidActionForType' });
    }
  }

  /** The network a policy is about, as the caller sees it; 400 unless the caller owns it or is admin. */
  async ownedNetwork(objectId: string, viewer: Viewer): Promise<NetworkRow> {
    const net = await this.deps.networks.find(objectId, viewer);
    if (!net) throw new ApiError('not_found', `Network ${objectId} could not be found.`, { type: 'NetworkNotFound' });
    if (!viewer.isAdmin && net.project_id !== viewer.projectId) {
      throw badRequest('Invalid input for operation: Only admins can manipulate policies on networks they do not own.', { type: 'InvalidInput' });
    }
    return net;
  }

  async create(trx: Kysely<NeutronDB>, input: RbacCreate): Promise<RbacPolicyRow> {
    await this.deps.quotas.check(trx, input.projectId, 'rbac_policy');
    await this.assertUnique(trx, input.objectId, input.action, input.targetProject);
    const row: RbacPolicyRow = {
      id: this.deps.ids.uuid(),
      project_id: input.projectId,
      object_type: input.objectType,
      object_id: input.objectId,
      action: input.action,
      target_project: input.targetProject,
    };
    try {
      await trx.insertInto('rbac_policies').values(row).execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw duplicate();
      throw e;
    }
    await this.syncWildcard(trx, row.object_id);
    return row;
  }

  async updateTarget(trx: Kysely<NeutronDB>, policy: RbacPolicyRow, net: NetworkRow, targetProject: string): Promise<RbacPolicyRow> {
    if (targetProject === policy.target_project) return policy;
    await this.assertUnique(trx, policy.object_id, policy.action, targetProject);
    await this.assertReleasable(trx, policy, net);
    try {
      await trx.updateTable('rbac_policies').set({ target_project: targetProject }).where('id', '=', policy.id).execute();
    } catch (e) {
      if (isUniqueViolation(e)) throw duplicate();
      throw e;
    }
    await this.syncWildcard(trx, policy.object_id);
    return { ...policy, target_project: targetProject };
  }

  async delete(trx: Kysely<NeutronDB>, policy: RbacPolicyRow, net: NetworkRow): Promise<void> {
    await this.assertReleasable(trx, policy, net);
    await trx.deleteFrom('rbac_policies').where('id', '=', policy.id).execute();
    await this.syncWildcard(trx, policy.object_id);
  }

  private async assertUnique(trx: Kysely<NeutronDB>, objectId: string, action: string, target: string): Promise<void> {
    const same = await trx
      .selectFrom('rbac_policies')
      .select('id')
      .where('object_type', '=', 'network')
      .where('object_id', '=', objectId)
      .where('action', '=', action)
      .where('target_project', '=', target)
      .executeTakeFirst();
    if (same) throw duplicate();
  }

  /** The project losing access by this policy must have no ports left that depend on it (self-sharing never does). */
  private async assertReleasable(trx: Kysely<NeutronDB>, policy: RbacPolicyRow, net: NetworkRow): Promise<void> {
    if (policy.action !== 'access_as_shared' || policy.target_project === net.project_id) return;
    try {
      await this.deps.networks.assertNotUsedByOthers(trx, net, policy.target_project);
    } catch (e) {
      if (e instanceof ApiError && e.type === 'InvalidSharedSetting') {
        throw new ApiError('conflict', `RBAC policy on object ${net.id} cannot be removed because other objects depend on it.\nDetails: ${e.message}`, { type: 'RbacPolicyInUse' });
      }
      throw e;
    }
  }

  /** `shared` is the wildcard access_as_shared entry, whichever API wrote it. */
  private async syncWildcard(trx: Kysely<NeutronDB>, networkId: string): Promise<void> {
    const wild = await trx
      .selectFrom('rbac_policies')
      .select('id')
      .where('object_type', '=', 'network')
      .where('object_id', '=', networkId)
      .where('action', '=', 'access_as_shared')
      .where('target_project', '=', '*')
      .executeTakeFirst();
    await trx.updateTable('networks').set({ shared: wild ? 1 : 0 }).where('id', '=', networkId).execute();
  }
}
