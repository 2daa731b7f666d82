import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSwift, type SwiftClient, type SwiftFixture, type SwiftProject } from './fixture.ts';

describe('swift proxy middleware: quotas, versioning, formpost, CORS, staticweb, extract-archive', () => {
  let f: SwiftFixture;
  let p: SwiftProject;
  let acct: string;
  let reseller: SwiftClient;
  before(async () => {
    // No info caching: each check below sees the usage the previous request left.
    f = await startSwift({ config: { recheck_existence: 0 } });
    p = await f.project('mw');
    acct = `/v1/${p.account}`;
    const k = f.ks.ks;
    const role = await k.assignment.createRole({ name: 'ResellerAdmin' });
    const u = await k.identity.createUser({ name: 'mw-reseller', domainId: 'default', password: 'mw-pw' });
    await k.assignment.grant({ userId: u.id }, { projectId: p.id }, role.id);
    reseller = f.anon.withToken((await f.ks.login('mw-reseller', 'mw-pw', { project: { id: p.id } })).token);
  });
  after(() => f?.close());

  it('container quotas: bytes and count refuse a PUT or a copy past them with 413; bad values 400', async () => {
    let r = await p.member.req('PUT', `${acct}/q`, { headers: { 'x-container-meta-quota-bytes': 'ten' } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Invalid bytes quota.');
    r = await p.member.req('PUT', `${acct}/q`, { headers: { 'x-container-meta-quota-bytes': '10', 'x-container-meta-quota-count': '2' } });
    assert.equal(r.status, 201);
    r = await p.member.req('PUT', `${acct}/q/big`, { body: 'x'.repeat(11) });
    assert.equal(r.status, 413);
    assert.equal(await r.text(), 'Upload exceeds quota.');
    r = await p.member.req('PUT', `${acct}/q/a`, { body: 'x'.repeat(6) });
    assert.equal(r.status, 201);
    r = await p.member.req('PUT', `${acct}/q/b`, { headers: { 'x-copy-from': 'q/a', 'content-length': '0' } });
    assert.equal(r.status, 413, 'a copy counts its source size');
    await r.text();
    r = await p.member.req('PUT', `${acct}/q/b`, { body: 'x' });
    assert.equal(r.status, 201);
    r = await p.member.req('PUT', `${acct}/q/c`, { body: '' });
    assert.equal(r.status, 413, 'the count quota');
    await r.text();
    // Someone who may not write there sees the denial, not the quota.
    r = await p.reader.req('PUT', `${acct}/q/c`, { body: 'x'.repeat(20) });
    assert.equal(r.status, 403);
    await r.text();
    r = await p.member.req('POST', `${acct}/q`, { headers: { 'x-container-meta-quota-count': '-1' } });
    assert.equal(r.status, 400);
    assert.equal(await r.text(), 'Invalid count quota.');
  });

  it('account quotas: only a reseller admin sets them; a PUT past them is 413', async () => {
    let r = await p.member.req('POST', acct, { headers: { 'x-account-meta-quota-bytes': '5' } });
    assert.equal(r.status, 403);
    await r.text();
    r = await reseller.req('POST', acct, { headers: { 'x-account-meta-quota-bytes': 'x' } });
    assert.equal(r.status, 400);
    await r.text();
    r = await reseller.req('POST', acct, { headers: { 'x-account-quota-bytes': '1000000', 'x-account-quota-count': '0' } });
    assert.equal(r.status, 204);
    r = await p.member.req('HEAD', acct);
    assert.equal(r.headers.get('x-account-quota-bytes'), '1000000');
    assert.equal(r.headers.get('x-account-quota-count'), '0');
    assert.equal(r.headers.get('x-account-sysmeta-quota-bytes'), null);
    await p.member.req('PUT', `${acct}/aq`);
    r = await p.member.req('PUT', `${acct}/aq/o`, { body: 'x' });
    assert.equal(r.status, 413);
    assert.equal(await r.text(), 'Upload exceeds quota.');
    r = await reseller.req('PUT', `${acct}/aq/o`, { body: 'x' });
    assert.equal(r.status, 201, 'a reseller admin is not held by the quota');
    r = await reseller.req('POST', acct, { headers: { 'x-remove-account-quota-count': '1', 'x-account-quota-bytes': '3' } });
    assert.equal(r.status, 204);
    r = await p.member.req('PUT', `${acct}/aq/o2`, { body: 'xxxx' });
    assert.equal(r.status, 413);
    await r.text();
    r = await reseller.req('POST', acct, { headers: { 'x-remove-account-quota-bytes': '1' } });
    assert.equal(r.status, 204);
    r = await p.member.req('PUT', `${acct}/aq/o2`, { body: 'xxxx' });
    assert.equal(r.status, 201);
    const info = await (await f.anon.req('GET', '/info')).json();
    assert.deepEqual([info.container_quotas, info.account_quotas], [{}, {}]);
  });
});
