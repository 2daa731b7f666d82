import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { loadOrCreateSecrets, secretsPath, withServicePasswords } from './secrets.ts';

const SERVICES = [{ name: 'keystone' }, { name: 'glance', serviceUser: { roles: ['service'] } }, { name: 'nova', serviceUser: { roles: ['service'] } }];

describe('secrets', () => {
  const dir = tempDir();
  after(() => dir.remove());
  const stateDir = (name: string) => join(dir.path, name);

  it('generates one password per service that declares a service user, once', () => {
    const first = loadOrCreateSecrets(stateDir('fresh'), SERVICES);
    assert.equal(first.created, true);
    assert.deepEqual(Object.keys(first.secrets.service_passwords).sort(), ['glance', 'nova']);
    assert.notEqual(first.secrets.service_passwords.glance, first.secrets.service_passwords.nova);
    assert.equal(statSync(secretsPath(stateDir('fresh'))).mode & 0o777, 0o600);
    const again = loadOrCreateSecrets(stateDir('fresh'), SERVICES);
    assert.equal(again.created, false);
    assert.deepEqual(again.secrets, first.secrets);
  });

  it('upgrades a file with glance_password, keeping every password it has', () => {
    const path = secretsPath(stateDir('old'));
    loadOrCreateSecrets(stateDir('old'), []);
    const old = { ...JSON.parse(readFileSync(path, 'utf8')), glance_password: 'old-glance' };
    delete old.service_passwords;
    writeFileSync(path, JSON.stringify(old));
    const { secrets, created } = loadOrCreateSecrets(stateDir('old'), SERVICES);
    assert.equal(created, false);
    assert.equal(secrets.admin_password, old.admin_password);
    assert.equal(secrets.service_passwords.glance, 'old-glance');
    assert.ok(secrets.service_passwords.nova);
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), secrets);
    assert.ok(!('glance_password' in secrets));
  });

  it('fills the generated password only where the configuration leaves it empty', () => {
    const secrets = { admin_password: 'a', demo_password: 'd', service_passwords: { glance: 'g', nova: 'n' } };
    const values = {
      DEFAULT: { public_host: 'h' },
      glance: { service_password: '' },
      nova: { service_password: 'set-by-operator' },
      keystone: { port: 5000 },
    };
    assert.deepEqual(withServicePasswords(values, secrets), { ...values, glance: { service_password: 'g' } });
    assert.equal(values.glance.service_password, '');
  });
});
