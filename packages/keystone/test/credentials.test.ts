import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JsonClient } from '@onestack/testing/index.ts';
import { ec2Signature, type Ec2SignedRequest } from '../src/domain/credential-manager.ts';
import { FernetKey, MultiFernet } from '../src/tokens/fernet.ts';
import { startKeystone, type KeystoneFixture } from './fixture.ts';

const PW = 'user-password-1';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** An EC2 API request as an EC2 front end forwards it, signed (version 2) with `secret`. */
function signedRequest(access: string, secret: string, timestamp = new Date().toISOString()): Ec2SignedRequest {
  const request = { access, host: 'localhost:8773', verb: 'GET', path: '/services/Cloud', params: { SignatureVersion: '2', Action: 'DescribeInstances', Timestamp: timestamp, AWSAccessKeyId: access } };
  return { ...request, signature: ec2Signature(secret, request) };
}

describe('keystone /v3/credentials and OS-EC2', () => {
  let fx: KeystoneFixture;
  let projectId: string;
  let alice: { id: string; client: JsonClient };
  let bob: { id: string; client: JsonClient };

  /** A user with the member role on the test project, logged in there. */
  async function member(name: string) {
    const user = await fx.ks.identity.createUser({ name, domainId: 'default', password: PW });
    await fx.ks.assignment.grant({ userId: user.id }, { projectId }, fx.boot.roleIds.member);
    return { id: user.id, client: await fx.login(name, PW, { project: { id: projectId } }) };
  }

  before(async () => {
    fx = await startKeystone();
    projectId = (await fx.ks.resource.createProject({ name: 'creds', domainId: 'default' })).id;
    alice = await member('alice');
    bob = await member('bob');
  });
  after(() => fx.close());

  it('creates, shows, updates and deletes a credential, keeping extra attributes', async () => {
    const created = await fx.admin.post('/v3/credentials', { credential: { user_id: alice.id, type: 'cert', blob: 'PEM DATA', colour: 'blue' } });
    assert.equal(created.status, 201, created.text);
    const c = created.body.credential;
    assert.match(c.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      { ...c, links: undefined },
      { id: c.id, user_id: alice.id, project_id: null, type: 'cert', blob: 'PEM DATA', colour: 'blue', links: undefined },
    );
    assert.equal(c.links.self, `${fx.url}/v3/credentials/${c.id}`);

    const shown = await fx.admin.get(`/v3/credentials/${c.id}`);
    assert.equal(shown.status, 200);
    assert.deepEqual(shown.body.credential, c);

    const patched = await fx.admin.patch(`/v3/credentials/${c.id}`, { credential: { blob: 'NEW PEM', project_id: projectId } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.body.credential.blob, 'NEW PEM');
    assert.equal(patched.body.credential.project_id, projectId);
    assert.equal(patched.body.credential.colour, 'blue');

    assert.equal((await fx.admin.patch(`/v3/credentials/${c.id}`, { credential: { id: 'other' } })).status, 400);
    assert.equal((await fx.admin.patch(`/v3/credentials/${c.id}`, { credential: {} })).status, 400);
    assert.equal((await fx.admin.delete(`/v3/credentials/${c.id}`)).status, 204);
    assert.equal((await fx.admin.get(`/v3/credentials/${c.id}`)).status, 404);
    assert.equal((await fx.admin.delete(`/v3/credentials/${c.id}`)).status, 404);
    assert.equal((await fx.admin.patch(`/v3/credentials/${c.id}`, { credential: { blob: 'x' } })).status, 404);
  });

  it('validates bodies as upstream', async () => {
    const post = (credential: unknown) => fx.admin.post('/v3/credentials', { credential });
    assert.equal((await post({ user_id: alice.id, type: 'cert' })).status, 400);
    assert.equal((await post({ user_id: alice.id, type: 'cert', blob: { not: 'a string' } })).status, 400);
    const noProject = await post({ user_id: alice.id, type: 'ec2', blob: JSON.stringify({ access: 'a', secret: 's' }) });
    assert.equal(noProject.status, 400);
    assert.match(noProject.body.error.message, /project_id/);
    const badJson = await post({ user_id: alice.id, type: 'ec2', project_id: projectId, blob: '{nope' });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.body.error.message, 'Invalid blob in credential');
    const noAccess = await post({ user_id: alice.id, type: 'ec2', project_id: projectId, blob: JSON.stringify({ secret: 's' }) });
    assert.equal(noAccess.status, 400);
    assert.match(noAccess.body.error.message, /^Expecting to find access in credential/);
  });

  it('names an ec2 credential by the sha256 of its access key, and refuses a duplicate', async () => {
    const blob = JSON.stringify({ access: 'AKIA-1', secret: 'shh' });
    const res = await alice.client.post('/v3/credentials', { credential: { user_id: alice.id, type: 'ec2', project_id: projectId, blob } });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.credential.id, sha256('AKIA-1'));
    assert.equal(res.body.credential.blob, blob);
    const again = await alice.client.post('/v3/credentials', { credential: { user_id: alice.id, type: 'ec2', project_id: projectId, blob } });
    assert.equal(again.status, 409);
    const id = res.body.credential.id;
    const moved = await alice.client.patch(`/v3/credentials/${id}`, { credential: { blob: JSON.stringify({ access: 'AKIA-1', secret: 'x', trust_id: 't' }) } });
    assert.equal(moved.status, 400);
    assert.equal(moved.body.error.message, 'trust_id can not be updated for credential');
    const toEc2 = await fx.admin.post('/v3/credentials', { credential: { user_id: alice.id, type: 'totp', blob: 'seed' } });
    assert.equal((await fx.admin.patch(`/v3/credentials/${toEc2.body.credential.id}`, { credential: { type: 'ec2' } })).status, 400);
    assert.equal((await alice.client.delete(`/v3/credentials/${id}`)).status, 204);
  });

  it('stores blobs encrypted with the credential key repository, tagged with the primary key hash', async () => {
    const res = await fx.admin.post('/v3/credentials', { credential: { user_id: alice.id, type: 'totp', blob: 'TOTP-SEED-PLAINTEXT' } });
    assert.equal(res.status, 201);
    const ec2 = await fx.admin.post('/v3/credentials', {
      credential: { user_id: alice.id, type: 'ec2', project_id: projectId, blob: JSON.stringify({ access: 'AK-ENC', secret: 'EC2-SECRET-PLAINTEXT' }) },
    });
    assert.equal(ec2.status, 201);
    const rows = await fx.database.db.selectFrom('credential').selectAll().where('id', 'in', [res.body.credential.id, ec2.body.credential.id]).execute();
    assert.equal(rows.length, 2);

    const dir = fx.ks.config.credentialKeyRepository;
    assert.notEqual(dir, fx.ks.config.keyRepository);
    const primaryFile = readdirSync(dir).filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(b) - Number(a))[0]!;
    const primaryText = readFileSync(join(dir, primaryFile), 'utf8');
    const fernet = new MultiFernet([FernetKey.fromString(primaryText)]);
    for (const row of rows) {
      assert.doesNotMatch(row.encrypted_blob, /PLAINTEXT/);
      assert.match(row.encrypted_blob, /^gAAAAA/);
      assert.equal(row.key_hash, createHash('sha1').update(primaryText).digest('hex'));
    }
    const byType = Object.fromEntries(rows.map((r) => [r.type, fernet.decrypt(r.encrypted_blob).plaintext.toString('utf8')]));
    assert.equal(byType.totp, 'TOTP-SEED-PLAINTEXT');
    // ec2 blobs carry one more JSON encoding, as upstream stores them.
    assert.equal(JSON.parse(byType.ec2!), ec2.body.credential.blob);
  });

  it('lets a user manage only its own credentials', async () => {
    const mine = await alice.client.post('/v3/credentials', { credential: { user_id: alice.id, type: 'cert', blob: 'alice-cert' } });
    assert.equal(mine.status, 201, mine.text);
    const forBob = await alice.client.post('/v3/credentials', { credential: { user_id: bob.id, type: 'cert', blob: 'forged' } });
    assert.equal(forBob.status, 403);
    const bobs = await bob.client.post('/v3/credentials', { credential: { user_id: bob.id, type: 'cert', blob: 'bob-cert' } });
    assert.equal(bobs.status, 201);

    const listed = await alice.client.get('/v3/credentials');
    assert.equal(listed.status, 200);
    assert.ok(listed.body.credentials.length > 0);
    assert.ok(listed.body.credentials.every((c: { user_id: string }) => c.user_id === alice.id));
    assert.deepEqual((await alice.client.get(`/v3/credentials?user_id=${bob.id}`)).body.credentials, []);

    const bobId = bobs.body.credential.id;
    assert.equal((await alice.client.get(`/v3/credentials/${bobId}`)).status, 403);
    assert.equal((await alice.client.patch(`/v3/credentials/${bobId}`, { credential: { blob: 'x' } })).status, 403);
    assert.equal((await alice.client.delete(`/v3/credentials/${bobId}`)).status, 403);
    // Handing one's own credential to another user is refused.
    assert.equal((await alice.client.patch(`/v3/credentials/${mine.body.credential.id}`, { credential: { user_id: bob.id } })).status, 403);
    assert.equal((await fx.admin.get(`/v3/credentials/${bobId}`)).body.credential.blob, 'bob-cert');
  });

  it('filters the list by user_id and type', async () => {
    const all = (await fx.admin.get('/v3/credentials')).body.credentials as { user_id: string; type: string }[];
    assert.ok(all.some((c) => c.user_id === bob.id));
    const bobsCerts = (await fx.admin.get(`/v3/credentials?user_id=${bob.id}&type=cert`)).body.credentials as { user_id: string; type: string }[];
    assert.ok(bobsCerts.length > 0);
    assert.ok(bobsCerts.every((c) => c.user_id === bob.id && c.type === 'cert'));
    assert.deepEqual((await fx.admin.get('/v3/credentials?type=nothing-of-that-type')).body.credentials, []);
  });

  it('serves ec2 credentials under OS-EC2, as credentials of type ec2', async () => {
    const base = `/v3/users/${alice.id}/credentials/OS-EC2`;
    const created = await alice.client.post(base, { tenant_id: projectId });
    assert.equal(created.status, 201, created.text);
    const ec2 = created.body.credential;
    assert.match(ec2.access, /^[0-9a-f]{32}$/);
    assert.match(ec2.secret, /^[0-9a-f]{32}$/);
    assert.deepEqual({ ...ec2, access: 0, secret: 0 }, { user_id: alice.id, tenant_id: projectId, access: 0, secret: 0, trust_id: null, links: { self: `${fx.url}${base}/${ec2.access}` } });

    const listed = await alice.client.get(base);
    assert.equal(listed.status, 200);
    const accessKeys = (l: { body: { credentials: { access: string }[] } }) => l.body.credentials.map((c) => c.access);
    assert.ok(accessKeys(listed).includes(ec2.access));
    const shown = await alice.client.get(`${base}/${ec2.access}`);
    assert.equal(shown.status, 200);
    assert.deepEqual(shown.body.credential, ec2);

    const v3 = await alice.client.get(`/v3/credentials/${sha256(ec2.access)}`);
    assert.equal(v3.status, 200);
    assert.equal(v3.body.credential.type, 'ec2');
    assert.equal(JSON.parse(v3.body.credential.blob).secret, ec2.secret);

    assert.equal((await bob.client.get(base)).status, 403);
    assert.equal((await bob.client.get(`${base}/${ec2.access}`)).status, 403);
    assert.equal((await bob.client.delete(`${base}/${ec2.access}`)).status, 403);
    assert.equal((await bob.client.post(base, { tenant_id: projectId })).status, 403);

    assert.equal((await alice.client.post(base, { tenant_id: 'no-such-project' })).status, 404);
    assert.equal((await alice.client.post(base, {})).status, 404);
    assert.equal((await fx.admin.get(`/v3/users/no-such-user/credentials/OS-EC2`)).status, 404);
    assert.equal((await alice.client.get(`${base}/no-such-access`)).status, 404);

    assert.equal((await alice.client.delete(`${base}/${ec2.access}`)).status, 204);
    assert.equal((await alice.client.get(`${base}/${ec2.access}`)).status, 404);
    assert.ok(!accessKeys(await alice.client.get(base)).includes(ec2.access));
  });

  it('removes a user’s credentials with the user', async () => {
    const carol = await member('carol');
    assert.equal((await carol.client.post('/v3/credentials', { credential: { user_id: carol.id, type: 'cert', blob: 'c' } })).status, 201);
    await fx.ks.identity.deleteUser(carol.id);
    assert.deepEqual(await fx.ks.credentials.list({ userId: carol.id }), []);
  });

  it('signs requests as keystoneclient’s Ec2Signer (AWS signature versions 0, 1, 2 and 4)', () => {
    const secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
    // AWS's own SigV4 test suite, get-vanilla.
    const v4 = ec2Signature(secret, {
      access: 'AKIDEXAMPLE',
      host: 'example.amazonaws.com',
      verb: 'GET',
      path: '/',
      params: {},
      headers: {
        Host: 'example.amazonaws.com',
        'X-Amz-Date': '20150830T123600Z',
        Authorization: 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=x',
      },
      body_hash: sha256(''),
    });
    assert.equal(v4, '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31');
    // The rest computed with keystoneclient's Ec2Signer.
    const presigned = ec2Signature(secret, {
      access: 'AKIDEXAMPLE',
      host: 'example.amazonaws.com',
      verb: 'GET',
      path: '/',
      params: {
        'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
        'X-Amz-Credential': 'AKIDEXAMPLE/20150830/us-east-1/service/aws4_request',
        'X-Amz-Date': '20150830T123600Z',
        'X-Amz-SignedHeaders': 'host',
        Param2: "a b!*'()~",
        Param1: 'value1',
      },
      headers: { Host: 'example.amazonaws.com' },
      body_hash: 'UNSIGNED-PAYLOAD',
    });
    assert.equal(presigned, '096c7976b12897f4d0a0015a2fb1205da1caad7234baf3036f2ca35a02236b7f');
    const v2 = ec2Signature(secret, {
      access: 'a',
      host: 'localhost:8773',
      verb: 'GET',
      path: '/services/Cloud',
      params: { SignatureVersion: '2', Action: 'DescribeInstances', Timestamp: '2024-01-01T00:00:00Z', AWSAccessKeyId: 'a', 'Weird Key': 'ü/+=' },
    });
    assert.equal(v2, 'oeJbZiadL4NtJ86drDpahSqqX7mbk8XSZMLvSeLro9I=');
    assert.equal(ec2Signature(secret, { access: 'a', params: { SignatureVersion: '1', Action: 'X', b: '2', A: '1' } }), 'h6y67A5+ky5b0HAK7aYSVMm4zd0=');
    assert.equal(ec2Signature(secret, { access: 'a', params: { SignatureVersion: '0', Action: 'X', Timestamp: 'T' } }), 'QN3Xi/Sa6f4jX+7blT3cUwrqXdE=');
  });

  it('issues a project token for a correctly signed request at /v3/ec2tokens', async () => {
    const blob = JSON.stringify({ access: 'EC2-TOKENS', secret: 'ec2-tokens-secret' });
    assert.equal((await alice.client.post('/v3/credentials', { credential: { user_id: alice.id, type: 'ec2', project_id: projectId, blob } })).status, 201);
    const good = signedRequest('EC2-TOKENS', 'ec2-tokens-secret');
    const res = await fx.admin.post('/v3/ec2tokens', { credentials: good });
    assert.equal(res.status, 200, res.text);
    const token = res.body.token;
    assert.deepEqual(token.methods, ['ec2credential']);
    assert.equal(token.user.id, alice.id);
    assert.equal(token.project.id, projectId);
    assert.deepEqual(token.roles.map((r: { name: string }) => r.name).sort(), ['member', 'reader']);
    const subject = res.headers.get('x-subject-token')!;
    assert.equal((await fx.admin.get('/v3/auth/tokens', { 'x-subject-token': subject })).status, 200);
    // Older clients send "ec2Credentials"; a client signing the host without its port is accepted too.
    const portless = signedRequest('EC2-TOKENS', 'ec2-tokens-secret');
    portless.signature = ec2Signature('ec2-tokens-secret', { ...portless, host: 'localhost' });
    assert.equal((await fx.admin.post('/v3/ec2tokens', { ec2Credentials: portless })).status, 200);

    assert.equal((await fx.admin.post('/v3/ec2tokens', { credentials: { ...good, signature: 'forged' } })).status, 401);
    assert.equal((await fx.admin.post('/v3/ec2tokens', { credentials: { ...good, signature: undefined } })).status, 401);
    assert.equal((await fx.admin.post('/v3/ec2tokens', { credentials: signedRequest('EC2-TOKENS', 'ec2-tokens-secret', '2001-01-01T00:00:00Z') })).status, 401);
    assert.equal((await fx.admin.post('/v3/ec2tokens', { credentials: signedRequest('NO-SUCH-KEY', 'x') })).status, 404);
    assert.equal((await fx.admin.post('/v3/ec2tokens', { credentials: {} })).status, 401);
    assert.equal((await fx.admin.post('/v3/ec2tokens', {})).status, 400);
    // Only services and administrators may trade signatures for tokens.
    assert.equal((await alice.client.post('/v3/ec2tokens', { credentials: good })).status, 403);
  });

  it('binds an ec2 credential made with an application credential to it', async () => {
    const made = await alice.client.post(`/v3/users/${alice.id}/application_credentials`, {
      application_credential: { name: 'ec2-maker', secret: 'm', unrestricted: true, roles: [{ name: 'reader' }] },
    });
    assert.equal(made.status, 201, made.text);
    const acId = made.body.application_credential.id;
    const login = await fx.client.post('/v3/auth/tokens', { auth: { identity: { methods: ['application_credential'], application_credential: { id: acId, secret: 'm' } } } });
    const viaAppCred = fx.client.withToken(login.headers.get('x-subject-token')!);
    const blob = JSON.stringify({ access: 'EC2-BOUND', secret: 'bound-secret' });
    const created = await viaAppCred.post('/v3/credentials', { credential: { user_id: alice.id, type: 'ec2', project_id: projectId, blob } });
    assert.equal(created.status, 201, created.text);
    assert.equal(JSON.parse(created.body.credential.blob).app_cred_id, acId);
    // A delegated token reaches only credentials of its own project.
    const elsewhere = await viaAppCred.post('/v3/credentials', { credential: { user_id: alice.id, type: 'cert', blob: 'x' } });
    assert.equal(elsewhere.status, 403);

    const res = await fx.admin.post('/v3/ec2tokens', { credentials: signedRequest('EC2-BOUND', 'bound-secret') });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.token.application_credential.id, acId);
    assert.deepEqual(res.body.token.roles.map((r: { name: string }) => r.name), ['reader']);
  });
});
