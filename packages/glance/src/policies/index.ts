import type { RuleDefault, ScopeType } from '@onestack/core/policy/index.ts';

/**
 * Glance's policies in code, upstream's names and default check strings
 * (glance/policies/base.py and image.py). Unlike Keystone's personas, `admin`
 * here is the admin role on any project, as upstream's context_is_admin.
 * The target of an image rule is the image (project_id is its owner,
 * member_id the caller's project when it reaches a shared image it does not
 * own); of a create, the proposed owner and visibility.
 */
const PROJECT_MEMBER = 'role:member and project_id:%(project_id)s';
const PROJECT_READER = 'role:reader and project_id:%(project_id)s';
const IMAGE_MEMBER_CHECK = 'project_id:%(member_id)s';
const COMMUNITY = "'community':%(visibility)s";
const PUBLIC = "'public':%(visibility)s";
const SHARED = "'shared':%(visibility)s";
const ADMIN = 'rule:context_is_admin';
const SERVICE = 'rule:service_api';

const ADMIN_OR_PROJECT_MEMBER = `${ADMIN} or (${PROJECT_MEMBER})`;
const ADMIN_OR_PROJECT_READER = `${ADMIN} or (${PROJECT_READER})`;
const ADMIN_OR_PROJECT_READER_GET_IMAGE = `${ADMIN} or (role:reader and (project_id:%(project_id)s or ${IMAGE_MEMBER_CHECK} or ${COMMUNITY} or ${PUBLIC} or ${SHARED}))`;
const ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE = `${ADMIN} or (role:member and (project_id:%(project_id)s or ${IMAGE_MEMBER_CHECK} or ${COMMUNITY} or ${PUBLIC} or ${SHARED}))`;
const ADMIN_OR_PROJECT_MEMBER_CREATE_IMAGE = `${ADMIN} or (${PROJECT_MEMBER} and project_id:%(owner)s)`;
const ADMIN_OR_SHARED_MEMBER = `${ADMIN} or (role:member and ${IMAGE_MEMBER_CHECK})`;
const ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER = `${ADMIN} or role:reader and (project_id:%(project_id)s or ${IMAGE_MEMBER_CHECK})`;
const SERVICE_OR_PROJECT_MEMBER = `${SERVICE} or (${PROJECT_MEMBER} and project_id:%(owner)s)`;

const PROJECT: ScopeType[] = ['project'];
const IMAGES = '/v2/images';
const IMAGE = '/v2/images/{image_id}';
const MEMBERS = '/v2/images/{image_id}/members';
const MEMBER = '/v2/images/{image_id}/members/{member_id}';

const image = (name: string, checkStr: string, description: string, operations: { path: string; method: string }[]): RuleDefault => ({
  name,
  checkStr,
  description,
  operations,
  scopeTypes: PROJECT,
});

export const glancePolicies: RuleDefault[] = [
  { name: 'default', checkStr: '', description: 'Defines the default rule used for policies that historically had an empty policy in the supplied policy.json file.' },
  { name: 'context_is_admin', checkStr: 'role:admin', description: 'Defines the rule for the is_admin:True check.' },
  // Admin stays in for services that do not send a service token (upstream's TODO for 2026.2).
  { name: 'service_api', checkStr: 'role:service or role:admin', description: 'Default rule for the service-to-service API.' },
  image('add_image', ADMIN_OR_PROJECT_MEMBER_CREATE_IMAGE, 'Create new image', [{ path: IMAGES, method: 'POST' }]),
  image('delete_image', ADMIN_OR_PROJECT_MEMBER, 'Deletes the image', [{ path: IMAGE, method: 'DELETE' }]),
  image('get_image', ADMIN_OR_PROJECT_READER_GET_IMAGE, 'Get specified image', [{ path: IMAGE, method: 'GET' }]),
  image('get_images', ADMIN_OR_PROJECT_READER, 'Get all available images', [{ path: IMAGES, method: 'GET' }]),
  image('modify_image', ADMIN_OR_PROJECT_MEMBER, 'Updates given image', [{ path: IMAGE, method: 'PATCH' }]),
  image('publicize_image', ADMIN, 'Publicize given image', [{ path: IMAGE, method: 'PATCH' }]),
  image('communitize_image', ADMIN_OR_PROJECT_MEMBER, 'Communitize given image', [{ path: IMAGE, method: 'PATCH' }]),
  image('download_image', ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE, 'Downloads given image', [{ path: `${IMAGE}/file`, method: 'GET' }]),
  image('download_from_store', ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE, 'Downloads image from specific store using store selection parameters', [
    { path: `${IMAGE}/file`, method: 'GET' },
  ]),
  image('upload_image', ADMIN_OR_PROJECT_MEMBER, 'Uploads data to specified image', [{ path: `${IMAGE}/file`, method: 'PUT' }]),
  image('delete_image_location', ADMIN, 'Deletes the location of given image', [{ path: IMAGE, method: 'PATCH' }]),
  image('get_image_location', ADMIN_OR_PROJECT_READER, 'Reads the location of the image', [{ path: IMAGE, method: 'GET' }]),
  image('set_image_location', ADMIN_OR_PROJECT_MEMBER, 'Sets location URI to given image', [{ path: IMAGE, method: 'PATCH' }]),
  image('add_image_location', SERVICE_OR_PROJECT_MEMBER, 'Add location URI to given image', [{ path: `${IMAGE}/locations`, method: 'POST' }]),
  image('fetch_image_location', SERVICE, 'Show all locations associated to given image', [{ path: `${IMAGE}/locations`, method: 'GET' }]),
  image('add_member', ADMIN_OR_PROJECT_MEMBER, 'Create image member', [{ path: MEMBERS, method: 'POST' }]),
  image('delete_member', ADMIN_OR_PROJECT_MEMBER, 'Delete image member', [{ path: MEMBER, method: 'DELETE' }]),
  image('get_member', ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER, 'Show image member details', [{ path: MEMBER, method: 'GET' }]),
  image('get_members', ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER, 'List image members', [{ path: MEMBERS, method: 'GET' }]),
  image('modify_member', ADMIN_OR_SHARED_MEMBER, 'Update image member', [{ path: MEMBER, method: 'PUT' }]),
  image('deactivate', ADMIN_OR_PROJECT_MEMBER, 'Deactivate image', [{ path: `${IMAGE}/actions/deactivate`, method: 'POST' }]),
  image('reactivate', ADMIN_OR_PROJECT_MEMBER, 'Reactivate image', [{ path: `${IMAGE}/actions/reactivate`, method: 'POST' }]),
  image('copy_image', ADMIN, 'Copy existing image to other stores', [{ path: `${IMAGE}/import`, method: 'POST' }]),
  { name: 'stores_info_detail', checkStr: `${ADMIN} or ${SERVICE}`, description: 'Expose store specific information', operations: [{ path: '/v2/info/stores/detail', method: 'GET' }], scopeTypes: PROJECT },
];
