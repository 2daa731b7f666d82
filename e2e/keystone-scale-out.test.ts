import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropDatabase } from '@onestack/core/db/index.ts';
import { JsonClient } from '@onestack/testing/index.ts';
import { freePort, startCloud, type Cloud } from './cloud.ts';

const ONESTACK = join(dirname(fileURLToPath(import.meta.url)), '..', 'onestack');

/**
 * The scale-out column: the cloud on PostgreSQL and RabbitMQ, plus a second
 * Keystone started alone (`onestack serve keystone`) on the same database.
 * A token from one validates on the other; a revocation on one is honoured by
 * the other within seconds.
 */
const rabbitmqctl = (...args: string[]) => promisify(execFile)('rabbitmqctl', ['-q', ...args], { timeout: 60_000 });

describe('keystone scale-out on PostgreSQL and RabbitMQ', () => {
  const dbUrl = `postgresql://postgres@127.0.0.1:5432/onestack_e2e_${process.pid}`;
  // A vhost of its own: every service of this cloud declares durable queues (conductor,
  // compute, q-plugin, notifications …) that would otherwise stay on the shared broker.
  const vhost = `onestack-e2e-${process.pid}`;
  let c: Cloud;
  let second: ChildProcess | undefined;
  let secondUrl: string;

  before(async () => {
    await rabbitmqctl('add_vhost', vhost);
    await rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*');
    c = await startCloud({
      ONESTACK_KEYSTONE__DATABASE_CONNECTION: dbUrl,
      ONESTACK_DEFAULT__TRANSPORT_URL: `amqp://guest:guest@127.0.0.1:5672/${vhost}`,
    });
    const port = await freePort();
    secondUrl = `http://127.0.0.1:${port}`;
    second = spawn(ONESTACK, ['serve', 'keystone'], { env: { ...c.env, ONESTACK_KEYSTONE__PORT: String(port) }, stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if ((await fetch(`${secondUrl}/v3`).catch(() => undefined))?.ok) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('second keystone did not start');
  });

  after(async () => {
    second?.kill('SIGTERM');
    await c?.stop();
    await dropDatabase(dbUrl);
    await rabbitmqctl('delete_vhost', vhost);
  });

  it('issues a token with the real CLI against PostgreSQL', async () => {
    const t = await c.os('onestack', 'token', 'issue');
    assert.match(t.id, /^gAAAAA/);
  });

  it('validates on one keystone a token issued by the other, and honours revocation', async () => {
    const first = new JsonClient(`http://127.0.0.1:${c.env.ONESTACK_KEYSTONE__PORT}`);
    const other = new JsonClient(secondUrl);
    const admin = await c.os('onestack', 'token', 'issue');
    const demo = await c.os('onestack-demo', 'token', 'issue');
    const check = () => other.withToken(admin.id).get('/v3/auth/tokens', { 'x-subject-token': demo.id });
    assert.equal((await check()).status, 200);
    assert.equal((await first.withToken(admin.id).delete('/v3/auth/tokens', { 'x-subject-token': demo.id })).status, 204);
    let status = 200;
    for (let i = 0; i < 30 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await check()).status;
    }
    assert.equal(status, 404);
  });

  it('shows a role granted through one keystone in tokens validated by the other within seconds', async () => {
    const other = new JsonClient(secondUrl);
    const admin = await c.os('onestack', 'token', 'issue');
    const demo = await c.os('onestack-demo', 'token', 'issue');
    const roles = async () => {
      const res = await other.withToken(admin.id).get('/v3/auth/tokens', { 'x-subject-token': demo.id });
      return res.body.token.roles.map((r: { name: string }) => r.name).sort();
    };
    assert.ok(!(await roles()).includes('e2e-extra'));
    await c.os('onestack', 'role', 'create', 'e2e-extra');
    await c.osRaw('onestack', 'role', 'add', '--project', 'demo', '--user', 'demo', 'e2e-extra');
    let seen: string[] = [];
    for (let i = 0; i < 30 && !seen.includes('e2e-extra'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      seen = await roles();
    }
    assert.ok(seen.includes('e2e-extra'), `roles seen: ${seen.join(', ')}`);
  });
});
