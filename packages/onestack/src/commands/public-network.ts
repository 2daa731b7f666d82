import { adminSession, call } from './admin-api.ts';

/**
 * devstack's `public` network, made by `onestack up` when the cloud has none: external
 * (`router:external`), flat on physical network `public`, subnet 172.24.4.0/24 with gateway
 * 172.24.4.1 (which the neutron agent's external namespace takes, so floating IPs are
 * reachable from it) and floating IPs from .10 up. Owned by the admin project, as devstack's.
 * Like the guest image, it never fails `up`: a warning says why it is missing.
 */
export const PUBLIC_NETWORK = 'public';

/** Returns what it did: `created`, `exists`, or `no-network-service`. */
export async function ensurePublicNetwork(o: { identityUrl: string; adminPassword: string }): Promise<'created' | 'exists' | 'no-network-service'> {
  const session = await adminSession(o.identityUrl, o.adminPassword);
  const networkUrl = session.endpoint('network');
  if (!networkUrl) return 'no-network-service';
  const { token } = session;
  const base = `${networkUrl}/v2.0`;
  const { networks } = (await (await call('GET', `${base}/networks?router:external=true&name=${PUBLIC_NETWORK}`, token)).json()) as { networks: unknown[] };
  if (networks.length > 0) return 'exists';
  const { network } = (await (
    await call('POST', `${base}/networks`, token, {
      network: { name: PUBLIC_NETWORK, 'router:external': true, 'provider:network_type': 'flat', 'provider:physical_network': 'public' },
    })
  ).json()) as { network: { id: string } };
  await call('POST', `${base}/subnets`, token, {
    subnet: {
      name: 'public-subnet',
      network_id: network.id,
      ip_version: 4,
      cidr: '172.24.4.0/24',
      gateway_ip: '172.24.4.1',
      enable_dhcp: false,
      allocation_pools: [{ start: '172.24.4.10', end: '172.24.4.254' }],
    },
  });
  return 'created';
}
