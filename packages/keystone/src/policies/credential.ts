import type { RuleDefault } from '@onestack/core/policy/index.ts';
import { ADMIN, SYSTEM_READER } from './base.ts';

const CRED_OWNER = 'user_id:%(target.credential.user_id)s';
const ADMIN_OR_SYSTEM_READER_OR_CRED_OWNER = `(${ADMIN}) or (${SYSTEM_READER}) or ${CRED_OWNER}`;
const ADMIN_OR_CRED_OWNER = `(${ADMIN}) or ${CRED_OWNER}`;
const ADMIN_OR_MEMBER_AND_CRED_OWNER = `(${ADMIN}) or (role:member and ${CRED_OWNER})`;

const credential = '/v3/credentials/{credential_id}';
const ec2Collection = '/v3/users/{user_id}/credentials/OS-EC2';
const ec2Credential = `${ec2Collection}/{credential_id}`;

/** /v3/credentials, the OS-EC2 view of ec2 credentials and /v3/ec2tokens, as upstream's credential.py, ec2_credential.py and ec2tokens.py. */
export const credentialRules: RuleDefault[] = [
  {
    name: 'identity:get_credential',
    checkStr: ADMIN_OR_SYSTEM_READER_OR_CRED_OWNER,
    description: 'Show credentials details.',
    operations: [{ path: credential, method: 'GET' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:list_credentials',
    checkStr: ADMIN_OR_SYSTEM_READER_OR_CRED_OWNER,
    description: 'List credentials.',
    operations: [{ path: '/v3/credentials', method: 'GET' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:create_credential',
    checkStr: ADMIN_OR_CRED_OWNER,
    description: 'Create credential.',
    operations: [{ path: '/v3/credentials', method: 'POST' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:update_credential',
    checkStr: ADMIN_OR_CRED_OWNER,
    description: 'Update credential.',
    operations: [{ path: credential, method: 'PATCH' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:delete_credential',
    checkStr: ADMIN_OR_CRED_OWNER,
    description: 'Delete credential.',
    operations: [{ path: credential, method: 'DELETE' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
  {
    name: 'identity:ec2_get_credential',
    checkStr: ADMIN_OR_SYSTEM_READER_OR_CRED_OWNER,
    description: 'Retrieve a user EC2 credential.',
    operations: [{ path: ec2Credential, method: 'GET' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:ec2_list_credentials',
    checkStr: `(${ADMIN}) or (${SYSTEM_READER}) or rule:owner`,
    description: 'List EC2 credentials for a user.',
    operations: [{ path: ec2Collection, method: 'GET' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:ec2_create_credential',
    checkStr: ADMIN_OR_MEMBER_AND_CRED_OWNER,
    description: 'Create ec2 credential.',
    operations: [{ path: ec2Collection, method: 'POST' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:ec2_delete_credential',
    checkStr: ADMIN_OR_MEMBER_AND_CRED_OWNER,
    description: 'Delete ec2 credential.',
    operations: [{ path: ec2Credential, method: 'DELETE' }],
    scopeTypes: ['system', 'project'],
  },
  {
    name: 'identity:ec2tokens_validate',
    checkStr: 'rule:service_or_admin',
    description: 'Validate EC2 credentials and create a Keystone token. Restricted to service users or administrators.',
    operations: [{ path: '/v3/ec2tokens', method: 'POST' }],
    scopeTypes: ['system', 'domain', 'project'],
  },
];
