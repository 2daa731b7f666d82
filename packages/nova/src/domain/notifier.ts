import type { Bus, Priority } from '@onestack/core/bus/bus.ts';
import type { Logger } from 'pino';
import type { Instance } from './instances.ts';

export type NotificationSink = Pick<Bus, 'notify'>;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z'));

/**
 * Nova's notifications in both of upstream's formats ([notifications]
 * notification_format = both): unversioned `compute.instance.create.start` on
 * `notifications` (what Ceilometer consumes) and versioned `instance.create.start`
 * with an InstanceActionPayload on `versioned_notifications`.
 */
export class InstanceNotifier {
  constructor(
    private readonly sink: NotificationSink | undefined,
    private readonly host: string,
    private readonly logger: Pick<Logger, 'warn'>,
  ) {}

  /** `action` as upstream names it: create, delete, power_off, power_on, reboot, pause, unpause, suspend, resume … */
  /** `extra.payload`: a versioned payload that extends InstanceActionPayload with fields of its own (InstanceActionVolumeSwapPayload …). */
  send(i: Instance, action: string, phase: 'start' | 'end' | 'error', extra: { fault?: { message: string }; payload?: { name: string; version: string; fields: Record<string, unknown> } } = {}): void {
    if (!this.sink) return;
    const priority: Priority = phase === 'error' ? 'ERROR' : 'INFO';
    const legacy = {
      tenant_id: i.projectId,
      user_id: i.userId,
      instance_id: i.uuid,
      display_name: i.name,
      hostname: i.hostname,
      host: i.host,
      node: i.node,
      instance_type: i.flavor.name,
      instance_type_id: i.flavor.id,
      instance_flavor_id: i.flavor.id,
      memory_mb: i.flavor.ram,
      vcpus: i.flavor.vcpus,
      root_gb: i.flavor.disk,
      ephemeral_gb: i.flavor.ephemeral,
      disk_gb: i.flavor.disk + i.flavor.ephemeral,
      image_ref_url: i.imageRef,
      state: i.vmState,
      state_description: i.taskState ?? '',
      created_at: iso(i.createdAt),
      launched_at: iso(i.launchedAt) ?? '',
      terminated_at: iso(i.terminatedAt) ?? '',
      deleted_at: iso(i.deletedAt) ?? '',
      availability_zone: i.availabilityZone,
      fixed_ips: i.networkInfo.flatMap((v) => v.ips.filter((a) => a.type === 'fixed').map((a) => ({ address: a.address, version: a.version, type: 'fixed', label: v.networkName, vif_mac: v.mac }))),
      ...(extra.fault ? { message: extra.fault.message } : {}),
    };
    const versioned = {
      'nova_object.name': extra.payload?.name ?? 'InstanceActionPayload',
      'nova_object.namespace': 'nova',
      'nova_object.version': extra.payload?.version ?? '1.8',
      'nova_object.data': {
        ...extra.payload?.fields,
        uuid: i.uuid,
        tenant_id: i.projectId,
        user_id: i.userId,
        display_name: i.name,
        display_description: i.description,
        host_name: i.hostname,
        host: i.host,
        node: i.node,
        state: i.vmState,
        task_state: i.taskState,
        power_state: ['pending', 'running', '', 'paused', 'shutdown', '', 'crashed', 'suspended'][i.powerState] ?? 'pending',
        image_uuid: i.imageRef,
        flavor: { 'nova_object.name': 'FlavorPayload', 'nova_object.namespace': 'nova', 'nova_object.version': '1.4', 'nova_object.data': { flavorid: i.flavor.id, name: i.flavor.name, memory_mb: i.flavor.ram, vcpus: i.flavor.vcpus, root_gb: i.flavor.disk, ephemeral_gb: i.flavor.ephemeral, swap: i.flavor.swap, extra_specs: i.flavor.extraSpecs } },
        availability_zone: i.availabilityZone,
        created_at: iso(i.createdAt),
        launched_at: iso(i.launchedAt),
        terminated_at: iso(i.terminatedAt),
        deleted_at: iso(i.deletedAt),
        locked: i.lockedBy !== null,
        ip_addresses: i.networkInfo.flatMap((v) => v.ips.map((a) => ({ 'nova_object.name': 'IpPayload', 'nova_object.namespace': 'nova', 'nova_object.version': '1.0', 'nova_object.data': { address: a.address, version: a.version, mac: v.mac, label: v.networkName, port_uuid: v.portId, device_name: v.tapName } }))),
        reservation_id: i.reservationId,
        fault: extra.fault ? { 'nova_object.name': 'ExceptionPayload', 'nova_object.namespace': 'nova', 'nova_object.version': '1.1', 'nova_object.data': { exception_message: extra.fault.message } } : null,
      },
    };
    const publisher = `nova-compute:${this.host}`;
    const send = (topic: string, eventType: string, payload: unknown) =>
      this.sink!.notify({ topic, eventType, publisherId: topic === 'notifications' ? `compute.${this.host}` : publisher, priority, payload }).catch((err: unknown) =>
        this.logger.warn({ err, event_type: eventType }, 'notification failed'),
      );
    void send('notifications', `compute.instance.${action}.${phase}`, legacy);
    void send('versioned_notifications', `instance.${action}.${phase}`, versioned);
  }
}
