import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { commonOptions, defineGroup, loadConfig, opt, resolveLogDir } from '@onestack/core/config/index.ts';
import { SERVICES } from './services.ts';

/** The all-in-one's own options: what `onestack up` does besides running services. */
export const onestackOptions = defineGroup('onestack', {
  register_guest_image: opt.bool({
    default: true,
    help: 'On `onestack up`, build the guest image (images/build.sh, cached) and register it in Glance as the public image onestack-guest.',
  }),
  create_public_network: opt.bool({
    default: true,
    help: "On `onestack up`, create devstack's external network `public` (flat, physnet public, 172.24.4.0/24, gateway 172.24.4.1) when there is none.",
  }),
  guest_image_dir: opt.path({ help: 'Where the guest image is built and kept between runs. Empty: <state_dir>/images.' }),
});

export const ALL_GROUPS = [commonOptions, ...SERVICES.flatMap((s) => s.configGroups), onestackOptions] as const;

export interface Settings {
  file: string | undefined;
  values: Record<string, Record<string, unknown>>;
  stateDir: string;
  logDir: string;
  warnings: string[];
}

/**
 * The configuration file is optional: --config-file, else $ONESTACK_CONFIG,
 * else /etc/onestack/onestack.conf or ~/.config/onestack/onestack.conf when
 * present. Environment variables ONESTACK_<GROUP>__<OPTION> override it.
 */
export function findConfigFile(explicit?: string): string | undefined {
  if (explicit) return explicit;
  if (process.env.ONESTACK_CONFIG) return process.env.ONESTACK_CONFIG;
  const candidates = process.getuid?.() === 0 ? ['/etc/onestack/onestack.conf'] : [join(homedir(), '.config', 'onestack', 'onestack.conf'), '/etc/onestack/onestack.conf'];
  return candidates.find((p) => existsSync(p));
}

export function loadSettings(explicitFile?: string): Settings {
  const file = findConfigFile(explicitFile);
  const { config, warnings } = loadConfig(ALL_GROUPS, { file, env: process.env });
  const values = config as unknown as Record<string, Record<string, unknown>>;
  const common = values.DEFAULT as { state_dir: string; log_dir: string };
  return { file, values, stateDir: common.state_dir, logDir: resolveLogDir(common), warnings };
}

/** URL a service is reached at, from [DEFAULT] public_host and the service's port. */
export function serviceUrl(settings: Settings, name: string): string {
  const common = settings.values.DEFAULT as { public_host: string; tls_cert_file: string };
  const port = (settings.values[name] as { port: number }).port;
  const scheme = common.tls_cert_file ? 'https' : 'http';
  return `${scheme}://${common.public_host}:${port}`;
}

export function databaseUrl(settings: Settings, name: string): string {
  const explicit = (settings.values[name] as { database_connection?: string }).database_connection;
  return explicit || `sqlite://${join(settings.stateDir, name, `${name}.db`)}`;
}
