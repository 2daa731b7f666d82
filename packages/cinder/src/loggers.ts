import type { Logger } from 'pino';
import { LogLevels } from '@onestack/core/log-levels.ts';

/**
 * One logger per upstream binary this process runs, each with a level of its own that
 * set-log changes (3.32): upstream's binaries are processes with their own loggers.
 * Named as upstream's modules are (`cinder.volume` …), so set-log's prefix picks them.
 */
export function cinderLoggers(root: Logger) {
  const levels = new LogLevels();
  const make = (binary: string, name: string) => levels.register(name, root.child({ binary }));
  return {
    levels,
    api: make('cinder-api', 'cinder.api'),
    scheduler: make('cinder-scheduler', 'cinder.scheduler'),
    volume: make('cinder-volume', 'cinder.volume'),
    backup: make('cinder-backup', 'cinder.backup'),
    loggers: {
      'cinder-api': new Set(['cinder.api']),
      'cinder-scheduler': new Set(['cinder.scheduler']),
      'cinder-volume': new Set(['cinder.volume']),
      'cinder-backup': new Set(['cinder.backup']),
    },
  };
}
