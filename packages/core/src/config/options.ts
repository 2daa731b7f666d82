/**
 * Option and group declarations in the style of oslo.config: every service declares
 * its options once, with a type, a default and a help string, and the same
 * declarations drive parsing, validation, the sample file and the typed result.
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export type OptType = 'string' | 'integer' | 'float' | 'boolean' | 'list' | 'uri' | 'path' | 'port';

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface Opt<T> {
  readonly type: OptType;
  readonly default: T;
  readonly help: string;
  /** Never printed: redacted in describeConfig() and in validation errors. */
  readonly secret: boolean;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** Shown in the sample instead of a default computed on this machine. */
  readonly sampleDefault?: string;
  /** Turns text from the file or the environment into a value. */
  parse(raw: string): ParseResult<T>;
  /** The text form of a value, as it would be written in the file. */
  format(value: T): string;
}

export type AnyOpt = Opt<any>;
export type OptionMap = Record<string, AnyOpt>;
export type OptValue<O> = O extends Opt<infer T> ? T : never;

export interface Group<N extends string = string, O extends OptionMap = OptionMap> {
  readonly name: N;
  readonly help?: string;
  readonly options: O;
}

export type GroupValues<O extends OptionMap> = { readonly [K in keyof O]: OptValue<O[K]> };

interface BaseSpec {
  help: string;
  /** Shown in the sample instead of the real default, when that depends on the machine. */
  sampleDefault?: string;
}

function makeOpt<T>(
  type: OptType,
  spec: BaseSpec & { default: T; secret?: boolean; choices?: readonly string[]; min?: number; max?: number },
  parse: (raw: string) => ParseResult<T>,
  format: (value: T) => string,
): Opt<T> {
  const opt: Opt<T> = {
    type,
    default: spec.default,
    help: spec.help,
    secret: spec.secret ?? false,
    choices: spec.choices,
    min: spec.min,
    max: spec.max,
    sampleDefault: spec.sampleDefault,
    parse,
    format,
  };
  // A default that its own option would reject is a programming error: fail at import.
  const check = parse(format(spec.default));
  if (!check.ok) throw new TypeError(`invalid default ${JSON.stringify(format(spec.default))}: ${check.reason}`);
  return Object.freeze(opt);
}

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const fail = (reason: string): ParseResult<never> => ({ ok: false, reason });

function inRange(n: number, min: number | undefined, max: number | undefined): string | undefined {
  if (min !== undefined && n < min) return `must be at least ${min}`;
  if (max !== undefined && n > max) return `must be at most ${max}`;
  return undefined;
}

function parseInteger(raw: string, min: number | undefined, max: number | undefined): ParseResult<number> {
  const s = raw.trim();
  if (!/^[+-]?\d+$/.test(s)) return fail('must be an integer');
  const n = Number(s);
  if (!Number.isSafeInteger(n)) return fail('must be an integer');
  const range = inRange(n, min, max);
  return range ? fail(range) : ok(n);
}

const TRUE = new Set(['true', '1', 'on', 'yes']);
const FALSE = new Set(['false', '0', 'off', 'no']);

function expandHome(p: string): string {
  if (p === '~') return homedir();
  return p.startsWith('~/') ? join(homedir(), p.slice(2)) : p;
}

export const opt = {
  string<const C extends readonly string[] = readonly string[]>(spec: BaseSpec & {
    default?: C[number];
    choices?: C;
    secret?: boolean;
  }): Opt<string extends C[number] ? string : C[number]> {
    type V = string extends C[number] ? string : C[number];
    const choices = spec.choices;
    return makeOpt<V>(
      'string',
      { ...spec, default: (spec.default ?? '') as V },
      (raw) => {
        const s = raw.trim();
        if (choices && !choices.includes(s)) return fail(`must be one of ${choices.join(', ')}`);
        return ok(s as V);
      },
      (v) => v,
    );
  },

  int(spec: BaseSpec & { default: number; min?: number; max?: number }): Opt<number> {
    return makeOpt('integer', spec, (raw) => parseInteger(raw, spec.min, spec.max), String);
  },

  /** A TCP or UDP port; 0 lets the kernel choose. */
  port(spec: BaseSpec & { default: number }): Opt<number> {
    return makeOpt('port', { ...spec, min: 0, max: 65535 }, (raw) => parseInteger(raw, 0, 65535), String);
  },

  float(spec: BaseSpec & { default: number; min?: number; max?: number }): Opt<number> {
    return makeOpt(
      'float',
      spec,
      (raw) => {
        const s = raw.trim();
        const n = Number(s);
        if (s === '' || !Number.isFinite(n)) return fail('must be a number');
        const range = inRange(n, spec.min, spec.max);
        return range ? fail(range) : ok(n);
      },
      String,
    );
  },

  /** Accepts true/false, yes/no, on/off, 1/0 in any case, as oslo.config does. */
  bool(spec: BaseSpec & { default?: boolean }): Opt<boolean> {
    return makeOpt(
      'boolean',
      { ...spec, default: spec.default ?? false },
      (raw) => {
        const s = raw.trim().toLowerCase();
        if (TRUE.has(s)) return ok(true);
        if (FALSE.has(s)) return ok(false);
        return fail('must be a boolean (true/false, yes/no, on/off, 1/0)');
      },
      String,
    );
  },

  /** Comma separated; items are trimmed and empty items dropped. */
  list(spec: BaseSpec & { default?: readonly string[]; choices?: readonly string[] }): Opt<readonly string[]> {
    const choices = spec.choices;
    return makeOpt<readonly string[]>(
      'list',
      { ...spec, default: Object.freeze([...(spec.default ?? [])]) },
      (raw) => {
        const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
        const bad = choices ? items.filter((s) => !choices.includes(s)) : [];
        if (bad.length > 0) return fail(`${bad.join(', ')} not allowed: items must be among ${choices!.join(', ')}`);
        return ok(Object.freeze(items));
      },
      (v) => v.join(','),
    );
  },

  /** Empty means unset. Passwords in the URL are masked by describeConfig(). */
  url(spec: BaseSpec & { default?: string; schemes?: readonly string[]; secret?: boolean }): Opt<string> {
    const schemes = spec.schemes;
    return makeOpt(
      'uri',
      { ...spec, default: spec.default ?? '' },
      (raw) => {
        const s = raw.trim();
        if (s === '') return ok('');
        let url: URL;
        try {
          url = new URL(s);
        } catch {
          return fail('must be a URL');
        }
        const scheme = url.protocol.slice(0, -1);
        if (schemes && !schemes.includes(scheme)) return fail(`URL scheme must be one of ${schemes.join(', ')}`);
        return ok(s);
      },
      (v) => v,
    );
  },

  /** Empty means unset; a leading `~` is the home directory; relative paths are refused. */
  path(spec: BaseSpec & { default?: string }): Opt<string> {
    return makeOpt(
      'path',
      { ...spec, default: spec.default ?? '' },
      (raw) => {
        const s = expandHome(raw.trim());
        if (s !== '' && !isAbsolute(s)) return fail('must be an absolute path');
        return ok(s);
      },
      (v) => v,
    );
  },
};

export function defineGroup<const N extends string, const O extends OptionMap>(
  name: N,
  options: O,
  meta: { help?: string } = {},
): Group<N, O> {
  // Group names become INI sections and environment variable names.
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) throw new TypeError(`invalid option group name ${JSON.stringify(name)}`);
  for (const key of Object.keys(options)) {
    if (!/^[a-z][a-z0-9_]*$/.test(key)) throw new TypeError(`invalid option name [${name}] ${key}: use lower_snake_case`);
  }
  return Object.freeze({ name, help: meta.help, options: Object.freeze({ ...options }) });
}
