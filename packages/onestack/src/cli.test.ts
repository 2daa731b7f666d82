import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';

const run = promisify(execFile);
const CLI = join(dirname(fileURLToPath(import.meta.url)), 'cli.ts');

describe('onestack command', () => {
  const dir = tempDir();
  after(() => dir.remove());
  const env = { ...process.env, ONESTACK_DEFAULT__STATE_DIR: join(dir.path, 'state') };
  const onestack = (args: string[], extra: Record<string, string> = {}) => run(process.execPath, [...process.execArgv, CLI, ...args], { env: { ...env, ...extra } });

  it('prints a config sample with every keystone option and its default', async () => {
    const { stdout } = await onestack(['config', 'sample']);
    assert.match(stdout, /^\[keystone\]$/m);
    assert.match(stdout, /^#token_expiration = 3600$/m);
    assert.match(stdout, /^\[DEFAULT\]$/m);
  });

  it('names the option and its source when a value is invalid', async () => {
    await assert.rejects(onestack(['status'], { ONESTACK_KEYSTONE__PORT: 'abc' }), (e: { stderr: string }) => {
      assert.match(e.stderr, /\[keystone\] port/);
      assert.match(e.stderr, /ONESTACK_KEYSTONE__PORT/);
      return true;
    });
  });

  it('migrates databases with db sync, idempotently', async () => {
    const first = await onestack(['db', 'sync']);
    assert.match(first.stdout, /keystone: database at version \d+ \(latest \d+\)/);
    const again = await onestack(['db', 'sync']);
    assert.equal(again.stdout, first.stdout);
  });

  it('reports a stopped cloud with a non-zero status', async () => {
    await assert.rejects(onestack(['status', '--json'], { ONESTACK_KEYSTONE__PORT: '1' }), (e: { code: number; stdout: string }) => {
      assert.equal(e.code, 3);
      assert.equal(JSON.parse(e.stdout).services[0].status, 'down');
      return true;
    });
  });
});
