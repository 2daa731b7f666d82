import type { Kysely } from 'kysely';
import { ApiError, conflict, notFound } from '@onestack/core/errors.ts';
import { insertIgnoringDuplicates, type Database } from '@onestack/core/db/index.ts';
import type { Clock } from '@onestack/core/clock.ts';
import type { IdSource } from '@onestack/core/ids.ts';
import type { NeutronDB } from '../db/schema.ts';
import { inTransaction } from '../db/transaction.ts';
import type { SecurityGroupRow, SecurityGroupRuleRow } from '../db/security-group-schema.ts';
import type { Hooks } from './hooks.ts';
import type { QuotaRegistry } from './quotas.ts';
import { canonicalRule, duplicateInPost, ruleExists, ruleKey, type RuleFields } from './security-group-rules.ts';
import { deleteTags } from './tags.ts';

export const DEFAULT_SG_DESCRIPTION = 'Default security group';
const EGRESS_DESCRIPTION = 'Default security group egress rule';
const INGRESS_DESCRIPTION = 'Default security group ingress rule';

/** upstream's default rule templates: egress anywhere for every group; ingress from the group itself for `default` only. */
const TEMPLATE: { direction: 'ingress' | 'egress'; ethertype: 'IPv4' | 'IPv6'; fromSelf: boolean; inNonDefault: boolean; description: string }[] = [
  { direction: 'egress', ethertype: 'IPv4', fromSelf: false, inNonDefault: true, description: EGRESS_DESCRIPTION },
  { direction: 'egress', ethertype: 'IPv6', fromSelf: false, inNonDefault: true, description: EGRESS_DESCRIPTION },
  { direction: 'ingress', ethertype: 'IPv4', fromSelf: true, inNonDefault: false, description: INGRESS_DESCRIPTION },
  { direction: 'ingress', ethertype: 'IPv6', fromSelf: true, inNonDefault: false, description: INGRESS_DESCRIPTION },
];

export interface RuleInput extends RuleFields {
  projectId: string;
  description?: string;
}

export const groupNotFound = (id: string) => notFound(`Security group ${id} does not exist`, { type: 'SecurityGroupNotFound' });
export const ruleNotFound = (id: string) => notFound(`Security group rule ${id} does not exist`, { type: 'SecurityGroupRuleNotFound' });
const groupInUse = (id: string) => conflict(`Security Group ${id} in use.`, { type: 'SecurityGroupInUse' });

/**
 * Security groups and their rules: the per-project `default` group made on
 * first use (as upstream does on listing groups or creating a port), rule
 * validation and duplicate detection, and the hooks the core port code calls.
 * Every change to a group or its rules bumps the group's revision and tells
 * the `changed` listeners which groups changed (the data plane resyncs them).
 */
export class SecurityGroupService {
  /** Called after a commit with the ids of groups whose rules or members changed. */
  readonly changed: ((groupIds: string[]) => void)[] = [];

  constructor(
    private readonly deps: { database: Database<NeutronDB>; clock: Clock; ids: IdSource; quotas: QuotaRegistry },
  ) {}

  get db(): Kysely<NeutronDB> {
    return this.deps.database.db;
  }

  /** Registers the quotas and fills the port hooks of the core. */
  install(hooks: Hooks): void {
    const { quotas } = this.deps;
    quotas.register({ name: 'security_group', count: async (trx, p) => countWhere(trx, 'security_groups', p) });
    quotas.register({ name: 'security_group_rule', count: async (trx, p) => countWhere(trx, 'security_group_rules', p) });
    hooks.validateSecurityGroups = (trx, projectId, ids) => this.validateForPort(trx, projectId, ids);
    hooks.defaultSecurityGroups = async (trx, projectId) => [await this.ensureDefault(trx, projectId)];
  }

  notifyChanged(groupIds: string[]): void {
    for (const l of this.changed) l(groupIds);
  }

  /**
   * The project's `default` group, made now if it has none. Claiming the
   * project's row in default_security_groups first (an insert that skips a
   * duplicate) makes two concurrent first requests agree on one group
   * without either transaction failing.
   */
  async ensureDefault(trx: Kysely<NeutronDB>, projectId: string): Promise<string> {
    const existing = await trx.selectFrom('default_security_groups').select('security_group_id').where('project_id', '=', projectId).executeTakeFirst();
    if (existing) return existing.security_group_id;
    const id = this.deps.ids.uuid();
    const res = await insertIgnoringDuplicates(trx, 'default_security_groups', { project_id: projectId, security_group_id: id }).executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0) === 0) {
      // Read committed (inTransaction) lets this read see the row of the transaction that won.
      const winner = await trx.selectFrom('default_security_groups').select('security_group_id').where('project_id', '=', projectId).executeTakeFirstOrThrow();
      return winner.security_group_id;
    }
    await this.insertGroup(trx, { id, projectId, name: 'default', description: DEFAULT_SG_DESCRIPTION, stateful: true }, true);
    return id;
  }

  async ensureDefaultNow(projectId: string): Promise<string> {
    return inTransaction(this.deps.database, (trx) => this.ensureDefault(trx, projectId));
  }

  async create(input: { projectId: string; name: string; description: string; stateful: boolean }): Promise<SecurityGroupRow> {
    if (input.name.toLowerCase() === 'default') throw conflict('Default security group already exists.', { type: 'SecurityGroupDefaultAlreadyExists' });
    return inTransaction(this.deps.database, async (trx) => {
      await this.ensureDefault(trx, input.projectId);
      await this.deps.quotas.check(trx, input.projectId, 'security_group');
      await this.deps.quotas.check(trx, input.projectId, 'security_group_rule', TEMPLATE.filter((t) => t.inNonDefault).length);
      return this.insertGroup(trx, { id: this.deps.ids.uuid(), ...input }, false);
    });
  }

  private async insertGroup(
    trx: Kysely<NeutronDB>,
    g: { id: string; projectId: string; name: string; description: string; stateful: boolean },
    isDefault: boolean,
  ): Promise<SecurityGroupRow> {
    const now = this.deps.clock.now();
    const row: SecurityGroupRow = {
      id: g.id,
      project_id: g.projectId,
      name: g.name,
      description: g.description,
      revision_number: 1,
      created_at: now,
      updated_at: now,
      stateful: g.stateful ? 1 : 0,
    };
    await trx.insertInto('security_groups').values(row).execute();
    const rules = TEMPLATE.filter((t) => isDefault || t.inNonDefault).map((t) => ({
      ...this.ruleRow(now),
      project_id: g.projectId,
      description: t.description,
      security_group_id: g.id,
      direction: t.direction,
      ethertype: t.ethertype,
      remote_group_id: t.fromSelf ? g.id : null,
    }));
    if (rules.length > 0) await trx.insertInto('security_group_rules').values(rules).execute();
    return row;
  }

  private ruleRow(now: number): SecurityGroupRuleRow {
    return {
      id: this.deps.ids.uuid(),
      project_id: null,
      description: '',
      revision_number: 1,
      created_at: now,
      updated_at: now,
      security_group_id: '',
      direction: 'egress',
      ethertype: 'IPv4',
      protocol: null,
      port_range_min: null,
      port_range_max: null,
      remote_ip_prefix: null,
      remote_group_id: null,
      remote_address_group_id: null,
    };
  }

  async find(id: string): Promise<SecurityGroupRow | undefined> {
    return this.db.selectFrom('security_groups').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async isDefault(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db.selectFrom('default_security_groups').select('security_group_id').where('security_group_id', 'in', ids).execute();
    return new Set(rows.map((r) => r.security_group_id));
  }

  async rulesOf(groupIds: string[]): Promise<Map<string, SecurityGroupRuleRow[]>> {
    const out = new Map<string, SecurityGroupRuleRow[]>(groupIds.map((id) => [id, []]));
    for (let i = 0; i < groupIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('security_group_rules')
        .selectAll()
        .where('security_group_id', 'in', groupIds.slice(i, i + 500))
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      for (const r of rows) out.get(r.security_group_id)?.push(r);
    }
    return out;
  }

  async update(sg: SecurityGroupRow, changes: { name?: string; description?: string; stateful?: boolean }): Promise<SecurityGroupRow> {
    return inTransaction(this.deps.database, async (trx) => {
      const isDefault = (await trx.selectFrom('default_security_groups').select('project_id').where('security_group_id', '=', sg.id).executeTakeFirst()) !== undefined;
      if (isDefault && changes.name !== undefined) throw conflict('Updating default security group not allowed.', { type: 'SecurityGroupCannotUpdateDefault' });
      if (changes.name !== undefined && changes.name.toLowerCase() === 'default') {
        throw conflict('Default security group already exists.', { type: 'SecurityGroupDefaultAlreadyExists' });
      }
      const stateful = changes.stateful === undefined ? sg.stateful : changes.stateful ? 1 : 0;
      if (stateful !== sg.stateful && (await this.portCount(trx, sg.id)) > 0) throw groupInUse(sg.id);
      const next = {
        name: changes.name ?? sg.name,
        description: changes.description ?? sg.description,
        stateful,
        revision_number: sg.revision_number + 1,
        updated_at: Math.max(this.deps.clock.now(), sg.updated_at),
      };
      const r = await trx.updateTable('security_groups').set(next).where('id', '=', sg.id).where('revision_number', '=', sg.revision_number).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) throw new ApiError('conflict', `Security group ${sg.id} was changed concurrently; retry.`, { type: 'RetryRequest' });
      return { ...sg, ...next };
    });
  }

  private async portCount(trx: Kysely<NeutronDB>, groupId: string): Promise<number> {
    const row = await trx.selectFrom('port_security_group_bindings').select((eb) => eb.fn.countAll<number>().as('n')).where('security_group_id', '=', groupId).executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** Deletes a group: refused while ports use it, and for `default` unless an admin asks; rules naming it as their remote group go too, as upstream's cascade does. */
  async delete(sg: SecurityGroupRow, byAdmin: boolean): Promise<void> {
    const touched = await inTransaction(this.deps.database, async (trx) => {
      if ((await this.portCount(trx, sg.id)) > 0) throw groupInUse(sg.id);
      const isDefault = await trx.selectFrom('default_security_groups').select('project_id').where('security_group_id', '=', sg.id).executeTakeFirst();
      if (isDefault && !byAdmin) throw conflict('Insufficient rights for removing default security group.', { type: 'SecurityGroupCannotRemoveDefault' });
      const referencing = await trx.selectFrom('security_group_rules').select(['id', 'security_group_id']).where('remote_group_id', '=', sg.id).execute();
      const own = await trx.selectFrom('security_group_rules').select('id').where('security_group_id', '=', sg.id).execute();
      for (const r of [...referencing, ...own]) await deleteTags(trx, r.id);
      await trx.deleteFrom('security_group_rules').where((eb) => eb.or([eb('security_group_id', '=', sg.id), eb('remote_group_id', '=', sg.id)])).execute();
      await trx.deleteFrom('default_security_groups').where('security_group_id', '=', sg.id).execute();
      await deleteTags(trx, sg.id);
      await trx.deleteFrom('security_groups').where('id', '=', sg.id).execute();
      const others = [...new Set(referencing.map((r) => r.security_group_id))].filter((id) => id !== sg.id);
      for (const id of others) await this.bumpRevision(trx, id);
      return others;
    });
    this.notifyChanged([sg.id, ...touched]);
  }

  /**
   * Creates rules (one, or a bulk of one group's rules) after upstream's
   * checks: every rule valid, remote groups visible to the rule's project, no
   * duplicate within the request (409 DuplicateSecurityGroupRuleInPost) or of
   * an existing rule (409 SecurityGroupRuleExists), the rule quota.
   */
  async createRules(sg: SecurityGroupRow, inputs: RuleInput[]): Promise<SecurityGroupRuleRow[]> {
    const rules = inputs.map((i) => ({ ...i, ...canonicalRule(i) }));
    const rows = await inTransaction(this.deps.database, async (trx) => {
      for (const r of rules) {
        if (!r.remoteGroupId) continue;
        const remote = await trx.selectFrom('security_groups').select(['id', 'project_id']).where('id', '=', r.remoteGroupId).executeTakeFirst();
        if (!remote || remote.project_id !== r.projectId) throw groupNotFound(r.remoteGroupId);
      }
      const keys = new Set<string>();
      for (const r of rules) {
        const k = ruleKey(r);
        if (keys.has(k)) throw duplicateInPost();
        keys.add(k);
      }
      const existing = await trx.selectFrom('security_group_rules').selectAll().where('security_group_id', '=', sg.id).execute();
      for (const e of existing) if (keys.has(ruleKey(fieldsOf(e)))) throw ruleExists(e.id);
      await this.deps.quotas.check(trx, rules[0].projectId, 'security_group_rule', rules.length);
      const now = this.deps.clock.now();
      const out = rules.map((r) => ({
        ...this.ruleRow(now),
        project_id: r.projectId,
        description: r.description ?? '',
        security_group_id: sg.id,
        direction: r.direction,
        ethertype: r.ethertype,
        protocol: r.protocol,
        port_range_min: r.portRangeMin,
        port_range_max: r.portRangeMax,
        remote_ip_prefix: r.remoteIpPrefix,
        remote_group_id: r.remoteGroupId,
        remote_address_group_id: r.remoteAddressGroupId,
      }));
      await trx.insertInto('security_group_rules').values(out).execute();
      await this.bumpRevision(trx, sg.id);
      return out;
    });
    this.notifyChanged([sg.id]);
    return rows;
  }

  async findRule(id: string): Promise<SecurityGroupRuleRow | undefined> {
    return this.db.selectFrom('security_group_rules').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async updateRule(rule: SecurityGroupRuleRow, description: string): Promise<SecurityGroupRuleRow> {
    const next = { description, revision_number: rule.revision_number + 1, updated_at: Math.max(this.deps.clock.now(), rule.updated_at) };
    await this.db.updateTable('security_group_rules').set(next).where('id', '=', rule.id).execute();
    return { ...rule, ...next };
  }

  async deleteRule(rule: SecurityGroupRuleRow): Promise<void> {
    await inTransaction(this.deps.database, async (trx) => {
      const r = await trx.deleteFrom('security_group_rules').where('id', '=', rule.id).executeTakeFirst();
      if (Number(r.numDeletedRows) !== 1) throw ruleNotFound(rule.id);
      await deleteTags(trx, rule.id);
      await this.bumpRevision(trx, rule.security_group_id);
    });
    this.notifyChanged([rule.security_group_id]);
  }

  /** A rule change is a change of its group (standard-attr-revisions bumps the parent). */
  private async bumpRevision(trx: Kysely<NeutronDB>, groupId: string): Promise<void> {
    await trx
      .updateTable('security_groups')
      .set((eb) => ({ revision_number: eb('revision_number', '+', 1), updated_at: this.deps.clock.now() }))
      .where('id', '=', groupId)
      .execute();
  }

  /**
   * The port hook: every group must exist and belong to the port's project
   * (404 SecurityGroupNotFound naming the missing ones), and a port may not
   * mix stateful and stateless groups (409 SecurityGroupConflict).
   */
  private async validateForPort(trx: Kysely<NeutronDB>, projectId: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const unique = [...new Set(ids)];
    const rows = await trx.selectFrom('security_groups').select(['id', 'project_id', 'stateful']).where('id', 'in', unique).execute();
    const valid = new Set(rows.filter((r) => r.project_id === projectId).map((r) => r.id));
    const missing = unique.filter((id) => !valid.has(id));
    if (missing.length > 0) throw groupNotFound(missing.join(', '));
    if (rows.some((r) => r.stateful === 1) && rows.some((r) => r.stateful === 0)) {
      throw conflict('Error Cannot apply both stateful and stateless security groups on the same port at the same time while attempting the operation.', {
        type: 'SecurityGroupConflict',
      });
    }
  }
}

export function fieldsOf(r: SecurityGroupRuleRow): RuleFields {
  return {
    securityGroupId: r.security_group_id,
    direction: r.direction as RuleFields['direction'],
    ethertype: r.ethertype as RuleFields['ethertype'],
    protocol: r.protocol,
    portRangeMin: r.port_range_min,
    portRangeMax: r.port_range_max,
    remoteIpPrefix: r.remote_ip_prefix,
    remoteGroupId: r.remote_group_id,
    remoteAddressGroupId: r.remote_address_group_id,
  };
}

async function countWhere(trx: Kysely<NeutronDB>, table: 'security_groups' | 'security_group_rules', projectId: string): Promise<number> {
  const row = await trx.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', projectId).executeTakeFirst();
  return Number(row?.n ?? 0);
}
