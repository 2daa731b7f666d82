import type { Instance } from './instances.ts';

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

export function metaDataJson(m: InstanceMetadataInput): Record<string, unknown> {
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
    random_seed: Buffer.from(i.uuid.repeat(16)).toString('base64').slice(0, 684),
    project_id: i.projectId,
    devices: [],
    dedicated_cpus: [],
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
    files[`openstack/${v}/meta_data.json`] = JSON.stringify(metaDataJson(m));
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
