import type { Kysely } from 'kysely';
import { badRequest, forbidden, isApiError, notFound, validationError } from '@onestack/core/errors.ts';
import type { AssignmentRow, AssignmentType, KeystoneDB, RoleRow } from '../db/schema.ts';
import { bool, int, mergeOptions, parseJson } from './json-columns.ts';
import type { Keystone } from './keystone.ts';
import type { Project } from './resource-manager.ts';
import { insertIgnoringDuplicates } from '@onestack/core/db/index.ts';

export interface Role {
  id: string;
  name: string;
  domainId: string | null;
  description: string;
  options: Record<string, unknown>;
  extra: Record<string, unknown>;
}

export interface RoleCreate {
  id?: string;
  name: string;
  domainId?: string | null;
  description?: string | null;
  options?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

/** Only the attributes a request names; a null option removes that option. */
export interface RoleUpdate {
  name?: string;
  description?: string | null;
  domainId?: string | null;
  options?: Record<string, unknown>;
  extra?: Record<string, unknown>;
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

/**
 * One role assignment as GET /v3/role_assignments lists it, upstream's
 * internal shape: an effective assignment says in `indirect` what it comes
 * from (the group whose member the user is, the domain or project it is
 * inherited from, the prior role that implies it).
 */
export interface RoleAssignment {
  roleId: string;
  userId?: string;
  groupId?: string;
  projectId?: string;
  domainId?: string;
  system?: true;
  inheritedToProjects?: true;
  indirect?: { groupId?: string; projectId?: string; domainId?: string; roleId?: string };
  names?: AssignmentNames;
}

export interface NamedInDomain {
  name: string;
  domain?: { id: string; name: string };
}

export interface AssignmentNames {
  user?: NamedInDomain;
  group?: NamedInDomain;
  project?: NamedInDomain;
  domain?: { name: string };
  role?: NamedInDomain;
}

export interface RoleAssignmentFilter {
  roleId?: string;
  userId?: string;
  groupId?: string;
  system?: boolean;
  domainId?: string;
  projectId?: string;
  includeSubtree?: boolean;
  /** true: only inherited assignments, false: only the others, undefined: both. */
  inherited?: boolean;
  effective?: boolean;
  includeNames?: boolean;
}

const GLOBAL_ROLE_DOMAIN = '<<null>>';
// upstream's [assignment] prohibited_implied_role default
const PROHIBITED_IMPLIED_ROLES = ['admin'];
const USER_TYPES: AssignmentType[] = ['UserProject', 'UserDomain'];
const GROUP_TYPES: AssignmentType[] = ['GroupProject', 'GroupDomain'];
const PROJECT_TYPES: AssignmentType[] = ['UserProject', 'GroupProject'];
const DOMAIN_TYPES: AssignmentType[] = ['UserDomain', 'GroupDomain'];

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

  /** Global roles, or those of one domain: upstream never mixes them in a listing. */
  async listRoles(filter: { name?: string; domainId?: string | null } = {}): Promise<Role[]> {
    let q = this.db.selectFrom('role').selectAll();
    q = q.where('domain_id', '=', filter.domainId ?? GLOBAL_ROLE_DOMAIN);
    if (filter.name !== undefined) q = q.where('name', '=', filter.name);
    return (await q.orderBy('name').execute()).map(toRole);
  }

  async createRole(input: RoleCreate): Promise<Role> {
    if (input.domainId) await this.ks.resource.getDomain(input.domainId);
    const row: RoleRow = {
      id: input.id ?? this.ks.ids.hex(),
      name: input.name,
      domain_id: input.domainId ?? GLOBAL_ROLE_DOMAIN,
      description: input.description ?? null,
      extra: JSON.stringify(input.extra ?? {}),
      options: JSON.stringify(mergeOptions({}, input.options)),
    };
    await this.ks.unique('role', duplicateName(input.name, input.domainId), () => this.db.insertInto('role').values(row).execute());
    this.ks.notifier.emit('role', 'created', row.id);
    return toRole(row);
  }

  async updateRole(id: string, patch: RoleUpdate): Promise<Role> {
    const current = await this.getRole(id);
    if (current.options.immutable === true && !onlyClearsImmutable(patch)) throw forbidden(immutableMessage('update', id));
    if (patch.domainId !== undefined && patch.domainId !== current.domainId) throw validationError('Update of `domain_id` is not allowed.');
    const set: Partial<RoleRow> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.options !== undefined) set.options = JSON.stringify(mergeOptions(current.options, patch.options));
    if (patch.extra !== undefined) set.extra = JSON.stringify({ ...current.extra, ...patch.extra });
    if (Object.keys(set).length) {
      await this.ks.unique('role', duplicateName(patch.name ?? current.name, patch.domainId), () => this.db.updateTable('role').set(set).where('id', '=', id).execute());
    }
    this.ks.notifier.emit('role', 'updated', id);
    this.ks.invalidate();
    return this.getRole(id);
  }

  async deleteRole(id: string): Promise<void> {
    const role = await this.getRole(id);
    if (role.options.immutable === true) throw forbidden(immutableMessage('delete', id));
    await this.db.transaction().execute((tx) => this.ks.identity.purgeActors(tx, 'role', [id]));
    await this.ks.revocations.revoke({ roleId: id });
    this.ks.notifier.emit('role', 'deleted', id);
    this.ks.invalidate();
  }

  // ---- implied roles -----------------------------------------------------

  /** As upstream, cycles are allowed: every expansion below stops where it has been. */
  async createImpliedRole(priorId: string, impliedId: string): Promise<void> {
    const implied = await this.getRole(impliedId);
    const prior = await this.getRole(priorId);
    if (PROHIBITED_IMPLIED_ROLES.includes(implied.name) || (prior.domainId === null && implied.domainId !== null)) {
      throw forbidden(`${impliedId} cannot be an implied roles.`);
    }
    await this.ks.unique('implied_role', 'Duplicate entry.', () =>
      this.db.insertInto('implied_role').values({ prior_role_id: priorId, implied_role_id: impliedId }).execute(),
    );
    this.ks.invalidate();
  }

  async deleteImpliedRole(priorId: string, impliedId: string): Promise<void> {
    const res = await this.db.deleteFrom('implied_role').where('prior_role_id', '=', priorId).where('implied_role_id', '=', impliedId).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw impliedRoleNotFound(priorId, impliedId);
    this.ks.invalidate();
  }

  async getImpliedRole(priorId: string, impliedId: string): Promise<void> {
    const row = await this.db.selectFrom('implied_role').selectAll().where('prior_role_id', '=', priorId).where('implied_role_id', '=', impliedId).executeTakeFirst();
    if (!row) throw impliedRoleNotFound(priorId, impliedId);
  }

  async listImpliedRoles(priorId?: string): Promise<{ priorRoleId: string; impliedRoleId: string }[]> {
    let q = this.db.selectFrom('implied_role').selectAll();
    if (priorId) q = q.where('prior_role_id', '=', priorId);
    return (await q.execute()).map((r) => ({ priorRoleId: r.prior_role_id, impliedRoleId: r.implied_role_id }));
  }

  /** The closure of roles under implication (admin → member → reader). */
  async expandImplied(roleIds: Iterable<string>): Promise<Set<string>> {
    const next = await this.impliedRules();
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

  private async impliedRules(): Promise<Map<string, string[]>> {
    const next = new Map<string, string[]>();
    for (const r of await this.db.selectFrom('implied_role').selectAll().execute()) {
      next.set(r.prior_role_id, [...(next.get(r.prior_role_id) ?? []), r.implied_role_id]);
    }
    return next;
  }

  // ---- grants ------------------------------------------------------------

  /** Idempotent, as upstream's PUT. */
  async grant(actor: Actor, target: Target, roleId: string, inherited = false): Promise<void> {
    const row = await this.assignmentRow(actor, target, roleId, inherited, { actorMustExist: true, forGrant: true });
    await insertIgnoringDuplicates(this.db, 'assignment', row).execute();
    this.ks.notifier.emit('role_assignment', 'created', roleId, describe(actor, target, inherited));
    this.ks.invalidate();
  }

  /**
   * Removes a grant and revokes the tokens that carried the role: validation
   * recomputes roles, so a token keeps working only while the user still holds
   * some role on its scope; the event also tells other Keystone processes to
   * drop what they cached. The actor may already be gone (upstream's
   * allow_non_existing).
   */
  async revoke(actor: Actor, target: Target, roleId: string, inherited = false): Promise<void> {
    const row = await this.assignmentRow(actor, target, roleId, inherited, { actorMustExist: false });
    const res = await this.db
      .deleteFrom('assignment')
      .where('type', '=', row.type)
      .where('actor_id', '=', row.actor_id)
      .where('target_id', '=', row.target_id)
      .where('role_id', '=', row.role_id)
      .where('inherited', '=', row.inherited)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw assignmentNotFound(actor, target, roleId);
    const users = 'userId' in actor ? [actor.userId] : (await this.membersOf(actor.groupId)).map((u) => u.id);
    for (const userId of users) await this.ks.revocations.revoke({ userId, roleId, ...scopeOf(target) });
    // Upstream drops a user's application credentials on a project when a role there is taken away.
    if ('projectId' in target && users.length) {
      await this.db.transaction().execute((tx) => this.ks.appCreds.purge(tx, { userIds: users, projectIds: [target.projectId] }));
    }
    this.ks.notifier.emit('role_assignment', 'deleted', roleId, describe(actor, target, inherited));
    this.ks.invalidate();
  }

  async checkGrant(actor: Actor, target: Target, roleId: string, inherited = false): Promise<void> {
    const row = await this.assignmentRow(actor, target, roleId, inherited, { actorMustExist: false });
    const found = await this.db
      .selectFrom('assignment')
      .select('role_id')
      .where('type', '=', row.type)
      .where('actor_id', '=', row.actor_id)
      .where('target_id', '=', row.target_id)
      .where('role_id', '=', row.role_id)
      .where('inherited', '=', row.inherited)
      .executeTakeFirst();
    if (!found) throw assignmentNotFound(actor, target, roleId);
  }

  async listGrants(actor: Actor, target: Target, inherited = false): Promise<Role[]> {
    await this.targetOf(target);
    const rows = await this.db
      .selectFrom('assignment')
      .innerJoin('role', 'role.id', 'assignment.role_id')
      .selectAll('role')
      .where('assignment.type', '=', assignmentType(actor, target))
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

  private async assignmentRow(
    actor: Actor,
    target: Target,
    roleId: string,
    inherited: boolean,
    opts: { actorMustExist: boolean; forGrant?: boolean },
  ): Promise<AssignmentRow> {
    const role = await this.getRole(roleId);
    if (opts.actorMustExist) {
      if ('userId' in actor) await this.ks.identity.getUser(actor.userId);
      else await this.ks.identity.getGroup(actor.groupId);
    }
    const project = await this.targetOf(target);
    if ('system' in target) {
      if (inherited) throw badRequest('Inherited system assignments are not supported.');
      if (opts.forGrant && role.domainId) {
        throw validationError(`Role ${roleId} is a domain-specific role. Unable to use a domain-specific role in a system assignment.`);
      }
    } else if (opts.forGrant && 'projectId' in target && role.domainId && project!.domainId !== role.domainId) {
      throw forbidden(`Project ${target.projectId} must be in the same domain as the role ${roleId} being assigned.`);
    }
    return { type: assignmentType(actor, target), actor_id: actorId(actor), target_id: targetId(target), role_id: roleId, inherited: int(inherited) };
  }

  /** The project or domain a grant is on (404 when missing); nothing for the system. */
  private async targetOf(target: Target): Promise<Project | undefined> {
    if ('projectId' in target) return this.ks.resource.getProject(target.projectId);
    if ('domainId' in target) return this.ks.resource.getDomain(target.domainId);
    return undefined;
  }

  /** A group's members; none when the group is gone (its assignments went with it). */
  private async membersOf(groupId: string) {
    try {
      return await this.ks.identity.listUsersInGroup(groupId);
    } catch (e) {
      if (isApiError(e) && e.status === 404) return [];
      throw e;
    }
  }

  // ---- GET /v3/role_assignments ------------------------------------------

  /**
   * Upstream's list_role_assignments. Without `effective` these are the
   * stored grants matching the filters. With it, what actually reaches users:
   * group grants become one assignment per member, inherited grants land on
   * every project below their target, implied roles are added, and
   * domain-specific roles (which never reach a token) are dropped; system
   * grants are not part of that view, as upstream.
   */
  async listRoleAssignments(f: RoleAssignmentFilter): Promise<RoleAssignment[]> {
    const subtreeIds = f.projectId && f.includeSubtree ? await this.ks.resource.subtreeIds(f.projectId) : undefined;
    const refs = f.effective ? await this.effectiveAssignments(f, subtreeIds) : await this.directAssignments(f, subtreeIds);
    return f.includeNames ? this.withNames(refs) : refs;
  }

  private async directAssignments(f: RoleAssignmentFilter, subtreeIds: string[] | undefined): Promise<RoleAssignment[]> {
    const out = f.system
      ? []
      : await this.queryAssignments({
          roleId: f.roleId,
          userId: f.userId,
          groupIds: f.groupId ? [f.groupId] : undefined,
          domainId: f.domainId,
          projectIds: f.projectId ? [f.projectId, ...(subtreeIds ?? [])] : undefined,
          inherited: f.inherited,
        });
    if (f.system || (!f.projectId && !f.domainId)) {
      let q = this.db.selectFrom('assignment').selectAll().where('type', 'in', f.userId ? ['UserSystem'] : f.groupId ? ['GroupSystem'] : ['UserSystem', 'GroupSystem']);
      const actor = f.userId ?? f.groupId;
      if (actor) q = q.where('actor_id', '=', actor);
      if (f.roleId) q = q.where('role_id', '=', f.roleId);
      for (const r of await q.execute()) {
        out.push({ roleId: r.role_id, ...(r.type === 'UserSystem' ? { userId: r.actor_id } : { groupId: r.actor_id }), system: true });
      }
    }
    return out;
  }

  private async effectiveAssignments(f: RoleAssignmentFilter, subtreeIds: string[] | undefined): Promise<RoleAssignment[]> {
    // Groups are expanded away and domains inherit nothing: such filters can only match nothing.
    if (f.groupId || (f.domainId && f.inherited === true)) return [];
    const scope = { projectId: f.projectId, subtreeIds, domainId: f.domainId, inherited: f.domainId ? false : f.inherited };
    const refs = await this.assignmentsAffecting({ ...scope, userId: f.userId });
    if (f.userId) {
      const groupIds = (await this.ks.identity.listGroupsForUser(f.userId)).map((g) => g.id);
      if (groupIds.length) refs.push(...(await this.assignmentsAffecting({ ...scope, groupIds })));
    }
    const expanded: RoleAssignment[] = [];
    for (const ref of refs) expanded.push(...(await this.expandIndirect(ref, f.userId, f.projectId, subtreeIds)));
    const withImplied = await this.addImpliedRoles(expanded);
    const globalRoles = await this.globalRoleIds(withImplied.map((r) => r.roleId));
    return withImplied.filter((r) => globalRoles.has(r.roleId) && (!f.roleId || r.roleId === f.roleId));
  }

  /**
   * Every stored assignment that can affect the actor on the scope asked for:
   * direct ones on the project (and its subtree) or domain, and inherited ones
   * from the project's domain, from its parents and from within the subtree.
   */
  private async assignmentsAffecting(f: {
    userId?: string;
    groupIds?: string[];
    projectId?: string;
    subtreeIds?: string[];
    domainId?: string;
    inherited?: boolean;
  }): Promise<RoleAssignment[]> {
    const actor = { userId: f.userId, groupIds: f.groupIds };
    const projectIds = f.projectId ? [...(f.subtreeIds ?? []), f.projectId] : undefined;
    const out = f.inherited === true ? [] : await this.queryAssignments({ ...actor, domainId: f.domainId, projectIds, inherited: false });
    if (f.inherited === false) return out;
    if (!f.projectId) return [...out, ...(await this.queryAssignments({ ...actor, inherited: true }))];
    const project = await this.ks.resource.getProject(f.projectId);
    out.push(...(await this.queryAssignments({ ...actor, domainId: project.domainId!, inherited: true })));
    const sources = (await this.ks.resource.parentIds(f.projectId)).filter((id) => id !== project.domainId);
    if (f.subtreeIds?.length) sources.push(...projectIds!);
    if (sources.length) out.push(...(await this.queryAssignments({ ...actor, projectIds: sources, inherited: true })));
    return out;
  }

  /** Project and domain grants (never system ones) matching every filter given. */
  private async queryAssignments(f: {
    roleId?: string;
    userId?: string;
    groupIds?: string[];
    domainId?: string;
    projectIds?: string[];
    inherited?: boolean;
  }): Promise<RoleAssignment[]> {
    const actorTypes = f.userId ? USER_TYPES : f.groupIds?.length ? GROUP_TYPES : [...USER_TYPES, ...GROUP_TYPES];
    const targetTypes = f.projectIds?.length ? PROJECT_TYPES : f.domainId ? DOMAIN_TYPES : [...PROJECT_TYPES, ...DOMAIN_TYPES];
    const types = actorTypes.filter((t) => targetTypes.includes(t));
    const actors = f.groupIds?.length ? f.groupIds : f.userId ? [f.userId] : undefined;
    const targets = f.projectIds?.length ? f.projectIds : f.domainId ? [f.domainId] : undefined;
    let q = this.db.selectFrom('assignment').selectAll().where('type', 'in', types);
    if (f.roleId) q = q.where('role_id', '=', f.roleId);
    if (actors) q = q.where('actor_id', 'in', actors);
    if (targets) q = q.where('target_id', 'in', targets);
    if (f.inherited !== undefined) q = q.where('inherited', '=', int(f.inherited));
    return (await q.execute()).map((r) => ({
      roleId: r.role_id,
      ...(r.type.startsWith('User') ? { userId: r.actor_id } : { groupId: r.actor_id }),
      ...(r.type.endsWith('Project') ? { projectId: r.target_id } : { domainId: r.target_id }),
      ...(bool(r.inherited) ? { inheritedToProjects: true as const } : {}),
    }));
  }

  private async expandIndirect(ref: RoleAssignment, userId: string | undefined, projectId: string | undefined, subtreeIds: string[] | undefined): Promise<RoleAssignment[]> {
    if (ref.inheritedToProjects) return this.expandInherited(ref, userId, projectId, subtreeIds);
    if (ref.groupId) return this.expandGroup(ref, userId);
    return [ref];
  }

  /** A group's assignment as one per member (or only for the user asked about). */
  private async expandGroup(ref: RoleAssignment, userId: string | undefined): Promise<RoleAssignment[]> {
    const { groupId, ...rest } = ref;
    const members = userId ? [userId] : (await this.membersOf(groupId!)).map((u) => u.id);
    return members.map((u) => ({ ...rest, userId: u, indirect: { ...ref.indirect, groupId } }));
  }

  /** An inherited assignment placed on each project it reaches (limited to the projects asked about). */
  private async expandInherited(ref: RoleAssignment, userId: string | undefined, projectId: string | undefined, subtreeIds: string[] | undefined): Promise<RoleAssignment[]> {
    let projectIds: string[];
    if (projectId) {
      projectIds = [projectId];
      if (subtreeIds?.length) {
        projectIds.push(...subtreeIds);
        // Granted inside the subtree: only the part below the grant gets it.
        if (ref.projectId && projectIds.includes(ref.projectId)) projectIds = await this.ks.resource.subtreeIds(ref.projectId);
      }
    } else if (ref.domainId) {
      projectIds = (await this.ks.resource.listProjects({ domainId: ref.domainId, isDomain: false })).map((p) => p.id);
    } else {
      projectIds = await this.ks.resource.subtreeIds(ref.projectId!);
    }
    const bases = ref.groupId ? await this.expandGroup(ref, userId) : [ref];
    return bases.flatMap((base) =>
      projectIds.map((pid) => {
        const { projectId: from, domainId, inheritedToProjects: _, ...rest } = base;
        return { ...rest, projectId: pid, indirect: { ...base.indirect, ...(from ? { projectId: from } : { domainId }) } };
      }),
    );
  }

  /** Upstream's add_implied_roles: one more assignment per implied role, naming its prior role. */
  private async addImpliedRoles(refs: RoleAssignment[]): Promise<RoleAssignment[]> {
    const rules = await this.impliedRules();
    const results = [...refs];
    const toCheck = [...refs];
    const checked = new Set<string>();
    while (toCheck.length) {
      const next = toCheck.pop()!;
      checked.add(refKey(next));
      for (const impliedId of rules.get(next.roleId) ?? []) {
        const implied: RoleAssignment = { ...next, roleId: impliedId, indirect: { ...next.indirect, roleId: next.roleId } };
        if (checked.has(refKey(implied))) continue;
        results.push(implied);
        toCheck.push(implied);
      }
    }
    return results;
  }

  private async globalRoleIds(ids: string[]): Promise<Set<string>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Set();
    const rows = await this.db.selectFrom('role').select('id').where('id', 'in', unique).where('domain_id', '=', GLOBAL_ROLE_DOMAIN).execute();
    return new Set(rows.map((r) => r.id));
  }

  /** Upstream's include_names: each entity's name and its domain; a vanished user or group gets empty ones. */
  private async withNames(refs: RoleAssignment[]): Promise<RoleAssignment[]> {
    const { identity, resource } = this.ks;
    const domain = memo((id: string) => resource.getDomain(id));
    const inDomain = async (name: string, domainId: string): Promise<NamedInDomain> => ({ name, domain: { id: domainId, name: (await domain(domainId)).name } });
    const gone: NamedInDomain = { name: '', domain: { id: '', name: '' } };
    const user = memo(async (id: string) => {
      const u = await identity.findUser(id);
      return u ? inDomain(u.name, u.domainId) : gone;
    });
    const group = memo(async (id: string) => {
      const g = await identity.getGroup(id).catch((e: unknown) => {
        if (isApiError(e) && e.status === 404) return undefined;
        throw e;
      });
      return g ? inDomain(g.name, g.domainId) : gone;
    });
    const project = memo(async (id: string) => {
      const p = await resource.getProject(id);
      return inDomain(p.name, p.domainId!);
    });
    const role = memo(async (id: string) => {
      const r = await this.getRole(id);
      return r.domainId ? inDomain(r.name, r.domainId) : { name: r.name };
    });
    const out: RoleAssignment[] = [];
    for (const ref of refs) {
      const names: AssignmentNames = {};
      if (ref.domainId) names.domain = { name: (await domain(ref.domainId)).name };
      if (ref.userId) names.user = await user(ref.userId);
      if (ref.groupId) names.group = await group(ref.groupId);
      if (ref.projectId) names.project = await project(ref.projectId);
      names.role = await role(ref.roleId);
      out.push({ ...ref, names });
    }
    return out;
  }

  // ---- effective roles (the token path) -----------------------------------

  async effectiveRoleIds(userId: string, target: Target): Promise<Set<string>> {
    return new Set((await this.effectiveRoles(userId, target)).map((r) => r.id));
  }

  /**
   * The roles a token for the user on the target carries: direct and group
   * grants, grants inherited from the domain and from parent projects,
   * expanded through implied roles. Domain-specific roles only stand for the
   * global roles they imply, so they are left out, as upstream.
   */
  async effectiveRoles(userId: string, target: Target): Promise<Role[]> {
    const ids = [...(await this.heldRoleIds(userId, target))];
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('role').selectAll().where('id', 'in', ids).where('domain_id', '=', GLOBAL_ROLE_DOMAIN).orderBy('name').execute();
    return rows.map(toRole);
  }

  private async heldRoleIds(userId: string, target: Target): Promise<Set<string>> {
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


function assignmentNotFound(actor: Actor, target: Target, roleId: string) {
  return notFound(`Could not find role assignment with role: ${roleId}, user or group: ${actorId(actor)}, project, domain, or system: ${targetId(target)}.`);
}

function impliedRoleNotFound(priorId: string, impliedId: string) {
  return notFound(`${priorId} does not imply ${impliedId}.`);
}

function duplicateName(name: string, domainId: string | null | undefined): string {
  return domainId ? `Duplicate entry found with name ${name} at domain ID ${domainId}.` : `Duplicate entry found with name ${name}.`;
}

function immutableMessage(action: 'update' | 'delete', id: string): string {
  return `Unable to ${action} immutable role resource: \`${id}. Set resource option "immutable" to false first.`;
}

/** An immutable role accepts one change only: making it mutable (immutable false or null), alone. */
function onlyClearsImmutable(patch: RoleUpdate): boolean {
  const named = Object.values(patch).filter((v) => v !== undefined).length;
  const options = patch.options ?? {};
  return named === 1 && 'immutable' in options && (options.immutable === false || options.immutable === null);
}

/** Resource options as upstream stores them: a null value removes the option. */
/** Upstream compares assignments by value when it walks implied roles, so cycles end. */
function refKey(r: RoleAssignment): string {
  const i = r.indirect ?? {};
  return [r.roleId, r.userId, r.groupId, r.projectId, r.domainId, r.system, r.inheritedToProjects, i.groupId, i.projectId, i.domainId, i.roleId].join('|');
}

/** One lookup per id within a listing. */
function memo<T>(load: (id: string) => Promise<T>): (id: string) => Promise<T> {
  const seen = new Map<string, Promise<T>>();
  return (id) => {
    let p = seen.get(id);
    if (!p) {
      p = load(id);
      seen.set(id, p);
    }
    return p;
  };
}
