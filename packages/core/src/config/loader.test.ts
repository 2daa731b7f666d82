import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { commonOptions } from './common-options.ts';
import { ConfigError, describeConfig, loadConfig } from './loader.ts';
import { defineGroup, opt } from './options.ts';

const keystone = defineGroup('keystone', {
  token_expiration: opt.int({ default: 3600, min: 1, help: 'Token lifetime in seconds.' }),
  admin_password: opt.string({ secret: true, help: 'Bootstrap password.' }),
  drivers: opt.list({ default: ['sql'], help: 'Identity drivers.' }),
  ratio: opt.float({ default: 1.5, min: 0, help: 'A ratio.' }),
  connection: opt.url({ default: 'sqlite:///keystone.db', help: 'Database URL.' }),
  port: opt.port({ default: 5000, help: 'Port.' }),
});
const groups = [commonOptions, keystone] as const;

const dir = mkdtempSync(join(tmpdir(), 'onestack-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function confFile(text: string): string {
  const file = join(dir, `onestack-${n++}.conf`);
  writeFileSync(file, text);
  return file;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig', () => {
  it('returns typed defaults with no file and no environment', () => {
    const { config, warnings } = loadConfig(groups, { env: {} });
    const expiration: number = config.keystone.token_expiration;
    const level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' = config.DEFAULT.log_level;
    // @ts-expect-error an integer option is typed number
    const wrong: string = config.keystone.token_expiration;
    assert.equal(expiration, 3600);
    assert.equal(level, 'info');
    assert.equal(wrong, 3600);
    assert.deepEqual(config.keystone.drivers, ['sql']);
    assert.equal(config.DEFAULT.bind_host, '127.0.0.1');
    assert.equal(config.DEFAULT.transport_url, 'inprocess://');
    assert.equal(config.DEFAULT.debug, false);
    assert.deepEqual(warnings, []);
    assert.ok(Object.isFrozen(config.keystone));
  });

  it('reads the file, with comments, dashes and oslo booleans; the environment wins', () => {
    const file = confFile(
      [
        '# a comment',
        '[DEFAULT]',
        '; another comment',
        'bind-host = 0.0.0.0',
        'debug = yes',
        'log_level = debug',
        '',
        '[keystone]',
        'token_expiration = 7200',
        'drivers = sql, ldap,,',
        'ratio = 0.25',
        'admin_password = "p#ss;word"',
        'port = 15000',
      ].join('\n'),
    );
    const { config, warnings } = loadConfig(groups, {
      file,
      env: { ONESTACK_KEYSTONE__TOKEN_EXPIRATION: '60', ONESTACK_DEFAULT__PUBLIC_HOST: 'cloud.example' },
    });
    assert.deepEqual(warnings, []);
    assert.equal(config.DEFAULT.bind_host, '0.0.0.0');
    assert.equal(config.DEFAULT.debug, true);
    assert.equal(config.DEFAULT.log_level, 'debug');
    assert.equal(config.DEFAULT.public_host, 'cloud.example');
    assert.equal(config.keystone.token_expiration, 60);
    assert.deepEqual(config.keystone.drivers, ['sql', 'ldap']);
    assert.equal(config.keystone.ratio, 0.25);
    assert.equal(config.keystone.admin_password, 'p#ss;word');
    assert.equal(config.keystone.port, 15000);
  });

  it('collects every invalid value into one error naming option and source, hiding secrets', () => {
    const file = confFile(
      ['[DEFAULT]', 'log_level = loud', 'transport_url = http://rabbit', '[keystone]', 'token_expiration = abc', 'port = 70000'].join(
        '\n',
      ),
    );
    const err = configError(() =>
      loadConfig(groups, {
        file,
        env: { ONESTACK_DEFAULT__DEBUG: 'maybe', ONESTACK_KEYSTONE__ADMIN_PASSWORD: 'x', ONESTACK_DEFAULT__STATE_DIR: 'relative/dir' },
      }),
    );
    assert.ok(
      err.problems.includes(
        `invalid value "abc" for option [keystone] token_expiration (from ${file}): must be an integer`,
      ),
      err.message,
    );
    assert.ok(err.problems.includes(`invalid value "loud" for option [DEFAULT] log_level (from ${file}): must be one of trace, debug, info, warn, error, fatal`));
    assert.ok(err.problems.includes(`invalid value "70000" for option [keystone] port (from ${file}): must be at most 65535`));
    assert.ok(err.problems.some((p) => p.includes('[DEFAULT] transport_url') && p.includes('inprocess, amqp, amqps')));
    assert.ok(
      err.problems.includes(
        'invalid value "maybe" for option [DEFAULT] debug (from environment variable ONESTACK_DEFAULT__DEBUG): must be a boolean (true/false, yes/no, on/off, 1/0)',
      ),
    );
    assert.ok(err.problems.some((p) => p.includes('[DEFAULT] state_dir') && p.endsWith('must be an absolute path')));
    assert.equal(err.problems.length, 6, err.message);
    assert.match(err.message, /^invalid configuration \(6 problems\):\n {2}- /);
  });

  it('never prints the value of a secret option', () => {
    const strict = defineGroup('db', { password: opt.string({ secret: true, default: 'a', choices: ['a', 'b'], help: 'x' }) });
    const err = configError(() => loadConfig([strict], { env: { ONESTACK_DB__PASSWORD: 'hunter2' } }));
    assert.doesNotMatch(err.message, /hunter2/);
    assert.match(err.message, /invalid value for option \[db\] password \(from environment variable ONESTACK_DB__PASSWORD\)/);
  });

  it('warns about unknown sections, options and variables, with hints', () => {
    const file = confFile(
      ['orphan = 1', '[DEFAULT]', 'bind_hots = x', 'token_expiration = 5', '[keystne]', 'a = b', '[cinder]', 'x = y'].join('\n'),
    );
    const { warnings } = loadConfig(groups, { file, env: { ONESTACK_KEYSTONE__TOKEN_EXPIRATON: '1', ONESTACK_HOME: '/x' } });
    assert.deepEqual(warnings, [
      `option orphan in ${file} is outside any section and was ignored (put it under [DEFAULT]?)`,
      `unknown option [DEFAULT] bind_hots in ${file} was ignored (did you mean bind_host?)`,
      `unknown option [DEFAULT] token_expiration in ${file} was ignored (it belongs in [keystone])`,
      `unknown section [keystne] in ${file} was ignored (did you mean keystone?)`,
      `unknown section [cinder] in ${file} was ignored`,
      'environment variable ONESTACK_KEYSTONE__TOKEN_EXPIRATON matches no option and was ignored (did you mean ONESTACK_KEYSTONE__TOKEN_EXPIRATION?)',
    ]);
  });

  it('fails when the named file does not exist', () => {
    const err = configError(() => loadConfig(groups, { file: join(dir, 'missing.conf'), env: {} }));
    assert.deepEqual(err.problems, [`cannot read configuration file ${join(dir, 'missing.conf')}: no such file`]);
  });

  it('merges several groups contributing to one section and refuses a duplicate option', () => {
    const extra = defineGroup('DEFAULT', { my_ip: opt.string({ default: '10.0.0.1', help: 'x' }) });
    const { config } = loadConfig([commonOptions, extra], { env: { ONESTACK_DEFAULT__MY_IP: '10.0.0.2' } });
    const ip: string = config.DEFAULT.my_ip;
    assert.equal(ip, '10.0.0.2');
    assert.equal(config.DEFAULT.bind_host, '127.0.0.1');
    const clash = defineGroup('DEFAULT', { debug: opt.bool({ help: 'x' }) });
    assert.throws(() => loadConfig([commonOptions, clash], { env: {} }), /option \[DEFAULT\] debug is declared twice/);
  });
});

describe('describeConfig', () => {
  it('masks secrets and URL passwords', () => {
    const { config } = loadConfig(groups, {
      env: {
        ONESTACK_KEYSTONE__ADMIN_PASSWORD: 's3cret',
        ONESTACK_DEFAULT__TRANSPORT_URL: 'amqp://onestack:pa55@rabbit:5672/',
      },
    });
    const described = describeConfig(groups, config);
    assert.equal(described.keystone.admin_password, '****');
    assert.equal(described.DEFAULT.transport_url, 'amqp://onestack:****@rabbit:5672/');
    assert.equal(described.keystone.token_expiration, 3600);
    assert.doesNotMatch(JSON.stringify(described), /s3cret|pa55/);
  });
});
