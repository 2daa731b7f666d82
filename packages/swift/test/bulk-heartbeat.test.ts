import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/index.ts';
import { startSwift, type SwiftFixture, type SwiftProject } from './fixture.ts';

describe('swift bulk: whitespace heartbeat while an extract-archive or a bulk delete runs', () => {
  let f: SwiftFixture;
  let p: SwiftProject;
  let archive: Buffer;
  const dir = tempDir('onestack-swift-heartbeat-');
  before(async () => {
    // A heartbeat every 20 ms: unpacking 40 files (one replicated PUT each) takes far longer.
    f = await startSwift({ config: { yield_frequency: 0.02 } });
    p = await f.project('hb');
    mkdirSync(join(dir.path, 'hb'));
    for (let i = 0; i < 40; i++) writeFileSync(join(dir.path, 'hb', `f${i}.txt`), `file ${i}`);
    await promisify(execFile)('tar', ['-cf', join(dir.path, 'a.tar'), '-C', dir.path, 'hb']);
    archive = readFileSync(join(dir.path, 'a.tar'));
  });
  after(async () => {
    await f?.close();
    dir.remove();
  });

  const extract = async (accept: string) => {
    const r = await p.member.req('PUT', `/v1/${p.account}?extract-archive=tar`, { body: new Uint8Array(archive), headers: { accept } });
    assert.equal(r.status, 200);
    return { type: r.headers.get('content-type'), body: await r.text() };
  };

  it('plain and JSON answers: spaces, a blank line, then the report', async () => {
    let r = await extract('text/plain');
    const m = /^( +)\r\n\r\n(.*)$/s.exec(r.body);
    assert.ok(m, JSON.stringify(r.body.slice(0, 80)));
    assert.equal(m[2], 'Number Files Created: 40\nResponse Body: \nResponse Status: 201 Created\nErrors:\n');
    r = await extract('application/json');
    assert.equal(r.type, 'application/json; charset=utf-8');
    const j = /^ +\r\n\r\n(.*)$/s.exec(r.body);
    assert.ok(j);
    assert.deepEqual(JSON.parse(j[1]), { 'Number Files Created': 40, 'Response Body': '', 'Response Status': '201 Created', Errors: [] });
    assert.equal(await (await p.member.req('GET', `/v1/${p.account}/hb/f39.txt`)).text(), 'file 39');
  });

  it('XML answers: the declaration is the first heartbeat', async () => {
    const r = await extract('application/xml');
    assert.match(r.body, /^<\?xml version="1.0" encoding="UTF-8"\?>\n *\r\n\r\n<extract>\n<number_files_created>40<\/number_files_created>\n/);
  });

  it('bulk delete answers the same way', async () => {
    const body = ['/hb', ...Array.from({ length: 40 }, (_, i) => `/hb/f${i}.txt`)].reverse().join('\n');
    const r = await p.member.req('POST', `/v1/${p.account}?bulk-delete`, { body, headers: { accept: 'application/json', 'content-type': 'text/plain' } });
    assert.equal(r.status, 200);
    const m = /^ +\r\n\r\n(.*)$/s.exec(await r.text());
    assert.ok(m);
    assert.deepEqual(JSON.parse(m[1]), { 'Number Deleted': 41, 'Number Not Found': 0, 'Response Body': '', 'Response Status': '200 OK', Errors: [] });
  });
});
