import { ApiError, badRequest, conflict, forbidden, notFound } from '@onestack/core/errors.ts';

/** Nova's messages for its common faults, worded as upstream's exceptions. */
export const instanceNotFound = (uuid: string) => notFound(`Instance ${uuid} could not be found.`);
export const flavorNotFound = (id: string) => notFound(`Flavor ${id} could not be found.`);
/** VersionNotFoundForAPIMethod: a method asked for below (or above) its microversions answers a bare 404. */
export const versionNotFound = () => notFound('The resource could not be found.');
export const keypairNotFound = (name: string, userId: string) => notFound(`Keypair ${name} not found for user ${userId}`);

/** InstanceInvalidState raised by check_instance_state, as the API renders it (409). */
export function invalidState(uuid: string, attr: 'vm_state' | 'task_state' | 'launched_at', state: string | null, method: string): ApiError {
  return conflict(`Cannot '${method}' instance ${uuid} while it is in ${attr} ${state ?? 'None'}`);
}

export function instanceLocked(uuid: string): ApiError {
  return conflict(`Instance ${uuid} is locked`);
}

/** QuotaError as the servers API renders it: 403 Forbidden. */
export function quotaExceeded(overs: string[], req: Record<string, number>, used: Record<string, number>, allowed: Record<string, number>): ApiError {
  const r = overs[0];
  const resource = r === 'ram' ? 'ram' : r === 'cores' ? 'cores' : 'instances';
  const msg =
    overs.length === 1 && resource === 'instances'
      ? `Quota exceeded for instances: Requested ${req.instances}, but already used ${used.instances} of ${allowed.instances} instances`
      : `Quota exceeded for ${overs.join(', ')}: Requested ${overs.map((o) => req[o]).join(', ')}, but already used ${overs.map((o) => used[o]).join(', ')} of ${overs.map((o) => allowed[o]).join(', ')} ${overs.join(', ')}`;
  return forbidden(msg);
}

export { badRequest, conflict, forbidden, notFound };
