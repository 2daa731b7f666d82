/**
 * `onestack ssh SERVER [-- COMMAND…]`: logs into a guest the way a user of the all-in-one would by
 * hand, without knowing where its address is reachable. The server is found through the Compute
 * API as a clouds.yaml cloud's user; a floating IP is reached from the neutron agent's external
 * namespace (which holds the external subnets' gateways), a fixed IP from the namespace of the
 * router on its subnet, else from the subnet's DHCP namespace. The host key is checked against
 * the one the guest printed on its console (cloud-init's block, as tempest does) when it did.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { cloudsYamlPath } from '../clouds-yaml.ts';
import { DEMO_CLOUD } from '../bootstrap-cloud.ts';
import { loadSettings } from '../settings.ts';

/** The onestack guest's default user, as upstream's CirrOS (images/README.md). */
export const DEFAULT_SSH_USER = 'cirros';

export interface SshOptions {
  configFile?: string;
  cloud?: string;
  identity?: string;
  login?: string;
  /** Extra `ssh -o` options, as given. */
  option?: string[];
}

interface Address {
  addr: string;
  version: number;
  'OS-EXT-IPS:type'?: string;
}

interface Server {
  id: string;
  name: string;
  status: string;
  addresses: Record<string, Address[]>;
}

interface Session {
  token: string;
  compute: string;
  network: string;
}

/** The address to log in at: the first IPv4 floating IP, else the first IPv4 fixed IP. */
export function pickAddress(addresses: Record<string, Address[]>): { addr: string; floating: boolean } | undefined {
  const all = Object.values(addresses).flat().filter((a) => a.version === 4);
  const floating = all.find((a) => a['OS-EXT-IPS:type'] === 'floating');
  if (floating) return { addr: floating.addr, floating: true };
  const fixed = all[0];
  return fixed && { addr: fixed.addr, floating: false };
}

/** The host keys the guest printed between cloud-init's markers, as `ssh-… base64` lines. */
export function consoleHostKeys(consoleLog: string): string[] {
  const block = /-----BEGIN SSH HOST KEY KEYS-----\r?\n([\s\S]*?)-----END SSH HOST KEY KEYS-----/.exec(consoleLog);
  if (!block) return [];
  return block[1]
    .split(/\r?\n/)
    .map((l) => l.trim().split(/\s+/).slice(0, 2))
    .filter((f) => f.length === 2 && /^(ssh|ecdsa)-\S+$/.test(f[0]!))
    .map((f) => f.join(' '));
}

export async function ssh(server: string, command: string[], opts: SshOptions): Promise<number> {
  const settings = loadSettings(opts.configFile);
  const agent = settings.values.neutron_agent as { namespace_prefix: string; external_namespace: string };
  const session = await login(opts.cloud || process.env.OS_CLOUD || DEMO_CLOUD);
  const found = await findServer(session, server);
  const target = pickAddress(found.addresses ?? {});
  if (!target) throw new Error(`server ${found.name} (${found.id}) has no IPv4 address (status ${found.status})`);
  const netns = target.floating ? agent.external_namespace : await fixedIpNamespace(session, found.id, target.addr, agent.namespace_prefix);
  if (!netns) throw new Error(`no namespace reaches ${target.addr}: [neutron_agent] external_namespace is empty`);

  const keys = consoleHostKeys(await consoleOutput(session, found.id).catch(() => ''));
  const dir = mkdtempSync(join(tmpdir(), 'onestack-ssh-'));
  try {
    const hostKeyArgs = keys.length
      ? (writeFileSync(join(dir, 'known_hosts'), keys.map((k) => `${target.addr} ${k}\n`).join(''), { mode: 0o600 }),
        ['-o', `UserKnownHostsFile=${join(dir, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes'])
      : [];
    const args = [
      'netns', 'exec', netns, 'ssh',
      ...hostKeyArgs,
      ...(opts.option ?? []).flatMap((o) => ['-o', o]),
      ...(opts.identity ? ['-i', opts.identity] : []),
      '-l', opts.login || DEFAULT_SSH_USER,
      '--', target.addr, ...command,
    ];
    return await runInteractive('ip', args);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runInteractive(program: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: 'inherit', shell: false });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

async function login(cloud: string): Promise<Session> {
  const path = process.env.OS_CLIENT_CONFIG_FILE || cloudsYamlPath();
  const entry = (YAML.parse(readFileSync(path, 'utf8')) as { clouds?: Record<string, { auth?: Record<string, string> }> }).clouds?.[cloud];
  const auth = entry?.auth;
  if (!auth?.auth_url) throw new Error(`cloud "${cloud}" not found in ${path}`);
  const domain = (name?: string, id?: string) => (id ? { id } : { name: name || 'Default' });
  const res = await fetch(`${auth.auth_url.replace(/\/+$/, '').replace(/\/v3$/, '')}/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: auth.username, password: auth.password, domain: domain(auth.user_domain_name, auth.user_domain_id) } } },
        scope: { project: auth.project_id ? { id: auth.project_id } : { name: auth.project_name, domain: domain(auth.project_domain_name, auth.project_domain_id) } },
      },
    }),
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status !== 201) throw new Error(`authentication as cloud "${cloud}" failed: ${res.status} ${(await res.text()).slice(0, 200)}`);
  const { token } = (await res.json()) as { token: { catalog: { type: string; endpoints: { interface: string; url: string }[] }[] } };
  const endpoint = (type: string) => {
    const url = token.catalog.find((s) => s.type === type)?.endpoints.find((e) => e.interface === 'public')?.url;
    if (!url) throw new Error(`no public "${type}" endpoint in the catalog of cloud "${cloud}"`);
    return url.replace(/\/+$/, '');
  };
  const compute = endpoint('compute');
  return {
    token: res.headers.get('x-subject-token')!,
    compute: /\/v2(\.1)?$/.test(compute) ? compute : `${compute}/v2.1`,
    network: `${endpoint('network')}/v2.0`,
  };
}

async function call<T>(s: Session, method: string, url: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(url, {
    method,
    headers: { 'x-auth-token': s.token, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.status >= 400 && res.status !== 404) throw new Error(`${method} ${url}: ${res.status} ${text.slice(0, 200)}`);
  return { status: res.status, json: (text ? JSON.parse(text) : {}) as T };
}

/** By id first, then by exact name (Nova's name filter is a regular expression), as the CLI does. */
async function findServer(s: Session, ref: string): Promise<Server> {
  const byId = await call<{ server: Server }>(s, 'GET', `${s.compute}/servers/${encodeURIComponent(ref)}`);
  if (byId.status === 200) return byId.json.server;
  const escaped = ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const { json } = await call<{ servers: Server[] }>(s, 'GET', `${s.compute}/servers/detail?name=${encodeURIComponent(`^${escaped}$`)}`);
  const matches = json.servers ?? [];
  if (matches.length === 0) throw new Error(`no server named or with id "${ref}"`);
  if (matches.length > 1) throw new Error(`more than one server is named "${ref}": use its id`);
  return matches[0]!;
}

async function consoleOutput(s: Session, id: string): Promise<string> {
  const { json } = await call<{ output?: string }>(s, 'POST', `${s.compute}/servers/${id}/action`, { 'os-getConsoleOutput': { length: null } });
  return json.output ?? '';
}

/** The router namespace of the router on the address's subnet, else the subnet's DHCP namespace. */
async function fixedIpNamespace(s: Session, serverId: string, addr: string, prefix: string): Promise<string> {
  const { json: mine } = await call<{ ports: { network_id: string; fixed_ips: { subnet_id: string; ip_address: string }[] }[] }>(
    s, 'GET', `${s.network}/ports?device_id=${encodeURIComponent(serverId)}`,
  );
  const port = (mine.ports ?? []).find((p) => p.fixed_ips.some((f) => f.ip_address === addr));
  const subnet = port?.fixed_ips.find((f) => f.ip_address === addr)?.subnet_id;
  if (!port || !subnet) throw new Error(`no port of server ${serverId} has the address ${addr}`);
  const { json: routers } = await call<{ ports: { device_id: string; device_owner: string; fixed_ips: { subnet_id: string }[] }[] }>(
    s, 'GET', `${s.network}/ports?network_id=${encodeURIComponent(port.network_id)}&device_owner=network:router_interface`,
  );
  const router = (routers.ports ?? []).find((p) => p.fixed_ips.some((f) => f.subnet_id === subnet));
  return router ? `${prefix}qrouter-${router.device_id}` : `${prefix}qdhcp-${port.network_id}`;
}
