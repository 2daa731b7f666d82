/**
 * The sample configuration file, laid out as oslo-config-generator does: every
 * option commented out at its default, preceded by its help, type and limits, so an
 * operator uncomments what they change.
 */
import type { AnyOpt, Group } from './options.ts';
import { ENV_PREFIX, mergeGroups } from './loader.ts';

const WIDTH = 79;

function wrap(text: string): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split(/\n\s*\n/)) {
    if (lines.length > 0) lines.push('#');
    let line = '#';
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      if (line.length > 1 && line.length + 1 + word.length > WIDTH) {
        lines.push(line);
        line = '#';
      }
      line += ` ${word}`;
    }
    lines.push(line);
  }
  return lines;
}

function describeOption(key: string, o: AnyOpt): string[] {
  const lines = wrap(`${o.help} (${o.type} value)`);
  if (o.choices) {
    lines.push(o.type === 'list' ? '# Allowed items:' : '# Possible values:');
    for (const c of o.choices) lines.push(`# ${c}`);
  }
  if (o.min !== undefined) lines.push(`# Minimum value: ${o.min}`);
  if (o.max !== undefined) lines.push(`# Maximum value: ${o.max}`);
  const value = o.sampleDefault ?? o.format(o.default);
  lines.push(value === '' ? `#${key} =` : `#${key} = ${value}`);
  return lines;
}

export function sampleConfig(groups: readonly Group[]): string {
  const out = [
    ...wrap(
      'onestack configuration. Every option is shown commented out at its default. ' +
        'Option names may be written with dashes or underscores. Quote a value that contains # or ; ' +
        '(an unquoted # or ; starts a comment).',
    ),
    '#',
    ...wrap(
      `Each option can also be set in the environment as ${ENV_PREFIX}<GROUP>__<OPTION> in upper case ` +
        `(for example ${ENV_PREFIX}DEFAULT__BIND_HOST); the environment wins over this file.`,
    ),
  ];
  for (const group of mergeGroups(groups).values()) {
    out.push('', `[${group.name}]`);
    for (const help of group.help) out.push('', '#', ...wrap(help), '#');
    for (const [key, o] of group.options) out.push('', ...describeOption(key, o));
    out.push('');
  }
  return `${out.join('\n')}\n`;
}
