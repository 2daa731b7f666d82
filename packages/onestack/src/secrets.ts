import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ServiceDefinition } from '@onestack/core/service.ts';
import { SERVICES } from './services.ts';

/** Passwords onestack generated, kept 0600 in the state directory so `up` is repeatable. */
export interface CloudSecrets {
  admin_password: string;
  demo_password: string;
  /** Service name → password of its service user, for token validation and Keystone calls when it runs apart. */
  service_passwords: Record<string, string>;
}

/** Before service_passwords, Glance's was the only one and had a key of its own. */
type StoredSecrets = Partial<CloudSecrets> & { glance_password?: string };

export function secretsPath(stateDir: string): string {
  return join(stateDir, 'secrets.json');
}

/**
 * The cloud's passwords, generated on first use, one per service that
 * declares a service user. A file written by an older onestack gains the
 * passwords it lacks, so upgrading needs no manual step.
 */
export function loadOrCreateSecrets(
  stateDir: string,
  services: readonly Pick<ServiceDefinition, 'name' | 'serviceUser'>[] = SERVICES,
): { secrets: CloudSecrets; created: boolean } {
  const path = secretsPath(stateDir);
  const existing = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as StoredSecrets) : undefined;
  const { glance_password, ...stored } = existing ?? {};
  const servicePasswords: Record<string, string> = { ...(glance_password ? { glance: glance_password } : {}), ...stored.service_passwords };
  for (const s of services) if (s.serviceUser) servicePasswords[s.name] ||= randomPassword();
  const secrets: CloudSecrets = {
    ...stored,
    admin_password: stored.admin_password || randomPassword(),
    demo_password: stored.demo_password || randomPassword(),
    service_passwords: servicePasswords,
  };
  if (JSON.stringify(secrets) !== JSON.stringify(existing)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600, flag: existing ? 'w' : 'wx' });
  }
  return { secrets, created: existing === undefined };
}

/**
 * The configuration with the password bootstrap generated filled in for
 * service users whose password it leaves empty: what the all-in-one and a
 * `serve` on the same state directory need without any setting.
 */
export function withServicePasswords(values: Record<string, Record<string, unknown>>, secrets: CloudSecrets): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    Object.entries(values).map(([group, v]) => {
      const password = secrets.service_passwords[group];
      return [group, password && v.service_password === '' ? { ...v, service_password: password } : v];
    }),
  );
}

function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}
