import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import { credentialsFromAuth, type Target } from '@onestack/core/policy/index.ts';
import type { SecurityGroupRow, SecurityGroupRuleRow } from '../db/security-group-schema.ts';
import { convertEthertype, convertIpPrefix, convertPort, convertProtocol, normalizedCidr } from '../domain/security-group-rules.ts';
import { groupNotFound, ruleNotFound, SecurityGroupService, type RuleInput } from '../domain/security-groups.ts';
import { tagsOf } from '../domain/tags.ts';
import { authorizeAction, callerOf, type ApiDeps, type Caller, type NeutronModule } from './context.ts';
import { checkIfMatch, isoTime, listRows, selectFields, type ListSpec } from './list.ts';
import { STANDARD_ATTRS, any, bool, createBodies, memberBody, oneOf, owningProject, str, strOrNull, uuid, uuidOrNull, type Validator } from './validate.ts';

const GROUP_LIST: ListSpec = {
  table: 'security_groups',
  collection: 'security-groups',
  columns: { stateful: { column: 'stateful', type: 'bool', sortable: true } },
  ignored: ['security_group_rules', 'shared', 'tags'],
};

const RULE_LIST: ListSpec = {
  table: 'security_group_rules',
  collection: 'security-group-rules',
  columns: {
    security_group_id: { column: 'security_group_id', type: 'string', sortable: true },
    direction: { column: 'direction', type: 'string', sortable: true },
    ethertype: { column: 'ethertype', type: 'string', sortable: true },
    protocol: { column: 'protocol', type: 'string', sortable: true },
    port_range_min: { column: 'port_range_min', type: 'int', sortable: true },
    port_range_max: { column: 'port_range_max', type: 'int', sortable: true },
    remote_ip_prefix: { column: 'remote_ip_prefix', type: 'string', sortable: true },
    remote_group_id: { column: 'remote_group_id', type: 'string', sortable: true },
    remote_address_group_id: { column: 'remote_address_group_id', type: 'string', sortable: true },
    description: { column: 'description', type: 'string', sortable: true },
    revision_number: { column: 'revision_number', type: 'int', sortable: true },
    created_at: { column: 'created_at', type: 'string', sortable: true },
    updated_at: { column: 'updated_at', type: 'string', sortable: true },
  },
  ignored: ['normalized_cidr', 'belongs_to_default_sg', 'tags'],
  // Rules have the standard attributes but no name.
  standard: false,
};

const GROUP_CREATE: Record<string, Validator> = { ...STANDARD_ATTRS, stateful: bool };
const GROUP_UPDATE: Record<string, Validator> = { name: str(255), description: str(255), stateful: bool };
const RULE_CREATE: Record<string, Validator> = {
  project_id: str(255),
  tenant_id: str(255),
  description: str(255),
  security_group_id: uuid,
  direction: oneOf('ingress', 'egress'),
  ethertype: any,
  protocol: any,
  port_range_min: any,
  port_range_max: any,
  remote_ip_prefix: any,
  remote_group_id: uuidOrNull,
  remote_address_group_id: uuidOrNull,
};

function groupTarget(sg: SecurityGroupRow): Target {
  return { id: sg.id, project_id: sg.project_id, tenant_id: sg.project_id, shared: false };
}

function ruleTarget(rule: Pick<SecurityGroupRuleRow, 'id' | 'project_id'>, sg: Pick<SecurityGroupRow, 'project_id'> | undefined, isDefault: boolean): Target {
  return {
    id: rule.id,
    project_id: rule.project_id,
    tenant_id: rule.project_id,
    'security_group:project_id': sg?.project_id ?? null,
    'security_group:tenant_id': sg?.project_id ?? null,
    belongs_to_default_sg: isDefault,
  };
}

function fieldsOf(req: FastifyRequest): string[] {
  return ([] as string[]).concat(((req.query as Record<string, unknown>).fields as string[] | string | undefined) ?? []);
}

/** Security groups and rules (the security-group extension and its newer attributes). */
export function securityGroupsModule(): NeutronModule {
  return {
    name: 'security-groups',
    extensions: [
      { alias: 'security-group', name: 'security-group', description: 'The security groups extension.' },
      { alias: 'stateful-security-group', name: 'Stateful security group', description: 'Indicates if the security group is stateful or not' },
      { alias: 'security-groups-remote-address-group', name: 'Remote address group id field for security group rules', description: 'Add new field of remote address group id in security group rules' },
      { alias: 'security-groups-normalized-cidr', name: 'Normalized CIDR field for security group rules', description: 'Add new field with normalized remote_ip_prefix cidr in SG rule' },
      { alias: 'security-groups-default-rules', name: 'Default rules for security groups', description: 'Configure set of security group rules used as default security group rules' },
      { alias: 'security-groups-rules-belongs-to-default-sg', name: 'Security group rule belongs to the project\'s default security group', description: "Flag to determine if the security group rule belongs to the project's default security group" },
    ],
    resources: [
      { name: 'security_group', collection: 'security-groups' },
      { name: 'security_group_rule', collection: 'security-group-rules' },
    ],
    register(app, deps) {
      const svc = new SecurityGroupService({ database: deps.database, clock: deps.clock, ids: deps.ids, quotas: deps.quotas });
      svc.install(deps.hooks);
      deps.tags.register({
        collection: 'security-groups',
        member: 'security_group',
        find: async (_db, id, caller) => {
          const sg = await svc.find(id);
          return sg && (caller.isAdmin || sg.project_id === caller.projectId) ? groupTarget(sg) : undefined;
        },
      });
      registerGroupRoutes(app, deps, svc);
      registerRuleRoutes(app, deps, svc);
    },
  };
}

function credentials(caller: Caller) {
  return credentialsFromAuth(caller.auth);
}

async function groupViews(deps: ApiDeps, svc: SecurityGroupService, rows: SecurityGroupRow[]): Promise<Record<string, unknown>[]> {
  const ids = rows.map((r) => r.id);
  const [rules, tags, defaults] = await Promise.all([svc.rulesOf(ids), tagsOf(deps.database.db, ids), svc.isDefault(ids)]);
  return rows.map((sg) => ({
    id: sg.id,
    name: sg.name,
    stateful: sg.stateful === 1,
    tenant_id: sg.project_id,
    project_id: sg.project_id,
    description: sg.description,
    shared: false,
    security_group_rules: (rules.get(sg.id) ?? []).map((r) => ruleView(r, defaults.has(sg.id), [])),
    tags: tags.get(sg.id) ?? [],
    created_at: isoTime(sg.created_at),
    updated_at: isoTime(sg.updated_at),
    revision_number: sg.revision_number,
  }));
}

function ruleView(r: SecurityGroupRuleRow, belongsToDefault: boolean, tags: string[]): Record<string, unknown> {
  return {
    id: r.id,
    project_id: r.project_id,
    tenant_id: r.project_id,
    security_group_id: r.security_group_id,
    ethertype: r.ethertype,
    direction: r.direction,
    protocol: r.protocol,
    port_range_min: r.port_range_min,
    port_range_max: r.port_range_max,
    remote_ip_prefix: r.remote_ip_prefix,
    remote_address_group_id: r.remote_address_group_id,
    normalized_cidr: normalizedCidr(r.remote_ip_prefix),
    remote_group_id: r.remote_group_id,
    belongs_to_default_sg: belongsToDefault,
    description: r.description,
    tags,
    created_at: isoTime(r.created_at),
    updated_at: isoTime(r.updated_at),
    revision_number: r.revision_number,
  };
}

function registerGroupRoutes(app: FastifyInstance, deps: ApiDeps, svc: SecurityGroupService): void {
  const visible = (caller: Caller, sg: SecurityGroupRow) => caller.isAdmin || deps.enforcer.enforce('get_security_group', groupTarget(sg), credentials(caller));
  const load = async (req: FastifyRequest, caller: Caller) => {
    const id = (req.params as { id: string }).id;
    const sg = await svc.find(id);
    if (!sg || !visible(caller, sg)) throw groupNotFound(id);
    return sg;
  };
  const one = async (sg: SecurityGroupRow) => (await groupViews(deps, svc, [sg]))[0];

  app.get('/v2.0/security-groups', async (req) => {
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, unknown>;
    const askedProject = [q.project_id, q.tenant_id].flat().find((p) => typeof p === 'string') as string | undefined;
    const project = askedProject ?? caller.projectId;
    // As upstream: listing is when a project's default group comes to be (for its own project, or any project an admin asks about).
    if (project && (project === caller.projectId || caller.isAdmin)) await svc.ensureDefaultNow(project);
    const scope = caller.isAdmin ? undefined : (eb: any) => eb('security_groups.project_id', '=', caller.projectId ?? '');
    const { rows, fields, links } = await listRows<SecurityGroupRow>(deps.database.db, req, GROUP_LIST, scope, { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    const views = (await groupViews(deps, svc, rows.filter((sg) => visible(caller, sg)))).map((v) => selectFields(v, fields));
    return { security_groups: views, ...(links ? { security_groups_links: links } : {}) };
  });

  app.get('/v2.0/security-groups/:id', async (req) => {
    const caller = callerOf(deps, req);
    const sg = await load(req, caller);
    return { security_group: selectFields(await one(sg), fieldsOf(req)) };
  });

  app.post('/v2.0/security-groups', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { items, bulk } = createBodies(req.body, 'security_group', 'security_groups');
    const inputs = items.map((b) => memberBody(b, 'security_group', GROUP_CREATE));
    deps.notifier.start('security_group', 'create', req.body, req.ctx);
    const rows: SecurityGroupRow[] = [];
    for (const a of inputs) {
      const projectId = owningProject(a, caller);
      authorizeAction(deps, caller, 'create_security_group', { project_id: projectId, tenant_id: projectId }, { attrs: a });
      rows.push(await svc.create({ projectId, name: (a.name as string | undefined) ?? '', description: (a.description as string | undefined) ?? '', stateful: a.stateful !== false }));
    }
    const views = await groupViews(deps, svc, rows);
    for (const v of views) deps.notifier.end('security_group', 'create', v, req.ctx);
    reply.code(201);
    return bulk ? { security_groups: views } : { security_group: views[0] };
  });

  app.put('/v2.0/security-groups/:id', async (req) => {
    const caller = callerOf(deps, req);
    const sg = await load(req, caller);
    const a = memberBody(req.body, 'security_group', GROUP_UPDATE);
    authorizeAction(deps, caller, 'update_security_group', groupTarget(sg), { attrs: a });
    checkIfMatch(req, sg.revision_number);
    deps.notifier.start('security_group', 'update', req.body, req.ctx);
    const updated = await svc.update(sg, { name: a.name as string | undefined, description: a.description as string | undefined, stateful: a.stateful as boolean | undefined });
    const view = await one(updated);
    deps.notifier.end('security_group', 'update', view, req.ctx);
    return { security_group: view };
  });

  app.delete('/v2.0/security-groups/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const sg = await load(req, caller);
    authorizeAction(deps, caller, 'delete_security_group', groupTarget(sg));
    checkIfMatch(req, sg.revision_number);
    const view = await one(sg);
    deps.notifier.start('security_group', 'delete', { security_group_id: sg.id }, req.ctx);
    await svc.delete(sg, caller.isAdmin);
    deps.notifier.deleted('security_group', sg.id, view, req.ctx);
    reply.code(204);
  });
}

function registerRuleRoutes(app: FastifyInstance, deps: ApiDeps, svc: SecurityGroupService): void {
  const allowedRule = async (caller: Caller, action: string, rule: SecurityGroupRuleRow) => {
    const sg = await svc.find(rule.security_group_id);
    const isDefault = (await svc.isDefault([rule.security_group_id])).has(rule.security_group_id);
    return { ok: caller.isAdmin || deps.enforcer.enforce(action, ruleTarget(rule, sg, isDefault), credentials(caller)), sg, isDefault };
  };
  const load = async (req: FastifyRequest, caller: Caller) => {
    const id = (req.params as { id: string }).id;
    const rule = await svc.findRule(id);
    if (!rule) throw ruleNotFound(id);
    const { ok, isDefault } = await allowedRule(caller, 'get_security_group_rule', rule);
    if (!ok) throw ruleNotFound(id);
    return { rule, isDefault };
  };
  const view = async (rule: SecurityGroupRuleRow, isDefault: boolean) => ruleView(rule, isDefault, (await tagsOf(deps.database.db, [rule.id])).get(rule.id) ?? []);

  app.get('/v2.0/security-group-rules', async (req) => {
    const caller = callerOf(deps, req);
    const q = req.query as Record<string, unknown>;
    const askedProject = [q.project_id, q.tenant_id].flat().find((p) => typeof p === 'string') as string | undefined;
    const project = askedProject ?? caller.projectId;
    if (project && (project === caller.projectId || caller.isAdmin)) await svc.ensureDefaultNow(project);
    // A project sees the rules of its own groups (the group owner manages every rule in them) and rules it owns.
    const scope = caller.isAdmin
      ? undefined
      : (eb: any) =>
          eb.or([
            eb('security_group_rules.project_id', '=', caller.projectId ?? ''),
            eb('security_group_rules.security_group_id', 'in', eb.selectFrom('security_groups').select('id').where('project_id', '=', caller.projectId ?? '')),
          ]);
    const { rows, fields, links } = await listRows<SecurityGroupRuleRow>(deps.database.db, req, RULE_LIST, scope, { publicUrl: deps.config.publicUrl, maxLimit: deps.config.paginationMaxLimit });
    const [defaults, tags] = await Promise.all([svc.isDefault([...new Set(rows.map((r) => r.security_group_id))]), tagsOf(deps.database.db, rows.map((r) => r.id))]);
    const views = rows.map((r) => selectFields(ruleView(r, defaults.has(r.security_group_id), tags.get(r.id) ?? []), fields));
    return { security_group_rules: views, ...(links ? { security_group_rules_links: links } : {}) };
  });

  app.get('/v2.0/security-group-rules/:id', async (req) => {
    const caller = callerOf(deps, req);
    const { rule, isDefault } = await load(req, caller);
    return { security_group_rule: selectFields(await view(rule, isDefault), fieldsOf(req)) };
  });

  app.post('/v2.0/security-group-rules', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { items, bulk } = createBodies(req.body, 'security_group_rule', 'security_group_rules');
    const attrs = items.map((b) => memberBody(b, 'security_group_rule', RULE_CREATE));
    const groupIds = new Set(attrs.map((a) => a.security_group_id));
    if (attrs.some((a) => a.security_group_id === undefined)) throw badRequest("Failed to parse request. Required attribute 'security_group_id' not specified", { type: 'HTTPBadRequest' });
    if (attrs.some((a) => a.direction === undefined)) throw badRequest("Failed to parse request. Required attribute 'direction' not specified", { type: 'HTTPBadRequest' });
    if (groupIds.size > 1) throw badRequest('Only allowed to update rules for one security profile at a time', { type: 'SecurityGroupNotSingleGroupRules' });
    const inputs: RuleInput[] = attrs.map((a) => ({
      projectId: owningProject(a, caller),
      description: a.description as string | undefined,
      securityGroupId: a.security_group_id as string,
      direction: a.direction as 'ingress' | 'egress',
      ethertype: a.ethertype === undefined ? 'IPv4' : convertEthertype(a.ethertype),
      protocol: convertProtocol(a.protocol),
      portRangeMin: convertPort(a.port_range_min),
      portRangeMax: convertPort(a.port_range_max),
      remoteIpPrefix: convertIpPrefix(a.remote_ip_prefix),
      remoteGroupId: (a.remote_group_id as string | null | undefined) ?? null,
      remoteAddressGroupId: (a.remote_address_group_id as string | null | undefined) ?? null,
    }));
    if (new Set(inputs.map((i) => i.projectId)).size > 1) throw badRequest('Multiple project_ids in bulk security group rule create not allowed', { type: 'SecurityGroupRulesNotSingleProject' });
    const sg = await svc.find(inputs[0].securityGroupId);
    const isDefault = sg ? (await svc.isDefault([sg.id])).has(sg.id) : false;
    if (!sg) throw groupNotFound(inputs[0].securityGroupId);
    const target = ruleTarget({ id: '', project_id: inputs[0].projectId }, sg, isDefault);
    const seesGroup = caller.isAdmin || sg.project_id === caller.projectId;
    authorizeAction(deps, caller, 'create_security_group_rule', target, { member: 'security_group', id: sg.id, visible: seesGroup });
    if (!seesGroup) throw groupNotFound(sg.id);
    deps.notifier.start('security_group_rule', 'create', req.body, req.ctx);
    const rows = await svc.createRules(sg, inputs);
    const views = rows.map((r) => ruleView(r, isDefault, []));
    for (const v of views) deps.notifier.end('security_group_rule', 'create', v, req.ctx);
    reply.code(201);
    return bulk ? { security_group_rules: views } : { security_group_rule: views[0] };
  });

  app.put('/v2.0/security-group-rules/:id', async (req) => {
    const caller = callerOf(deps, req);
    const { rule, isDefault } = await load(req, caller);
    const a = memberBody(req.body, 'security_group_rule', { description: strOrNull(255) });
    const { ok } = await allowedRule(caller, 'update_security_group_rule', rule);
    if (!ok) authorizeAction(deps, caller, 'update_security_group_rule', ruleTarget(rule, await svc.find(rule.security_group_id), isDefault));
    checkIfMatch(req, rule.revision_number);
    const updated = await svc.updateRule(rule, (a.description as string | null | undefined) ?? '');
    const v = await view(updated, isDefault);
    deps.notifier.end('security_group_rule', 'update', v, req.ctx);
    return { security_group_rule: v };
  });

  app.delete('/v2.0/security-group-rules/:id', async (req, reply) => {
    const caller = callerOf(deps, req);
    const { rule, isDefault } = await load(req, caller);
    const { ok, sg } = await allowedRule(caller, 'delete_security_group_rule', rule);
    if (!ok) authorizeAction(deps, caller, 'delete_security_group_rule', ruleTarget(rule, sg, isDefault));
    checkIfMatch(req, rule.revision_number);
    const v = await view(rule, isDefault);
    deps.notifier.start('security_group_rule', 'delete', { security_group_rule_id: rule.id }, req.ctx);
    await svc.deleteRule(rule);
    deps.notifier.deleted('security_group_rule', rule.id, v, req.ctx);
    reply.code(204);
  });
}
