import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { NetnsLab, requireRoot, tempDir, type Netns } from '@onestack/testing/index.ts';

/**
 * The guest image (images/build.sh): it builds reproducibly, and it boots
 * under QEMU/TCG in a neutron-like topology made of network namespaces,
 * where it takes DHCP with option 121, reads its metadata from the metadata
 * service or from a config drive (iso9660 on IDE, vfat on virtio), installs
 * the keys, sets its hostname, runs its user data and answers SSH.
 *
 *  [dhcp ns]  ns-dhcp 10.0.0.2/24 + 169.254.169.254/32: dnsmasq, metadata server :80, ssh client
 *      | veth
 *  [host ns]  brq1 ── tap1 ── QEMU vm1 (pc, metadata service)
 *                  ├─ tap2 ── QEMU vm2 (pc, config drive iso9660 on ide-cd)
 *                  └─ tap3 ── QEMU vm3 (q35, config drive vfat on virtio-blk)
 */

const run = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUILD = join(ROOT, 'images', 'build.sh');
const IMAGE = 'onestack-guest';
// TCG boots in 5–10 s on an idle machine; three at once on two loaded cores take longer.
const BOOT_TIMEOUT_MS = 120_000;
const SSH_OPTS = [
  '-o', 'StrictHostKeyChecking=no',
  '-o', 'UserKnownHostsFile=/dev/null',
  '-o', 'BatchMode=yes',
  '-o', 'ConnectTimeout=10',
  '-o', 'LogLevel=ERROR',
];

interface Manifest {
  name: string;
  kernel: string;
  virtual_size: number;
  inputs_sha256: string;
  files: Record<string, { path: string; format: string; size: number; sha256: string }>;
  glance: { disk_format: string; min_disk: number; min_ram: number; properties: Record<string, string> };
}

async function build(outDir: string): Promise<{ manifest: Manifest; seconds: number; log: string }> {
  const t0 = Date.now();
  const { stderr } = await run(BUILD, [outDir], { timeout: 600_000, maxBuffer: 8 * 1024 * 1024 });
  const manifest = JSON.parse(readFileSync(join(outDir, `${IMAGE}.json`), 'utf8')) as Manifest;
  return { manifest, seconds: (Date.now() - t0) / 1000, log: stderr };
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Vm {
  name: string;
  mac: string;
  ip: string;
  hostname: string;
  uuid: string;
  keyFile: string;
  token: string;
  console: string;
  qemu?: ChildProcess;
  qemuStderr: string;
  startedAt: number;
  ready?: Promise<{ line: string; seconds: number }>;
}

/** Resolves with the READY line once the console shows it; rejects early if QEMU dies. */
async function waitReady(vm: Vm): Promise<{ line: string; seconds: number }> {
  const deadline = vm.startedAt + BOOT_TIMEOUT_MS;
  for (;;) {
    const text = existsSync(vm.console) ? readFileSync(vm.console, 'utf8') : '';
    const m = /^=== ONESTACK GUEST READY .* ===$/m.exec(text);
    if (m) return { line: m[0], seconds: (Date.now() - vm.startedAt) / 1000 };
    if (vm.qemu && vm.qemu.exitCode !== null) {
      throw new Error(`${vm.name}: QEMU exited ${vm.qemu.exitCode}: ${vm.qemuStderr}\nconsole:\n${text.slice(-3000)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`${vm.name}: no READY line after ${BOOT_TIMEOUT_MS / 1000} s; console:\n${text.slice(-3000)}`);
    }
    await sleep(200);
  }
}

function readyFields(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of line.matchAll(/(\w+)=(\S+)/g)) fields[m[1]] = m[2];
  return fields;
}

function metaData(vm: Vm, publicKey: string): string {
  return JSON.stringify({
    uuid: vm.uuid,
    meta: { role: 'e2e' },
    public_keys: { e2e: `${publicKey}\n` },
    keys: [{ name: 'e2e', type: 'ssh', data: `${publicKey}\n` }],
    hostname: vm.hostname,
    name: vm.hostname.split('.')[0],
    launch_index: 0,
    availability_zone: 'nova',
    random_seed: randomBytes(64).toString('base64'),
    project_id: randomUUID().replaceAll('-', ''),
    devices: [],
  });
}

function userData(vm: Vm): string {
  return `#!/bin/sh\necho "USER-DATA-RAN token=${vm.token} host=$(hostname) uid=$(id -u)"\n`;
}

// The metadata service's stand-in (the role of Nova's metadata API behind
// Neutron's proxy): answers by the client's address, as the real one does,
// from DIR/<client-ip>/openstack/latest/…, and logs every request.
const METADATA_SERVER = `
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
const [dir, host, port] = process.argv.slice(2);
http.createServer((req, res) => {
  const ip = (req.socket.remoteAddress || '').replace(/^::ffff:/, '');
  const url = new URL(req.url, 'http://x').pathname;
  const file = path.join(dir, ip, path.normalize(url));
  let status = 404;
  if (file.startsWith(path.join(dir, ip) + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile()) {
    status = 200;
    res.setHeader('content-type', url.endsWith('.json') ? 'application/json' : 'text/plain');
    res.end(fs.readFileSync(file));
  } else {
    res.statusCode = 404;
    res.end('Not Found');
  }
  console.log(JSON.stringify({ ip, url, status }));
}).listen(Number(port), host, () => console.log(JSON.stringify({ listening: host + ':' + port })));
`;

describe('onestack guest image', { timeout: 280_000 }, () => {
  const tmp = tempDir('onestack-guest-');
  let first: Awaited<ReturnType<typeof build>>;
  let outA: string;

  before(async () => {
    requireRoot('the guest image e2e test');
    outA = join(tmp.path, 'build-a');
    first = await build(outA);
  });
  after(() => tmp.remove());

  it('is a zlib-compressed qcow2 without a backing file, described by its manifest', async (t) => {
    t.diagnostic(`build took ${first.seconds.toFixed(1)} s`);
    const m = first.manifest;
    assert.equal(m.name, IMAGE);
    assert.match(m.kernel, /^\d+\.\d+\.\d+-\d+-cloud-amd64$/);
    for (const f of Object.values(m.files)) {
      const file = join(outA, f.path);
      assert.equal(sha256(file), f.sha256, `${f.path} checksum`);
    }
    const qcow2 = join(outA, `${IMAGE}.qcow2`);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', qcow2])).stdout);
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], m.virtual_size);
    assert.equal(info['virtual-size'], 97 * 1024 * 1024);
    assert.equal(info['backing-filename'], undefined);
    assert.equal(info['format-specific']?.data?.['compression-type'], 'zlib');
    assert.ok(info['actual-size'] < 40 * 1024 * 1024, `qcow2 is ${info['actual-size']} bytes`);
    await run('qemu-img', ['check', qcow2]);
    const raw = JSON.parse((await run('qemu-img', ['info', '--output=json', join(outA, `${IMAGE}.raw`)])).stdout);
    assert.equal(raw.format, 'raw');
    assert.equal(raw['virtual-size'], m.virtual_size);
    // Nova must pick the buses the cloud kernel has drivers for.
    assert.equal(m.glance.properties.hw_disk_bus, 'virtio');
    assert.equal(m.glance.properties.hw_vif_model, 'virtio');
    assert.equal(m.glance.disk_format, 'qcow2');
    assert.ok(m.glance.min_disk >= 1 && m.glance.min_ram >= 64);
  });

  it('rebuilds byte for byte from the same inputs', async (t) => {
    const second = await build(join(tmp.path, 'build-b'));
    t.diagnostic(`second build took ${second.seconds.toFixed(1)} s`);
    assert.equal(second.manifest.inputs_sha256, first.manifest.inputs_sha256);
    for (const [k, f] of Object.entries(first.manifest.files)) {
      assert.equal(second.manifest.files[k].sha256, f.sha256, `${f.path} differs between two builds`);
    }
  });

  describe('booted under TCG in a namespace topology', () => {
    let lab: NetnsLab | undefined;
    let dhcp: Netns;
    let host: Netns;
    const mdLog: Array<{ ip: string; url: string; status: number }> = [];
    const vms: Vm[] = [];
    let dir: string;

    before(async () => {
      dir = join(tmp.path, 'lab');
      mkdirSync(dir);
      // dnsmasq reads its hosts and options files after dropping to nobody.
      chmodSync(tmp.path, 0o755);
      chmodSync(dir, 0o755);
      lab = NetnsLab.create();
      host = await lab.addNamespace('host');
      dhcp = await lab.addNamespace('dhcp');
      await host.addBridge('brq1');
      await lab.addVeth(
        { ns: host, name: 'tapdhcp', master: 'brq1' },
        { ns: dhcp, name: 'ns-dhcp', addresses: ['10.0.0.2/24', '169.254.169.254/32'] },
      );

      const mk = (n: number, hostname: string): Vm => ({
        name: `vm${n}`,
        mac: `fa:16:3e:00:00:${(10 + n).toString(16).padStart(2, '0')}`,
        ip: `10.0.0.${10 + n}`,
        hostname,
        uuid: randomUUID(),
        keyFile: join(dir, `vm${n}.key`),
        token: randomBytes(6).toString('hex'),
        console: join(dir, `vm${n}.console`),
        qemuStderr: '',
        startedAt: 0,
      });
      vms.push(mk(1, 'vm1.novalocal'), mk(2, 'cd-iso.novalocal'), mk(3, 'cd-vfat.novalocal'));

      // Every guest has its own key, so a guest answering with another's key would show.
      const publicKeys = new Map<string, string>();
      for (const vm of vms) {
        await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `e2e@${vm.name}`, '-f', vm.keyFile]);
        publicKeys.set(vm.name, readFileSync(`${vm.keyFile}.pub`, 'utf8').trim());
      }

      // vm1 reads the metadata service; vm2 and vm3 get nothing from it (404) and must use their drives.
      const [vm1, vm2, vm3] = vms;
      const mdDir = join(dir, 'md');
      mkdirSync(join(mdDir, vm1.ip, 'openstack', 'latest'), { recursive: true });
      writeFileSync(join(mdDir, vm1.ip, 'openstack', 'latest', 'meta_data.json'), metaData(vm1, publicKeys.get('vm1')!));
      writeFileSync(join(mdDir, vm1.ip, 'openstack', 'latest', 'user_data'), userData(vm1));

      const drive = (vm: Vm) => {
        const d = join(dir, `${vm.name}-drive`, 'openstack', 'latest');
        mkdirSync(d, { recursive: true });
        writeFileSync(join(d, 'meta_data.json'), metaData(vm, publicKeys.get(vm.name)!));
        writeFileSync(join(d, 'user_data'), userData(vm));
        return join(dir, `${vm.name}-drive`);
      };
      const iso = join(dir, 'vm2-config.iso');
      await run('genisoimage', ['-quiet', '-o', iso, '-V', 'config-2', '-r', '-J', drive(vm2)]);
      const vfat = join(dir, 'vm3-config.vfat');
      const vfatSrc = join(drive(vm3), 'openstack', 'latest');
      await run('mkfs.vfat', ['-C', '-n', 'config-2', vfat, '2048']);
      await run('mmd', ['-i', vfat, '::/openstack', '::/openstack/latest']);
      await run('mcopy', ['-i', vfat, join(vfatSrc, 'meta_data.json'), join(vfatSrc, 'user_data'), '::/openstack/latest/']);

      // dnsmasq as neutron's DHCP agent runs it: static leases from a hosts
      // file, option 121 carrying the metadata route via the DHCP port.
      writeFileSync(join(dir, 'dhcp-hosts'), vms.map((v) => `${v.mac},host-${v.ip.replaceAll('.', '-')},${v.ip}\n`).join(''));
      writeFileSync(
        join(dir, 'dhcp-opts'),
        [
          'tag:subnet1,option:classless-static-route,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1',
          'tag:subnet1,249,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1',
          'tag:subnet1,option:router,10.0.0.1',
          '',
        ].join('\n'),
      );
      const dnsmasq = dhcp.spawn('dnsmasq', [
        '--keep-in-foreground', '--no-hosts', '--no-resolv', '--port=0', '--conf-file=/dev/null',
        `--dhcp-hostsfile=${join(dir, 'dhcp-hosts')}`, `--dhcp-optsfile=${join(dir, 'dhcp-opts')}`,
        `--dhcp-leasefile=${join(dir, 'leases')}`, '--interface=ns-dhcp', '--bind-interfaces', '--except-interface=lo',
        '--dhcp-range=set:subnet1,10.0.0.0,static,255.255.255.0,86400s', '--dhcp-option-force=option:mtu,1450',
        '--domain=openstacklocal', '--log-dhcp', `--log-facility=${join(dir, 'dnsmasq.log')}`,
      ]);
      dnsmasq.stdout?.resume();
      let dnsmasqErr = '';
      dnsmasq.stderr?.on('data', (d) => (dnsmasqErr += d));

      const server = join(dir, 'metadata-server.mjs');
      writeFileSync(server, METADATA_SERVER);
      const md = dhcp.spawn(process.execPath, [server, mdDir, '169.254.169.254', '80']);
      md.stderr?.resume();
      await new Promise<void>((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error('metadata server did not start')), 15_000);
        md.once('exit', (code) => reject(new Error(`metadata server exited ${code}`)));
        md.stdout!.on('data', (d) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = JSON.parse(buf.slice(0, i));
            buf = buf.slice(i + 1);
            if (line.listening) {
              clearTimeout(timer);
              resolve();
            } else mdLog.push(line);
          }
        });
      });
      assert.equal(dnsmasq.exitCode, null, `dnsmasq exited: ${dnsmasqErr}`);

      const base = join(outA, `${IMAGE}.qcow2`);
      for (const [i, vm] of vms.entries()) {
        const tap = `tap${i + 1}`;
        await host.addTap(tap, { master: 'brq1' });
        const overlay = join(dir, `${vm.name}.qcow2`);
        await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay, '1G']);
        const machine = vm === vm3 ? 'q35' : 'pc';
        const args = [
          '-name', vm.name, '-machine', machine, '-accel', 'tcg,tb-size=64', '-cpu', 'max', '-smp', '1', '-m', '256',
          '-nodefaults', '-no-user-config', '-display', 'none',
          '-drive', `file=${overlay},if=none,id=disk0,format=qcow2`, '-device', 'virtio-blk-pci,drive=disk0,bootindex=1',
          '-netdev', `tap,id=net0,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=net0,mac=${vm.mac}`,
          '-device', 'virtio-rng-pci',
          '-serial', `file:${vm.console}`,
        ];
        // Nova's config drive buses for the cloud kernel: IDE on pc, virtio-blk on q35 (its SATA is invisible).
        if (vm === vm2) args.push('-drive', `file=${iso},if=none,id=cd0,format=raw,media=cdrom,readonly=on`, '-device', 'ide-cd,drive=cd0');
        if (vm === vm3) args.push('-drive', `file=${vfat},if=none,id=cd0,format=raw,readonly=on`, '-device', 'virtio-blk-pci,drive=cd0');
        vm.startedAt = Date.now();
        vm.qemu = host.spawn('qemu-system-x86_64', args);
        vm.qemu.stdout?.resume();
        vm.qemu.stderr?.on('data', (d) => (vm.qemuStderr += d));
        vm.ready = waitReady(vm);
        // A rejection is reported by the test that awaits it, not as an unhandled one.
        vm.ready.catch(() => {});
      }
    });

    after(async () => {
      if (!lab) return;
      await lab.cleanup();
      assert.deepEqual(lab.remaining(), [], 'namespaces left behind');
      for (const vm of vms) if (vm.qemu?.pid) assert.throws(() => process.kill(vm.qemu!.pid!, 0), `${vm.name} QEMU still running`);
    });

    const ssh = (vm: Vm, user: string, command: string[]) =>
      dhcp.exec('ssh', ['-i', vm.keyFile, ...SSH_OPTS, `${user}@${vm.ip}`, ...command], { timeoutMs: 30_000 });

    it('vm1 takes DHCP with option 121 and prints READY with its hostname, IP and metadata source', async (t) => {
      const vm = vms[0];
      const { line, seconds } = await vm.ready!;
      t.diagnostic(`${vm.name} READY after ${seconds.toFixed(1)} s: ${line}`);
      const f = readyFields(line);
      assert.equal(f.hostname, vm.hostname);
      assert.equal(f.ip, vm.ip);
      assert.equal(f.uuid, vm.uuid);
      assert.equal(f.metadata, 'metadata-service');
      const consoleText = readFileSync(vm.console, 'utf8');
      assert.match(consoleText, /dhcp bound eth0 ip=10\.0\.0\.11\/24 .*routes=169\.254\.169\.254\/32 10\.0\.0\.2 0\.0\.0\.0\/0 10\.0\.0\.1 mtu=1450/);
      assert.match(readFileSync(join(dir, 'dnsmasq.log'), 'utf8'), new RegExp(`DHCPACK\\(ns-dhcp\\) ${vm.ip.replaceAll('.', '\\.')} ${vm.mac}`));
      assert.ok(
        mdLog.some((r) => r.ip === vm.ip && r.url === '/openstack/latest/meta_data.json' && r.status === 200),
        `metadata server log: ${JSON.stringify(mdLog)}`,
      );
    });

    it('vm1 ran its user_data script before READY', async () => {
      const vm = vms[0];
      await vm.ready!;
      const text = readFileSync(vm.console, 'utf8');
      const ran = text.indexOf(`USER-DATA-RAN token=${vm.token} host=${vm.hostname} uid=0`);
      assert.ok(ran >= 0, `no user_data output on the console:\n${text.slice(-2000)}`);
      assert.ok(ran < text.indexOf('=== ONESTACK GUEST READY'));
    });

    it('vm1 answers SSH with the injected key as the default user and as root, never with a password', async () => {
      const vm = vms[0];
      await vm.ready!;
      assert.equal((await ssh(vm, 'onestack', ['hostname'])).stdout.trim(), vm.hostname);
      assert.equal((await ssh(vm, 'root', ['id', '-u'])).stdout.trim(), '0');
      const routes = (await ssh(vm, 'root', ['ip', 'route'])).stdout;
      assert.match(routes, /169\.254\.169\.254 via 10\.0\.0\.2 dev eth0/);
      assert.match(routes, /default via 10\.0\.0\.1 dev eth0/);
      // Another guest's key is refused: keys came from this guest's own metadata.
      await assert.rejects(dhcp.exec('ssh', ['-i', vms[1].keyFile, ...SSH_OPTS, `onestack@${vm.ip}`, 'true']), /Permission denied/);
      // The server's own list of methods, asked with the "none" method: public keys only.
      const probe = dhcp.exec('ssh', [
        '-v', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
        '-o', 'PreferredAuthentications=none', `onestack@${vm.ip}`, 'true',
      ]);
      const err = await probe.then(
        () => assert.fail('ssh without credentials succeeded'),
        (e: { stderr: string }) => e.stderr,
      );
      const methods = /Authentications that can continue: (\S+)/.exec(err);
      assert.ok(methods, err);
      assert.equal(methods[1], 'publickey');
    });

    it('vm1 prints on its console the host key that SSH sees', async () => {
      const vm = vms[0];
      await vm.ready!;
      const text = readFileSync(vm.console, 'utf8');
      const block = /-----BEGIN SSH HOST KEY KEYS-----\r?\n(ssh-ed25519 \S+)/.exec(text);
      assert.ok(block, 'no host key block on the console');
      const scanned = (await dhcp.exec('ssh-keyscan', ['-t', 'ed25519', vm.ip])).stdout;
      assert.ok(scanned.includes(block[1]), `keyscan: ${scanned}`);
    });

    for (const [index, source] of [
      [1, 'an iso9660 config drive on IDE (pc)'],
      [2, 'a vfat config drive on virtio-blk (q35)'],
    ] as const) {
      it(`reads ${source} when the metadata service has nothing for it`, async (t) => {
        const vm = vms[index];
        const { line, seconds } = await vm.ready!;
        t.diagnostic(`${vm.name} READY after ${seconds.toFixed(1)} s: ${line}`);
        const f = readyFields(line);
        assert.equal(f.metadata, 'config-drive');
        assert.equal(f.hostname, vm.hostname);
        assert.equal(f.ip, vm.ip);
        assert.equal(f.uuid, vm.uuid);
        assert.ok(readFileSync(vm.console, 'utf8').includes(`USER-DATA-RAN token=${vm.token} host=${vm.hostname} uid=0`));
        // A drive that is attached answers first: the metadata service is never asked.
        assert.deepEqual(mdLog.filter((r) => r.ip === vm.ip), []);
        assert.equal((await ssh(vm, 'onestack', ['hostname'])).stdout.trim(), vm.hostname);
      });
    }
  });
});
