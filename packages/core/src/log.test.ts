import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { createLogger, logFilePath } from './log.ts';

const dir = mkdtempSync(join(tmpdir(), 'onestack-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The file stream writes asynchronously (and its flush() does not wait when unbuffered): poll. */
async function readLines(file: string, count: number): Promise<Record<string, any>[]> {
  for (let i = 0; i < 200; i++) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const lines = text.split('\n').filter(Boolean);
    if (lines.length >= count) return lines.map((l) => JSON.parse(l));
    await setTimeout(10);
  }
  assert.fail(`${file} did not get ${count} lines`);
}

describe('createLogger', () => {
  it('appends JSON lines with the service and a bound request id to <log_dir>/<service>.log', async () => {
    const file = logFilePath(join(dir, 'log'), 'keystone');
    assert.equal(file, join(dir, 'log', 'keystone.log'));
    const logger = createLogger({ service: 'keystone', level: 'debug', file });
    logger.debug('starting');
    logger.child({ request_id: 'req-1' }).info({ user_id: 'u1' }, 'token issued');
    // A second logger for the same service shares the stream rather than racing on the file.
    const second = createLogger({ service: 'keystone', file });
    second.trace('below the level');
    second.info('second logger');
    const lines = await readLines(file, 3);
    assert.equal(lines.length, 3);
    assert.equal(lines[2].msg, 'second logger');
    assert.equal(lines[0].service, 'keystone');
    assert.equal(lines[0].msg, 'starting');
    assert.equal(lines[1].request_id, 'req-1');
    assert.equal(lines[1].user_id, 'u1');
    assert.match(lines[1].time, /^\d{4}-\d\d-\d\dT/);
  });

  it('censors credentials', async () => {
    const file = join(dir, 'redact.log');
    const logger = createLogger({ service: 'nova', file });
    logger.info(
      {
        password: 'p1',
        user: { password: 'p2', name: 'ann' },
        auth: { identity: { password: { user: { name: 'ann', password: 'p3' } } } },
        req: { headers: { 'x-auth-token': 't1', 'x-subject-token': 't2', 'content-type': 'application/json' } },
        headers: { 'x-service-token': 't3' },
        secret: 's1',
      },
      'request',
    );
    const [line] = await readLines(file, 1);
    const text = readFileSync(file, 'utf8');
    for (const leaked of ['p1', 'p2', 'p3', 't1', 't2', 't3', 's1']) assert.doesNotMatch(text, new RegExp(`"${leaked}"`));
    assert.equal(line.user.name, 'ann');
    assert.equal(line.auth.identity.password.user.password, '****');
    assert.equal(line.req.headers['x-auth-token'], '****');
    assert.equal(line.req.headers['content-type'], 'application/json');
  });
});
