/**
 * Cutting the flows a removed rule had let in (upstream's ip_conntrack manager): the inet
 * table accepts `ct state established` before any rule, so without this an open connection
 * outlives the rule that allowed it. For every rule a port loses (a rule deleted, a group
 * taken off the port) the conntrack entries of the port's addresses that the rule matched
 * are deleted; the flow's next packet is then judged by the rules as a new one.
 *
 * A remote group losing a member cuts the flows between that member and the ports whose
 * rules name the group (upstream's remote-group conntrack clean-up).
 *
 * Coarser than the rule where conntrack(8) cannot filter (port ranges, remote prefixes):
 * those entries go too, and a flow another rule still allows is picked up again on its next
 * packet.
 */
import { isIP } from 'node:net';
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

/** For every remote-group rule a port keeps, the addresses that have left the group since `before`. */
export function departedMembers(before: FirewallView, after: FirewallView): { port: PortState; rule: SecurityGroupRuleState; remotes: string[] }[] {
  const membersBefore = new Map(before.securityGroups.map((g) => [g.id, g.memberIps]));
  const membersAfter = new Map(after.securityGroups.map((g) => [g.id, new Set(g.memberIps)]));
  const groupsAfter = new Map(after.securityGroups.map((g) => [g.id, g]));
  const previous = new Set(before.ports.filter((p) => p.portSecurityEnabled).map((p) => p.id));
  const out: { port: PortState; rule: SecurityGroupRuleState; remotes: string[] }[] = [];
  for (const port of after.ports) {
    if (!previous.has(port.id) || !port.portSecurityEnabled) continue;
    for (const rule of rulesOf(port, groupsAfter).values()) {
      if (!rule.remoteGroupId) continue;
      const now = membersAfter.get(rule.remoteGroupId) ?? new Set();
      const gone = (membersBefore.get(rule.remoteGroupId) ?? []).filter((ip) => !now.has(ip));
      if (gone.length) out.push({ port, rule, remotes: gone });
    }
  }
  return out;
}

/** conntrack's filter for the far end of a flow: an address, or a network with its mask. */
function remoteFilter(direction: 'ingress' | 'egress', remote: string): string[] {
  const [address, len] = remote.split('/');
  const family = isIP(address);
  const bits = family === 6 ? 128 : 32;
  const side = direction === 'ingress' ? 'src' : 'dst';
  if (len === undefined || Number(len) === bits) return [`--${side}`, address];
  return [`--${side}`, address, `--mask-${side}`, prefixMask(family === 6 ? 6 : 4, Number(len))];
}

function prefixMask(family: 4 | 6, len: number): string {
  const bits = family === 6 ? 128 : 32;
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((mask >> s) & 255n)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => ((mask >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return groups.join(':');
}

/**
 * `conntrack -D` argument lists deleting what `rule` matched for `port`'s addresses; with
 * `remotes`, only the flows whose far end is one of them.
 */
export function conntrackDeletions(port: PortState, rule: SecurityGroupRuleState, remotes?: string[]): string[][] {
  const family = rule.ethertype === 'IPv6' ? 6 : 4;
  const addresses = port.fixedIps.map((f) => f.ipAddress).filter((a) => a.includes(':') === (family === 6));
  const proto = protocolOf(rule);
  const filter: string[] = [];
  if (typeof proto === 'number') filter.push('-p', CONNTRACK_PROTOCOLS[proto] ?? String(proto));
  const single = rule.portRangeMin !== null && rule.portRangeMin === rule.portRangeMax;
  if (single && (proto === 6 || proto === 17 || proto === 132)) filter.push('--dport', String(rule.portRangeMin));
  const farEnds = remotes?.filter((r) => isIP(r.split('/')[0]) === family).map((r) => remoteFilter(rule.direction, r)) ?? [[]];
  return addresses.flatMap((a) => farEnds.map((far) => ['-D', '-f', family === 6 ? 'ipv6' : 'ipv4', rule.direction === 'ingress' ? '-d' : '-s', a, ...far, ...filter]));
}
