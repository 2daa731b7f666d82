import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { badRequest, forbidden, notFound } from '@onestack/core/errors.ts';
import { createHttpServer, type HttpServerOptions } from '@onestack/core/http/index.ts';
import { verifyInstanceSignature } from '@onestack/core/http/instance-signature.ts';
import { ec2MetaData, metaDataJson, networkDataJson, type InstanceMetadataInput } from '../domain/metadata-content.ts';
import type { BlockDevices } from '../domain/block-devices.ts';
import type { Instance, InstanceRepo } from '../domain/instances.ts';

/** Dated OpenStack metadata versions a guest may ask for (nova/api/metadata/base.py OPENSTACK_VERSIONS). */
export const OPENSTACK_VERSIONS = ['2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2016-10-06', '2017-02-22', '2018-08-27', '2019-04-04', '2020-10-14'];
/** EC2 API versions of the EC2-style tree (nova/api/metadata/base.py VERSIONS). */
export const EC2_VERSIONS = ['1.0', '2007-01-19', '2007-03-01', '2007-08-29', '2007-10-10', '2007-12-15', '2008-02-01', '2008-09-01', '2009-04-04'];

export interface MetadataDeps {
  instances: InstanceRepo;
  /** For the EC2 tree's block-device-mapping/ (the volumes' device names). */
  blockDevices?: BlockDevices;
  /** [neutron] metadata_proxy_shared_secret: the proxy signs X-Instance-ID with it. */
  sharedSecret: string;
  logger: Logger;
}

/**
 * Nova's metadata API (port 8775), reached by guests only through Neutron's metadata
 * proxy, which names the instance in X-Instance-ID and signs it: a request whose
 * signature does not verify is refused, so a guest cannot read another's metadata.
 */
export function createMetadataApp(deps: MetadataDeps, http: Pick<HttpServerOptions, 'ops' | 'tls'> = {}): FastifyInstance {
  const app = createHttpServer({ service: 'nova_metadata', faultFormat: 'compute', logger: deps.logger, ...http });

  const instanceOf = async (req: FastifyRequest): Promise<InstanceMetadataInput> => {
    const id = header(req, 'x-instance-id');
    if (!id) throw badRequest('X-Instance-ID header is missing from request.');
    const tenant = header(req, 'x-tenant-id');
    if (!tenant) throw badRequest('X-Tenant-ID header is missing from request.');
    if (!verifyInstanceSignature(deps.sharedSecret, id, header(req, 'x-instance-id-signature'))) {
      deps.logger.warn({ instance: id, forwardedFor: header(req, 'x-forwarded-for') }, 'metadata request with a bad X-Instance-ID-Signature');
      throw forbidden('Invalid proxy request signature.');
    }
    const inst = await deps.instances.find(id);
    // Upstream answers a project mismatch as an unknown instance: it tells a forger nothing.
    if (!inst || inst.projectId !== tenant) throw notFound('The resource could not be found.');
    const volumeDevices = (await deps.blockDevices?.forInstance(inst.uuid))?.filter((b) => b.volumeId && b.bootIndex !== 0 && b.deviceName).map((b) => b.deviceName!);
    return { instance: inst, metadata: await deps.instances.metadata(inst.uuid), keys: keysOf(inst), volumeDevices };
  };

  const text = (reply: FastifyReply, body: string | Buffer) => reply.type(typeof body === 'string' ? 'text/plain; charset=UTF-8' : 'application/octet-stream').send(body);
  const json = (reply: FastifyReply, body: unknown) => reply.type('application/json').send(JSON.stringify(body));
  const openstackVersion = (v: string) => {
    if (v !== 'latest' && !OPENSTACK_VERSIONS.includes(v)) throw notFound('The resource could not be found.');
  };

  app.get('/', async (req, reply) => {
    await instanceOf(req);
    return text(reply, [...EC2_VERSIONS, 'latest'].join('\n'));
  });
  app.get('/openstack', async (req, reply) => {
    await instanceOf(req);
    return text(reply, [...OPENSTACK_VERSIONS, 'latest'].join('\n'));
  });
  app.get('/openstack/:version', async (req, reply) => {
    const { version } = req.params as { version: string };
    openstackVersion(version);
    const m = await instanceOf(req);
    const files = ['meta_data.json', ...(m.instance.userData ? ['user_data'] : []), 'password', 'vendor_data.json', 'network_data.json', 'vendor_data2.json'];
    return text(reply, files.join('\n'));
  });
  app.get('/openstack/:version/:file', async (req, reply) => {
    const { version, file } = req.params as { version: string; file: string };
    openstackVersion(version);
    const m = await instanceOf(req);
    switch (file) {
      case 'meta_data.json':
        return json(reply, metaDataJson(m, version));
      case 'network_data.json':
        return json(reply, networkDataJson(m.instance));
      case 'vendor_data.json':
      case 'vendor_data2.json':
        return json(reply, {});
      case 'password':
        return text(reply, '');
      case 'user_data':
        if (!m.instance.userData) throw notFound('The resource could not be found.');
        return text(reply, Buffer.from(m.instance.userData, 'base64'));
      default:
        throw notFound('The resource could not be found.');
    }
  });
  // The EC2-style tree: /<version>/meta-data/<path>, /<version>/user-data.
  app.get('/:version/*', async (req, reply) => {
    const { version } = req.params as { version: string };
    if (version !== 'latest' && !EC2_VERSIONS.includes(version)) throw notFound('The resource could not be found.');
    const rest = (req.params as { '*': string })['*'];
    const m = await instanceOf(req);
    if (rest === '') return text(reply, ['meta-data/', ...(m.instance.userData ? ['user-data'] : [])].join('\n'));
    if (rest === 'user-data') {
      if (!m.instance.userData) throw notFound('The resource could not be found.');
      return text(reply, Buffer.from(m.instance.userData, 'base64'));
    }
    if (rest !== 'meta-data' && !rest.startsWith('meta-data/')) throw notFound('The resource could not be found.');
    const answer = ec2Lookup(ec2MetaData(m), rest.slice('meta-data'.length).replace(/^\/+|\/+$/g, ''));
    if (answer === undefined) throw notFound('The resource could not be found.');
    return text(reply, answer);
  });
  return app;
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function keysOf(inst: Instance): InstanceMetadataInput['keys'] {
  return inst.keyData ? [{ name: inst.keyName ?? 'key', type: 'ssh', data: inst.keyData }] : [];
}

/**
 * A leaf's value, or a directory's listing (children one a line, directories with a
 * trailing slash). `public-keys/0=name` lists as itself and hides the `0/` it names, as upstream shows it.
 */
export function ec2Lookup(tree: Record<string, string>, path: string): string | undefined {
  if (path && tree[path] !== undefined) return tree[path];
  const prefix = path ? `${path}/` : '';
  const children = new Set<string>();
  for (const key of Object.keys(tree)) {
    if (!key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    const slash = rest.indexOf('/');
    children.add(slash < 0 ? rest : `${rest.slice(0, slash)}/`);
  }
  if (children.size === 0) {
    // `public-keys/0/…` is reached through its `0=name` leaf's index.
    return undefined;
  }
  const named = [...children].filter((c) => c.includes('='));
  return [...children].filter((c) => !(c.endsWith('/') && named.some((n) => n.startsWith(`${c.slice(0, -1)}=`)))).join('\n');
}
