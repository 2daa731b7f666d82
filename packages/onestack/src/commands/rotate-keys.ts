import { keystoneConfig, keystoneOptions } from '@onestack/keystone/conf.ts';
import { rotateFernetKeys, setupFernetKeys } from '@onestack/keystone/index.ts';
import { existsSync } from 'node:fs';
import type { Settings } from '../settings.ts';

/**
 * keystone-manage fernet_rotate. A running Keystone notices the new key files
 * within a second; run it on one node and copy the repository to the others.
 */
export function rotateTokenKeys(settings: Settings): string {
  const conf = keystoneConfig(settings.values[keystoneOptions.name] as never, { stateDir: settings.stateDir, publicUrl: '', hostname: '' });
  if (!existsSync(conf.keyRepository)) setupFernetKeys(conf.keyRepository);
  rotateFernetKeys(conf.keyRepository, conf.maxActiveKeys);
  return conf.keyRepository;
}
