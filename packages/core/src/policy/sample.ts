/**
 * The sample policy file `oslopolicy-sample-generator` prints
 * (oslo_policy/generator.py, _format_rule_default_yaml), byte for byte: every
 * default commented out, with its description wrapped as Python's textwrap does,
 * its operations, intended scopes and deprecation notes.
 */
import type { RuleDefault } from './enforcer.ts';

export function generateSampleYaml(defaults: readonly RuleDefault[]): string {
  return defaults.map(formatDefault).join('');
}

function formatDefault(rule: RuleDefault): string {
  const entry = `"${rule.name}": "${rule.checkStr}"\n`;
  let operations = '';
  for (const op of rule.operations ?? []) {
    if (op.method && op.path) operations += `# ${op.method}  ${op.path}\n`;
  }
  const scope = rule.scopeTypes === undefined ? '' : `# Intended scope(s): ${rule.scopeTypes.join(', ')}\n`;
  let text = `${operations}${scope}#${entry}\n`;
  if (rule.description) text = `${formatHelpText(rule.description)}\n${text}`;

  if (rule.deprecatedForRemoval) {
    return (
      `# DEPRECATED\n# "${rule.name}" has been deprecated since ${rule.deprecatedSince}.\n` +
      `${formatHelpText(rule.deprecatedReason)}\n${text}`
    );
  }
  const deprecated = rule.deprecatedRule;
  if (deprecated === undefined) return text;
  const reason = deprecated.deprecatedReason || rule.deprecatedReason;
  const since = deprecated.deprecatedSince || rule.deprecatedSince;
  const notice =
    `"${deprecated.name}":"${deprecated.checkStr}" has been deprecated ` +
    `since ${since} in favor of "${rule.name}":"${rule.checkStr}".`;
  text += `# DEPRECATED\n${formatHelpText(notice)}\n${formatHelpText(reason)}\n`;
  if (rule.name !== deprecated.name) {
    text +=
      '# WARNING: A rule name change has been identified.\n' +
      '#          This may be an artifact of new rules being\n' +
      '#          included which require legacy fallback\n' +
      '#          rules to ensure proper policy behavior.\n' +
      '#          Alternatively, this may just be an alias.\n' +
      '#          Please evaluate on a case by case basis\n' +
      '#          keeping in mind the format for aliased\n' +
      '#          rules is:\n' +
      '#          "old_rule_name": "new_rule_name".\n' +
      `# "${deprecated.name}": "rule:${rule.name}"\n`;
  }
  return `${text}\n`;
}

/** Paragraphs are wrapped at 70 columns; indented lines are literal blocks, kept as they are. */
function formatHelpText(description: string | undefined): string {
  if (!description) return '#';
  const out: string[] = [];
  let paragraph: string[] = [];
  const flush = (): void => {
    out.push(...wrap(paragraph.join(' ')));
    paragraph = [];
  };
  for (const line of description.trim().split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/)) {
    if (line.trim() === '') {
      flush();
      out.push('#');
    } else if (line.length === line.trimStart().length) {
      paragraph.push(line.trimEnd());
    } else {
      // Upstream warns that a literal block must follow a blank line, then inserts one.
      if (paragraph.length > 0) {
        flush();
        out.push('#');
      }
      out.push(`# ${line.trimEnd()}`);
    }
  }
  if (paragraph.length > 0) flush();
  return out.join('\n');
}

const WIDTH = 70;
const INDENT = '# ';

// Python textwrap's wordsep_re (break_on_hyphens): whitespace runs, em-dashes,
// and words split after a hyphen between letters.
const WORD_SEPARATOR =
  /([\t\n\v\f\r ]+|(?<=[\p{L}\p{N}_!"'&.,?])-{2,}(?=[\p{L}\p{N}_])|[^\t\n\v\f\r ]+?(?:-(?:(?<=[\p{L}_]{2}-)|(?<=[\p{L}_]-[\p{L}_]-))(?=[\p{L}_]-?[\p{L}_])|(?=[\t\n\v\f\r ]|$)|(?<=[\p{L}\p{N}_!"'&.,?])(?=-{2,}[\p{L}\p{N}_])))/u;

/** textwrap.wrap(text, 70, initial_indent='# ', subsequent_indent='# '). */
function wrap(text: string): string[] {
  const chunks = text
    .replace(/[\t\n\v\f\r]/g, ' ')
    .split(WORD_SEPARATOR)
    .filter((c) => c !== '')
    .reverse();
  const lines: string[] = [];
  const width = WIDTH - INDENT.length;
  while (chunks.length > 0) {
    const line: string[] = [];
    let length = 0;
    if (lines.length > 0 && chunks[chunks.length - 1].trim() === '') chunks.pop();
    while (chunks.length > 0 && length + chunks[chunks.length - 1].length <= width) {
      const chunk = chunks.pop() as string;
      line.push(chunk);
      length += chunk.length;
    }
    if (chunks.length > 0 && chunks[chunks.length - 1].length > width) {
      // A word longer than a line is cut, after its last hyphen when one fits.
      const chunk = chunks[chunks.length - 1];
      const spaceLeft = width - length;
      let end = spaceLeft;
      const hyphen = chunk.lastIndexOf('-', spaceLeft - 1);
      if (hyphen > 0 && /[^-]/.test(chunk.slice(0, hyphen))) end = hyphen + 1;
      line.push(chunk.slice(0, end));
      chunks[chunks.length - 1] = chunk.slice(end);
    }
    if (line.length > 0 && line[line.length - 1].trim() === '') line.pop();
    if (line.length > 0) lines.push(INDENT + line.join(''));
  }
  return lines;
}
