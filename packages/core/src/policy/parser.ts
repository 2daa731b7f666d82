/**
 * The oslo.policy rule language (oslo_policy/_parser.py): the same tokenizer and
 * the same greedy shift-reduce grammar, so precedence quirks match upstream
 * (`not` binds to one check, `and` binds tighter than `or`, keywords are
 * case-insensitive). Where upstream logs and fails closed on a malformed rule,
 * this throws PolicyParseError so that the mistake surfaces where it is made.
 */
import {
  AndCheck,
  type Check,
  FalseCheck,
  FieldCheck,
  GenericCheck,
  NotCheck,
  OrCheck,
  RoleCheck,
  RuleCheck,
  Template,
  TrueCheck,
} from './checks.ts';

/** The legacy JSON syntax: the outer list is or'd, each inner list and'ed. */
export type ListRule = ReadonlyArray<string | ReadonlyArray<string>>;

export class PolicyParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyParseError';
  }
}

export function parseRule(rule: string | ListRule): Check {
  return typeof rule === 'string' ? parseTextRule(rule) : parseListRule(rule);
}

type TokenKind = '(' | ')' | 'and' | 'or' | 'not' | 'check' | 'and_expr' | 'or_expr';

interface Token {
  kind: TokenKind;
  check?: Check;
}

function parseTextRule(rule: string): Check {
  if (rule === '') return new TrueCheck();
  const stack: Token[] = [];
  for (const token of tokenize(rule)) {
    stack.push(token);
    while (reduce(stack));
  }
  if (stack.length !== 1 || stack[0].check === undefined) {
    const left = stack.map((t) => t.kind).join(' ') || 'nothing';
    throw new PolicyParseError(`Could not parse policy rule "${rule}": it reduces to "${left}", not one expression`);
  }
  return stack[0].check;
}

/** One greedy reduction at the top of the stack; false when none applies. */
function reduce(stack: Token[]): boolean {
  const n = stack.length;
  if (n >= 3) {
    const a = stack[n - 3];
    const b = stack[n - 2];
    const c = stack[n - 1];
    if (a.kind === '(' && c.kind === ')' && b.check !== undefined) {
      stack.splice(n - 3, 3, { kind: 'check', check: b.check });
      return true;
    }
    if (c.kind === 'check' && b.kind === 'and') {
      const right = c.check as Check;
      if (a.kind === 'check') {
        stack.splice(n - 3, 3, { kind: 'and_expr', check: new AndCheck([a.check as Check, right]) });
        return true;
      }
      if (a.kind === 'and_expr') {
        (a.check as AndCheck).rules.push(right);
        stack.splice(n - 2, 2);
        return true;
      }
      if (a.kind === 'or_expr') {
        // `A or B and C` is `A or (B and C)`: rebind the or's last operand.
        const or = a.check as OrCheck;
        const last = or.rules.pop() as Check;
        if (last instanceof AndCheck) last.rules.push(right);
        or.rules.push(last instanceof AndCheck ? last : new AndCheck([last, right]));
        stack.splice(n - 2, 2);
        return true;
      }
    }
    if (c.kind === 'check' && b.kind === 'or') {
      if (a.kind === 'check' || a.kind === 'and_expr') {
        stack.splice(n - 3, 3, { kind: 'or_expr', check: new OrCheck([a.check as Check, c.check as Check]) });
        return true;
      }
      if (a.kind === 'or_expr') {
        (a.check as OrCheck).rules.push(c.check as Check);
        stack.splice(n - 2, 2);
        return true;
      }
    }
  }
  if (n >= 2 && stack[n - 2].kind === 'not' && stack[n - 1].kind === 'check') {
    stack.splice(n - 2, 2, { kind: 'check', check: new NotCheck(stack[n - 1].check as Check) });
    return true;
  }
  return false;
}

/**
 * Splits on whitespace; parentheses count only at either end of a word, because
 * inside a check they belong to `%(key)s`.
 */
function* tokenize(rule: string): Generator<Token> {
  for (const word of rule.split(/\s+/)) {
    if (word === '') continue;
    let start = 0;
    while (start < word.length && word[start] === '(') {
      yield { kind: '(' };
      start++;
    }
    if (start === word.length) continue;
    let end = word.length;
    while (end > start && word[end - 1] === ')') end--;
    const clean = word.slice(start, end);
    const lowered = clean.toLowerCase();
    if (lowered === 'and' || lowered === 'or' || lowered === 'not') {
      yield { kind: lowered };
    } else if (clean !== '') {
      const tok = word.slice(start);
      if (tok.length >= 2 && (tok[0] === '"' || tok[0] === "'") && tok[tok.length - 1] === tok[0]) {
        // Upstream makes this a string token no grammar rule consumes.
        throw new PolicyParseError(`Could not parse policy rule "${rule}": ${tok} is a bare string, not a check`);
      }
      yield { kind: 'check', check: parseCheck(clean) };
    }
    for (let i = end; i < word.length; i++) yield { kind: ')' };
  }
}

function parseListRule(rule: ListRule): Check {
  if (rule.length === 0) return new TrueCheck();
  const or: Check[] = [];
  for (const inner of rule) {
    if (typeof inner !== 'string' && !Array.isArray(inner)) {
      throw new PolicyParseError(`Policy list rule element ${JSON.stringify(inner)} is neither a check nor a list`);
    }
    if (inner.length === 0) continue;
    const and = (typeof inner === 'string' ? [inner] : inner).map(parseCheck);
    or.push(and.length === 1 ? and[0] : new AndCheck(and));
  }
  if (or.length === 0) return new FalseCheck();
  return or.length === 1 ? or[0] : new OrCheck(or);
}

/** One `kind:match`, `@` or `!`. */
function parseCheck(text: string): Check {
  if (typeof text !== 'string') throw new PolicyParseError(`Policy check ${JSON.stringify(text)} is not a string`);
  if (text === '!') return new FalseCheck();
  if (text === '@') return new TrueCheck();
  const colon = text.indexOf(':');
  if (colon <= 0) throw new PolicyParseError(`Policy check "${text}" is not of the form kind:match, @ or !`);
  const kind = text.slice(0, colon);
  const match = text.slice(colon + 1);
  if (kind === 'http' || kind === 'https') {
    throw new PolicyParseError(`Policy check "${text}": http and https checks are not supported`);
  }
  if (kind === 'rule') return new RuleCheck(match);
  if (kind === 'role') return new RoleCheck(parseTemplate(match));
  if (kind === 'field') {
    try {
      return new FieldCheck(match);
    } catch (e) {
      throw new PolicyParseError(`Policy check "${text}": ${(e as Error).message}`);
    }
  }
  return new GenericCheck(kind, parseTemplate(match), pythonLiteral(kind));
}

function parseTemplate(source: string): Template {
  const literals: string[] = [];
  const keys: string[] = [];
  let text = '';
  let i = 0;
  while (i < source.length) {
    const percent = source.indexOf('%', i);
    if (percent < 0) {
      text += source.slice(i);
      break;
    }
    text += source.slice(i, percent);
    if (source[percent + 1] === '%') {
      text += '%';
      i = percent + 2;
      continue;
    }
    const close = source.indexOf(')', percent);
    if (source[percent + 1] !== '(' || close < 0 || source[close + 1] !== 's') {
      throw new PolicyParseError(
        `Policy match "${source}": "%" must start a %(name)s substitution or be doubled as %%`,
      );
    }
    literals.push(text);
    keys.push(source.slice(percent + 2, close));
    text = '';
    i = close + 2;
  }
  literals.push(text);
  return new Template(source, literals, keys);
}

/**
 * `str(ast.literal_eval(kind))` for the literals policy files use (quoted strings,
 * True/False/None, integers, decimals); undefined when `kind` is a credentials path.
 */
function pythonLiteral(kind: string): string | undefined {
  const quote = kind[0];
  if ((quote === "'" || quote === '"') && kind.length >= 2 && kind[kind.length - 1] === quote) {
    const inner = kind.slice(1, -1);
    if (inner.includes(quote) || inner.includes('\\')) {
      throw new PolicyParseError(`Policy check kind ${kind}: escapes and embedded quotes are not supported`);
    }
    return inner;
  }
  if (kind === 'True' || kind === 'False' || kind === 'None') return kind;
  if (/^[+-]?(?:0|[1-9]\d*)$/.test(kind)) return BigInt(kind).toString();
  if (/^[+-]?\d+\.\d+$/.test(kind)) {
    const n = Number(kind);
    return Number.isInteger(n) ? n.toFixed(1) : String(n);
  }
  return undefined;
}
