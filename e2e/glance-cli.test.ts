import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { runCommand } from '@onestack/core/exec/privileged-exec.ts';
import { tempDir } from '@onestack/testing/index.ts';
import { addCloud, freePort, PYTHON, startCloud, stateFiles, type Cloud } from './cloud.ts';
import { openstack } from './openstack-cli.ts';

const run = promisify(execFile);
const ONESTACK = join(dirname(fileURLToPath(import.meta.url)), '..', 'onestack');
const MiB = 1024 * 1024;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha512 = (b: Buffer) => createHash('sha512').update(b).digest('hex');

/** The unmodified openstack CLI (and openstacksdk where the CLI has no command) against Glance in `onestack up`. */
describe('openstack CLI against Glance', () => {
  let c: Cloud;
  const files = tempDir('onestack-glance-e2e-');
  const file = (name: string) => join(files.path, name);
  const raw = randomBytes(3 * MiB + 123);
  let qcow2: Buffer;

  /** `openstack ARGS` that must fail: its stderr. */
  const osFails = async (cloud: string, ...args: string[]): Promise<string> => {
    try {
      await openstack(['--os-cloud', cloud, ...args], { env: c.env, timeout: 60_000 });
    } catch (e) {
      return (e as { stderr: string }).stderr;
    }
    throw new Error(`openstack ${args.join(' ')} succeeded`);
  };
  const storeFiles = () => stateFiles(c, 'glance', 'images');

  before(async () => {
    // The lists below are exactly this test's images, and the 8 MiB cap is below the guest image's 19 MB:
    // e2e/guest-image-registration.test.ts covers the guest image.
    c = await startCloud({ ONESTACK_GLANCE__IMAGE_SIZE_CAP: String(8 * MiB), ONESTACK_ONESTACK__REGISTER_GUEST_IMAGE: 'false' });
    writeFileSync(file('disk.raw'), raw);
    await runCommand('qemu-img', ['create', '-f', 'qcow2', file('disk.qcow2'), '32M'], { logger: { info() {}, warn() {} }, timeoutMs: 60_000 });
    qcow2 = readFileSync(file('disk.qcow2'));
    // A second project and user, for sharing: a cloud of its own in the test's clouds.yaml.
    await c.os('onestack', 'project', 'create', 'e2e-friends');
    await c.os('onestack', 'user', 'create', '--project', 'e2e-friends', '--password', 'friend-pass-1', 'e2e-friend');
    await c.osRaw('onestack', 'role', 'add', '--project', 'e2e-friends', '--user', 'e2e-friend', 'member');
    addCloud(c, 'e2e-friend', { username: 'e2e-friend', password: 'friend-pass-1', project_name: 'e2e-friends' });
  });
  after(async () => {
    await c?.stop();
    files.remove();
  });

  it('lists Glance in the catalog', async () => {
    const catalog = await c.os('onestack', 'catalog', 'list');
    assert.ok(catalog.some((s: { Type: string }) => s.Type === 'image'));
  });

  it('creates images from files, shows and lists them with filters and --long', async () => {
    const img = await c.os('onestack-demo', 'image', 'create', '--file', file('disk.raw'), '--disk-format', 'raw', '--container-format', 'bare', '--property', 'os_distro=e2e', '--tag', 'e2e', '--min-ram', '64', 'e2e-raw');
    assert.equal(img.name, 'e2e-raw');
    const shown = await c.os('onestack-demo', 'image', 'show', 'e2e-raw');
    assert.equal(shown.status, 'active');
    assert.equal(shown.size, raw.length);
    assert.equal(shown.checksum, md5(raw));
    assert.equal(shown.properties.os_hash_algo, 'sha512');
    assert.equal(shown.properties.os_hash_value, sha512(raw));
    assert.equal(shown.properties.os_distro, 'e2e');
    assert.equal(shown.min_ram, 64);
    assert.deepEqual(shown.tags, ['e2e']);

    await c.os('onestack-demo', 'image', 'create', '--file', file('disk.qcow2'), '--disk-format', 'qcow2', '--container-format', 'bare', '--private', 'e2e-qcow2');
    const q = await c.os('onestack-demo', 'image', 'show', 'e2e-qcow2');
    assert.equal(q.virtual_size, 32 * MiB);
    assert.equal(q.visibility, 'private');

    const long = await c.os('onestack-demo', 'image', 'list', '--long');
    const row = long.find((r: { Name: string }) => r.Name === 'e2e-raw');
    assert.equal(row['Disk Format'], 'raw');
    assert.equal(row.Checksum, md5(raw));
    assert.equal(row.Status, 'active');
    const listed = async (...filters: string[]) => (await c.os('onestack-demo', 'image', 'list', ...filters)).map((r: { Name: string }) => r.Name);
    const names = async (...filters: string[]) => (await listed(...filters)).sort();
    assert.deepEqual(await names('--private'), ['e2e-qcow2']);
    assert.deepEqual(await names('--tag', 'e2e'), ['e2e-raw']);
    assert.deepEqual(await names('--property', 'os_distro=e2e'), ['e2e-raw']);
    assert.deepEqual(await names('--name', 'e2e-qcow2'), ['e2e-qcow2']);
    assert.deepEqual(await names('--status', 'active', '--sort', 'name:asc', '--limit', '1'), ['e2e-qcow2']);
    assert.deepEqual(await listed('--sort', 'name:desc'), ['e2e-raw', 'e2e-qcow2']);
  });

  it('creates an image with --import (glance-direct)', async () => {
    await c.os('onestack-demo', 'image', 'create', '--import', '--file', file('disk.qcow2'), '--disk-format', 'qcow2', '--container-format', 'bare', 'e2e-imported');
    let img: { status: string; checksum: string } = { status: '', checksum: '' };
    for (let i = 0; i < 100 && img.status !== 'active'; i++) {
      img = await c.os('onestack-demo', 'image', 'show', 'e2e-imported');
      if (img.status !== 'active') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(img.status, 'active');
    assert.equal(img.checksum, md5(qcow2));
  });

  it('saves images byte-identical, checksums verified', async () => {
    await c.osRaw('onestack-demo', 'image', 'save', '--file', file('saved.raw'), 'e2e-raw');
    const saved = readFileSync(file('saved.raw'));
    assert.ok(saved.equals(raw));
    assert.equal(md5(saved), md5(raw));
    await c.osRaw('onestack-demo', 'image', 'save', '--file', file('saved.qcow2'), 'e2e-qcow2');
    assert.ok(readFileSync(file('saved.qcow2')).equals(qcow2));
  });

  it('sets properties, tags, visibility, protection and deactivation', async () => {
    await c.osRaw('onestack-demo', 'image', 'set', '--property', 'hw_disk_bus=virtio', '--tag', 'second', '--protected', '--name', 'e2e-raw-renamed', 'e2e-raw');
    let img = await c.os('onestack-demo', 'image', 'show', 'e2e-raw-renamed');
    assert.equal(img.properties.hw_disk_bus, 'virtio');
    assert.deepEqual([...img.tags].sort(), ['e2e', 'second']);
    assert.equal(img.protected, true);
    assert.match(await osFails('onestack-demo', 'image', 'delete', 'e2e-raw-renamed'), /protected/);
    assert.match(await osFails('onestack-demo', 'image', 'set', '--public', 'e2e-raw-renamed'), /403/);
    await c.osRaw('onestack', 'image', 'set', '--public', img.id);
    await c.osRaw('onestack-demo', 'image', 'set', '--community', 'e2e-qcow2');
    assert.equal((await c.os('onestack-demo', 'image', 'show', 'e2e-qcow2')).visibility, 'community');
    await c.osRaw('onestack-demo', 'image', 'unset', '--property', 'hw_disk_bus', '--tag', 'second', 'e2e-raw-renamed');
    img = await c.os('onestack-demo', 'image', 'show', 'e2e-raw-renamed');
    assert.equal(img.visibility, 'public');
    assert.equal(img.properties.hw_disk_bus, undefined);
    assert.deepEqual(img.tags, ['e2e']);
    await c.osRaw('onestack-demo', 'image', 'set', '--deactivate', 'e2e-raw-renamed');
    assert.equal((await c.os('onestack-demo', 'image', 'show', 'e2e-raw-renamed')).status, 'deactivated');
    // openstacksdk does not raise on the 403 but finds the error body's checksum wrong, as against upstream.
    assert.match(await osFails('onestack-demo', 'image', 'save', '--file', file('nope'), 'e2e-raw-renamed'), /403|InvalidResponse/);
    await c.osRaw('onestack-demo', 'image', 'set', '--activate', '--unprotected', 'e2e-raw-renamed');
    assert.equal((await c.os('onestack-demo', 'image', 'show', 'e2e-raw-renamed')).status, 'active');
  });

  it('shares an image with another project, which accepts it', async () => {
    const img = await c.os('onestack-demo', 'image', 'create', '--file', file('disk.raw'), '--disk-format', 'raw', '--container-format', 'bare', '--shared', 'e2e-shared');
    const friends = await c.os('onestack', 'project', 'show', 'e2e-friends');
    const member = await c.os('onestack-demo', 'image', 'add', 'project', 'e2e-shared', friends.id);
    assert.equal(member.status, 'pending');
    const visible = async () => (await c.os('e2e-friend', 'image', 'list')).map((r: { Name: string }) => r.Name);
    assert.ok(!(await visible()).includes('e2e-shared'));
    assert.equal((await c.os('e2e-friend', 'image', 'show', img.id)).name, 'e2e-shared');
    await c.osRaw('e2e-friend', 'image', 'set', '--accept', img.id);
    assert.ok((await visible()).includes('e2e-shared'));
    assert.deepEqual((await c.os('onestack-demo', 'image', 'member', 'list', 'e2e-shared')).map((m: { Status: string }) => m.Status), ['accepted']);
    await c.osRaw('e2e-friend', 'image', 'save', '--file', file('friend.raw'), img.id);
    assert.ok(readFileSync(file('friend.raw')).equals(raw));
    // The member cannot change the image, nor share it on.
    assert.match(await osFails('e2e-friend', 'image', 'set', '--name', 'stolen', img.id), /403/);
    await c.osRaw('onestack-demo', 'image', 'remove', 'project', 'e2e-shared', friends.id);
    assert.match(await osFails('e2e-friend', 'image', 'show', img.id), /No Image found|404/);
    // The demo project's private image stays invisible to the friend throughout.
    assert.ok(!(await visible()).includes('e2e-imported'));
  });

  it('refuses bad input with upstream statuses', async () => {
    // The CLI checks --disk-format itself; a property of that name reaches Glance's schema.
    const active = await c.os('onestack-demo', 'image', 'show', 'e2e-imported');
    assert.match(await osFails('onestack-demo', 'image', 'set', '--property', 'disk_format=qcow3', active.id), /400/);
    assert.match(await osFails('onestack-demo', 'image', 'set', '--property', 'checksum=abc', active.id), /403[\s\S]*read-only|read-only[\s\S]*403/);
    assert.match(await osFails('onestack-demo', 'image', 'set', '--property', 'size=1', active.id), /read-only/);
    // The CLI cannot upload to an existing image: openstacksdk does.
    const script = [
      'import openstack',
      'conn = openstack.connect(cloud="onestack-demo")',
      `r = conn.image.put("/images/${active.id}/file", data=b"again", headers={"Content-Type": "application/octet-stream"})`,
      'print(r.status_code)',
    ].join('\n');
    assert.equal((await run(PYTHON, ['-c', script], { env: c.env })).stdout.trim(), '409');
    // Over [glance] image_size_cap: 413, and the CLI's half-made image is gone with its bytes.
    const before = storeFiles();
    writeFileSync(file('big.raw'), Buffer.alloc(9 * MiB, 7));
    assert.match(await osFails('onestack-demo', 'image', 'create', '--file', file('big.raw'), '--disk-format', 'raw', '--container-format', 'bare', 'e2e-big'), /413/);
    assert.ok(!(await c.os('onestack-demo', 'image', 'list')).some((r: { Name: string }) => r.Name === 'e2e-big'));
    assert.deepEqual(storeFiles(), before);
    // Content that is not its disk_format is refused (415) and not kept.
    assert.match(await osFails('onestack-demo', 'image', 'create', '--file', file('disk.raw'), '--disk-format', 'qcow2', '--container-format', 'bare', 'e2e-liar'), /415/);
    assert.deepEqual(storeFiles(), before);
  });

  it('serves Glance alone (onestack serve glance), validating tokens over HTTP as the glance service user', async () => {
    const port = await freePort();
    const child = spawn(ONESTACK, ['serve', 'glance'], { env: { ...c.env, ONESTACK_GLANCE__PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      const url = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 200; i++) {
        if (await fetch(`${url}/healthcheck`).then((r) => r.ok, () => false)) break;
        assert.equal(child.exitCode, null, output);
        await new Promise((r) => setTimeout(r, 100));
      }
      const token = (await c.os('onestack-demo', 'token', 'issue')).id;
      const list = await fetch(`${url}/v2/images`, { headers: { 'x-auth-token': token } });
      assert.equal(list.status, 200, output);
      const names = ((await list.json()) as { images: { name: string }[] }).images.map((i) => i.name);
      assert.ok(names.includes('e2e-qcow2'), names.join(', '));
      assert.equal((await fetch(`${url}/v2/images`, { headers: { 'x-auth-token': 'not-a-token' } })).status, 401);
      await c.osRaw('onestack', 'token', 'revoke', token);
      let status = 200;
      for (let i = 0; i < 100 && status === 200; i++) {
        status = (await fetch(`${url}/v2/images`, { headers: { 'x-auth-token': token } })).status;
        if (status === 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 401, 'a revoked token stops working');
    } finally {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    }
  });

  it('deletes images and their bytes', async () => {
    const before = storeFiles().length;
    await c.osRaw('onestack-demo', 'image', 'delete', 'e2e-qcow2', 'e2e-imported');
    const names = (await c.os('onestack-demo', 'image', 'list')).map((r: { Name: string }) => r.Name);
    assert.ok(!names.includes('e2e-qcow2') && !names.includes('e2e-imported'));
    assert.equal(storeFiles().length, before - 2, storeFiles().join(', '));
  });
});
