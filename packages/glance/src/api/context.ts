import type { FastifyRequest } from 'fastify';
import type { AuthContext } from '@onestack/core/context.ts';
import { forbidden, notFound } from '@onestack/core/errors.ts';
import { authOf } from '@onestack/core/http/request-context.ts';
import { credentialsFromAuth, type Enforcer, type Target } from '@onestack/core/policy/index.ts';
import type { GlanceConfig } from '../conf.ts';
import type { ImageData } from '../domain/image-data.ts';
import type { Image } from '../domain/image.ts';
import type { ImageService, Viewer } from '../domain/images.ts';
import type { ImageValidator } from './schemas.ts';

/** What every route module receives. */
export interface ApiDeps {
  images: ImageService;
  data: ImageData;
  enforcer: Enforcer;
  config: GlanceConfig;
  validator: ImageValidator;
}

export { authOf };

/** The caller as the domain layer sees it; admin is upstream's context_is_admin rule. */
export function viewerOf(deps: ApiDeps, req: FastifyRequest): Viewer {
  const auth = authOf(req);
  return { projectId: auth.projectId, userId: auth.userId, isAdmin: allowed(deps, auth, 'context_is_admin', {}), ctx: req.ctx };
}

function allowed(deps: ApiDeps, auth: AuthContext, rule: string, target: Target): boolean {
  return deps.enforcer.enforce(rule, target, credentialsFromAuth(auth));
}

/** oslo.policy's refusal as Glance words it (exception.Forbidden with the action). */
export function enforce(deps: ApiDeps, req: FastifyRequest, rule: string, target: Target): void {
  if (!allowed(deps, authOf(req), rule, target)) throw forbidden(`You are not authorized to complete ${rule} action.`);
}

/**
 * upstream's policy.ImageTarget: the image's attributes and properties, its
 * owner as project_id, and member_id the caller's project when it reaches a
 * shared image it does not own.
 */
export function imageTarget(image: Image, viewer: Viewer): Target {
  const member = image.visibility === 'shared' && viewer.projectId !== image.owner ? (viewer.projectId ?? null) : null;
  return {
    ...image.properties,
    id: image.id,
    image_id: image.id,
    name: image.name,
    status: image.status,
    visibility: image.visibility,
    owner: image.owner,
    project_id: image.owner,
    member,
    member_id: member,
    protected: image.protected,
    os_hidden: image.osHidden,
    min_disk: image.minDisk,
    min_ram: image.minRam,
    disk_format: image.diskFormat,
    container_format: image.containerFormat,
    size: image.size,
    virtual_size: image.virtualSize,
    checksum: image.checksum,
    os_hash_algo: image.osHashAlgo,
    os_hash_value: image.osHashValue,
  };
}

/**
 * upstream's ImageAPIPolicy: a refused rule is a 404 when the caller may not
 * even see the image, else a 403.
 */
export class ImagePolicy {
  readonly target: Target;

  constructor(
    private readonly deps: ApiDeps,
    private readonly req: FastifyRequest,
    readonly image: Image,
    readonly viewer: Viewer,
  ) {
    this.target = imageTarget(image, viewer);
  }

  check(rule: string): boolean {
    return allowed(this.deps, authOf(this.req), rule, this.target);
  }

  enforce(rule: string): void {
    if (this.check(rule)) return;
    if (rule === 'get_image' || !this.check('get_image')) throw notFound('The resource could not be found.');
    throw forbidden(`You are not authorized to complete ${rule} action.`);
  }

  /** Setting visibility to public or community needs its own rule (_enforce_image_visibility). */
  enforceVisibility(visibility: unknown): void {
    if (visibility === 'public') enforce(this.deps, this.req, 'publicize_image', this.target);
    else if (visibility === 'community') enforce(this.deps, this.req, 'communitize_image', this.target);
  }
}

/** Looks an image up for the caller and checks `rule` on it, as most image routes begin. */
export async function imageFor(deps: ApiDeps, req: FastifyRequest, rule: string): Promise<ImagePolicy> {
  const viewer = viewerOf(deps, req);
  const image = await deps.images.get(imageIdOf(req), viewer);
  const policy = new ImagePolicy(deps, req, image, viewer);
  policy.enforce(rule);
  return policy;
}

export function imageIdOf(req: FastifyRequest): string {
  return (req.params as { image_id: string }).image_id;
}
