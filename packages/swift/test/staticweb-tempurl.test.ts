import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createProxyApp } from '../src/proxy/app.ts';
import { defaultSwiftValues, proxyConfig, type SwiftValues } from '../src/conf.ts';
import { startSwift, type SwiftFixture, type SwiftProject } from './fixture.ts';

describe('swift staticweb: prefix tempurl listings, url_base', () => {
  let f: SwiftFixture;
  let p: SwiftProject;
  let acct: string;
  before(async () => {
    f = await startSwift({ config: { recheck_existence: 0 } });
    p = await f.project('swtu');
    acct = `/v1/${p.account}`;
  });
  after(() => f?.close());

  it('signs every link of the listing with the same prefix tempurl and links no higher than the prefix', async () => {
    // Private container: only the tempurl opens it.
    assert.equal((await p.member.req('PUT', `${acct}/site`, { headers: { 'x-container-meta-web-listings': 'true', 'x-container-meta-temp-url-key': 'k' } })).status, 201);
    for (const name of ['docs/a.txt', 'docs/sub/b.txt']) assert.equal((await p.member.req('PUT', `${acct}/site/${name}`, { body: Buffer.from('x') })).status, 201);
    const expires = Math.floor(Date.now() / 1000) + 300;
    const sig = createHmac('sha256', 'k').update(`GET\n${expires}\nprefix:${acct}/site/docs/`).digest('hex');
    const qs = `temp_url_prefix=docs/&temp_url_expires=${expires}&temp_url_sig=${sig}`;
    let r = await f.anon.req('GET', `${acct}/site/docs/?${qs}`);
    assert.equal(r.status, 200);
    const html = await r.text();
    const signed = `?temp_url_prefix=docs/&amp;temp_url_expires=${expires}&amp;temp_url_sig=${sig}`;
    assert.ok(html.includes(`<a href="./sub/${signed}">sub/</a>`), html);
    assert.ok(html.includes(`<a href="./a%2Etxt${signed}">a.txt</a>`), html);
    assert.ok(!html.includes('id="parent"'), 'no link above the signed prefix');
    // One level down the parent link is there, signed too; and the links work as they are.
    r = await f.anon.req('GET', `${acct}/site/docs/sub/?${qs}`);
    const sub = await r.text();
    assert.ok(sub.includes(`<a href="../${signed}">../</a>`), sub);
    r = await f.anon.req('GET', `${acct}/site/docs/a.txt?${qs}`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'x');
    // Without a prefix tempurl the links stay plain.
    await p.member.req('POST', `${acct}/site`, { headers: { 'x-container-read': '.r:*,.rlistings' } });
    r = await f.anon.req('GET', `${acct}/site/docs/`);
    assert.ok((await r.text()).includes('<a href="./a%2Etxt">a.txt</a>'));
    // A tempurl for another prefix opens nothing.
    r = await f.anon.req('GET', `${acct}/site/docs/sub/?temp_url_prefix=other/&temp_url_expires=${expires}&temp_url_sig=${sig}`);
    assert.equal(r.status, 401);
    await r.text();
  });

  it('url_base sets the scheme and host of the slash redirects (its path is ignored)', async () => {
    const values = { ...defaultSwiftValues(), staticweb_url_base: 'https://www.example.com/ignored' } as SwiftValues;
    const proxy = await createProxyApp({ rings: f.cluster.rings, config: proxyConfig(values, { authUri: f.ks.url }), logger: pino({ level: 'silent' }), tokens: f.ks.tokens, version: '0.1.0' });
    try {
      const res = await proxy.handle({ method: 'GET', path: `${acct}/site/docs`, query: new URLSearchParams(), headers: { host: '127.0.0.1' }, env: { transId: 'tx-urlbase', extra: {}, hostUrl: 'http://127.0.0.1' } });
      assert.equal(res.status, 301);
      assert.equal(res.headers.location, `https://www.example.com${acct}/site/docs/`);
    } finally {
      await proxy.app.close();
    }
  });
});
