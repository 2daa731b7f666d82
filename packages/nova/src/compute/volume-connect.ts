import type { BlockDeviceSpec } from '../virt/driver.ts';
import type { CinderClient, ConnectionInfo, VolumeConnector } from '../domain/service-clients.ts';

/** What connecting a volume to this host needs (a compute manager's Cinder client, host and service token). */
export interface VolumeConnectDeps {
  cinder: CinderClient;
  /** This compute host's name, as Cinder records it on the attachment. */
  host: string;
  /** The address storage backends reach this host on (loopback on an all-in-one). */
  hostIp?: string;
  serviceToken(): Promise<string>;
}

export interface ConnectRequest {
  projectId: string;
  instanceUuid: string;
  volumeId: string;
  /** An attachment the API reserved already; absent: one is created here. */
  attachmentId?: string;
  /** The device name the guest is told about (Cinder shows it as the attachment's device). */
  mountpoint?: string;
  bootIndex?: number;
}

export interface ConnectedVolume {
  attachmentId: string;
  connectionInfo: ConnectionInfo;
  device: BlockDeviceSpec;
}

/** os-brick's connector properties for this host: what Cinder's drivers export the volume to. */
export function hostConnector(d: Pick<VolumeConnectDeps, 'host' | 'hostIp'>, mountpoint?: string): VolumeConnector {
  return { host: d.host, ip: d.hostIp ?? '127.0.0.1', multipath: false, platform: process.arch === 'arm64' ? 'aarch64' : 'x86_64', os_type: 'linux', ...(mountpoint ? { mountpoint } : {}) };
}

export class UnsupportedVolumeError extends Error {}

/**
 * Turns Cinder's connection_info into what the virt driver opens: `file` (a path on this
 * host, qcow2 or raw) or `nbd` (an export over TCP, raw). Any other transport is refused
 * rather than guessed at.
 */
export function blockDeviceFromConnection(volumeId: string, ci: ConnectionInfo, opts: { bootIndex?: number } = {}): BlockDeviceSpec {
  // Cinder nests the transport's fields under `data`, or (onestack's attachments API) puts them beside driver_volume_type.
  const data = (ci.data && typeof ci.data === 'object' ? ci.data : ci) as Record<string, unknown>;
  const readOnly = data.access_mode === 'ro' ? true : undefined;
  const common = { volumeId, serial: volumeId, ...(readOnly ? { readOnly } : {}), ...(opts.bootIndex !== undefined ? { bootIndex: opts.bootIndex } : {}) };
  switch (ci.driver_volume_type) {
    case 'file': {
      if (typeof data.path !== 'string' || !data.path.startsWith('/')) throw new UnsupportedVolumeError(`volume ${volumeId}: file connection without an absolute path`);
      const format = data.format === 'raw' ? 'raw' : data.format === 'qcow2' || data.format === undefined ? 'qcow2' : undefined;
      if (!format) throw new UnsupportedVolumeError(`volume ${volumeId}: unsupported format ${String(data.format)}`);
      return { ...common, path: data.path, format };
    }
    case 'nbd': {
      const port = Number(data.port);
      if (typeof data.host !== 'string' || !data.host || !Number.isInteger(port) || port < 1 || port > 65535 || typeof data.export_name !== 'string') {
        throw new UnsupportedVolumeError(`volume ${volumeId}: nbd connection needs host, port and export_name`);
      }
      return { ...common, nbd: { host: data.host, port, exportName: data.export_name }, format: 'raw' };
    }
    default:
      throw new UnsupportedVolumeError(`volume ${volumeId}: connection type ${String(ci.driver_volume_type)} is not supported on this host`);
  }
}

/**
 * Connects a volume to this host through Cinder's attachments API: creates the
 * attachment unless the API reserved one, gives Cinder this host's connector and turns
 * the answer into a block device. Completing (in-use) is the caller's, once the guest has
 * the disk. On failure an attachment made here is deleted again (the volume is available).
 */
export async function connectVolume(d: VolumeConnectDeps, r: ConnectRequest): Promise<ConnectedVolume> {
  const token = await d.serviceToken();
  const attachmentId = r.attachmentId ?? (await d.cinder.createAttachment(token, r.projectId, r.volumeId, r.instanceUuid)).id;
  try {
    const connectionInfo = await d.cinder.updateAttachment(token, r.projectId, attachmentId, hostConnector(d, r.mountpoint));
    return { attachmentId, connectionInfo, device: blockDeviceFromConnection(r.volumeId, connectionInfo, { bootIndex: r.bootIndex }) };
  } catch (e) {
    if (!r.attachmentId) await d.cinder.deleteAttachment(token, r.projectId, attachmentId).catch(() => undefined);
    throw e;
  }
}

/** Lets go of the volume: the attachment is deleted and Cinder makes the volume available once none is left. */
export async function disconnectVolume(d: Pick<VolumeConnectDeps, 'cinder' | 'serviceToken'>, projectId: string, attachmentId: string): Promise<void> {
  await d.cinder.deleteAttachment(await d.serviceToken(), projectId, attachmentId);
}
