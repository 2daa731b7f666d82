import { createReadStream, existsSync, statSync, watch } from 'node:fs';
import { createInterface } from 'node:readline';
import { logFilePath } from '@onestack/core/log.ts';
import { serviceByName } from '../services.ts';
import { loadSettings } from '../settings.ts';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** `onestack logs SERVICE`: the service's JSON lines, readable (or raw with --json). */
export async function logs(service: string, opts: { configFile?: string; follow?: boolean; json?: boolean; lines?: number }): Promise<void> {
  serviceByName(service);
  const settings = loadSettings(opts.configFile);
  const path = logFilePath(settings.logDir, service);
  if (!existsSync(path)) throw new Error(`no log yet at ${path}`);
  const render = (line: string) => (opts.json ? line : pretty(line));
  const all: string[] = [];
  for await (const line of createInterface({ input: createReadStream(path) })) all.push(line);
  for (const line of all.slice(-(opts.lines ?? 200))) console.log(render(line));
  if (!opts.follow) return;
  let offset = statSync(path).size;
  watch(path, () => {
    const size = statSync(path).size;
    if (size <= offset) return;
    const stream = createReadStream(path, { start: offset, end: size - 1 });
    offset = size;
    void (async () => {
      for await (const line of createInterface({ input: stream })) console.log(render(line));
    })();
  });
  await new Promise(() => undefined);
}

function pretty(line: string): string {
  try {
    const { time, level, msg, service: _s, pid: _p, hostname: _h, ...rest } = JSON.parse(line) as Record<string, unknown>;
    const when = typeof time === 'number' ? new Date(time).toISOString() : String(time);
    const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
    return `${when} ${(LEVELS[level as number] ?? String(level)).padEnd(5)} ${String(msg ?? '')}${extra}`;
  } catch {
    return line;
  }
}
