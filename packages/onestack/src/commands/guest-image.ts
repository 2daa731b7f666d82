/**
 * The guest image (images/) in the all-in-one: `onestack up` builds it when
 * missing and registers it in Glance as the public image `onestack-guest`,
 * through the Image API as the admin user, as any other client would.
 *
 * Which images are ours: named `onestack-guest`, owned by the admin project,
 * and carrying the property `onestack_guest_sha256` (the qcow2's sha256 from
 * the build's manifest). One of ours with the current checksum, active or
 * deactivated by an operator, is left as it is, so a restart changes nothing.
 * Otherwise the current build is uploaded first and then the rest of ours are
 * deleted (an older build, an upload that was interrupted), so a bootable
 * image exists throughout. An image of that name without the property, or in
 * another project, is someone else's and is never touched. An operator who
 * deleted ours gets it back on the next `up` unless `[onestack]
 * register_guest_image = false`.
 */
import { mkdirSync, openAsBlob, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { positional, runCommand, type ExecLogger } from '@onestack/core/exec/privileged-exec.ts';
import { logFilePath } from '@onestack/core/log.ts';
import { serviceLogger } from '../runtime.ts';
import { adminSession, call } from './admin-api.ts';
import type { Settings } from '../settings.ts';

export const GUEST_IMAGE_NAME = 'onestack-guest';
export const GUEST_SHA256_PROPERTY = 'onestack_guest_sha256';
/** A first build downloads about 33 MB of .debs and takes 6–20 s; with --reuse 0.5 s. */
const BUILD_TIMEOUT_MS = 300_000;
const UPLOAD_TIMEOUT_MS = 120_000;
/** How long the guest image step of `up` may take at most, for callers that wait for `up`. */
export const GUEST_IMAGE_TIMEOUT_MS = BUILD_TIMEOUT_MS + UPLOAD_TIMEOUT_MS;

const BUILD_SCRIPT = fileURLToPath(new URL('../../../../images/build.sh', import.meta.url));
/** runCommand gives programs a bare environment: what the build reads (its .deb cache, apt's proxy) is passed on. */
const BUILD_ENV = ['HOME', 'TMPDIR', 'ONESTACK_IMAGE_CACHE', 'ONESTACK_IMAGE_STRICT', 'http_proxy', 'https_proxy', 'no_proxy'] as const;
const LOG_NAME = 'guest-image';

/** The parts of images/build.sh's onestack-guest.json that registration reads. */
export interface GuestManifest {
  version: string;
  files: { qcow2: { path: string; size: number; sha256: string } };
  glance: { disk_format: string; container_format: string; min_disk: number; min_ram: number; properties: Record<string, string> };
}

export function guestImageDir(settings: Settings): string {
  const o = settings.values.onestack as { guest_image_dir: string };
  return o.guest_image_dir || join(settings.stateDir, 'images');
}

/**
 * `images/build.sh --reuse DIR` under a lock on DIR, so that clouds sharing
 * one directory (the e2e tests do) never build into it at the same time.
 */
export async function buildGuestImage(dir: string, logger: ExecLogger): Promise<{ manifest: GuestManifest; qcow2: string }> {
  mkdirSync(dir, { recursive: true });
  const env = Object.fromEntries(BUILD_ENV.flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
  const res = await runCommand('flock', [positional(join(dir, '.build.lock')), BUILD_SCRIPT, '--reuse', positional(dir)], {
    logger,
    env,
    timeoutMs: BUILD_TIMEOUT_MS,
  });
  logger.info({ output: res.stderr.trim().split('\n').slice(-6) }, 'guest image build');
  const manifest = JSON.parse(readFileSync(join(dir, `${GUEST_IMAGE_NAME}.json`), 'utf8')) as GuestManifest;
  return { manifest, qcow2: join(dir, manifest.files.qcow2.path) };
}

interface ImageRecord {
  id: string;
  status: string;
  [property: string]: unknown;
}

export interface Registration {
  id: string;
  /** kept: ours was current already; registered: uploaded now. */
  outcome: 'kept' | 'registered';
  /** Older images of ours deleted now. */
  removed: string[];
  /** Older images of ours that Glance refused to delete (protected by an operator, say). */
  kept: { id: string; reason: string }[];
}

export async function registerGuestImage(o: { identityUrl: string; adminPassword: string; qcow2: string; manifest: GuestManifest }): Promise<Registration> {
  const { token, projectId, endpoint } = await adminSession(o.identityUrl, o.adminPassword);
  const image = endpoint('image');
  if (!image) throw new Error('the catalog has no public image endpoint');
  const imageUrl = `${image}/v2`;
  const sha256 = o.manifest.files.qcow2.sha256;
  const query = new URLSearchParams({ name: GUEST_IMAGE_NAME, owner: projectId, visibility: 'all', limit: '1000' });
  const { images } = (await (await call('GET', `${imageUrl}/images?${query}`, token)).json()) as { images: ImageRecord[] };
  const ours = images.filter((i) => typeof i[GUEST_SHA256_PROPERTY] === 'string');
  const current = ours.find((i) => i[GUEST_SHA256_PROPERTY] === sha256 && (i.status === 'active' || i.status === 'deactivated'));
  if (current) return { id: current.id, outcome: 'kept', removed: [], kept: [] };

  const g = o.manifest.glance;
  const created = (await (
    await call('POST', `${imageUrl}/images`, token, {
      name: GUEST_IMAGE_NAME,
      disk_format: g.disk_format,
      container_format: g.container_format,
      visibility: 'public',
      min_disk: g.min_disk,
      min_ram: g.min_ram,
      ...g.properties,
      [GUEST_SHA256_PROPERTY]: sha256,
    })
  ).json()) as ImageRecord;
  try {
    await fetch(`${imageUrl}/images/${created.id}/file`, {
      method: 'PUT',
      headers: { 'x-auth-token': token, 'content-type': 'application/octet-stream' },
      body: await openAsBlob(o.qcow2),
      signal: AbortSignal.timeout(UPLOAD_TIMEOUT_MS),
    }).then(async (r) => {
      if (!r.ok) throw new Error(`uploading ${o.qcow2}: ${r.status} ${(await r.text()).slice(0, 300)}`);
    });
    const shown = (await (await call('GET', `${imageUrl}/images/${created.id}`, token)).json()) as ImageRecord;
    if (shown.status !== 'active') throw new Error(`image ${created.id} is ${shown.status} after its upload`);
  } catch (e) {
    await call('DELETE', `${imageUrl}/images/${created.id}`, token).catch(() => undefined);
    throw e;
  }
  const result: Registration = { id: created.id, outcome: 'registered', removed: [], kept: [] };
  for (const old of ours) {
    try {
      await call('DELETE', `${imageUrl}/images/${old.id}`, token);
      result.removed.push(old.id);
    } catch (e) {
      result.kept.push({ id: old.id, reason: (e as Error).message });
    }
  }
  return result;
}

/**
 * The guest image step of `onestack up`, after the services answer. It never
 * fails `up`: a cloud without its guest image is still a cloud, so a failed
 * build (no network for apt, say) or upload is a warning and nothing is registered.
 */
export async function provideGuestImage(settings: Settings, o: { identityUrl: string; adminPassword: string }): Promise<void> {
  if (!(settings.values.onestack as { register_guest_image: boolean }).register_guest_image) return;
  const started = performance.now();
  const logger = serviceLogger(settings, LOG_NAME);
  const log = logFilePath(settings.logDir, LOG_NAME);
  const seconds = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  let built: Awaited<ReturnType<typeof buildGuestImage>>;
  try {
    built = await buildGuestImage(guestImageDir(settings), logger);
  } catch (e) {
    logger.warn({ err: e }, 'guest image build failed');
    console.warn(
      `warning: the guest image could not be built, so no ${GUEST_IMAGE_NAME} image is registered (the cloud is up without it): ${(e as Error).message}\n` +
        `  details: ${log}; the next \`onestack up\` tries again; [onestack] register_guest_image = false skips this step.`,
    );
    return;
  }
  try {
    const r = await registerGuestImage({ ...o, qcow2: built.qcow2, manifest: built.manifest });
    logger.info({ ...r, sha256: built.manifest.files.qcow2.sha256 }, 'guest image registration');
    const what = r.outcome === 'kept' ? 'already registered' : `registered${r.removed.length ? `, replacing ${r.removed.join(', ')}` : ''}`;
    console.log(`Guest image ${GUEST_IMAGE_NAME} ${built.manifest.version}: ${what} (id ${r.id}, ${seconds()}).`);
    for (const k of r.kept) console.warn(`warning: an older ${GUEST_IMAGE_NAME} image (${k.id}) could not be deleted: ${k.reason}`);
  } catch (e) {
    logger.warn({ err: e }, 'guest image registration failed');
    console.warn(`warning: the guest image was built but not registered in Glance: ${(e as Error).message}\n  details: ${log}; the next \`onestack up\` tries again.`);
  }
}
