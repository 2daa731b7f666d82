import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import YAML from 'yaml';

/** The standard place openstacksdk and the openstack CLI read (os-client-config). */
export function cloudsYamlPath(): string {
  return process.env.ONESTACK_CLOUDS_YAML ?? join(homedir(), '.config', 'openstack', 'clouds.yaml');
}

export interface CloudEntry {
  auth: Record<string, string>;
  region_name: string;
  interface: string;
  identity_api_version: number;
  [k: string]: unknown;
}

/** Adds or replaces our entries, keeping every other cloud (and comments) the user has. */
export function mergeClouds(entries: Record<string, CloudEntry>, path = cloudsYamlPath()): void {
  const doc = existsSync(path) ? YAML.parseDocument(readFileSync(path, 'utf8')) : new YAML.Document({ clouds: {} });
  if (!doc.has('clouds')) doc.set('clouds', {});
  for (const [name, entry] of Object.entries(entries)) doc.setIn(['clouds', name], entry);
  writeAtomically(path, doc.toString());
}

export function removeClouds(names: string[], path = cloudsYamlPath()): void {
  if (!existsSync(path)) return;
  const doc = YAML.parseDocument(readFileSync(path, 'utf8'));
  for (const n of names) doc.deleteIn(['clouds', n]);
  writeAtomically(path, doc.toString());
}

function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
  // Credentials inside: readable by the owner only, whatever the umask or the old file said.
  chmodSync(path, 0o600);
}
