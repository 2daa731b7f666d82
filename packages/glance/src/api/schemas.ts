import type { ErrorObject, ValidateFunction } from 'ajv';
import { createValidators } from '@onestack/core/http/index.ts';
import { badRequest } from '@onestack/core/errors.ts';
import type { GlanceConfig } from '../conf.ts';
import { pyRepr } from './py-repr.ts';

/**
 * The JSON schemas Glance publishes at /v2/schemas/* and validates image
 * bodies with: upstream's base properties (images.py get_base_properties),
 * the custom properties its default etc/schema-image.json adds, and free-form
 * string properties for everything else (a "permissive" schema).
 */
const UUID_PATTERN = '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$';

function baseProperties(config: Pick<GlanceConfig, 'diskFormats' | 'containerFormats'>): Record<string, Record<string, unknown>> {
  return {
    id: { type: 'string', description: 'An identifier for the image', pattern: UUID_PATTERN },
    name: { type: ['null', 'string'], description: 'Descriptive name for the image', maxLength: 255 },
    status: {
      type: 'string',
      readOnly: true,
      description: 'Status of the image',
      enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing', 'pending_delete', 'deactivated'],
    },
    visibility: { type: 'string', description: 'Scope of image accessibility', enum: ['community', 'public', 'private', 'shared'] },
    protected: { type: 'boolean', description: 'If true, image will not be deletable.' },
    os_hidden: { type: 'boolean', description: 'If true, image will not appear in default image list response.' },
    checksum: { type: ['null', 'string'], readOnly: true, description: 'md5 hash of image contents.', maxLength: 32 },
    os_hash_algo: { type: ['null', 'string'], readOnly: true, description: 'Algorithm to calculate the os_hash_value', maxLength: 64 },
    os_hash_value: {
      type: ['null', 'string'],
      readOnly: true,
      description: 'Hexdigest of the image contents using the algorithm specified by the os_hash_algo',
      maxLength: 128,
    },
    owner: { type: ['null', 'string'], description: 'Owner of the image', maxLength: 255 },
    size: { type: ['null', 'integer'], readOnly: true, description: 'Size of image file in bytes' },
    virtual_size: { type: ['null', 'integer'], readOnly: true, description: 'Virtual size of image in bytes' },
    container_format: { type: ['null', 'string'], description: 'Format of the container', enum: [null, ...config.containerFormats] },
    disk_format: { type: ['null', 'string'], description: 'Format of the disk', enum: [null, ...config.diskFormats] },
    created_at: { type: 'string', readOnly: true, description: 'Date and time of image registration' },
    updated_at: { type: 'string', readOnly: true, description: 'Date and time of the last image modification' },
    tags: { type: 'array', description: 'List of strings related to the image', items: { type: 'string', maxLength: 255 } },
    direct_url: { type: 'string', readOnly: true, description: 'URL to access the image file kept in external store' },
    min_ram: { type: 'integer', description: 'Amount of ram (in MB) required to boot image.' },
    min_disk: { type: 'integer', description: 'Amount of disk space (in GB) required to boot image.' },
    self: { type: 'string', readOnly: true, description: 'An image self url' },
    file: { type: 'string', readOnly: true, description: 'An image file url' },
    stores: {
      type: 'string',
      readOnly: true,
      description: 'Store in which image data resides.  Only present when the operator has enabled multiple stores.  May be a comma-separated list of store identifiers.',
    },
    schema: { type: 'string', readOnly: true, description: 'An image schema url' },
    locations: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          url: { type: 'string', maxLength: 255 },
          metadata: { type: 'object' },
          validation_data: {
            description:
              "Values to be used to populate the corresponding image properties. If the image status is not 'queued', values must exactly match those already contained in the image properties.",
            type: 'object',
            writeOnly: true,
            additionalProperties: false,
            properties: {
              checksum: { type: 'string', minLength: 32, maxLength: 32 },
              os_hash_algo: { type: 'string', maxLength: 64 },
              os_hash_value: { type: 'string', maxLength: 128 },
            },
            required: ['os_hash_algo', 'os_hash_value'],
          },
        },
        required: ['url', 'metadata'],
      },
      description: 'A set of URLs to access the image file kept in external store',
    },
  };
}

/** etc/schema-image.json as upstream ships it. */
const CUSTOM_PROPERTIES: Record<string, Record<string, unknown>> = {
  kernel_id: {
    type: ['null', 'string'],
    pattern: UUID_PATTERN,
    description: 'ID of image stored in Glance that should be used as the kernel when booting an AMI-style image.',
  },
  ramdisk_id: {
    type: ['null', 'string'],
    pattern: UUID_PATTERN,
    description: 'ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image.',
  },
  instance_uuid: {
    type: 'string',
    description: 'Metadata which can be used to record which instance this image is associated with. (Informational only, does not create an instance snapshot.)',
  },
  architecture: {
    description: 'Operating system architecture as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html',
    type: 'string',
  },
  os_distro: {
    description: 'Common name of operating system distribution as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html',
    type: 'string',
  },
  os_version: { description: 'Operating system version as specified by the distributor.', type: 'string' },
  description: { description: 'A human-readable string describing this image.', type: 'string' },
  cinder_encryption_key_id: {
    description:
      'Identifier in the OpenStack Key Management Service for the encryption key for the Block Storage Service to use when mounting a volume created from this image',
    type: 'string',
  },
  cinder_encryption_key_deletion_policy: {
    description:
      "States the condition under which the Image Service will delete the object associated with the 'cinder_encryption_key_id' image property.  If this property is missing, the Image Service will take no action",
    type: 'string',
    enum: ['on_image_deletion', 'do_not_delete'],
  },
};

const IMAGE_LINKS = [
  { rel: 'self', href: '{self}' },
  { rel: 'enclosure', href: '{file}' },
  { rel: 'describedby', href: '{schema}' },
];

export function imageSchema(config: Pick<GlanceConfig, 'diskFormats' | 'containerFormats'>): Record<string, unknown> {
  const custom = Object.fromEntries(Object.entries(CUSTOM_PROPERTIES).map(([k, v]) => [k, { ...v, is_base: false }]));
  return {
    name: 'image',
    properties: { ...baseProperties(config), ...custom },
    additionalProperties: { type: 'string' },
    links: IMAGE_LINKS,
  };
}

export function imagesSchema(config: Pick<GlanceConfig, 'diskFormats' | 'containerFormats'>): Record<string, unknown> {
  return {
    name: 'images',
    properties: {
      images: { type: 'array', items: imageSchema(config) },
      first: { type: 'string' },
      next: { type: 'string' },
      schema: { type: 'string' },
    },
    links: [
      { rel: 'first', href: '{first}' },
      { rel: 'next', href: '{next}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

const MEMBER_PROPERTIES = {
  member_id: { type: 'string', description: 'An identifier for the image member (tenantId)' },
  image_id: { type: 'string', description: 'An identifier for the image', pattern: UUID_PATTERN },
  created_at: { type: 'string', description: 'Date and time of image member creation' },
  updated_at: { type: 'string', description: 'Date and time of last modification of image member' },
  status: { type: 'string', description: 'The status of this image member', enum: ['pending', 'accepted', 'rejected'] },
  schema: { readOnly: true, type: 'string' },
};

/** Served "minimal" as upstream: no additionalProperties, no links. */
export function memberSchema(): Record<string, unknown> {
  return { name: 'member', properties: MEMBER_PROPERTIES };
}

export function membersSchema(): Record<string, unknown> {
  return {
    name: 'members',
    properties: { members: { type: 'array', items: memberSchema() }, schema: { type: 'string' } },
    links: [{ rel: 'describedby', href: '{schema}' }],
  };
}

/** Validates (parts of) image bodies against the image schema, failing with upstream's 400 text. */
export class ImageValidator {
  private readonly validate: ValidateFunction;

  constructor(config: Pick<GlanceConfig, 'diskFormats' | 'containerFormats'>) {
    const { links: _links, name: _name, ...schema } = imageSchema(config);
    this.validate = createValidators().body.compile({ type: 'object', ...schema });
  }

  check(body: Record<string, unknown>): void {
    if (this.validate(body)) return;
    throw badRequest(`Provided object does not match schema 'image': ${describe(this.validate.errors?.[0], body)}`);
  }
}

/** The first line of the message Python's jsonschema gives for an error. */
function describe(e: ErrorObject | undefined, body: Record<string, unknown>): string {
  if (!e) return 'invalid';
  const path = e.instancePath.split('/').filter(Boolean).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let value: unknown = body;
  for (const p of path) value = (value as Record<string, unknown> | unknown[])[p as never];
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'enum':
      return `${pyRepr(value)} is not one of ${pyRepr(params.allowedValues)}`;
    case 'type': {
      const types = Array.isArray(params.type) ? params.type : String(params.type).split(',');
      return `${pyRepr(value)} is not of type ${types.map((t) => `'${t}'`).join(', ')}`;
    }
    case 'maxLength':
      return `${pyRepr(value)} is too long`;
    case 'minLength':
      return `${pyRepr(value)} is too short`;
    case 'pattern':
      return `${pyRepr(value)} does not match ${pyRepr(params.pattern)}`;
    case 'required':
      return `'${String(params.missingProperty)}' is a required property`;
    default:
      return `${pyRepr(value)} ${e.message ?? 'is invalid'}`;
  }
}
