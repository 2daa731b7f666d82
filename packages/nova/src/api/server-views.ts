import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Fault, Instance } from '../domain/instances.ts';
import { allowed, ISO, mv, USG, type ApiDeps } from './context.ts';

export interface ViewExtras {
  metadata: Record<string, string>;
  tags: string[];
  fault?: Fault;
  hostUp?: boolean;
  /** The instance's volumes (boot volume first), for os-extended-volumes:volumes_attached. */
  volumes?: { id: string; deleteOnTermination: boolean }[];
}

/** utils.generate_hostid: the host hashed with the project, so projects cannot compare hosts. */
export function obfuscatedHost(projectId: string, host: string | null): string {
  return host ? createHash('sha224').update(projectId + host).digest('hex') : '';
}

export function hostId(i: Instance): string {
  return obfuscatedHost(i.projectId, i.host);
}

export function addresses(i: Instance): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const v of i.networkInfo) {
    const list = (out[v.networkName] ??= []);
    for (const a of v.ips) list.push({ version: a.version, addr: a.address, 'OS-EXT-IPS:type': a.type, 'OS-EXT-IPS-MAC:mac_addr': v.mac });
  }
  return out;
}

const link = (base: string, projectId: string, kind: string, id: string) => [
  { rel: 'self', href: `${base}/v2.1/${kind}/${id}` },
  { rel: 'bookmark', href: `${base}/${kind}/${id}` },
];

export function baseOf(req: FastifyRequest): string {
  const host = req.headers['x-forwarded-host'] ?? req.headers.host;
  return `${(req.headers['x-forwarded-proto'] as string) ?? req.protocol}://${Array.isArray(host) ? host[0] : host}`;
}

export function serverBrief(req: FastifyRequest, i: Instance) {
  return { id: i.uuid, name: i.name, links: link(baseOf(req), i.projectId, 'servers', i.uuid) };
}

/**
 * What the views of one response share. A page of /servers/detail renders 1,000 servers of
 * a few projects on a few hosts: the policy checks (their target is the server's project
 * alone) and the host hashes are worked out once per project and host, not per server.
 */
interface ResponseViews {
  base: string;
  rights: Map<string, boolean>;
  hostIds: Map<string, string>;
}

const responseViews = new WeakMap<FastifyRequest, ResponseViews>();

function viewsOf(req: FastifyRequest): ResponseViews {
  let v = responseViews.get(req);
  if (!v) responseViews.set(req, (v = { base: baseOf(req), rights: new Map(), hostIds: new Map() }));
  return v;
}

function allowedOn(deps: ApiDeps, req: FastifyRequest, v: ResponseViews, rule: string, projectId: string): boolean {
  const key = `${rule}\n${projectId}`;
  let ok = v.rights.get(key);
  if (ok === undefined) v.rights.set(key, (ok = allowed(deps, req, rule, { project_id: projectId })));
  return ok;
}

function hostIdOn(v: ResponseViews, i: Instance): string {
  const key = `${i.projectId}\n${i.host ?? ''}`;
  let id = v.hostIds.get(key);
  if (id === undefined) v.hostIds.set(key, (id = hostId(i)));
  return id;
}

/** The full server body (ViewBuilder.show) for the request's microversion and the caller's rights. */
export function serverDetail(deps: ApiDeps, req: FastifyRequest, i: Instance, x: ViewExtras) {
  const views = viewsOf(req);
  const base = views.base;
  const admin = allowedOn(deps, req, views, 'os_compute_api:os-extended-server-attributes', i.projectId);
  const s: Record<string, unknown> = {
    id: i.uuid,
    name: i.name,
    status: i.status,
    tenant_id: i.projectId,
    user_id: i.userId,
    metadata: x.metadata,
    hostId: hostIdOn(views, i),
    image: i.imageRef ? { id: i.imageRef, links: [{ rel: 'bookmark', href: `${base}/images/${i.imageRef}` }] } : '',
    flavor: mv(req, '2.47')
      ? { vcpus: i.flavor.vcpus, ram: i.flavor.ram, disk: i.flavor.disk, ephemeral: i.flavor.ephemeral, swap: i.flavor.swap, original_name: i.flavor.name, extra_specs: i.flavor.extraSpecs }
      : { id: i.flavor.id, links: [{ rel: 'bookmark', href: `${base}/flavors/${i.flavor.id}` }] },
    created: ISO(i.createdAt),
    updated: ISO(i.updatedAt),
    addresses: addresses(i),
    accessIPv4: i.accessIpV4 ?? '',
    accessIPv6: i.accessIpV6 ?? '',
    links: link(base, i.projectId, 'servers', i.uuid),
    'OS-DCF:diskConfig': 'MANUAL',
    'OS-EXT-AZ:availability_zone': i.availabilityZone ?? '',
    config_drive: i.configDrive ? 'True' : '',
    key_name: i.keyName,
    'OS-SRV-USG:launched_at': USG(i.launchedAt),
    'OS-SRV-USG:terminated_at': USG(i.terminatedAt),
    'OS-EXT-STS:task_state': i.taskState,
    'OS-EXT-STS:vm_state': i.vmState,
    'OS-EXT-STS:power_state': i.powerState,
    // 2.3 adds delete_on_termination to each volume.
    'os-extended-volumes:volumes_attached': (x.volumes ?? []).map((v) => (mv(req, '2.3') ? { id: v.id, delete_on_termination: v.deleteOnTermination } : { id: v.id })),
  };
  if (i.status === 'ACTIVE' || i.status === 'BUILD') s.progress = i.progress;
  if (i.vmState !== 'deleted' || true) s.security_groups = (i.requestSpec.securityGroups ?? []).map((name) => ({ name }));
  if (admin) {
    s['OS-EXT-SRV-ATTR:host'] = i.host;
    s['OS-EXT-SRV-ATTR:hypervisor_hostname'] = i.node;
    s['OS-EXT-SRV-ATTR:instance_name'] = `instance-${i.uuid.slice(0, 8)}`;
    if (mv(req, '2.3')) {
      s['OS-EXT-SRV-ATTR:reservation_id'] = i.reservationId;
      s['OS-EXT-SRV-ATTR:launch_index'] = i.launchIndex;
      s['OS-EXT-SRV-ATTR:hostname'] = i.hostname;
      s['OS-EXT-SRV-ATTR:kernel_id'] = '';
      s['OS-EXT-SRV-ATTR:ramdisk_id'] = '';
      s['OS-EXT-SRV-ATTR:root_device_name'] = '/dev/vda';
      s['OS-EXT-SRV-ATTR:user_data'] = i.userData;
    }
  }
  // 2.90: every caller sees the hostname the guest was given.
  if (mv(req, '2.90')) s['OS-EXT-SRV-ATTR:hostname'] = i.hostname;
  if (mv(req, '2.9')) s.locked = i.lockedBy !== null;
  if (mv(req, '2.16') && allowedOn(deps, req, views, 'os_compute_api:servers:show:host_status', i.projectId)) {
    s.host_status = !i.host ? '' : x.hostUp === false ? 'DOWN' : 'UP';
  }
  if (mv(req, '2.19')) s.description = i.description;
  if (mv(req, '2.26')) s.tags = x.tags;
  if (mv(req, '2.63')) s.trusted_image_certificates = i.systemMetadata.trusted_image_certificates ? JSON.parse(i.systemMetadata.trusted_image_certificates) : null;
  if (mv(req, '2.73')) s.locked_reason = i.lockedReason;
  if (x.fault && (i.vmState === 'error' || i.vmState === 'deleted')) {
    const f: Record<string, unknown> = { code: x.fault.code, created: ISO(x.fault.createdAt), message: x.fault.message };
    if (admin || x.fault.code !== 500) f.details = x.fault.details ?? '';
    s.fault = f;
  }
  return s;
}

/** Keys GET shows that update and rebuild leave out before 2.75 (upstream's show(... show_*=False)). */
const NOT_IN_REDUCED_VIEW = /^(OS-EXT-AZ:|OS-EXT-SRV-ATTR:|OS-SRV-USG:|OS-EXT-STS:|os-extended-volumes:)|^(config_drive|host_status|key_name|security_groups)$/;

/** The server as PUT and rebuild answered before 2.75: no extension attributes, addresses without type and MAC. */
export function reducedView(full: Record<string, unknown>): Record<string, unknown> {
  const out = Object.fromEntries(Object.entries(full).filter(([k]) => !NOT_IN_REDUCED_VIEW.test(k)));
  const addrs = full.addresses as Record<string, { version: number; addr: string }[]>;
  out.addresses = Object.fromEntries(Object.entries(addrs).map(([net, list]) => [net, list.map((a) => ({ version: a.version, addr: a.addr }))]));
  return out;
}
