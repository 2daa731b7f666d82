import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { LogLevels, parseLogLevel } from './log-levels.ts';

test('log levels: a prefix picks registered loggers; the level set is what they and their later children write', () => {
  const lines: string[] = [];
  const root = pino({ level: 'info' }, new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) }));
  const levels = new LogLevels();
  const volume = levels.register('svc.volume', root.child({ binary: 'volume' }));
  const api = levels.register('svc.api', root.child({ binary: 'api' }));
  assert.deepEqual(levels.get(''), { 'svc.volume': 'INFO', 'svc.api': 'INFO' });
  levels.set('svc.vol', 'DEBUG');
  assert.deepEqual(levels.get('svc'), { 'svc.volume': 'DEBUG', 'svc.api': 'INFO' });
  volume.child({ request_id: 'r1' }).debug('volume detail');
  api.debug('api detail');
  assert.equal(lines.length, 1);
  assert.match(lines[0], /volume detail/);
  levels.set('', 'ERROR', new Set(['svc.api']));
  assert.deepEqual(levels.get('', new Set(['svc.api'])), { 'svc.api': 'ERROR' });
  assert.equal(parseLogLevel('warning'), 'WARNING');
  assert.equal(parseLogLevel('TRACE'), undefined);
  assert.equal(parseLogLevel(null), undefined);
});
