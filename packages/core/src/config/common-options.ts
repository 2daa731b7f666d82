/** The [DEFAULT] options every onestack service reads. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './loader.ts';
import { defineGroup, opt } from './options.ts';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Root runs the data plane and owns /var/lib; an unprivileged user keeps state under its home. */
export function defaultStateDir(uid: number | undefined = process.getuid?.(), home: string = homedir()): string {
  return uid === 0 ? '/var/lib/onestack' : join(home, '.local', 'share', 'onestack');
}

export const commonOptions = defineGroup('DEFAULT', {
  state_dir: opt.path({
    default: defaultStateDir(),
    sampleDefault: '/var/lib/onestack',
    help:
      'Directory holding all state: databases, images, instances, volumes, objects and keys. ' +
      'Defaults to /var/lib/onestack when running as root, ~/.local/share/onestack otherwise.',
  }),
  bind_host: opt.string({
    default: '127.0.0.1',
    help: 'Address the API servers listen on. Use a host address (or 0.0.0.0) when services run on several hosts.',
  }),
  public_host: opt.string({
    default: '127.0.0.1',
    help: 'Host name or address that clients use to reach the APIs; it appears in the service catalog and in links.',
  }),
  log_level: opt.string({
    default: 'info',
    choices: LOG_LEVELS,
    help: 'Minimum level of the messages written to the logs.',
  }),
  log_dir: opt.path({
    help: 'Directory of the log files, one <service>.log per service. Empty means <state_dir>/log.',
  }),
  transport_url: opt.url({
    default: 'inprocess://',
    schemes: ['inprocess', 'amqp', 'amqps'],
    help:
      'Message bus for RPC and notifications: inprocess:// keeps it inside one process (all-in-one); ' +
      'amqp://user:password@host:5672/vhost (or amqps://) uses RabbitMQ.',
  }),
  tls_cert_file: opt.path({
    help: 'PEM certificate (with its chain) the API servers present. Empty serves plain HTTP; set together with tls_key_file.',
  }),
  tls_key_file: opt.path({
    help: 'PEM private key of tls_cert_file. Empty serves plain HTTP.',
  }),
  debug: opt.bool({
    default: false,
    help: 'Log at debug level whatever log_level says, as oslo.log does.',
  }),
});

export function resolveLogDir(defaults: { state_dir: string; log_dir: string }): string {
  return defaults.log_dir || join(defaults.state_dir, 'log');
}

export function resolveLogLevel(defaults: { debug: boolean; log_level: LogLevel }): LogLevel {
  return defaults.debug ? 'debug' : defaults.log_level;
}

/** Undefined means plain HTTP; half a TLS setting is refused rather than silently serving plain HTTP. */
export function resolveTls(defaults: {
  tls_cert_file: string;
  tls_key_file: string;
}): { certFile: string; keyFile: string } | undefined {
  const { tls_cert_file: certFile, tls_key_file: keyFile } = defaults;
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) {
    throw new ConfigError(['options [DEFAULT] tls_cert_file and tls_key_file must be set together']);
  }
  return { certFile, keyFile };
}
