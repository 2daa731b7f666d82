import { badRequest, conflict, notFound } from '@onestack/core/errors.ts';
import type { Logger } from 'pino';
import type { BlockDevices } from '../domain/block-devices.ts';
import type { Instance, InstanceRepo, Vif } from '../domain/instances.ts';
import type { NeutronClient } from '../domain/service-clients.ts';
import { NoFreeSlotError, type ComputeDriver } from '../virt/driver.ts';
import { refreshDeviceMetadata } from './device-metadata.ts';

export interface HotplugDeps {
  host: string;
  driver: ComputeDriver;
  instances: InstanceRepo;
  blockDevices: BlockDevices;
  neutron: NeutronClient;
  logger: Logger;
  serviceToken(): Promise<string>;
  tapName(portId: string): string;
  /** The manager's network-vif-plugged wait (vif_plugging_timeout, vif_plugging_is_fatal). */
  waitForVifs(uuid: string, vifs: Vif[]): Promise<void>;
}

export interface AttachInterfaceArgs {
  uuid: string;
  networkId?: string;
  portId?: string;
  fixedIp?: string;
  tag?: string;
}

/**
 * nova-compute's interface hot-plug (upstream's attach_interface/detach_interface): the
 * port is bound to this host (or created on the network, then Nova's to delete), recorded
 * in the instance's network info, and plugged into the guest; a failed plug unbinds or
 * deletes the port again.
 */
export function hotplugHandlers(d: HotplugDeps) {
  const instance = async (uuid: string): Promise<Instance> => {
    const inst = await d.instances.find(uuid);
    if (!inst) throw notFound(`Instance ${uuid} could not be found.`);
    return inst;
  };
  const release = async (token: string, v: Pick<Vif, 'portId' | 'createdByNova'>) => {
    const r = v.createdByNova
      ? await d.neutron.call(token, 'DELETE', `/ports/${v.portId}`)
      : await d.neutron.call(token, 'PUT', `/ports/${v.portId}`, { port: { device_id: '', device_owner: '', 'binding:host_id': '' } });
    if (r.status >= 300 && r.status !== 404) d.logger.warn({ port: v.portId, status: r.status }, 'port release failed');
  };

  return {
    attach_interface: async (a: AttachInterfaceArgs): Promise<{ portId: string }> => {
      const inst = await instance(a.uuid);
      const token = await d.serviceToken();
      const binding = { device_id: inst.uuid, device_owner: `compute:${inst.availabilityZone ?? 'nova'}`, 'binding:host_id': d.host };
      let port: any;
      if (a.portId) {
        port = (await d.neutron.expect(token, 'PUT', `/ports/${a.portId}`, { port: binding }, 200)).port;
      } else {
        const body: Record<string, unknown> = { network_id: a.networkId, project_id: inst.projectId, ...binding, ...(a.fixedIp ? { fixed_ips: [{ ip_address: a.fixedIp }] } : {}) };
        const r = await d.neutron.call(token, 'POST', '/ports', { port: body });
        if (r.status === 409) throw conflict(`Fixed IP address ${a.fixedIp} is already in use on instance ${inst.uuid}.`);
        if (r.status !== 201) throw badRequest((r.body as { NeutronError?: { message?: string } })?.NeutronError?.message ?? `Failed to attach network adapter device to ${inst.uuid}`);
        port = (r.body as { port: unknown }).port;
      }
      const vif: Vif = {
        portId: port.id,
        networkId: port.network_id,
        networkName: port.network_id,
        mac: port.mac_address,
        ips: (port.fixed_ips as { ip_address: string }[]).map((f) => ({ address: f.ip_address, version: f.ip_address.includes(':') ? 6 : 4, type: 'fixed' as const })),
        createdByNova: !a.portId,
        tapName: d.tapName(port.id),
        ...(a.tag ? { tag: a.tag } : {}),
      };
      try {
        const net = (await d.neutron.expect(token, 'GET', `/networks/${port.network_id}`, undefined, 200)).network;
        Object.assign(vif, { networkName: net.name || port.network_id, mtu: net.mtu });
        const plugged = d.waitForVifs(inst.uuid, [vif]);
        await d.driver.attachInterface(inst.uuid, { portId: vif.portId, mac: vif.mac, tapName: vif.tapName, mtu: vif.mtu });
        await plugged;
        const now = await instance(inst.uuid);
        await d.instances.update(inst.uuid, { network_info: JSON.stringify([...now.networkInfo, vif]) });
        await refreshDeviceMetadata(d, inst.uuid);
      } catch (e) {
        await d.driver.detachInterface(inst.uuid, vif.portId).catch(() => undefined);
        await release(token, vif);
        if (e instanceof NoFreeSlotError) throw badRequest(`Failed to attach network adapter device to ${inst.uuid}: no free hot-plug slot`);
        throw e;
      }
      return { portId: vif.portId };
    },

    detach_interface: async (a: { uuid: string; portId: string }): Promise<void> => {
      const inst = await instance(a.uuid);
      const vif = inst.networkInfo.find((v) => v.portId === a.portId);
      if (!vif) throw notFound(`Port ${a.portId} is not attached`);
      await d.driver.detachInterface(inst.uuid, vif.portId);
      const now = await instance(inst.uuid);
      await d.instances.update(inst.uuid, { network_info: JSON.stringify(now.networkInfo.filter((v) => v.portId !== a.portId)) });
      await refreshDeviceMetadata(d, inst.uuid);
      await release(await d.serviceToken(), vif);
    },
  };
}
