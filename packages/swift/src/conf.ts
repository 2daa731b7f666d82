import { defineGroup, opt, serviceAuthOptions } from '@onestack/core/config/index.ts';
import type { ProxyConfig } from './proxy/app.ts';
import { DEFAULT_CONSTRAINTS } from './proxy/constraints.ts';

/**
 * The proxy's options in [swift], named as upstream's proxy-server.conf
 * ([app:proxy-server], [filter:keystoneauth], [filter:tempurl] …) so an
 * operator's knowledge carries over.
 */
export const swiftOptions = defineGroup('swift', {
  port: opt.port({ default: 8080, help: 'Port of the Object Storage API (the proxy).' }),
  database_connection: opt.string({ default: '', secret: true, help: 'Unused by the proxy (it keeps no database); present for the runtime.' }),
  swift_dir: opt.path({ help: 'Directory of swift.conf and the rings. Empty: <state_dir>/swift.' }),
  account_autocreate: opt.bool({ default: true, help: "Create an account on its owner's first write ([app:proxy-server] account_autocreate), as keystoneauth deployments do." }),
  conn_timeout: opt.float({ default: 0.5, min: 0.01, help: 'Seconds to wait for a storage node to accept a connection.' }),
  node_timeout: opt.float({ default: 10, min: 0.1, help: 'Seconds to wait for a storage node to answer.' }),
  recheck_existence: opt.int({
    default: 10,
    min: 0,
    help: 'Seconds account and container info stays cached in each proxy process (recheck_*_existence). Upstream shares it in memcache for 60 s; a process-local cache is kept shorter.',
  }),
  error_suppression_limit: opt.int({ default: 10, min: 1, help: 'Errors of a storage device before it is skipped for error_suppression_interval.' }),
  error_suppression_interval: opt.int({ default: 60, min: 1, help: 'Seconds a device that failed too often is skipped.' }),
  operator_roles: opt.list({ default: ['admin', 'member'], help: "Roles that own their project's account ([filter:keystoneauth] operator_roles; upstream's default is admin, SwiftOperator)." }),
  reseller_admin_role: opt.string({ default: 'ResellerAdmin', help: 'Role that may act on every account.' }),
  reseller_prefix: opt.string({ default: 'AUTH_', help: 'Prefix of account names (AUTH_<project_id>).' }),
  service_roles: opt.list({ default: [], help: 'If set, an X-Service-Token with one of these roles is needed besides an operator role to own an account.' }),
  project_reader_roles: opt.list({ default: ['reader'], help: "Roles that may read (GET/HEAD) their project's account without owning it." }),
  system_reader_roles: opt.list({ default: [], help: 'Roles that may read every account. Keep empty unless the role is only ever granted for that.' }),
  allow_names_in_acls: opt.bool({ default: true, help: 'Match project and user names, besides ids, in container ACLs (default domain only).' }),
  max_file_size: opt.int({ default: DEFAULT_CONSTRAINTS.max_file_size, min: 1, help: 'Largest object accepted in one PUT, bytes ([swift-constraints]).' }),
  container_listing_limit: opt.int({ default: DEFAULT_CONSTRAINTS.container_listing_limit, min: 1, help: 'Most objects one container listing returns.' }),
  account_listing_limit: opt.int({ default: DEFAULT_CONSTRAINTS.account_listing_limit, min: 1, help: 'Most containers one account listing returns.' }),
  cors_allow_origin: opt.list({ default: [], help: 'Origins every container allows for CORS, besides its own X-Container-Meta-Access-Control-Allow-Origin.' }),
  cors_expose_headers: opt.list({ default: [], help: 'Headers exposed to CORS clients on every container and object response.' }),
  strict_cors_mode: opt.bool({ default: true, help: 'Add CORS headers only for origins a container (or cors_allow_origin) allows.' }),
  yield_frequency: opt.float({ default: 10, min: 0.01, help: "Seconds between the whitespace bytes a running extract-archive or bulk delete answer sends ([filter:bulk] yield_frequency)." }),
  symloop_max: opt.int({ default: 2, min: 1, help: 'How many symlinks deep a GET or HEAD follows before answering 409 ([filter:symlink] symloop_max).' }),
  staticweb_url_base: opt.string({ default: '', help: "Scheme and host of staticweb's redirects, e.g. https://www.example.com ([filter:staticweb] url_base; its path is ignored, as upstream). Empty: the request's own." }),
  ...serviceAuthOptions('swift'),
});

export type SwiftValues = { [K in keyof typeof swiftOptions.options]: unknown };

export function proxyConfig(v: SwiftValues, o: { authUri?: string } = {}): ProxyConfig {
  return {
    constraints: {
      ...DEFAULT_CONSTRAINTS,
      max_file_size: Number(v.max_file_size),
      container_listing_limit: Number(v.container_listing_limit),
      account_listing_limit: Number(v.account_listing_limit),
    },
    timeouts: { connMs: Number(v.conn_timeout) * 1000, nodeMs: Number(v.node_timeout) * 1000 },
    accountAutocreate: Boolean(v.account_autocreate),
    policyName: 'Policy-0',
    recheckMs: Number(v.recheck_existence) * 1000,
    errorSuppressionLimit: Number(v.error_suppression_limit),
    errorSuppressionIntervalMs: Number(v.error_suppression_interval) * 1000,
    keystoneauth: {
      resellerPrefix: String(v.reseller_prefix),
      operatorRoles: [...(v.operator_roles as string[])],
      resellerAdminRole: String(v.reseller_admin_role),
      serviceRoles: [...(v.service_roles as string[])],
      projectReaderRoles: [...(v.project_reader_roles as string[])],
      systemReaderRoles: [...(v.system_reader_roles as string[])],
      allowNamesInAcls: Boolean(v.allow_names_in_acls),
      defaultDomainId: 'default',
      authUri: o.authUri,
    },
    cors: { allowOrigin: [...(v.cors_allow_origin as string[])], exposeHeaders: [...(v.cors_expose_headers as string[])], strict: Boolean(v.strict_cors_mode) },
    staticwebUrlBase: String(v.staticweb_url_base),
    bulkYieldFrequencyMs: Number(v.yield_frequency) * 1000,
    symloopMax: Number(v.symloop_max),
    middleware: [],
  };
}

/** Defaults for tests and tools that build a proxy without a config file. */
export function defaultSwiftValues(): SwiftValues {
  return Object.fromEntries(Object.entries(swiftOptions.options).map(([k, spec]) => [k, (spec as { default: unknown }).default])) as SwiftValues;
}
