import { badRequest } from '@onestack/core/errors.ts';
import { STANDARD_RESOURCE_CLASSES, STANDARD_TRAITS } from '../placement/domain/standard-names.ts';
import { EXTRA_SPEC_RULES, type ExtraSpecRule } from './extra-spec-rules.ts';

const GROUP = '([a-zA-Z0-9_-]{1,64})?';

/** resources{group}:<class> and trait{group}:<trait> for placement's standard names and CUSTOM_ ones. */
const PLACEMENT_RULES: ExtraSpecRule[] = [
  ...[...STANDARD_RESOURCE_CLASSES, 'CUSTOM_{resource}'].map((rc): ExtraSpecRule => ({ name: `resources{group}:${rc}`, value: { type: 'int' }, parameters: { group: GROUP, resource: '[A-Z0-9_]+' } })),
  ...[...STANDARD_TRAITS, 'CUSTOM_{trait}'].map((t): ExtraSpecRule => ({ name: `trait{group}:${t}`, value: { type: 'str', enum: ['required', 'forbidden'] }, parameters: { group: GROUP, trait: '[A-Z0-9_]+' } })),
];

interface Compiled {
  rule: ExtraSpecRule;
  name: RegExp;
  value?: RegExp;
}

const escape = (s: string) => s.replace(/[.*+?^$()|[\]\\]/g, '\\$&');

/** The rule's name as an expression: the literal parts escaped, each {parameter} its pattern. */
function nameRegex(rule: ExtraSpecRule): string {
  return rule.name
    .split(/(\{\w+\})/)
    .map((part) => {
      const p = /^\{(\w+)\}$/.exec(part);
      return p && rule.parameters?.[p[1]] !== undefined ? `(?:${rule.parameters[p[1]]})` : escape(part);
    })
    .join('');
}

const RULES: Compiled[] = [...EXTRA_SPEC_RULES, ...PLACEMENT_RULES].map((rule) => ({
  rule,
  name: new RegExp(`^(?:${nameRegex(rule)})$`),
  value: rule.value.pattern === undefined ? undefined : new RegExp(`^(?:${rule.value.pattern})$`),
}));
const BY_NAME = new Map(RULES.filter((r) => !r.rule.parameters || !/\{\w+\}/.test(r.rule.name)).map((r) => [r.rule.name, r]));
/** Namespaces of the known specs (the part before the first colon of each name's expression). */
const NAMESPACES = [...new Set(RULES.filter((r) => r.rule.name.includes(':')).map((r) => nameRegex({ ...r.rule, name: r.rule.name.split(':')[0] })))].map((n) => new RegExp(`^(?:${n})$`));

const BOOLEANS = ['1', 't', 'true', 'on', 'y', 'yes', '0', 'f', 'false', 'off', 'n', 'no'];
const fail = (why: string) => badRequest(`Validation failed; ${why}`);

function checkValue(r: Compiled, value: string): void {
  const v = r.rule.value;
  if (v.type === 'int') {
    const n = /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : NaN;
    if (Number.isNaN(n)) throw fail(`'${value}' is not a valid integer value.`);
    if (v.max !== undefined && n > v.max) throw fail(`'${n}' is greater than the max value of '${v.max}'.`);
    if (v.min !== undefined && n < v.min) throw fail(`'${n}' is less than the min value of '${v.min}'.`);
  } else if (v.type === 'bool') {
    if (!BOOLEANS.includes(value.trim().toLowerCase())) throw fail(`'${value}' is not a valid boolean-like value.`);
  } else if (r.value) {
    if (!r.value.test(value)) throw fail(`'${value}' is not of the format '${v.pattern}'.`);
  } else if (v.enum && !v.enum.includes(value)) {
    throw fail(`'${value}' is not one of: ${v.enum.join(', ')}.`);
  }
}

/**
 * 2.86: an extra spec Nova knows must have a valid value; an unknown one is refused only in a
 * namespace Nova owns (hw:, os:, quota: …); any other key is the operator's own.
 */
export function validateExtraSpec(name: string, value: string): void {
  const rule = BY_NAME.get(name) ?? RULES.find((r) => r.name.test(name));
  if (rule) return checkValue(rule, value);
  if (!name.includes(':')) return;
  const ns = name.split(':')[0];
  if (NAMESPACES.some((re) => re.test(ns))) throw fail(`extra spec '${name}' does not appear to be a valid extra spec.`);
}
