import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startNeutron, type NeutronFixture, type Project } from './fixture.ts';

type Rule = Record<string, any>;

describe('neutron security groups', () => {
  let n: NeutronFixture;
  let p: Project;
  let other: Project;
  before(async () => {
    n = await startNeutron();
    p = await n.project('sgp');
    other = await n.project('sgo');
  });
  after(() => n?.close());

  const createGroup = async (c = p.member, name = 'web', extra: Record<string, unknown> = {}) => {
    const res = await c.post('/v2.0/security-groups', { security_group: { name, description: 'web tier', ...extra } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.security_group;
  };
  const addRule = (sg: string, rule: Record<string, unknown>, c = p.member) => c.post('/v2.0/security-group-rules', { security_group_rule: { security_group_id: sg, ...rule } });

  it("gives each project a `default` group with upstream's four rules on first listing, once", async () => {
    const [a, b] = await Promise.all([p.reader.get('/v2.0/security-groups'), p.member.get('/v2.0/security-groups')]);
    assert.equal(a.status, 200);
    const defaults = b.body.security_groups.filter((g: { name: string }) => g.name === 'default');
    assert.equal(defaults.length, 1);
    const d = defaults[0];
    assert.equal(d.description, 'Default security group');
    assert.equal(d.stateful, true);
    assert.equal(d.project_id, p.id);
    const rules = d.security_group_rules.map((r: Rule) => `${r.direction}/${r.ethertype}/${r.remote_group_id === d.id ? 'self' : r.remote_group_id}`).sort();
    assert.deepEqual(rules, ['egress/IPv4/null', 'egress/IPv6/null', 'ingress/IPv4/self', 'ingress/IPv6/self']);
    assert.ok(d.security_group_rules.every((r: Rule) => r.belongs_to_default_sg === true));
    const again = await p.member.get('/v2.0/security-groups?name=default');
    assert.deepEqual(again.body.security_groups.map((g: { id: string }) => g.id), [d.id]);
  });

  it('creates a group with the two egress rules, shows, updates and deletes it, with notifications', async () => {
    const sg = await createGroup();
    assert.equal(sg.name, 'web');
    assert.equal(sg.revision_number, 1);
    assert.deepEqual(sg.security_group_rules.map((r: Rule) => `${r.direction}/${r.ethertype}`).sort(), ['egress/IPv4', 'egress/IPv6']);
    assert.ok(sg.security_group_rules.every((r: Rule) => r.belongs_to_default_sg === false && r.remote_group_id === null));
    const shown = await p.reader.get(`/v2.0/security-groups/${sg.id}?fields=id&fields=name`);
    assert.deepEqual(shown.body.security_group, { id: sg.id, name: 'web' });
    const upd = await p.member.put(`/v2.0/security-groups/${sg.id}`, { security_group: { name: 'web2', description: 'd2' } });
    assert.equal(upd.status, 200);
    assert.equal(upd.body.security_group.name, 'web2');
    assert.equal(upd.body.security_group.revision_number, 2);
    assert.equal((await p.reader.put(`/v2.0/security-groups/${sg.id}`, { security_group: { name: 'x' } })).status, 403);
    assert.equal((await p.member.delete(`/v2.0/security-groups/${sg.id}`)).status, 204);
    assert.equal((await p.member.get(`/v2.0/security-groups/${sg.id}`)).status, 404);
    const events = await n.eventually(
      async () => n.notifications.map((x) => x.event_type),
      (e) => e.includes('security_group.delete.end'),
    );
    assert.ok(events.includes('security_group.create.end'));
    assert.ok(events.includes('security_group.update.end'));
  });

  it('refuses a second `default`, renaming default, and deleting default unless admin', async () => {
    const named = await p.member.post('/v2.0/security-groups', { security_group: { name: 'default' } });
    assert.equal(named.status, 409);
    assert.equal(named.body.NeutronError.type, 'SecurityGroupDefaultAlreadyExists');
    const d = (await p.member.get('/v2.0/security-groups?name=default')).body.security_groups[0];
    const rename = await p.member.put(`/v2.0/security-groups/${d.id}`, { security_group: { name: 'x' } });
    assert.equal(rename.status, 409);
    assert.equal(rename.body.NeutronError.type, 'SecurityGroupCannotUpdateDefault');
    const desc = await p.member.put(`/v2.0/security-groups/${d.id}`, { security_group: { description: 'mine' } });
    assert.equal(desc.status, 200);
    const del = await p.member.delete(`/v2.0/security-groups/${d.id}`);
    assert.equal(del.status, 409);
    assert.equal(del.body.NeutronError.type, 'SecurityGroupCannotRemoveDefault');
    assert.equal(del.body.NeutronError.message, 'Insufficient rights for removing default security group.');
  });

  it('keeps projects apart: another project neither sees nor changes a group or its rules', async () => {
    const sg = await createGroup(p.member, 'private');
    assert.equal((await other.member.get(`/v2.0/security-groups/${sg.id}`)).status, 404);
    assert.equal((await other.member.delete(`/v2.0/security-groups/${sg.id}`)).status, 404);
    const listed = await other.member.get('/v2.0/security-groups');
    assert.ok(!listed.body.security_groups.some((g: { id: string }) => g.id === sg.id));
    const rule = await addRule(sg.id, { direction: 'ingress', protocol: 'tcp', port_range_min: 22, port_range_max: 22 }, other.member);
    assert.equal(rule.status, 404);
    assert.equal(rule.body.NeutronError.type, 'SecurityGroupNotFound');
    const theirRules = await other.member.get('/v2.0/security-group-rules');
    assert.ok(!theirRules.body.security_group_rules.some((r: Rule) => r.security_group_id === sg.id));
    const ruleId = sg.security_group_rules[0].id;
    assert.equal((await other.member.get(`/v2.0/security-group-rules/${ruleId}`)).status, 404);
    assert.equal((await other.member.delete(`/v2.0/security-group-rules/${ruleId}`)).status, 404);
    const adminView = await n.admin.get(`/v2.0/security-groups/${sg.id}`);
    assert.equal(adminView.status, 200);
  });

  it('creates rules by protocol name or number, canonicalises them, bumps the group revision and lists with filters', async () => {
    const sg = await createGroup(p.member, 'rules');
    const ssh = await addRule(sg.id, { direction: 'ingress', protocol: 'TCP', port_range_min: 22, port_range_max: 22, remote_ip_prefix: '10.0.0.7/24' });
    assert.equal(ssh.status, 201, JSON.stringify(ssh.body));
    const r = ssh.body.security_group_rule;
    assert.equal(r.protocol, 'tcp');
    assert.equal(r.ethertype, 'IPv4');
    assert.equal(r.remote_ip_prefix, '10.0.0.7/24');
    assert.equal(r.normalized_cidr, '10.0.0.0/24');
    assert.equal(r.project_id, p.id);
    const icmp6 = await addRule(sg.id, { direction: 'ingress', ethertype: 'ipv6', protocol: 'icmp' });
    assert.equal(icmp6.body.security_group_rule.protocol, 'ipv6-icmp');
    assert.equal(icmp6.body.security_group_rule.ethertype, 'IPv6');
    const num = await addRule(sg.id, { direction: 'egress', protocol: 17, port_range_min: 1, port_range_max: 65535 });
    assert.equal(num.status, 201);
    assert.equal(num.body.security_group_rule.protocol, '17');
    assert.equal(num.body.security_group_rule.port_range_min, null, 'the whole range is no range');
    const fromGroup = await addRule(sg.id, { direction: 'ingress', protocol: 'icmp', remote_group_id: sg.id });
    assert.equal(fromGroup.status, 201);
    const shown = await p.member.get(`/v2.0/security-groups/${sg.id}`);
    assert.equal(shown.body.security_group.revision_number, 5);
    assert.equal(shown.body.security_group.security_group_rules.length, 6);
    const ingress = await p.reader.get(`/v2.0/security-group-rules?security_group_id=${sg.id}&direction=ingress&sort_key=protocol`);
    assert.deepEqual(ingress.body.security_group_rules.map((x: Rule) => x.protocol), ['icmp', 'ipv6-icmp', 'tcp']);
    const bad = await p.reader.get('/v2.0/security-group-rules?colour=blue');
    assert.equal(bad.status, 400);
    const named = await p.reader.get('/v2.0/security-group-rules?name=x');
    assert.equal(named.status, 400, 'rules have no name to filter on');
    const del = await p.member.delete(`/v2.0/security-group-rules/${r.id}`);
    assert.equal(del.status, 204);
    assert.equal((await p.member.get(`/v2.0/security-group-rules/${r.id}`)).status, 404);
    assert.equal((await p.member.delete(`/v2.0/security-group-rules/${r.id}`)).body.NeutronError.type, 'SecurityGroupRuleNotFound');
  });

  it('refuses bad rules with upstream types and messages', async () => {
    const sg = await createGroup(p.member, 'bad-rules');
    const cases: [Record<string, unknown>, string, string?][] = [
      [{ direction: 'ingress', protocol: 'bogus' }, 'SecurityGroupRuleInvalidProtocol'],
      [{ direction: 'ingress', protocol: 256 }, 'SecurityGroupRuleInvalidProtocol'],
      [{ direction: 'ingress', protocol: 'tcp', port_range_min: 30, port_range_max: 20 }, 'SecurityGroupInvalidPortRange', 'For TCP/UDP protocols, port_range_min must be <= port_range_max'],
      [{ direction: 'ingress', port_range_min: 22, port_range_max: 22 }, 'SecurityGroupProtocolRequiredWithPorts', 'Must also specify protocol if port range is given.'],
      [{ direction: 'ingress', protocol: 'tcp', port_range_min: 70000, port_range_max: 70000 }, 'SecurityGroupInvalidPortValue'],
      [{ direction: 'ingress', protocol: 'icmp', port_range_min: 300 }, 'SecurityGroupInvalidIcmpValue'],
      [{ direction: 'ingress', protocol: 'gre', port_range_min: 1, port_range_max: 2 }, 'SecurityGroupInvalidProtocolForPort'],
      [{ direction: 'ingress', remote_ip_prefix: '::/0' }, 'SecurityGroupRuleParameterConflict', 'Conflicting value ethertype IPv4 for CIDR ::/0'],
      [{ direction: 'ingress', remote_ip_prefix: '10.0.0.0/99' }, 'InvalidCIDR'],
      [{ direction: 'ingress', protocol: 'ipv6-icmp' }, 'SecurityGroupEthertypeConflictWithProtocol'],
      [{ direction: 'ingress', ethertype: 'IPv5' }, 'SecurityGroupRuleInvalidEtherType'],
      [{ direction: 'ingress', remote_ip_prefix: '10.0.0.0/8', remote_group_id: sg.id }, 'SecurityGroupMultipleRemoteEntites'],
      [{ direction: 'sideways' }, 'HTTPBadRequest'],
    ];
    for (const [rule, type, message] of cases) {
      const res = await addRule(sg.id, rule);
      assert.equal(res.status, 400, `${JSON.stringify(rule)} → ${res.status}`);
      assert.equal(res.body.NeutronError.type, type, JSON.stringify(rule));
      if (message) assert.equal(res.body.NeutronError.message, message);
    }
    const missingRemote = await addRule(sg.id, { direction: 'ingress', remote_group_id: '00000000-0000-0000-0000-000000000000' });
    assert.equal(missingRemote.status, 404);
    const missingGroup = await addRule('00000000-0000-0000-0000-000000000000', { direction: 'ingress' });
    assert.equal(missingGroup.status, 404);
    assert.equal(missingGroup.body.NeutronError.type, 'SecurityGroupNotFound');
  });

  it('finds duplicates by meaning: in one POST, against existing rules, and tcp vs 6', async () => {
    const sg = await createGroup(p.member, 'dups');
    const first = await addRule(sg.id, { direction: 'ingress', protocol: 'tcp', port_range_min: 80, port_range_max: 80 });
    assert.equal(first.status, 201);
    const again = await addRule(sg.id, { direction: 'ingress', protocol: '6', port_range_min: 80, port_range_max: 80, remote_ip_prefix: '0.0.0.0/0' });
    assert.equal(again.status, 409);
    assert.equal(again.body.NeutronError.type, 'SecurityGroupRuleExists');
    assert.equal(again.body.NeutronError.message, `Security group rule already exists. Rule id is ${first.body.security_group_rule.id}.`);
    const egressDup = await addRule(sg.id, { direction: 'egress', ethertype: 'IPv4' });
    assert.equal(egressDup.status, 409, 'the template egress rule already exists');
    const bulk = await p.member.post('/v2.0/security-group-rules', {
      security_group_rules: [
        { security_group_id: sg.id, direction: 'ingress', protocol: 'udp', port_range_min: 53, port_range_max: 53 },
        { security_group_id: sg.id, direction: 'ingress', protocol: 'udp', port_range_min: 53, port_range_max: 53 },
      ],
    });
    assert.equal(bulk.status, 409);
    assert.equal(bulk.body.NeutronError.type, 'DuplicateSecurityGroupRuleInPost');
    const ok = await p.member.post('/v2.0/security-group-rules', {
      security_group_rules: [
        { security_group_id: sg.id, direction: 'ingress', protocol: 'udp', port_range_min: 53, port_range_max: 53 },
        { security_group_id: sg.id, direction: 'ingress', protocol: 'tcp', port_range_min: 53, port_range_max: 53 },
      ],
    });
    assert.equal(ok.status, 201);
    assert.equal(ok.body.security_group_rules.length, 2);
    const rules = await p.member.get(`/v2.0/security-group-rules?security_group_id=${sg.id}`);
    assert.equal(rules.body.security_group_rules.length, 5, 'the refused bulk left nothing behind');
  });

  it('deleting a group removes rules of other groups that name it as remote group', async () => {
    const a = await createGroup(p.member, 'a');
    const b = await createGroup(p.member, 'b');
    const r = await addRule(b.id, { direction: 'ingress', remote_group_id: a.id });
    assert.equal(r.status, 201);
    assert.equal((await p.member.delete(`/v2.0/security-groups/${a.id}`)).status, 204);
    assert.equal((await p.member.get(`/v2.0/security-group-rules/${r.body.security_group_rule.id}`)).status, 404);
    const bAfter = await p.member.get(`/v2.0/security-groups/${b.id}`);
    assert.equal(bAfter.body.security_group.security_group_rules.length, 2);
  });

  it('enforces the security_group and security_group_rule quotas (409 OverQuota)', async () => {
    const q = await n.project('sgq');
    await q.member.get('/v2.0/security-groups');
    // Project overrides as the quotas API stores them (default + one non-default group, four + two + one rules).
    await n.database.db
      .insertInto('quotas')
      .values([
        { project_id: q.id, resource: 'security_group', limit: 2 },
        { project_id: q.id, resource: 'security_group_rule', limit: 7 },
      ])
      .execute();
    const g = await createGroup(q.member, 'one');
    const second = await q.member.post('/v2.0/security-groups', { security_group: { name: 'two' } });
    assert.equal(second.status, 409);
    assert.equal(second.body.NeutronError.type, 'OverQuota');
    const r = await addRule(g.id, { direction: 'ingress', protocol: 'tcp', port_range_min: 1, port_range_max: 2 }, q.member);
    assert.equal(r.status, 201);
    const over = await addRule(g.id, { direction: 'ingress', protocol: 'tcp', port_range_min: 3, port_range_max: 4 }, q.member);
    assert.equal(over.status, 409);
    assert.equal(over.body.NeutronError.type, 'OverQuota');
  });
});
