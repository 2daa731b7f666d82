import type { ServiceCredentials } from '../auth/keystone-session.ts';
import { opt } from './options.ts';

/**
 * The options of a service's own Keystone user (upstream's [keystone_authtoken]
 * and [oslo_limit] auth options), to spread into the service's group. The
 * defaults match the user `onestack bootstrap` creates for a service that
 * declares one: named after the service, in project `service`.
 */
export function serviceAuthOptions(service: string) {
  return {
    auth_url: opt.url({ help: "Keystone's public endpoint for the service user. Empty: the all-in-one's Keystone on [DEFAULT] public_host." }),
    service_username: opt.string({ default: service, help: 'Service user that validates tokens and talks to Keystone ([keystone_authtoken] username).' }),
    service_password: opt.string({ default: '', secret: true, help: 'Password of service_username. Empty: the one `onestack bootstrap` generated.' }),
    service_user_domain_name: opt.string({ default: 'Default', help: 'Domain of service_username.' }),
    service_project_name: opt.string({ default: 'service', help: 'Project the service user works in.' }),
    service_project_domain_name: opt.string({ default: 'Default', help: 'Domain of service_project_name.' }),
  };
}

/**
 * Where a service's user authenticates and as whom, from its group's values;
 * `fallbackAuthUrl` (the all-in-one's Keystone) stands in for an empty auth_url.
 */
export function serviceIdentity(values: Readonly<Record<string, unknown>>, fallbackAuthUrl: string): { authUrl: string; credentials: ServiceCredentials } {
  if (typeof values.service_username !== 'string') throw new TypeError('serviceIdentity: the group lacks serviceAuthOptions()');
  return {
    authUrl: String(values.auth_url || fallbackAuthUrl),
    credentials: {
      username: String(values.service_username),
      password: String(values.service_password),
      userDomainName: String(values.service_user_domain_name),
      projectName: String(values.service_project_name),
      projectDomainName: String(values.service_project_domain_name),
    },
  };
}
