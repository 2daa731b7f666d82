import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from './loader.ts';
import { defineGroup, opt } from './options.ts';
import { serviceAuthOptions, serviceIdentity } from './service-auth-options.ts';

const novaOptions = defineGroup('nova', { port: opt.port({ default: 8774, help: 'Port of the Compute API.' }), ...serviceAuthOptions('nova') });
const KEYSTONE = 'http://127.0.0.1:5000/v3';

describe('service auth options', () => {
  it('default to the user bootstrap creates for the service, on the all-in-one Keystone', () => {
    const { config } = loadConfig([novaOptions], { env: {} });
    assert.deepEqual(serviceIdentity(config.nova, KEYSTONE), {
      authUrl: KEYSTONE,
      credentials: { username: 'nova', password: '', userDomainName: 'Default', projectName: 'service', projectDomainName: 'Default' },
    });
  });

  it('take what the operator sets, auth_url included', () => {
    const { config } = loadConfig([novaOptions], {
      env: { ONESTACK_NOVA__AUTH_URL: 'https://keystone.example:5000/v3', ONESTACK_NOVA__SERVICE_USERNAME: 'compute', ONESTACK_NOVA__SERVICE_PASSWORD: 'pw' },
    });
    const { authUrl, credentials } = serviceIdentity(config.nova, KEYSTONE);
    assert.equal(authUrl, 'https://keystone.example:5000/v3');
    assert.equal(credentials.username, 'compute');
    assert.equal(credentials.password, 'pw');
  });

  it('are required of a group asked for its identity', () => {
    assert.throws(() => serviceIdentity({ port: 8774 }, KEYSTONE), /serviceAuthOptions/);
  });
});
