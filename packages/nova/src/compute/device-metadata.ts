import { jsonToDb } from '@onestack/core/db/index.ts';
import type { BlockDevices } from '../domain/block-devices.ts';
import type { Instance, InstanceRepo } from '../domain/instances.ts';
import { buildDeviceMetadata, type DeviceMetadata } from '../domain/metadata-content.ts';
import type { ComputeDriver, DeviceAddresses } from '../virt/driver.ts';

export interface DeviceMetadataDeps {
  driver: ComputeDriver;
  instances: InstanceRepo;
  blockDevices: BlockDevices;
}

/**
 * Records the instance's tagged devices at the addresses given (upstream saves
 * instance.device_metadata wherever its driver rebuilt it: spawn, and each attach and detach
 * of a volume or an interface), for the metadata service and the config drive.
 */
export async function recordDeviceMetadata(d: DeviceMetadataDeps, inst: Pick<Instance, 'uuid' | 'networkInfo'>, at: DeviceAddresses): Promise<DeviceMetadata[]> {
  const devices = buildDeviceMetadata(inst.networkInfo, await d.blockDevices.forInstance(inst.uuid), at);
  await d.instances.update(inst.uuid, { device_metadata: jsonToDb(devices) });
  return devices;
}

/** After a hot-plug: the devices where the driver has them now. */
export async function refreshDeviceMetadata(d: DeviceMetadataDeps, uuid: string): Promise<void> {
  await recordDeviceMetadata(d, await d.instances.get(uuid), await d.driver.deviceAddresses(uuid));
}
