/**
 * Log levels changed while a service runs, as upstream's set-log/get-log service
 * actions do with Python's logging: loggers are registered by name, a prefix picks
 * them, and levels travel in Python's names. A pino child logger keeps a level of its
 * own once made, and children made from it later (per request) start from its
 * current level, so setting a registered logger changes what it and everything it
 * hands out from then on write.
 */
import type { LevelName, Logger } from './log.ts';

/** upstream's utils.LOG_LEVELS: what set-log accepts (case-insensitive). */
export const SETTABLE_LEVELS = ['INFO', 'WARNING', 'ERROR', 'DEBUG'] as const;
export type SettableLevel = (typeof SETTABLE_LEVELS)[number];

const TO_PINO: Record<SettableLevel, LevelName> = { DEBUG: 'debug', INFO: 'info', WARNING: 'warn', ERROR: 'error' };
const TO_PYTHON: Record<string, string> = { trace: 'DEBUG', debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR', fatal: 'CRITICAL', silent: 'NOTSET' };

/** upstream's get_log_method: the level for a name given in any case, undefined when it is none of them. */
export function parseLogLevel(name: string | null | undefined): SettableLevel | undefined {
  const up = (name ?? '').toUpperCase();
  return (SETTABLE_LEVELS as readonly string[]).includes(up) ? (up as SettableLevel) : undefined;
}

export class LogLevels {
  private readonly loggers = new Map<string, Logger>();

  /** Registers the logger under a dotted name (`cinder.volume`) and hands it back. */
  register(name: string, logger: Logger): Logger {
    this.loggers.set(name, logger);
    return logger;
  }

  private matching(prefix: string | null | undefined, names?: ReadonlySet<string>): [string, Logger][] {
    return [...this.loggers].filter(([name]) => name.startsWith(prefix ?? '') && (!names || names.has(name)));
  }

  /** Sets every logger whose name starts with prefix (of `names` when given). */
  set(prefix: string | null | undefined, level: SettableLevel, names?: ReadonlySet<string>): void {
    for (const [, logger] of this.matching(prefix, names)) logger.level = TO_PINO[level];
  }

  /** Name → level in Python's words, of the loggers whose names start with prefix. */
  get(prefix: string | null | undefined, names?: ReadonlySet<string>): Record<string, string> {
    return Object.fromEntries(this.matching(prefix, names).map(([name, logger]) => [name, TO_PYTHON[logger.level] ?? logger.level.toUpperCase()]));
  }
}
