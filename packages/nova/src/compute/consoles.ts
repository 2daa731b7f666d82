import { conflict } from '@onestack/core/errors.ts';
import { InvalidInstanceStateError, type ComputeDriver, type ConsoleEndpoint } from '../virt/driver.ts';

/**
 * nova-compute's side of remote consoles: where the proxy connects to for an instance
 * (upstream's get_vnc_console/get_serial_console, minus the token, which the API issues).
 */
export function consoleHandlers(driver: ComputeDriver) {
  return {
    get_console_endpoint: async (a: { uuid: string; protocol: 'vnc' | 'serial' }): Promise<ConsoleEndpoint> => {
      try {
        return a.protocol === 'vnc' ? await driver.getVncConsole(a.uuid) : await driver.getSerialConsole(a.uuid);
      } catch (e) {
        // upstream's InstanceNotReady: the guest is not running.
        if (e instanceof InvalidInstanceStateError) throw conflict(`Instance ${a.uuid} is not ready`);
        throw e;
      }
    },
  };
}
