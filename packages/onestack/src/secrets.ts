import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Passwords onestack generated, kept 0600 in the state directory so `up` is repeatable. */
export interface CloudSecrets {
  admin_password: string;
  demo_password: string;
}

export function secretsPath(stateDir: string): string {
  return join(stateDir, 'secrets.json');
}

export function loadOrCreateSecrets(stateDir: string): { secrets: CloudSecrets; created: boolean } {
  const path = secretsPath(stateDir);
  if (existsSync(path)) return { secrets: JSON.parse(readFileSync(path, 'utf8')) as CloudSecrets, created: false };
  const secrets: CloudSecrets = { admin_password: randomPassword(), demo_password: randomPassword() };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  return { secrets, created: true };
}

function randomPassword(): string {
  return randomBytes(18).toString('base64url');
}
