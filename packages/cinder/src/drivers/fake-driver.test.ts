import { volumeDriverCompliance } from './driver-compliance.ts';
import { FakeVolumeDriver } from './fake-driver.ts';

volumeDriverCompliance('fake driver', async () => {
  const driver = new FakeVolumeDriver();
  return {
    driver,
    write: async (id, offset, data) => driver.write(id, offset / 4096, data),
    read: async (id, offset) => driver.read(id, offset / 4096),
    exists: async (id) => driver.has(id),
    placeExisting: async (name, kind, size, byte) =>
      driver.addExisting(name, Math.ceil(size / 1024 ** 3), { blocks: new Map([[256, Buffer.alloc(4096, byte)]]), unsafe: kind === 'hostile' ? 'a qcow2 with a backing file' : undefined }),
    close: async () => undefined,
  };
});
