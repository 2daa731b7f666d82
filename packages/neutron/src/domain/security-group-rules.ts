import ipaddr from 'ipaddr.js';
import { ApiError, badRequest, conflict } from '@onestack/core/errors.ts';

/**
 * Security group rule checks and canonical forms, as upstream's
 * securitygroups_db and the security-group extension apply them: protocol
 * names or numbers, port ranges (ICMP type/code for icmp), remote prefix
 * against the ethertype, one remote only, and the key two rules are the
 * same rule by.
 */

/** neutron-lib's IP_PROTOCOL_MAP: the names a rule may use, and their numbers. */
export const IP_PROTOCOL_MAP: Readonly<Record<string, number>> = {
  ah: 51,
  dccp: 33,
  egp: 8,
  esp: 50,
  gre: 47,
  hopopt: 0,
  icmp: 1,
  igmp: 2,
  ipip: 4,
  'ipv6-encap': 41,
  'ipv6-frag': 44,
  'ipv6-icmp': 58,
  icmpv6: 58,
  'ipv6-nonxt': 59,
  'ipv6-opts': 60,
  'ipv6-route': 43,
  ospf: 89,
  pgm: 113,
  rsvp: 46,
  sctp: 132,
  tcp: 6,
  udp: 17,
  udplite: 136,
  vrrp: 112,
};

const NUM_TO_NAME: Record<string, string> = Object.fromEntries(
  Object.entries(IP_PROTOCOL_MAP)
    .filter(([name]) => name !== 'icmpv6')
    .map(([name, num]) => [String(num), name]),
);

/** Protocols that carry ports (upstream's SG_PORT_PROTO_NAMES / _NUMS). */
const PORT_PROTOCOLS = ['dccp', 'sctp', 'tcp', 'udp', 'udplite'];
const PORT_PROTOCOL_NUMS = PORT_PROTOCOLS.map((p) => IP_PROTOCOL_MAP[p]);
/** Protocols valid only with IPv6. */
const IPV6_ONLY = ['ipv6-encap', 'ipv6-frag', 'ipv6-icmp', 'icmpv6', 'ipv6-nonxt', 'ipv6-opts', 'ipv6-route', '41', '44', '58', '59', '60', '43'];
const SUPPORTED_LIST = `[None, 'any', ${Object.keys(IP_PROTOCOL_MAP)
  .map((p) => `'${p}'`)
  .join(', ')}]`;

export type Direction = 'ingress' | 'egress';
export type Ethertype = 'IPv4' | 'IPv6';

export interface RuleFields {
  securityGroupId: string;
  direction: Direction;
  ethertype: Ethertype;
  protocol: string | null;
  portRangeMin: number | null;
  portRangeMax: number | null;
  remoteIpPrefix: string | null;
  remoteGroupId: string | null;
  remoteAddressGroupId: string | null;
}

const invalid = (message: string, type: string) => badRequest(message, { type });

/** upstream's convert_protocol: null/'any' is any protocol; names lower-cased; numbers 0–255 kept as strings. */
export function convertProtocol(value: unknown): string | null {
  if (value === null || value === undefined || value === 'any') return null;
  const refuse = () =>
    invalid(
      `Security group rule protocol ${String(value)} not supported. Only protocol values ${SUPPORTED_LIST} and integer representations [0 to 255] are supported.`,
      'SecurityGroupRuleInvalidProtocol',
    );
  if (typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value))) {
    const n = Number(value);
    if (Number.isInteger(n) && n >= 0 && n <= 255) return String(value);
    throw refuse();
  }
  if (typeof value === 'string' && value.toLowerCase() in IP_PROTOCOL_MAP) return value.toLowerCase();
  throw refuse();
}

export function convertEthertype(value: unknown): Ethertype {
  if (typeof value === 'string') {
    if (value.toLowerCase() === 'ipv4') return 'IPv4';
    if (value.toLowerCase() === 'ipv6') return 'IPv6';
  }
  throw invalid(`Security group rule for ethertype '${String(value)}' not supported. Allowed values are ['IPv4', 'IPv6'].`, 'SecurityGroupRuleInvalidEtherType');
}

export function convertPort(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 65535) return n;
  throw invalid(`Invalid value for port ${String(value)}`, 'SecurityGroupInvalidPortValue');
}

/** A CIDR with its mask (10.0.0.1 → 10.0.0.1/32), host bits kept as upstream's AuthenticIPNetwork keeps them. */
export function convertIpPrefix(value: unknown): string | null {
  if (value === null || value === undefined || value === '') return null;
  const s = String(value);
  const [addr, len] = s.split('/');
  if (!ipaddr.isValid(addr) || (len !== undefined && !/^\d+$/.test(len))) {
    throw invalid(`Invalid input for remote_ip_prefix. Reason: '${s}' is not a valid IP subnet.`, 'InvalidCIDR');
  }
  const parsed = ipaddr.parse(addr);
  const max = parsed.kind() === 'ipv4' ? 32 : 128;
  const bits = len === undefined ? max : Number(len);
  if (bits > max) throw invalid(`Invalid input for remote_ip_prefix. Reason: '${s}' is not a valid IP subnet.`, 'InvalidCIDR');
  return `${parsed.toString()}/${bits}`;
}

/** The network of a prefix (10.0.0.1/24 → 10.0.0.0/24): upstream's normalized_cidr. */
export function normalizedCidr(prefix: string | null): string | null {
  if (!prefix) return null;
  const [addr, len] = ipaddr.parseCIDR(prefix);
  const bytes = addr.toByteArray();
  let bits = len;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits));
    bytes[i] &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    bits -= 8;
  }
  return `${ipaddr.fromByteArray(bytes).toString()}/${len}`;
}

function protocolNumber(protocol: string | null): number | null {
  if (protocol === null) return null;
  return protocol in IP_PROTOCOL_MAP ? IP_PROTOCOL_MAP[protocol] : Number(protocol);
}

/**
 * Validates a rule and returns its canonical form: IPv6 ICMP spelled
 * `ipv6-icmp`, the whole port range 1–65535 dropped, the prefix with its mask.
 */
export function canonicalRule(input: RuleFields): RuleFields {
  const rule = { ...input };
  if (rule.ethertype === 'IPv6') {
    if (rule.protocol === 'icmp' || rule.protocol === 'icmpv6') rule.protocol = 'ipv6-icmp';
    else if (rule.protocol === '1') rule.protocol = '58';
  }
  if (rule.portRangeMin === 1 && rule.portRangeMax === 65535) rule.portRangeMin = rule.portRangeMax = null;
  validatePortRange(rule);
  if (rule.remoteIpPrefix) {
    const version = ipaddr.parseCIDR(rule.remoteIpPrefix)[0].kind() === 'ipv4' ? 'IPv4' : 'IPv6';
    if (version !== rule.ethertype) {
      throw invalid(`Conflicting value ethertype ${rule.ethertype} for CIDR ${rule.remoteIpPrefix}`, 'SecurityGroupRuleParameterConflict');
    }
  }
  if (rule.protocol !== null && IPV6_ONLY.includes(rule.protocol) && rule.ethertype === 'IPv4') {
    throw invalid(`Invalid ethertype ${rule.ethertype} for protocol ${rule.protocol}.`, 'SecurityGroupEthertypeConflictWithProtocol');
  }
  const remotes = [rule.remoteIpPrefix, rule.remoteGroupId, rule.remoteAddressGroupId].filter((r) => r);
  if (remotes.length > 1) {
    throw invalid('Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.', 'SecurityGroupMultipleRemoteEntites');
  }
  return rule;
}

function validatePortRange(rule: RuleFields): void {
  const { portRangeMin: min, portRangeMax: max } = rule;
  if (min === null && max === null) return;
  if (rule.protocol === null) throw invalid('Must also specify protocol if port range is given.', 'SecurityGroupProtocolRequiredWithPorts');
  const proto = protocolNumber(rule.protocol);
  if (proto !== null && PORT_PROTOCOL_NUMS.includes(proto)) {
    if (min === 0 || max === 0) throw invalid('Invalid value for port 0', 'SecurityGroupInvalidPortValue');
    if (min === null || max === null || min > max) throw invalid('For TCP/UDP protocols, port_range_min must be <= port_range_max', 'SecurityGroupInvalidPortRange');
    return;
  }
  if (proto === 1 || proto === 58) {
    for (const [value, attr, field] of [
      [min, 'port_range_min', 'type'],
      [max, 'port_range_max', 'code'],
    ] as const) {
      if (value !== null && (value < 0 || value > 255)) {
        throw invalid(`Invalid value for ICMP ${field} (${attr}) ${value}. It must be 0 to 255.`, 'SecurityGroupInvalidIcmpValue');
      }
    }
    if (min === null && max !== null) {
      throw invalid(`ICMP code (port-range-max) ${max} is provided but ICMP type (port-range-min) is missing.`, 'SecurityGroupMissingIcmpType');
    }
    return;
  }
  throw invalid(
    `Ports cannot be specified for protocol ${proto}. Ports are only supported for ${PORT_PROTOCOLS.map((p) => p.toUpperCase()).join(', ')}.`,
    'SecurityGroupInvalidProtocolForPort',
  );
}

/** upstream's _rule_to_key: two rules with the same key are the same rule (names and numbers of a protocol agree). */
export function ruleKey(rule: RuleFields): string {
  const none = '+';
  const proto = (p: string | null) => {
    if (p === null) return none;
    const name = p in IP_PROTOCOL_MAP ? (p === 'icmpv6' ? 'ipv6-icmp' : p) : (NUM_TO_NAME[p] ?? p);
    return `${name}/${protocolNumber(p)}`;
  };
  const anyPrefix = (p: string | null) => (p === null || p === '0.0.0.0/0' || p === '::/0' ? none : p);
  return [
    rule.direction,
    rule.ethertype,
    rule.portRangeMax ?? none,
    rule.portRangeMin ?? none,
    proto(rule.protocol),
    rule.remoteGroupId ?? none,
    rule.remoteAddressGroupId ?? none,
    anyPrefix(rule.remoteIpPrefix),
    rule.securityGroupId,
  ].join('_');
}

export function duplicateInPost(): ApiError {
  return conflict('Duplicate Security Group Rule in POST.', { type: 'DuplicateSecurityGroupRuleInPost' });
}

export function ruleExists(ruleId: string): ApiError {
  return conflict(`Security group rule already exists. Rule id is ${ruleId}.`, { type: 'SecurityGroupRuleExists' });
}
