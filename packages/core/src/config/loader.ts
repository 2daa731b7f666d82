/**
 * Loads the declared option groups from an optional INI file and the environment,
 * validates everything at start-up, and reports every problem at once so an
 * operator fixes the file in one pass rather than one error per restart.
 */
import { readFileSync } from 'node:fs';
import { parse as parseIni } from 'ini';
import type { AnyOpt, Group, GroupValues, OptionMap } from './options.ts';

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type ValuesOf<G> = G extends Group<string, infer O extends OptionMap> ? GroupValues<O> : never;

/** Several modules may contribute options to one group (DEFAULT above all): their values merge. */
export type Config<G extends readonly Group[]> = {
  readonly [N in G[number]['name']]: UnionToIntersection<ValuesOf<Extract<G[number], { name: N }>>>;
};

export interface LoadOptions {
  /** An INI file; when given it must exist. */
  file?: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface LoadedConfig<G extends readonly Group[]> {
  config: Config<G>;
  /** Unknown sections, options and environment variables: ignored, as oslo.config does, but worth a log line. */
  warnings: string[];
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(
      problems.length === 1
        ? `invalid configuration: ${problems[0]}`
        : `invalid configuration (${problems.length} problems):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export const ENV_PREFIX = 'ONESTACK_';

export function envVarName(group: string, option: string): string {
  return `${ENV_PREFIX}${group.toUpperCase()}__${option.toUpperCase()}`;
}

export interface MergedGroup {
  name: string;
  help: string[];
  options: Map<string, AnyOpt>;
}

export function mergeGroups(groups: readonly Group[]): Map<string, MergedGroup> {
  const merged = new Map<string, MergedGroup>();
  for (const group of groups) {
    let m = merged.get(group.name);
    if (!m) {
      m = { name: group.name, help: [], options: new Map() };
      merged.set(group.name, m);
    }
    if (group.help && !m.help.includes(group.help)) m.help.push(group.help);
    for (const [key, o] of Object.entries(group.options)) {
      const existing = m.options.get(key);
      if (existing && existing !== o) throw new TypeError(`option [${group.name}] ${key} is declared twice`);
      m.options.set(key, o);
    }
  }
  return merged;
}

function normalizeSection(name: string): string {
  return name === 'DEFAULT' ? name : name.replace(/-/g, '_');
}

function normalizeKey(name: string): string {
  return name.toLowerCase().replace(/-/g, '_');
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = above;
    }
  }
  return prev[b.length];
}

function closest(name: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

const hint = (suggestion: string | undefined) => (suggestion ? ` (did you mean ${suggestion}?)` : '');

/** The ini parser turns `true`, `false` and `null` into JSON values and `key[]` into arrays; undo that. */
function rawText(v: unknown): string {
  return Array.isArray(v) ? v.map(String).join(',') : String(v);
}

type Sections = Map<string, Map<string, string>>;

function readFileSections(file: string, problems: string[], warnings: string[]): Sections {
  const sections: Sections = new Map();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    problems.push(`cannot read configuration file ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    return sections;
  }
  const addSection = (name: string, body: Record<string, unknown>) => {
    const section = sections.get(name) ?? new Map<string, string>();
    sections.set(name, section);
    for (const [key, value] of Object.entries(body)) {
      // ini nests a `[a.b]` section inside `[a]`; no group has a dot, so it is just unknown.
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        addSection(`${name}.${key}`, value as Record<string, unknown>);
      } else {
        section.set(normalizeKey(key), rawText(value));
      }
    }
  };
  for (const [key, value] of Object.entries(parseIni(text))) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      addSection(normalizeSection(key), value as Record<string, unknown>);
    } else {
      warnings.push(`option ${key} in ${file} is outside any section and was ignored (put it under [DEFAULT]?)`);
    }
  }
  return sections;
}

function checkUnknownInFile(file: string, sections: Sections, groups: Map<string, MergedGroup>, warnings: string[]) {
  for (const [name, options] of sections) {
    const group = groups.get(name);
    if (!group) {
      warnings.push(`unknown section [${name}] in ${file} was ignored${hint(closest(name, groups.keys()))}`);
      continue;
    }
    for (const key of options.keys()) {
      if (group.options.has(key)) continue;
      const elsewhere = [...groups.values()].find((g) => g.options.has(key));
      const suggestion = elsewhere ? ` (it belongs in [${elsewhere.name}])` : hint(closest(key, group.options.keys()));
      warnings.push(`unknown option [${name}] ${key} in ${file} was ignored${suggestion}`);
    }
  }
}

export function loadConfig<const G extends readonly Group[]>(groups: G, options: LoadOptions = {}): LoadedConfig<G> {
  const env = options.env ?? process.env;
  const merged = mergeGroups(groups);
  const problems: string[] = [];
  const warnings: string[] = [];

  const sections = options.file ? readFileSections(options.file, problems, warnings) : new Map();
  if (options.file) checkUnknownInFile(options.file, sections, merged, warnings);

  const knownEnv = new Set<string>();
  const config: Record<string, Record<string, unknown>> = {};
  for (const group of merged.values()) {
    const values: Record<string, unknown> = {};
    for (const [key, o] of group.options) {
      const envName = envVarName(group.name, key);
      knownEnv.add(envName);
      const fromEnv = env[envName];
      const fromFile = sections.get(group.name)?.get(key);
      const [raw, source] =
        fromEnv !== undefined
          ? [fromEnv, `environment variable ${envName}`]
          : fromFile !== undefined
            ? [fromFile, options.file]
            : [undefined, 'default'];
      if (raw === undefined) {
        values[key] = o.default;
        continue;
      }
      const result = o.parse(raw);
      if (result.ok) {
        values[key] = result.value;
      } else {
        const shown = o.secret ? 'value' : `value ${JSON.stringify(raw)}`;
        problems.push(`invalid ${shown} for option [${group.name}] ${key} (from ${source}): ${result.reason}`);
      }
    }
    config[group.name] = Object.freeze(values);
  }

  for (const name of Object.keys(env)) {
    if (name.startsWith(ENV_PREFIX) && name.includes('__') && !knownEnv.has(name)) {
      warnings.push(`environment variable ${name} matches no option and was ignored${hint(closest(name, knownEnv))}`);
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return { config: Object.freeze(config) as Config<G>, warnings };
}

export const REDACTED = '****';

function maskUrlPassword(value: string): string {
  try {
    const url = new URL(value);
    if (!url.password) return value;
    url.password = REDACTED;
    return url.toString();
  } catch {
    return value;
  }
}

/** The effective configuration for a start-up log line: secrets and URL passwords masked. */
export function describeConfig<const G extends readonly Group[]>(
  groups: G,
  config: Config<G>,
): Record<string, Record<string, unknown>> {
  const values = config as Record<string, Record<string, unknown>>;
  const out: Record<string, Record<string, unknown>> = {};
  for (const group of mergeGroups(groups).values()) {
    const shown: Record<string, unknown> = {};
    for (const [key, o] of group.options) {
      const v = values[group.name]?.[key];
      if (o.secret && v !== '' && v !== undefined) shown[key] = REDACTED;
      else if (o.type === 'uri' && typeof v === 'string') shown[key] = maskUrlPassword(v);
      else shown[key] = v;
    }
    out[group.name] = shown;
  }
  return out;
}
