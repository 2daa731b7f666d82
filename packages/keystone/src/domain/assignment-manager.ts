import type { Kysely } from 'kysely';
import { badRequest, forbidden, notFound } from '@onestack/core/errors.ts';
import type { AssignmentRow, AssignmentType, KeystoneDB, RoleRow } from '../db/schema.ts';
import { bool, int, parseJson } from './json-columns.ts';
import type { Keystone } from './keystone.ts';

export interface Role {
  id: string;
  name: string;
  domainId: string | null;
  description: string;
  options: Record<string, unknown>;
  extra: Record<string, unknown>;
}

export interface Assignment {
  type: AssignmentType;
  actorId: string;
  targetId: string;
  roleId: string;
  inherited: boolean;
}

/** A target of a grant: a project, a domain, or the whole deployment ("system"). */
export type Target = { projectId: string } | { domainId: string } | { system: 'all' };
export type Actor = { userId: string } | { groupId: string };

const GLOBAL_ROLE_DOMAIN = '<<null>>';

export class AssignmentManager {
  constructor(private readonly ks: Keystone) {}

  private get db(): Kysely<KeystoneDB> {
    return this.ks.db;
  }

  // ---- roles -------------------------------------------------------------

  async getRole(id: string): Promise<Role> {
    const row = await this.db.selectFrom('role').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`Could not find role: ${id}.`);
    return toRole(row);
  }

  async findRoleByName(name: string, domainId: string | null = null): Promise<Role | undefined> {
    const row = await this.db.selectFrom('role').selectAll().where('name', '=', name).where('domain_id', '=', domainId ?? GLOBAL_ROLE_DOMAIN).executeTakeFirst();
    return row ? toRole(row) : undefined;
  }

  async listRoles(filter: { name?: string; domainId?: string | null } = {}): Promise<Role[]> {
    let q = this.db.selectFrom('role').selectAll();
    q = q.where('domain_id', '=', filter.domainId ?? GLOBAL_ROLE_DOMAIN);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    return (await q.orderBy('name').execute()).map(toRole);
  }

  async createRole(input: { id?: string; name: string; domainId?: string | null; description?: string; options?: Record<string, unknown>; extra?: Record<string, unknown> }): Promise<Role> {
    if (input.domainId) await this.ks.resource.getDomain(input.domainId);
    const row: RoleRow = {
      id: input.id ?? this.ks.ids.hex(),
      name: input.name,
      domain_id: input.domainId ?? GLOBAL_ROLE_DOMAIN,
      description: input.description ?? null,
      extra: JSON.stringify(input.extra ?? {}),
      options: JSON.stringify(input.options ?? {}),
    };
    await this.ks.unique('role', `Duplicate entry found with name ${input.name}.`, () => this.db.insertInto('role').values(row).execute());
    this.ks.notifier.emit('role', 'created', row.id);
    return toRole(row);
  }

  async updateRole(id: string, patch: { name?: string; description?: string; options?: Record<string, unknown>; extra?: Record<string, unknown> }): Promise<Role> {
    const current = await this.getRole(id);
    if (current.options.immutable === true && !(patch.options && patch.options.immutable === false && Object.keys(patch).length === 1)) {
      throw forbidden(`Role ${id} is immutable.`);
    }
    const set: Partial<RoleRow> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.options !== undefined) set.options = JSON.stringify({ ...current.options, ...patch.options });
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (Object.keys(set).length) {
      await this.ks.unique('role', `Duplicate entry found with name ${patch.name}.`, () => this.db.updateTable('role').set(set).where('id', '=', id).execute());
    }
    this.ks.notifier.emit('role', 'updated', id);
    this.ks.invalidate();
    return this.getRole(id);
  }

  async deleteRole(id: string): Promise<void> {
    const role = await this.getRole(id);
    if (role.options.immutable === true) throw forbidden(`Role ${id} is immutable.`);
    await this.db.transaction().execute((tx) => this.ks.identity.purgeActors(tx, 'role', [id]));
    await this.ks.revocations.revoke({ roleId: id });
    this.ks.notifier.emit('role', 'deleted', id);
    this.ks.invalidate();
  }

  // ---- implied roles -----------------------------------------------------

  async createImpliedRole(priorId: string, impliedId: string): Promise<void> {
    await this.getRole(priorId);
    const implied = await this.getRole(impliedId);
    // upstream's [assignment] prohibited_implied_role default
    if (implied.name === 'admin') throw forbidden(`Role ${impliedId} is not allowed to be an implied role`);
    if ((await this.expandImplied([impliedId])).has(priorId)) {
      throw forbidden(`Creating the implication ${priorId} -> ${impliedId} would make a cycle.`);
    }
    await this.db.insertInto('implied_role').values({ prior_role_id: priorId, implied_role_id: impliedId }).onConflict((oc) => oc.doNothing()).execute();
    this.ks.invalidate();
  }

  async deleteImpliedRole(priorId: string, impliedId: string): Promise<void> {
    const res = await this.db.deleteFrom('implied_role').where('prior_role_id', '=', priorId).where('implied_role_id', '=', impliedId).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound(`Could not find implied role: ${priorId} implies ${impliedId}.`);
    this.ks.invalidate();
  }

  async getImpliedRole(priorId: string, impliedId: string): Promise<void> {
    const row = await this.db.selectFrom('implied_role').selectAll().where('prior_role_id', '=', priorId).where('implied_role_id', '=', impliedId).executeTakeFirst();
    if (!row) throw notFound(`Could not find implied role: ${priorId} implies ${impliedId}.`);
  }

  async listImpliedRoles(priorId?: string): Promise<{ priorRoleId: string; impliedRoleId: string }[]> {
    let q = this.db.selectFrom('implied_role').selectAll();
    if (priorId) q = q.where('prior_role_id', '=', priorId);
    return (await q.execute()).map((r) => ({ priorRoleId: r.prior_role_id, impliedRoleId: r.implied_role_id }));
  }

  /** The closure of roles under implication (admin → member → reader). */
  async expandImplied(roleIds: Iterable<string>): Promise<Set<string>> {
    const rules = await this.db.selectFrom('implied_role').selectAll().execute();
    const next = new Map<string, string[]>();
    for (const r of rules) next.set(r.prior_role_id, [...(next.get(r.prior_role_id) ?? []), r.implied_role_id]);
    const out = new Set<string>();
    const stack = [...roleIds];
    while (stack.length) {
      const id = stack.pop()!;
      if (out.has(id)) continue;
      out.add(id);
      stack.push(...(next.get(id) ?? []));
    }
    return out;
  }

  // ---- grants ------------------------------------------------------------

  async grant(actor: Actor, target: Target, roleId: string, inherited = false): Promise<void> {
    const row = await this.assignmentRow(actor, target, roleId, inherited);
    await this.db.insertInto('assignment').values(row).onConflict((oc) => oc.doNothing()).execute();
    this.ks.notifier.emit('role_assignment', 'created', roleId, describe(actor, target, inherited));
    this.ks.invalidate();
  }

  async revoke(actor: Actor, target: Target, roleId: string, inherited = false): Promise<void> {
    const row = await this.assignmentRow(actor, target, roleId, inherited);
    const res = await this.db
      .deleteFrom('assignment')
      .where('type', '=', row.type)
      .where('actor_id', '=', row.actor_id)
      .where('target_id', '=', row.target_id)
      .where('role_id', '=', row.role_id)
      .where('inherited', '=', row.inherited)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw notFound(`Could not find role assignment with role: ${roleId}, user or group: ${'userId' in actor ? actor.userId : actor.groupId}, project, domain, or system: ${targetId(target)}.`);
    if ('userId' in actor) await this.ks.revocations.revoke({ userId: actor.userId, ...scopeOf(target) });
    else for (const u of await this.ks.identity.listUsersInGroup(actor.groupId)) await this.ks.revocations.revoke({ userId: u.id, ...scopeOf(target) });
    this.ks.notifier.emit('role_assignment', 'deleted', roleId, describe(actor, target, inherited));
    this.ks.invalidate();
  }

  async checkGrant(actor: Actor, target: Target, roleId: string, inherited = false): Promise<void> {
    const row = await this.assignmentRow(actor, target, roleId, inherited);
    const found = await this.db
      .selectFrom('assignment')
      .select('role_id')
      .where('type', '=', row.type)
      .where('actor_id', '=', row.actor_id)
      .where('target_id', '=', row.target_id)
      .where('role_id', '=', row.role_id)
      .where('inherited', '=', row.inherited)
      .executeTakeFirst();
    if (!found) throw notFound(`Could not find role assignment with role: ${roleId}, user or group: ${'userId' in actor ? actor.userId : actor.groupId}, project, domain, or system: ${targetId(target)}.`);
  }

  async listGrants(actor: Actor, target: Target, inherited = false): Promise<Role[]> {
    const type = assignmentType(actor, target);
    const rows = await this.db
      .selectFrom('assignment')
      .innerJoin('role', 'role.id', 'assignment.role_id')
      .selectAll('role')
      .where('assignment.type', '=', type)
      .where('assignment.actor_id', '=', actorId(actor))
      .where('assignment.target_id', '=', targetId(target))
      .where('assignment.inherited', '=', int(inherited))
      .execute();
    return rows.map(toRole);
  }

  async listAssignments(filter: { actorIds?: string[]; targetIds?: string[]; roleIds?: string[]; types?: AssignmentType[] } = {}): Promise<Assignment[]> {
    let q = this.db.selectFrom('assignment').selectAll();
    if (filter.actorIds) q = filter.actorIds.length ? q.where('actor_id', 'in', filter.actorIds) : q.where('actor_id', '=', '\u0000');
    if (filter.targetIds) q = filter.targetIds.length ? q.where('target_id', 'in', filter.targetIds) : q.where('target_id', '=', '\u0000');
    if (filter.roleIds) q = filter.roleIds.length ? q.where('role_id', 'in', filter.roleIds) : q.where('role_id', '=', '\u0000');
    if (filter.types) q = q.where('type', 'in', filter.types);
    return (await q.execute()).map(toAssignment);
  }

  private async assignmentRow(actor: Actor, target: Target, roleId: string, inherited: boolean): Promise<AssignmentRow> {
    await this.getRole(roleId);
    if ('userId' in actor) await this.ks.identity.getUser(actor.userId);
    else await this.ks.identity.getGroup(actor.groupId);
    if ('projectId' in target) await this.ks.resource.getProject(target.projectId);
    else if ('domainId' in target) await this.ks.resource.getDomain(target.domainId);
    else if (inherited) throw badRequest('Inherited system assignments are not supported.');
    return { type: assignmentType(actor, target), actor_id: actorId(actor), target_id: targetId(target), role_id: roleId, inherited: int(inherited) };
  }

  // ---- effective roles (the token path) -----------------------------------

  /**
   * Role ids a user effectively holds on a target: direct and group grants,
   * grants inherited from the domain and from parent projects, then expanded
   * through implied roles.
   */
  async effectiveRoleIds(userId: string, target: Target): Promise<Set<string>> {
    const groups = (await this.ks.identity.listGroupsForUser(userId)).map((g) => g.id);
    const actors = [userId, ...groups];
    let direct: string[] = [];
    if ('system' in target) {
      direct = (await this.listAssignments({ actorIds: actors, targetIds: ['system'], types: ['UserSystem', 'GroupSystem'] })).map((a) => a.roleId);
    } else if ('domainId' in target) {
      direct = (await this.listAssignments({ actorIds: actors, targetIds: [target.domainId], types: ['UserDomain', 'GroupDomain'] }))
        .filter((a) => !a.inherited)
        .map((a) => a.roleId);
    } else {
      const ancestors = await this.ks.resource.parentIds(target.projectId);
      const rows = await this.listAssignments({ actorIds: actors, targetIds: [target.projectId, ...ancestors] });
      direct = rows
        .filter((a) => (a.targetId === target.projectId ? !a.inherited : a.inherited))
        .filter((a) => a.type !== 'UserSystem' && a.type !== 'GroupSystem')
        .map((a) => a.roleId);
    }
    return this.expandImplied(direct);
  }

  async effectiveRoles(userId: string, target: Target): Promise<Role[]> {
    const ids = [...(await this.effectiveRoleIds(userId, target))];
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('role').selectAll().where('id', 'in', ids).orderBy('name').execute();
    return rows.map(toRole);
  }

  /** Projects where the user has any effective role (GET /v3/users/{id}/projects, /v3/auth/projects). */
  async projectsForUser(userId: string): Promise<string[]> {
    const groups = (await this.ks.identity.listGroupsForUser(userId)).map((g) => g.id);
    const rows = await this.listAssignments({ actorIds: [userId, ...groups] });
    const ids = new Set<string>();
    for (const a of rows) {
      if ((a.type === 'UserProject' || a.type === 'GroupProject') && !a.inherited) ids.add(a.targetId);
      if (a.inherited && a.type !== 'UserSystem' && a.type !== 'GroupSystem') {
        // Inherited grants on a domain or project reach every project below it.
        const below = (a.type === 'UserDomain' || a.type === 'GroupDomain')
          ? (await this.ks.resource.listProjects({ domainId: a.targetId, isDomain: false })).map((p) => p.id)
          : await this.ks.resource.subtreeIds(a.targetId);
        for (const id of below) ids.add(id);
      }
    }
    return [...ids];
  }

  async domainsForUser(userId: string): Promise<string[]> {
    const groups = (await this.ks.identity.listGroupsForUser(userId)).map((g) => g.id);
    const rows = await this.listAssignments({ actorIds: [userId, ...groups], types: ['UserDomain', 'GroupDomain'] });
    return [...new Set(rows.filter((a) => !a.inherited).map((a) => a.targetId))];
  }
}

export function toRole(row: RoleRow): Role {
  return {
    id: row.id,
    name: row.name,
    domainId: row.domain_id === GLOBAL_ROLE_DOMAIN ? null : row.domain_id,
    description: row.description ?? '',
    options: parseJson(row.options),
    extra: parseJson(row.extra),
  };
}

function toAssignment(r: AssignmentRow): Assignment {
  return { type: r.type, actorId: r.actor_id, targetId: r.target_id, roleId: r.role_id, inherited: bool(r.inherited) };
}

function actorId(a: Actor): string {
  return 'userId' in a ? a.userId : a.groupId;
}

function targetId(t: Target): string {
  return 'projectId' in t ? t.projectId : 'domainId' in t ? t.domainId : 'system';
}

function assignmentType(a: Actor, t: Target): AssignmentType {
  const who = 'userId' in a ? 'User' : 'Group';
  const what = 'projectId' in t ? 'Project' : 'domainId' in t ? 'Domain' : 'System';
  return `${who}${what}` as AssignmentType;
}

function scopeOf(t: Target): { projectId?: string; domainId?: string } {
  return 'projectId' in t ? { projectId: t.projectId } : 'domainId' in t ? { domainId: t.domainId } : {};
}

function describe(actor: Actor, target: Target, inherited: boolean): Record<string, unknown> {
  return {
    ...('userId' in actor ? { user: actor.userId } : { group: actor.groupId }),
    ...('projectId' in target ? { project: target.projectId } : 'domainId' in target ? { domain: target.domainId } : { system: 'all' }),
    inherited_to_projects: inherited,
  };
}

