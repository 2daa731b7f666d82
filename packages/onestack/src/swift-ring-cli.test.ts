import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { loadBuilder } from '@onestack/swift/ring/builder-file.ts';
import { Ring } from '@onestack/swift/ring/ring.ts';
import { registerSwiftRingCli } from './swift-ring-cli.ts';

function cli(now?: () => number) {
  const lines: string[] = [];
  const errs: string[] = [];
  let code = 0;
  const run = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    lines.length = 0;
    errs.length = 0;
    const program = new Command().exitOverride();
    registerSwiftRingCli(program, { out: (l) => lines.push(l), err: (l) => errs.push(l), setExitCode: (c) => (code = c), ...(now ? { now } : {}) });
    code = 0;
    await program.parseAsync(['node', 'onestack', 'swift', 'ring', ...args]);
    return { code, out: lines.join('\n'), err: errs.join('\n') };
  };
  return run;
}

test('swift ring: create, add (both notations), rebalance, list, set-weight, remove, search values, exit codes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swift-ring-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'object.builder');
  let clock = 1_800_000_000;
  const run = cli(() => clock);

  assert.equal((await run('create', f, '8', '3', '1')).code, 0);
  const added = await run('add', f, 'r1z1-127.0.0.1:6200/sdb1', '100', 'r1z2-127.0.0.2:6200R10.0.0.2:6300/sdb1_"fast disk"', '100');
  assert.equal(added.code, 0);
  assert.match(added.out, /Device d0r1z1-127\.0\.0\.1:6200R127\.0\.0\.1:6200\/sdb1_"" with 100\.0 weight got id 0/);
  assert.match(added.out, /got id 1/);
  assert.equal((await run('add', f, '--region', '2', '--zone', '3', '--ip', '127.0.0.3', '--port', '6200', '--device', 'sdc', '--weight', '100')).code, 0);
  const dup = await run('add', f, 'r1z1-127.0.0.1:6200/sdb1', '100');
  assert.equal(dup.code, 2);
  assert.match(dup.err, /already uses/);
  assert.equal((await run('add', f, 'z1-127.0.0.1:6200', '100')).code, 2);

  const reb = await run('rebalance', f, '--seed', '1');
  assert.equal(reb.code, 0, reb.out + reb.err);
  assert.match(reb.out, /^Reassigned 768 \(300\.00%\) partitions\. Balance is now 0\.00\.  Dispersion is now 0\.00$/);
  assert.ok(existsSync(join(dir, 'object.ring.gz')));
  const b = loadBuilder(f);
  assert.equal(b.state.devs[1]?.replication_port, 6300);
  assert.equal(b.state.devs[1]?.meta, 'fast disk');

  const list = await run('list', f);
  assert.match(list.out, /^object\.builder, build version \d+, id [0-9a-f]{32}$/m);
  assert.match(list.out, /256 partitions, 3\.000000 replicas, 2 regions, 3 zones, 3 devices, 0\.00 balance, 0\.00 dispersion/);
  assert.match(list.out, /Ring file object\.ring\.gz is up-to-date/);
  assert.match(list.out, /127\.0\.0\.2:6200\s+10\.0\.0\.2:6300\s+sdb1\s+100\.00\s+256\s+0\.00\s+fast disk/);

  // within min_part_hours and nothing changed: upstream's warning, exit 1
  const early = await run('rebalance', f);
  assert.equal(early.code, 1);
  assert.match(early.out, /The time between rebalances must be at least min_part_hours: 1 hours \(1:00:00 remaining\)/);

  assert.equal((await run('add', f, 'r2z4-127.0.0.4:6200/sdd', '100')).code, 0);
  assert.match((await run('list', f)).out, /Ring file object\.ring\.gz is obsolete/);
  clock += 2 * 3600;
  const grown = await run('rebalance', f, '--seed', '2');
  assert.ok(grown.code <= 1, grown.out + grown.err);
  assert.match(grown.out, /^Reassigned \d+/);

  assert.equal((await run('set-weight', f, 'd0', '50')).code, 0);
  const rm = await run('remove', f, 'z3-127.0.0.3');
  assert.match(rm.out, /d2r2z3-127\.0\.0\.3:6200R127\.0\.0\.3:6200\/sdc_"" marked for removal/);
  assert.match((await run('list', f)).out, /DEL/);
  assert.equal((await run('remove', f, 'd99')).code, 2);
  clock += 2 * 3600;
  assert.ok((await run('rebalance', f, '--seed', '3')).code <= 1);
  const after = loadBuilder(f);
  assert.equal(after.state.devs[2], null);
  assert.equal(after.state.devs[0]?.weight, 50);
  assert.equal((await run('validate', f)).code, 0);
  assert.match((await run('dispersion', f)).out, /Dispersion is 0\.000000/);

  const ring = Ring.load(join(dir, 'object.ring.gz'), { prefix: Buffer.from('p'), suffix: Buffer.from('s') });
  assert.equal(ring.deviceCount, 3);
  assert.equal(ring.getNodes('AUTH_a', 'c', 'o').nodes.length, 3);

  assert.equal((await run('list', join(dir, 'missing.builder'))).code, 2);
});

test('onestack swift ring runs from the real command line (one spawn: loading cli.ts takes seconds)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'swift-ring-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cliPath = join(dirname(fileURLToPath(import.meta.url)), 'cli.ts');
  const f = join(dir, 'account.builder');
  const sh = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', cliPath, 'swift', 'ring', ...args], { encoding: 'utf8' });
  const run = cli();
  await run('create', f, '6', '1', '0');
  await run('add', f, 'r1z1-127.0.0.1:6202/d1', '1');
  assert.match(sh('rebalance', f), /Reassigned 64 \(100\.00%\) partitions/);
  assert.ok(existsSync(join(dir, 'account.ring.gz')));
});
