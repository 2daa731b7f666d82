import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Passwords onestack generated, kept 0600 in the state directory so `up` is repeatable. */
export interface CloudSecrets {
  admin_password: string;
  demo_password: string;
  /** The `glance` service user's, for token validation and limits when Glance runs apart. */
  glance_password: string;
}

const KEYS: readonly (keyof CloudSecrets)[] = ['admin_password', 'demo_password', 'glance_password'];

export function secretsPath(stateDir: string): string {
  return join(stateDir, 'secrets.json');
}

/**
 * The cloud's passwords, generated on first use. A file written by an older
 * onestack gains the passwords it lacks, so upgrading needs no manual step.
 */
export function loadOrCreateSecrets(stateDir: string): { secrets: CloudSecrets; created: boolean } {
  const path = secretsPath(stateDir);
  const existing = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Partial<CloudSecrets>) : undefined;
  const missing = KEYS.filter((k) => !existing?.[k]);
  const secrets = { ...existing, ...Object.fromEntries(missing.map((k) => [k, randomPassword()])) } as CloudSecrets;
  if (missing.length > 0) {
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
  const glance = values.glance;
  if (!glance || glance.service_password) return values;
  return { ...values, glance: { ...glance, service_password: secrets.glance_password } };
}

function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}
