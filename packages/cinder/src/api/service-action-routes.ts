import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '@onestack/core/errors.ts';
import { parseLogLevel, type LogLevels } from '@onestack/core/log-levels.ts';
import type { ServiceRow } from '../db/schema.ts';
import { invalidInput } from '../domain/errors.ts';
import { enforce, mv, projectOf, type ApiDeps } from './context.ts';

/** upstream's constants.LOG_BINARIES. */
const LOG_BINARIES = ['cinder-scheduler', 'cinder-volume', 'cinder-backup', 'cinder-api'] as const;

/** What this process runs of each binary: the service hosts and the names of its loggers. */
export interface LocalBinaries {
  host: string;
  levels: LogLevels;
  loggers: Record<(typeof LOG_BINARIES)[number], ReadonlySet<string>>;
  /** Service hosts (rows of os-services) this process serves. */
  serves(s: ServiceRow): boolean;
}

const nullableString = { type: ['string', 'null'], minLength: 0, maxLength: 255 };
const cinderHost = { type: ['string', 'null'], minLength: 1, maxLength: 255 };
const binary = { type: 'string', enum: [...LOG_BINARIES, '', '*'] };
const SET_LOG_BODY = { type: 'object', properties: { binary, server: nullableString, prefix: nullableString, level: { type: ['string', 'null'] } }, additionalProperties: false };
const GET_LOG_BODY = { type: 'object', properties: { binary, server: nullableString, prefix: nullableString }, additionalProperties: false };
const FAILOVER_BODY = { type: 'object', properties: { host: cinderHost, backend_id: nullableString, cluster: nullableString }, additionalProperties: false };

/**
 * The os-services actions of replication (failover_host, 3.26 failover) and of log
 * levels (3.32 set-log, get-log), as upstream's ServiceController.update dispatched
 * them before its 2024 split (an action a version lacks: 400 "Unknown action").
 */
export function registerServiceActionRoutes(app: FastifyInstance, deps: ApiDeps, local: LocalBinaries): void {
  const P = '/v3/:project_id/os-services';
  const since = (req: FastifyRequest, version: string) => {
    if (!mv(req, version)) throw invalidInput('Unknown action');
  };

  /** upstream's failover: the services must be replicating (enabled or failed-over); none here is. */
  const failover = async (req: FastifyRequest, clustered: boolean) => {
    projectOf(deps, req);
    enforce(deps, req, 'volume_extension:services:update');
    const b = req.body as { host?: string | null; cluster?: string | null };
    const cluster = clustered ? b.cluster || undefined : undefined;
    const host = b.host || undefined;
    if (!!cluster === !!host) throw invalidInput(clustered ? 'One and only one of cluster and host must be set.' : 'Host field is missing.');
    enforce(deps, req, 'volume:failover_host');
    // No clusters: a cluster names no service.
    const services = cluster ? [] : (await deps.services.list()).filter((s) => s.binary === 'cinder-volume' && (s.host === host || s.host.startsWith(`${host}@`) || s.host.startsWith(`${host}#`)));
    if (!services.length) throw badRequest(host ? `No service found with host=${host}` : `No service found with cluster=${cluster}`);
    if (services.some((s) => s.host !== services[0].host)) throw badRequest('Services from different clusters found.');
    throw invalidInput(`No service could be changed: replication_status in [${services.map((s) => `'${s.host}'`).join(', ')}] must be ['enabled', 'failed-over'] and must be up to failover.`);
  };
  app.put(`${P}/failover_host`, { schema: { body: FAILOVER_BODY } }, (req) => failover(req, mv(req, '3.26')));
  app.put(`${P}/failover`, { schema: { body: FAILOVER_BODY } }, (req) => {
    since(req, '3.26');
    return failover(req, true);
  });

  /** upstream's _log_params_binaries_services: the binaries asked for and their services that are up (this process's). */
  const targets = async (b: { binary?: string; server?: string | null }) => {
    const all = b.binary === undefined || b.binary === '' || b.binary === '*';
    if (b.binary === 'cinder-api') return { api: true, services: [] as ServiceRow[] };
    const services = (await deps.services.list()).filter((s) => (all || s.binary === b.binary) && deps.services.isUp(s) && (!b.server || s.host === b.server) && local.serves(s));
    return { api: all, services };
  };
  const loggersOf = (binaryName: string) => local.loggers[binaryName as (typeof LOG_BINARIES)[number]] ?? new Set<string>();

  app.put(`${P}/set-log`, { schema: { body: SET_LOG_BODY } }, async (req, reply) => {
    since(req, '3.32');
    projectOf(deps, req);
    enforce(deps, req, 'volume_extension:services:update');
    const b = req.body as { binary?: string; server?: string | null; prefix?: string | null; level?: string | null };
    const level = parseLogLevel(b.level);
    if (!level) throw invalidInput(`${b.level ?? ''} is not a valid log level.`);
    const { api, services } = await targets(b);
    if (api) local.levels.set(b.prefix, level, loggersOf('cinder-api'));
    for (const s of services) local.levels.set(b.prefix, level, loggersOf(s.binary));
    reply.code(202);
    return '';
  });

  app.put(`${P}/get-log`, { schema: { body: GET_LOG_BODY } }, async (req) => {
    since(req, '3.32');
    projectOf(deps, req);
    enforce(deps, req, 'volume_extension:services:update');
    const b = req.body as { binary?: string; server?: string | null; prefix?: string | null };
    const { api, services } = await targets(b);
    const out: { host: string; binary: string; levels: Record<string, string> }[] = [];
    if (api && (!b.server || b.server === local.host)) out.push({ host: local.host, binary: 'cinder-api', levels: local.levels.get(b.prefix, loggersOf('cinder-api')) });
    for (const s of services) out.push({ host: s.host, binary: s.binary, levels: local.levels.get(b.prefix, loggersOf(s.binary)) });
    return { log_levels: out };
  });
}
