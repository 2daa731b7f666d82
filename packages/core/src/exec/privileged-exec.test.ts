import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type AddressInfo, type Server } from 'node:net';
import { basename } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { CommandError, UnsafeArgumentError, positional, runCommand, startCommand, which } from './privileged-exec.ts';
import { hasExited } from './process-exit.ts';
import type { RunOptions } from './privileged-exec.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { lines, logger };
}

function opts(extra: Partial<RunOptions> = {}): RunOptions & { lines: Record<string, unknown>[] } {
  const { lines, logger } = capture();
  return { timeoutMs: 5000, logger, lines, ...extra };
}

async function commandError(p: Promise<unknown>): Promise<CommandError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CommandError, String(e));
    return e;
  }
  assert.fail('expected a CommandError');
}

describe('runCommand', () => {
  it('runs a program and logs the call', async () => {
    const o = opts();
    const result = await runCommand('/bin/true', ['--ignored', positional('data')], o);
    assert.equal(result.exitCode, 0);
    assert.deepEqual(result.args, ['--ignored', 'data']);
    assert.equal(o.lines.length, 1);
    assert.equal(o.lines[0].msg, 'exec');
    assert.equal(o.lines[0].program, '/bin/true');
    assert.deepEqual(o.lines[0].args, ['--ignored', 'data']);
    assert.equal(o.lines[0].exit_code, 0);
    assert.equal(typeof o.lines[0].duration_ms, 'number');
  });

  it('fails on a disallowed exit code and accepts an allowed one', async () => {
    const o = opts();
    const err = await commandError(runCommand('/bin/false', [], o));
    assert.equal(err.reason, 'exit');
    assert.equal(err.exitCode, 1);
    assert.equal(o.lines[0].msg, 'exec failed');
    assert.equal(o.lines[0].level, 40);
    const ok = await runCommand('/bin/false', [], opts({ allowedExitCodes: [0, 1] }));
    assert.equal(ok.exitCode, 1);
  });

  it('reports the stderr tail', async () => {
    const err = await commandError(runCommand('/bin/sh', ['-c', 'echo one >&2; echo boom >&2; exit 3'], opts()));
    assert.equal(err.exitCode, 3);
    assert.equal(err.stderrTail, 'one\nboom');
    assert.equal(err.message, "/bin/sh -c echo one >&2; echo boom >&2; exit 3: exited with code 3: one | boom");
  });

  it('feeds input on stdin and captures stdout', async () => {
    const result = await runCommand('/bin/cat', [], opts({ input: 'hello\nworld\n' }));
    assert.equal(result.stdout, 'hello\nworld\n');
  });

  it('kills the program on timeout', async () => {
    const started = Date.now();
    const err = await commandError(runCommand('/bin/sleep', ['10'], opts({ timeoutMs: 200 })));
    assert.equal(err.reason, 'timeout');
    assert.equal(err.signal, 'SIGTERM');
    assert.ok(Date.now() - started < 2000);
  });

  it('kills the whole process group with SIGKILL when SIGTERM is ignored', async () => {
    const started = Date.now();
    const err = await commandError(
      runCommand('/bin/sh', ['-c', "trap '' TERM; sleep 10 & wait"], opts({ timeoutMs: 200, killGraceMs: 200 })),
    );
    assert.equal(err.reason, 'timeout');
    assert.equal(err.signal, 'SIGKILL');
    assert.ok(Date.now() - started < 2000);
  });

  it('fails when stdout exceeds the cap', async () => {
    const err = await commandError(runCommand('/usr/bin/yes', [], opts({ maxOutputBytes: 1000 })));
    assert.equal(err.reason, 'output_limit');
  });

  it('gives the program a minimal environment plus what the caller adds', async () => {
    process.env.ONESTACK_TEST_SECRET = 'leak';
    try {
      const result = await runCommand('/usr/bin/env', [], opts({ env: { FOO: 'bar' } }));
      assert.deepEqual(result.stdout.trim().split('\n').sort(), ['FOO=bar', 'LC_ALL=C', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
    } finally {
      delete process.env.ONESTACK_TEST_SECRET;
    }
  });

  it('resolves bare names against the fixed directories only', async () => {
    const result = await runCommand('cat', [], opts({ input: 'x' }));
    assert.equal(result.program, which('cat'));
    const err = await commandError(runCommand('no-such-program-onestack', [], opts()));
    assert.equal(err.reason, 'not_found');
  });

  it('rejects unsafe programs and arguments before running anything', async () => {
    const o = opts();
    await assert.rejects(runCommand('/bin/echo', ['a\0b'], o), UnsafeArgumentError);
    await assert.rejects(runCommand('/bin/echo', ['a\nb'], o), UnsafeArgumentError);
    await assert.rejects(runCommand('/bin/echo', ['a\rb'], o), UnsafeArgumentError);
    await assert.rejects(runCommand('/bin/echo', [42 as unknown as string], o), /argument 1 must be a string/);
    await assert.rejects(runCommand('bin/true', [], o), UnsafeArgumentError);
    await assert.rejects(runCommand('true; reboot', [], o), UnsafeArgumentError);
    await assert.rejects(runCommand('/bin/../bin/true', [], o), UnsafeArgumentError);
    await assert.rejects(runCommand('/bin/true', [], { ...o, timeoutMs: 0 }), UnsafeArgumentError);
    await assert.rejects(runCommand('/bin/true', [], { ...o, env: { 'A=B': 'x' } }), UnsafeArgumentError);
    assert.equal(o.lines.length, 0);
    assert.throws(() => positional('-rf'), /starts with "-"/);
    assert.throws(() => positional(''), /is empty/);
    assert.throws(() => positional('x\ny'), /line break/);
  });
});

describe('which', () => {
  it('finds programs in the fixed directories and checks absolute paths', () => {
    assert.match(which('sh') ?? '', /^\/(usr\/)?bin\/sh$/);
    assert.equal(which('/bin/sh'), '/bin/sh');
    assert.equal(which('/etc/passwd'), undefined);
    assert.equal(which('no-such-program-onestack'), undefined);
    assert.equal(which('../sh'), undefined);
  });
});

describe('runCommand with an IPC channel', () => {
  it('hands the program’s messages to onMessage', async () => {
    const messages: unknown[] = [];
    await runCommand(process.execPath, ['-e', 'process.send({ hello: 1 }, () => process.exit(0))'], opts({ onMessage: (m) => messages.push(m) }));
    assert.deepEqual(messages, [{ hello: 1 }]);
  });

  it('hands over a listening socket the program sends with its message', async () => {
    let server: Server | undefined;
    const listen = "const s=require('net').createServer();s.listen({host:'127.0.0.1',port:0},()=>process.send({listening:true},s,()=>process.exit(0)));";
    await runCommand(process.execPath, ['-e', listen], opts({ onMessage: (m, handle) => (server = (m as { listening?: boolean }).listening ? (handle as Server) : undefined) }));
    assert.ok(server, 'no socket came back');
    server.on('connection', (c) => c.end('from this process'));
    const { port } = server.address() as AddressInfo;
    const answer = await new Promise<string>((resolve, reject) => {
      const c = connect(port, '127.0.0.1');
      let text = '';
      c.on('data', (d) => (text += d)).on('end', () => resolve(text)).on('error', reject);
    });
    server.close();
    assert.equal(answer, 'from this process');
  });
});

describe('the exec helper', () => {
  const ppid = ['-e', 'console.log(process.ppid)'];

  it('forks the programs, not the calling process', async () => {
    const helper = Number((await runCommand(process.execPath, ppid, opts())).stdout);
    assert.notEqual(helper, process.pid);
    assert.equal(Number((await runCommand(process.execPath, ppid, opts())).stdout), helper, 'one helper for every call');
    // ps shows the helper by its file, not a whole program passed with -e.
    const argv = readFileSync(`/proc/${helper}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.deepEqual(argv.slice(1).map((a) => basename(a)), ['exec-helper.cjs']);
  });

  it('fails the calls it was running when it dies, and a new one serves the next call', async () => {
    const helper = Number((await runCommand(process.execPath, ppid, opts())).stdout);
    // The sleep outlives the helper by under 2 s, on its own.
    const running = commandError(runCommand('sleep', ['2'], opts()));
    await new Promise((r) => setTimeout(r, 100));
    process.kill(helper, 'SIGKILL');
    const err = await running;
    assert.equal(err.reason, 'spawn');
    assert.match(err.message, /exec helper exited/);
    const next = Number((await runCommand(process.execPath, ppid, opts())).stdout);
    assert.notEqual(next, helper);
  });
});

describe('startCommand', () => {
  it('hands over stdout line by line as it comes, joining lines split across chunks', async () => {
    const { logger } = capture();
    const lines: string[] = [];
    const script = "process.stdout.write('one\\ntw'); setTimeout(() => process.stdout.write('o\\nthree\\n'), 50)";
    const cmd = startCommand(process.execPath, ['-e', script], { logger, onLine: (l) => lines.push(l) });
    const r = await cmd.exited;
    assert.equal(r.exitCode, 0);
    assert.deepEqual(lines, ['one', 'two', 'three']);
  });

  it('runs until stopped, and stop() ends its whole process group even when SIGTERM is ignored', async () => {
    const { logger, lines } = capture();
    const cmd = startCommand('/bin/sh', ['-c', "trap '' TERM; sleep 30 & echo started; wait"], { logger, onLine: () => {}, killGraceMs: 200 });
    const started = new Promise<void>((resolve) => {
      const t = setInterval(() => lines.some((l) => l.msg === 'exec started') && (clearInterval(t), resolve()), 10);
    });
    await started;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await hasExited(cmd.pid), false);
    const t0 = Date.now();
    await cmd.stop();
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(await hasExited(cmd.pid), true);
    assert.equal((await cmd.exited).signal, 'SIGKILL');
  });

  it('checks its program and arguments as runCommand does', () => {
    const { logger } = capture();
    assert.throws(() => startCommand('/bin/echo', ['a\nb'], { logger, onLine: () => {} }), UnsafeArgumentError);
    assert.throws(() => startCommand('true; reboot', [], { logger, onLine: () => {} }), UnsafeArgumentError);
    assert.throws(() => startCommand('no-such-program-onestack', [], { logger, onLine: () => {} }), CommandError);
  });
});
