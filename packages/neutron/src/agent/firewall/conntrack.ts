/**
 * Cutting the flows a removed rule had let in (upstream's ip_conntrack manager): the inet
 * table accepts `ct state established` before any rule, so without this an open connection
 * outlives the rule that allowed it. For every rule a port loses (a rule deleted, a group
 * taken off the port) the conntrack entries of the port's addresses that the rule matched
 * are deleted; the flow's next packet is then judged by the rules as a new one.
 *
 * Coarser than the rule where conntrack(8) cannot filter (port ranges, remote prefixes and
 * groups): those entries go too, and a flow another rule still allows is picked up again on
 * its next packet. A remote group losing a member does not cut that member's flows.
 */
import type { PortState, SecurityGroupRuleState, SecurityGroupState } from '../model.ts';
import { protocolNumber } from './nft-ruleset.ts';

const CONNTRACK_PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };

export interface FirewallView {
  ports: PortState[];
  securityGroups: SecurityGroupState[];
}

/** The protocol number, or the text when unknown (the ruleset skips such rules too). */
function protocolOf(r: SecurityGroupRuleState): number | string | null {
  try {
    return protocolNumber(r.protocol, r.ethertype);
  } catch {
    return String(r.protocol);
  }
}

function ruleKey(r: SecurityGroupRuleState): string {
  return JSON.stringify([r.direction, r.ethertype, protocolOf(r), r.portRangeMin, r.portRangeMax, r.remoteIpPrefix, r.remoteGroupId]);
}

function rulesOf(port: PortState, groups: Map<string, SecurityGroupState>): Map<string, SecurityGroupRuleState> {
  const out = new Map<string, SecurityGroupRuleState>();
  for (const id of port.securityGroupIds) for (const r of groups.get(id)?.rules ?? []) out.set(ruleKey(r), r);
  return out;
}

/** The rules each port of `after` had in `before` and lost. */
export function removedRules(before: FirewallView, after: FirewallView): { port: PortState; rule: SecurityGroupRuleState }[] {
  const groupsBefore = new Map(before.securityGroups.map((g) => [g.id, g]));
  const groupsAfter = new Map(after.securityGroups.map((g) => [g.id, g]));
  const previous = new Map(before.ports.filter((p) => p.portSecurityEnabled).map((p) => [p.id, p]));
  const out: { port: PortState; rule: SecurityGroupRuleState }[] = [];
  for (const port of after.ports) {
    const was = previous.get(port.id);
    if (!was || !port.portSecurityEnabled) continue;
    const now = rulesOf(port, groupsAfter);
    for (const [key, rule] of rulesOf(was, groupsBefore)) if (!now.has(key)) out.push({ port, rule });
  }
  return out;
}

/** `conntrack -D` argument lists deleting what `rule` matched for `port`'s addresses. */
export function conntrackDeletions(port: PortState, rule: SecurityGroupRuleState): string[][] {
  const family = rule.ethertype === 'IPv6' ? 6 : 4;
  const addresses = port.fixedIps.map((f) => f.ipAddress).filter((a) => a.includes(':') === (family === 6));
  const proto = protocolOf(rule);
  const filter: string[] = [];
  if (typeof proto === 'number') filter.push('-p', CONNTRACK_PROTOCOLS[proto] ?? String(proto));
  const single = rule.portRangeMin !== null && rule.portRangeMin === rule.portRangeMax;
  if (single && (proto === 6 || proto === 17 || proto === 132)) filter.push('--dport', String(rule.portRangeMin));
  return addresses.map((a) => ['-D', '-f', family === 6 ? 'ipv6' : 'ipv4', rule.direction === 'ingress' ? '-d' : '-s', a, ...filter]);
}
