/**
 * nova-compute registers its host only once Placement, Neutron and Glance answer, so a
 * little after the services are up: `up` waits for it, else a `server create` right after
 * `up` fails with "There are no compute hosts". Ready means what the scheduler needs: a
 * hypervisor whose service is up and enabled, and its resource provider in Placement.
 */
import { adminSession, call } from './admin-api.ts';

/** A first registration on a loaded 2-core machine takes a few seconds; a minute means something is wrong. */
export const COMPUTE_READY_TIMEOUT_MS = 60_000;
const POLL_MS = 250;

interface Hypervisor {
  id: string;
  hypervisor_hostname: string;
  state: string;
  status: string;
}

/** The hostname of the first ready compute host; throws a readable error once timeoutMs have passed without one. */
export async function waitForCompute(o: { identityUrl: string; adminPassword: string; timeoutMs?: number }): Promise<string> {
  const timeoutMs = o.timeoutMs ?? COMPUTE_READY_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const session = await adminSession(o.identityUrl, o.adminPassword);
  const compute = session.endpoint('compute');
  const placement = session.endpoint('placement');
  if (!compute || !placement) throw new Error('the catalog has no public compute or placement endpoint');
  let seen = 'no hypervisor is registered';
  for (;;) {
    // 2.53: hypervisor ids are the compute nodes' uuids, which are their resource providers' uuids.
    const res = await call('GET', `${compute}/os-hypervisors/detail`, session.token, undefined, { 'openstack-api-version': 'compute 2.53' });
    const { hypervisors } = (await res.json()) as { hypervisors: Hypervisor[] };
    for (const h of hypervisors) {
      if (h.state !== 'up' || h.status !== 'enabled') {
        seen = `hypervisor ${h.hypervisor_hostname} is ${h.state} and ${h.status}`;
        continue;
      }
      const rp = await fetch(`${placement}/resource_providers/${h.id}`, { headers: { 'x-auth-token': session.token }, signal: AbortSignal.timeout(30_000) });
      if (rp.ok) return h.hypervisor_hostname;
      seen = `hypervisor ${h.hypervisor_hostname} has no resource provider in Placement yet (${rp.status})`;
    }
    if (Date.now() + POLL_MS > deadline) {
      throw new Error(`nova-compute did not register within ${timeoutMs / 1000} s (${seen}); servers cannot be scheduled until it does. See: onestack logs nova`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
