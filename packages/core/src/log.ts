/**
 * JSON-lines logging for every service: one file per service under log_dir,
 * request ids bound per request with `logger.child({ request_id })`, and
 * credentials censored before a line is written.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';

export type Logger = pino.Logger;
export type LevelName = pino.LevelWithSilent;

export const REDACT_CENSOR = '****';

/** Where credentials appear in what gets logged: request bodies, headers and options objects. */
export const REDACT_PATHS: readonly string[] = [
  'password',
  '*.password',
  'original_password',
  '*.original_password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'auth.identity.password.user.password',
  '*.auth.identity.password.user.password',
  'auth.identity.application_credential.secret',
  '*.auth.identity.application_credential.secret',
  ...['authorization', 'cookie', 'set-cookie', 'x-auth-token', 'x-subject-token', 'x-service-token', 'x-storage-token'].flatMap(
    (h) => [`headers["${h}"]`, `*.headers["${h}"]`],
  ),
];

export interface LoggerOptions {
  service: string;
  level?: LevelName;
  /** Appended to; created with its directory when missing. */
  file?: string;
  /** Also write to stdout; the default when no file is given. */
  stdout?: boolean;
}

/** Services sharing a process (the all-in-one) and loggers made twice for one service share the file's stream. */
const fileStreams = new Map<string, pino.DestinationStream>();

function fileStream(path: string): pino.DestinationStream {
  let stream = fileStreams.get(path);
  if (!stream) {
    stream = pino.destination({ dest: path, append: true, mkdir: true, sync: false });
    fileStreams.set(path, stream);
  }
  return stream;
}

export function logFilePath(logDir: string, service: string): string {
  return join(logDir, `${service}.log`);
}

export function createLogger(opts: LoggerOptions): Logger {
  const streams: pino.DestinationStream[] = [];
  if (opts.file) streams.push(fileStream(opts.file));
  if (opts.stdout || !opts.file) streams.push(pino.destination({ dest: 1, sync: false }));
  const destination =
    streams.length === 1
      ? streams[0]
      : // Each stream takes every level: the logger's own level does the filtering, and can change at run time.
        pino.multistream(streams.map((stream) => ({ stream, level: 'trace' as const })));
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: opts.service, hostname: hostname(), pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR },
    },
    destination,
  );
}
