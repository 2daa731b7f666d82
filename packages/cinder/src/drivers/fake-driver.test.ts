import { volumeDriverCompliance } from './driver-compliance.ts';
import { FakeVolumeDriver } from './fake-driver.ts';

volumeDriverCompliance('fake driver', async () => {
  const driver = new FakeVolumeDriver();
  return {
    driver,
    write: async (id, offset, data) => driver.write(id, offset / 4096, data),
    read: async (id, offset) => driver.read(id, offset / 4096),
    exists: async (id) => driver.has(id),
    close: async () => undefined,
  };
});
