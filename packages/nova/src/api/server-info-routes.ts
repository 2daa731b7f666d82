import type { FastifyInstance } from 'fastify';
import { conflict, notFound } from '@onestack/core/errors.ts';
import { jsonToDb } from '@onestack/core/db/index.ts';
import { COMPUTE_TOPIC } from '../compute/manager.ts';
import type { Instance } from '../domain/instances.ts';
import { VmState } from '../domain/states.ts';
import { PowerState, type InstanceInfo } from '../virt/driver.ts';
import type { Bus } from '@onestack/core/bus/bus.ts';
import { mv, serverFor, type ApiDeps } from './context.ts';

/** The encrypted password the guest posted to the metadata service, kept in system_metadata in four chunks, as upstream. */
const PASSWORD_KEYS = ['password_0', 'password_1', 'password_2', 'password_3'];

const STATE_NAMES: Record<number, string> = { [PowerState.NOSTATE]: 'pending', [PowerState.RUNNING]: 'running', [PowerState.PAUSED]: 'paused', [PowerState.SHUTDOWN]: 'shutdown', [PowerState.CRASHED]: 'crashed', [PowerState.SUSPENDED]: 'suspended' };

/** 2.48's driver-independent diagnostics (upstream's nova.objects.Diagnostics), from what the driver knows. */
function diagnostics(inst: Instance, info: InstanceInfo & { hypervisorType: string }) {
  return {
    state: STATE_NAMES[info.powerState] ?? 'pending',
    driver: info.hypervisorType === 'QEMU' ? 'libvirt' : info.hypervisorType.toLowerCase(),
    hypervisor: info.hypervisorType.toLowerCase(),
    hypervisor_os: 'linux',
    uptime: null,
    config_drive: inst.configDrive,
    num_cpus: info.vcpus,
    num_nics: inst.networkInfo.length,
    num_disks: 1 + (inst.flavor.ephemeral > 0 ? 1 : 0) + (inst.flavor.swap > 0 ? 1 : 0),
    memory_details: { maximum: info.memoryMb, used: null },
    cpu_details: [],
    nic_details: inst.networkInfo.map((v) => ({ mac_address: v.mac, rx_octets: null, rx_errors: null, rx_drop: null, rx_packets: null, rx_rate: null, tx_octets: null, tx_errors: null, tx_drop: null, tx_packets: null, tx_rate: null })),
    disk_details: [],
  };
}

/** GET/DELETE /servers/{id}/os-server-password, GET /servers/{id}/diagnostics (admin) and GET /servers/{id}/topology (2.78). */
export function registerServerInfoRoutes(app: FastifyInstance, deps: ApiDeps, bus: Pick<Bus, 'call'>): void {
  app.get('/v2.1/servers/:server_id/os-server-password', async (req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-server-password:show');
    return { password: PASSWORD_KEYS.map((k) => inst.systemMetadata[k] ?? '').join('') };
  });

  app.delete('/v2.1/servers/:server_id/os-server-password', async (req, reply) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-server-password:clear');
    const sys = { ...inst.systemMetadata };
    for (const k of PASSWORD_KEYS) delete sys[k];
    await deps.instances.update(inst.uuid, { system_metadata: jsonToDb(sys) });
    return reply.code(204).send();
  });

  app.get('/v2.1/servers/:server_id/diagnostics', async (req) => {
    const inst = await serverFor(deps, req, 'os_compute_api:os-server-diagnostics');
    if (!inst.host || inst.vmState === VmState.BUILDING) throw conflict(`Instance ${inst.uuid} is not ready`);
    const info = await bus.call<InstanceInfo & { hypervisorType: string }>(COMPUTE_TOPIC, 'get_instance_diagnostics', { uuid: inst.uuid }, { host: inst.host, timeoutMs: 30_000 });
    // Before 2.48 the answer was the driver's own dict; libvirt's names memory in KiB.
    if (!mv(req, '2.48')) return { memory: info.memoryMb * 1024, 'memory-actual': info.memoryMb * 1024 };
    return diagnostics(inst, info);
  });

  // 2.78. An instance has a NUMA topology only when its flavor or image asks for NUMA placement
  // (hw:numa_nodes, hw:cpu_policy, hugepages); this Nova's scheduler and drivers place none, so
  // every instance has none and the answer is upstream's for an instance without one.
  app.get('/v2.1/servers/:server_id/topology', async (req) => {
    if (!mv(req, '2.78')) throw notFound('The resource could not be found.');
    await serverFor(deps, req, 'compute:server:topology:index');
    return { nodes: [], pagesize_kb: null };
  });
}
