import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError, badRequest, forbidden, notFound } from '@onestack/core/errors.ts';
import { MEMBER_STATUSES, type Image, type ImageMember, type MemberStatus } from '../domain/image.ts';
import type { Viewer } from '../domain/images.ts';
import { ImagePolicy, imageIdOf, viewerOf, type ApiDeps } from './context.ts';
import { memberView } from './views.ts';

/**
 * /v2/images/{id}/members (glance/api/v2/image_members.py): the owner shares
 * a `shared` image with projects; each member project accepts or rejects.
 */
export function registerMemberRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { images } = deps;

  /** _lookup_image plus MemberAPIPolicy: get_image (404) before the member rule (403). */
  async function lookup(req: FastifyRequest): Promise<{ image: Image; viewer: Viewer; policy: ImagePolicy }> {
    const viewer = viewerOf(deps, req);
    const id = imageIdOf(req);
    const image = await images.get(id, viewer).catch((e: unknown) => {
      throw e instanceof ApiError && e.status === 404 ? notFound(`Image ${id} not found.`) : e;
    });
    return { image, viewer, policy: new ImagePolicy(deps, req, image, viewer) };
  }

  const sharedOnly = (image: Image, refusal: string) => {
    if (image.visibility !== 'shared') throw forbidden(refusal);
  };

  async function member(req: FastifyRequest, image: Image, viewer: Viewer, policy: ImagePolicy): Promise<ImageMember> {
    policy.enforce('get_member');
    return images.member(image, memberIdOf(req), viewer);
  }

  app.get('/v2/images/:image_id/members', async (req) => {
    const { image, viewer, policy } = await lookup(req);
    sharedOnly(image, `Not allowed to list members for image ${image.id}: Only shared images have members.`);
    policy.enforce('get_members');
    const members = policy.check('get_member') ? await images.members(image, viewer) : [];
    return { members: members.map(memberView), schema: '/v2/schemas/members' };
  });

  app.post('/v2/images/:image_id/members', async (req) => {
    const memberId = memberOfBody(req.body);
    const { image, viewer, policy } = await lookup(req);
    sharedOnly(image, `Not allowed to create members for image ${image.id}.`);
    policy.enforce('add_member');
    return memberView(await images.addMember(image, memberId, viewer));
  });

  app.get('/v2/images/:image_id/members/:member_id', async (req) => {
    const { image, viewer, policy } = await lookup(req);
    // Every refusal of a single member is a 404 here, as upstream's show().
    if (image.visibility !== 'shared') throw notFound('Only shared images have members.');
    try {
      return memberView(await member(req, image, viewer, policy));
    } catch (e) {
      if (e instanceof ApiError && e.status === 403) throw notFound(e.message);
      throw e;
    }
  });

  app.put('/v2/images/:image_id/members/:member_id', async (req) => {
    const status = statusOfBody(req.body);
    const { image, viewer, policy } = await lookup(req);
    sharedOnly(image, `Not allowed to update members for image ${image.id}.`);
    const m = await member(req, image, viewer, policy);
    policy.enforce('modify_member');
    if (!(MEMBER_STATUSES as readonly unknown[]).includes(status)) throw badRequest('Incorrect request: Status must be "pending", "accepted" or "rejected".');
    return memberView(await images.setMemberStatus(image, m, status as MemberStatus, viewer));
  });

  app.delete('/v2/images/:image_id/members/:member_id', async (req, reply) => {
    const { image, viewer, policy } = await lookup(req);
    sharedOnly(image, `Not allowed to delete members for image ${image.id}.`);
    const m = await member(req, image, viewer, policy);
    policy.enforce('delete_member');
    await images.removeMember(image, m, viewer);
    reply.code(204).send();
  });
}

function memberIdOf(req: FastifyRequest): string {
  return (req.params as { member_id: string }).member_id;
}

function memberOfBody(body: unknown): string {
  if (body === undefined) throw badRequest('Body expected in request.');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('Expected a member in the form: {"member": "image_id"}');
  if (!('member' in body)) throw badRequest('Member to be added not specified');
  const member = (body as { member: unknown }).member;
  if (!member) throw badRequest("Member can't be empty");
  return String(member);
}

function statusOfBody(body: unknown): unknown {
  if (body === undefined) throw badRequest('Body expected in request.');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('Expected a status in the form: {"status": "status"}');
  if (!('status' in body)) throw badRequest('Status not specified');
  return (body as { status: unknown }).status;
}
