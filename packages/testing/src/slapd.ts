import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SLAPD_BINARY = '/usr/sbin/slapd';
const SLAPADD_BINARY = '/usr/sbin/slapadd';
const SCHEMA_DIR = '/etc/ldap/schema';
const SCHEMAS = ['core', 'cosine', 'inetorgperson', 'nis'];

export interface SlapdOptions {
  suffix?: string;
  rootPassword?: string;
  /**
   * slapd.conf `access` lines. The default lets anyone bind with a password,
   * nobody read passwords, and only bound users read entries, so a client that
   * forgets to bind sees nothing.
   */
  access?: string[];
  /** More global slapd.conf directives, e.g. `allow bind_anon_dn` to mimic a laxer server. */
  global?: string[];
  /**
   * Serve TLS too: a throw-away CA signs a certificate for 127.0.0.1; slapd
   * answers StartTLS on `url` and LDAPS on `ldapsUrl`.
   */
  tls?: boolean;
}

export interface Slapd {
  url: string;
  port: number;
  suffix: string;
  rootDn: string;
  rootPassword: string;
  /** With `tls`: the LDAPS URL and the CA certificate that signed the server's. */
  ldapsUrl?: string;
  caFile?: string;
  pid(): number;
  /** Stops and starts slapd on the same port and data, dropping every open connection. */
  restart(): Promise<void>;
  /** Kills slapd and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

const DEFAULT_ACCESS = [
  'access to attrs=userPassword by self write by anonymous auth by * none',
  'access to * by users read by * none',
];

/**
 * A private OpenLDAP server for tests: slapd on 127.0.0.1 at a free port, with a
 * throw-away mdb database holding only the suffix entry. Entries are seeded by
 * the test over LDAP as rootDn. Call stop() in `after`; an exiting process kills
 * it too.
 */
export async function startSlapd(opts: SlapdOptions = {}): Promise<Slapd> {
  if (!existsSync(SLAPD_BINARY)) {
    throw new Error(
      `${SLAPD_BINARY} not found: the LDAP tests need OpenLDAP's server. Run the test host setup (apt-get install slapd ldap-utils) and retry.`,
    );
  }
  const suffix = opts.suffix ?? 'dc=example,dc=org';
  const rootDn = `cn=admin,${suffix}`;
  const rootPassword = opts.rootPassword ?? 'slapd-root-secret';
  const dir = mkdtempSync(join(tmpdir(), 'onestack-slapd-'));
  let child: ChildProcess | undefined;
  let port = 0;
  let ldapsPort = 0;

  const killNow = () => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const onExit = () => {
    killNow();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const stopChild = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    process.kill(c.pid!, 'SIGTERM');
    const timer = setTimeout(killNow, 3000);
    await exited;
    clearTimeout(timer);
  };

  const conf = join(dir, 'slapd.conf');
  const launch = async (): Promise<void> => {
    const output: string[] = [];
    // -d keeps slapd in the foreground, so the pid we hold is the server's.
    const urls = [`ldap://127.0.0.1:${port}/`, ...(opts.tls ? [`ldaps://127.0.0.1:${ldapsPort}/`] : [])];
    const c = spawn(SLAPD_BINARY, ['-f', conf, '-h', urls.join(' '), '-d', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    c.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
    c.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`slapd exited (${c.exitCode ?? c.signalCode}) while starting: ${output.join('').trim()}`);
      }
      if ((await accepts(port)) && (!opts.tls || (await accepts(ldapsPort)))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`slapd did not listen on 127.0.0.1:${port} within 10 s: ${output.join('').trim()}`);
  };

  try {
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir);
    const tlsLines = opts.tls ? makeCertificates(dir) : [];
    writeFileSync(
      conf,
      [
        ...SCHEMAS.map((s) => `include ${SCHEMA_DIR}/${s}.schema`),
        `pidfile ${join(dir, 'slapd.pid')}`,
        'modulepath /usr/lib/ldap',
        'moduleload back_mdb',
        ...tlsLines,
        ...(opts.global ?? []),
        'database mdb',
        'maxsize 67108864',
        `suffix "${suffix}"`,
        `rootdn "${rootDn}"`,
        `rootpw ${rootPassword}`,
        `directory ${dataDir}`,
        ...(opts.access ?? DEFAULT_ACCESS),
        '',
      ].join('\n'),
    );
    const rdn = /^dc=([^,]+)/i.exec(suffix);
    if (!rdn) throw new Error(`startSlapd: the suffix must start with dc=…, got ${suffix}`);
    const ldif = join(dir, 'base.ldif');
    writeFileSync(ldif, `dn: ${suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: ${rdn[1]}\no: ${rdn[1]}\n`);
    const added = spawnSync(SLAPADD_BINARY, ['-f', conf, '-l', ldif], { encoding: 'utf8' });
    if (added.status !== 0) throw new Error(`slapadd failed (${added.status}): ${added.stderr}`);

    // Another process may take the free port between probing and binding: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      if (opts.tls) ldapsPort = await freePort();
      try {
        await launch();
        break;
      } catch (e) {
        await stopChild();
        if (attempt >= 3) throw e;
      }
    }
  } catch (e) {
    onExit();
    process.removeListener('exit', onExit);
    throw e;
  }

  let stopped = false;
  return {
    url: `ldap://127.0.0.1:${port}`,
    port,
    suffix,
    rootDn,
    rootPassword,
    ...(opts.tls ? { ldapsUrl: `ldaps://127.0.0.1:${ldapsPort}`, caFile: join(dir, 'ca.pem') } : {}),
    pid: () => child!.pid!,
    async restart() {
      await stopChild();
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await stopChild();
      } finally {
        rmSync(dir, { recursive: true, force: true });
        process.removeListener('exit', onExit);
      }
    },
  };
}

/** A CA and a server certificate for 127.0.0.1, made with openssl; returns slapd's TLS directives. */
function makeCertificates(dir: string): string[] {
  const openssl = (...args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.error?.message ?? r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=onestack test CA');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  return [
    `TLSCACertificateFile ${join(dir, 'ca.pem')}`,
    `TLSCertificateFile ${join(dir, 'server.pem')}`,
    `TLSCertificateKeyFile ${join(dir, 'server.key')}`,
  ];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
