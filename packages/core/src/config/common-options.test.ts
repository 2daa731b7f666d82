import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultStateDir, resolveLogDir, resolveLogLevel, resolveTls } from './common-options.ts';
import { ConfigError } from './loader.ts';

describe('common options', () => {
  it('keeps state under /var/lib for root and under the home directory otherwise', () => {
    assert.equal(defaultStateDir(0, '/root'), '/var/lib/onestack');
    assert.equal(defaultStateDir(1000, '/home/ann'), '/home/ann/.local/share/onestack');
  });

  it('derives the log directory and level', () => {
    assert.equal(resolveLogDir({ state_dir: '/s', log_dir: '' }), '/s/log');
    assert.equal(resolveLogDir({ state_dir: '/s', log_dir: '/l' }), '/l');
    assert.equal(resolveLogLevel({ debug: true, log_level: 'warn' }), 'debug');
    assert.equal(resolveLogLevel({ debug: false, log_level: 'warn' }), 'warn');
  });

  it('needs both TLS files or neither', () => {
    assert.equal(resolveTls({ tls_cert_file: '', tls_key_file: '' }), undefined);
    assert.deepEqual(resolveTls({ tls_cert_file: '/c', tls_key_file: '/k' }), { certFile: '/c', keyFile: '/k' });
    assert.throws(() => resolveTls({ tls_cert_file: '/c', tls_key_file: '' }), ConfigError);
  });
});
