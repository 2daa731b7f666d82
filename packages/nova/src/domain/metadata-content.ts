import type { DeviceAddresses } from '../virt/driver.ts';
import type { BlockDevice } from './block-devices.ts';
import type { Instance, Vif } from './instances.ts';

/**
 * A tagged device and where the guest finds it: upstream's NetworkInterfaceMetadata and
 * DiskMetadata (nova/objects/virt_device_metadata.py) as its libvirt driver fills them.
 */
export type DeviceMetadata =
  | { type: 'nic'; mac: string; bus: string; address: string; tags: string[]; vfTrusted: boolean }
  /** serial: the volume id (null for a tagged local root disk, as upstream's bdm.volume_id). */
  | { type: 'disk'; serial: string | null; bus: string; address: string; tags: string[] };

/**
 * Upstream's _build_device_metadata: the disks of tagged block device mappings, then the NICs of
 * tagged ports, each at the address the driver placed it (disks before NICs, as libvirt lists a
 * guest's devices). A device the driver has no address for is left out, as upstream leaves out
 * what is not in the domain.
 */
export function buildDeviceMetadata(vifs: Vif[], bdms: BlockDevice[], at: DeviceAddresses): DeviceMetadata[] {
  const out: DeviceMetadata[] = [];
  for (const b of bdms) {
    if (!b.tag) continue;
    const where = b.volumeId ? at.volumes[b.volumeId] : b.destinationType === 'local' && b.bootIndex === 0 ? at.rootDisk : undefined;
    if (where) out.push({ type: 'disk', serial: b.volumeId, bus: where.bus, address: where.address, tags: [b.tag] });
  }
  for (const v of vifs) {
    const where = at.nics[v.portId];
    if (v.tag && where) out.push({ type: 'nic', mac: v.mac, bus: where.bus, address: where.address, tags: [v.tag], vfTrusted: false });
  }
  return out;
}

/** The dated versions of the OpenStack metadata format whose content differs (nova/api/metadata/base.py). */
const GRIZZLY = '2013-04-04';
const LIBERTY = '2015-10-15';
const NEWTON_ONE = '2016-06-30';
const ROCKY = '2018-08-27';
const VICTORIA = '2020-10-14';
/** Dates compare as strings; `latest` has everything. */
const since = (version: string, first: string) => version === 'latest' || version >= first;

/** _get_device_metadata: a device as meta_data.json shows it in this version (vf_trusted from 2018-08-27). */
function deviceJson(d: DeviceMetadata, version: string): Record<string, unknown> {
  if (d.type === 'disk') return { type: 'disk', serial: d.serial, bus: d.bus, address: d.address, tags: d.tags };
  return { ...(since(version, ROCKY) ? { vf_trusted: d.vfTrusted } : {}), type: 'nic', mac: d.mac, bus: d.bus, address: d.address, tags: d.tags };
}

/**
 * What the metadata service and a config drive serve an instance
 * (nova/api/metadata/base.py InstanceMetadata): OpenStack-format meta_data.json,
 * network_data.json, user_data and the EC2-style tree.
 */
export interface InstanceMetadataInput {
  instance: Instance;
  metadata: Record<string, string>;
  /** Key pair as imported (the public key text). */
  keys: { name: string; type: string; data: string }[];
  networks?: { dnsServers?: string[] };
  /** Device names of the volumes attached besides the root disk (/dev/vdb …). */
  volumeDevices?: string[];
}

/**
 * The EC2 tree's block-device-mapping/ as upstream's _get_block_device_mapping: the root disk
 * (ami, root), the flavor's ephemeral and swap disks, then the volumes as ebs0, ebs1 … in
 * device name order. Names as the libvirt driver gives them: vda, then vdb … in that order.
 */
export function blockDeviceMapping(i: Instance, volumeDevices: string[] = []): Record<string, string> {
  const out: Record<string, string> = { ami: 'vda', root: '/dev/vda' };
  let next = 'b'.charCodeAt(0);
  if (i.flavor.ephemeral > 0) out.ephemeral0 = `/dev/vd${String.fromCharCode(next++)}`;
  if (i.flavor.swap > 0) out.swap = `/dev/vd${String.fromCharCode(next++)}`;
  [...volumeDevices].sort().forEach((d, n) => (out[`ebs${n}`] = d));
  return out;
}

/** meta_data.json of a version (a date of OPENSTACK_VERSIONS or `latest`): later fields only from the version that brought them. */
export function metaDataJson(m: InstanceMetadataInput, version = 'latest'): Record<string, unknown> {
  const i = m.instance;
  const publicKeys = Object.fromEntries(m.keys.map((k) => [k.name, k.data]));
  return {
    uuid: i.uuid,
    meta: m.metadata,
    public_keys: publicKeys,
    keys: m.keys.map((k) => ({ name: k.name, type: k.type, data: k.data })),
    hostname: i.hostname,
    name: i.name,
    launch_index: i.launchIndex,
    availability_zone: i.availabilityZone ?? 'nova',
    ...(since(version, GRIZZLY) ? { random_seed: Buffer.from(i.uuid.repeat(16)).toString('base64').slice(0, 684) } : {}),
    ...(since(version, LIBERTY) ? { project_id: i.projectId } : {}),
    ...(since(version, NEWTON_ONE) ? { devices: i.deviceMetadata.map((d) => deviceJson(d, version)) } : {}),
    ...(since(version, VICTORIA) ? { dedicated_cpus: [] } : {}),
  };
}

export function networkDataJson(i: Instance): Record<string, unknown> {
  const links = i.networkInfo.map((v) => ({ id: v.tapName, vif_id: v.portId, type: 'ovs', mtu: v.mtu ?? 1450, ethernet_mac_address: v.mac }));
  const networks = i.networkInfo.flatMap((v, n) =>
    v.ips
      .filter((a) => a.type === 'fixed')
      .map((a, k) => ({ id: `network${n}${k ? `-${k}` : ''}`, type: a.version === 4 ? 'ipv4_dhcp' : 'ipv6_dhcp', link: v.tapName, network_id: v.networkId })),
  );
  return { links, networks, services: [] };
}

export function ec2MetaData(m: InstanceMetadataInput): Record<string, string> {
  const i = m.instance;
  const fixed = i.networkInfo.flatMap((v) => v.ips.filter((a) => a.type === 'fixed' && a.version === 4).map((a) => a.address));
  const floating = i.networkInfo.flatMap((v) => v.ips.filter((a) => a.type === 'floating').map((a) => a.address));
  const out: Record<string, string> = {
    'ami-id': i.imageRef,
    'ami-launch-index': String(i.launchIndex),
    hostname: i.hostname,
    'instance-id': `i-${i.uuid.slice(0, 8)}`,
    'instance-type': i.flavor.name,
    'local-hostname': i.hostname,
    'local-ipv4': fixed[0] ?? '',
    'public-hostname': i.hostname,
    'public-ipv4': floating[0] ?? '',
    'reservation-id': i.reservationId,
    'placement/availability-zone': i.availabilityZone ?? 'nova',
  };
  for (const [k, v] of Object.entries(blockDeviceMapping(i, m.volumeDevices))) out[`block-device-mapping/${k}`] = v;
  m.keys.forEach((k, n) => {
    out[`public-keys/${n}=${k.name}`] = '';
    out[`public-keys/${n}/openssh-key`] = k.data;
  });
  return out;
}

/** The files of a config drive (label config-2), as the QEMU driver's buildConfigDrive takes them. */
export function configDriveFiles(m: InstanceMetadataInput): Record<string, string | Uint8Array> {
  const files: Record<string, string | Uint8Array> = {};
  for (const v of ['latest', '2012-08-10', '2013-04-04', '2013-10-17', '2015-10-15', '2016-06-30', '2018-08-27']) {
    files[`openstack/${v}/meta_data.json`] = JSON.stringify(metaDataJson(m, v));
    files[`openstack/${v}/network_data.json`] = JSON.stringify(networkDataJson(m.instance));
    files[`openstack/${v}/vendor_data.json`] = '{}';
    files[`openstack/${v}/vendor_data2.json`] = '{}';
    if (m.instance.userData) files[`openstack/${v}/user_data`] = Buffer.from(m.instance.userData, 'base64');
  }
  const ec2 = ec2MetaData(m);
  files['ec2/latest/meta-data.json'] = JSON.stringify(ec2);
  if (m.instance.userData) files['ec2/latest/user-data'] = Buffer.from(m.instance.userData, 'base64');
  return files;
}
