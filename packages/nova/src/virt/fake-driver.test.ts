import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { tempDir } from '@onestack/testing/temp-dir.ts';
import { computeDriverContract } from './driver-contract.ts';
import { PowerState, type InstanceSpec } from './driver.ts';
import { FakeDriver } from './fake-driver.ts';

let hosts = 0;
const spec = (memoryMb = 128): InstanceSpec => {
  const uuid = randomUUID();
  return {
    uuid,
    name: 'vm',
    hostname: 'vm.novalocal',
    flavor: { vcpus: 1, memoryMb, rootGb: 1, ephemeralGb: 0, swapMb: 0, extraSpecs: {} },
    image: { id: randomUUID(), path: '/nonexistent/fake', properties: {} },
    nics: [],
    blockDevices: [],
  };
};

computeDriverContract('FakeDriver', async () => {
  const scratch = tempDir('onestack-fake-driver-');
  const hostname = `fake-${++hosts}`;
  const driver = new FakeDriver({ hostname, resources: { memoryMb: 4096 } });
  let n = 0;
  return {
    driver,
    spec: () => spec(),
    failingSpec: () => spec(1_000_000),
    volume: async () => ({ volumeId: randomUUID(), path: '/nonexistent/vol', format: 'raw' }),
    nic: async () => ({ portId: randomUUID(), mac: 'fa:16:3e:00:00:01', tapName: `tap${++n}` }),
    attachedVolumes: async (uuid) => driver.attachedVolumes(uuid),
    rootDiskBytes: async (uuid) => driver.rootDiskBytes(uuid),
    leftovers: async (uuid) => [...((await driver.listInstances()).includes(uuid) ? [uuid] : []), ...(driver.hasKept(uuid) ? [`kept ${uuid}`] : [])],
    // The fake keeps its state in the object: "restarting" it means keeping the object.
    reopen: () => driver,
    otherHost: async () => {
      const other = new FakeDriver({ hostname: `fake-${++hosts}` });
      return {
        driver: other,
        target: { instancesDir: other.instancesDir },
        leftovers: async (uuid) => ((await other.listInstances()).includes(uuid) ? [uuid] : []),
      };
    },
    rescueImage: () => ({ id: randomUUID(), path: '/nonexistent/rescue', properties: {} }),
    scratchDir: scratch.path,
    teardown: async () => scratch.remove(),
  };
});

describe('FakeDriver', () => {
  it('counts what its instances use against configurable host resources', async () => {
    const d = new FakeDriver({ hostname: 'fake-res', resources: { vcpus: 4, memoryMb: 1024, localGb: 10 } });
    await d.spawn(spec(512));
    await d.spawn(spec(256));
    const host = await d.getHostInfo();
    assert.deepEqual([host.vcpus, host.memoryMb, host.localGb], [4, 1024, 10]);
    assert.deepEqual([host.vcpusUsed, host.memoryMbUsed, host.localGbUsed], [2, 768, 2]);
    await assert.rejects(d.spawn(spec(512)), /not enough memory/);
    assert.equal((await d.listInstances()).length, 2);
  });

  it('spawns and destroys a thousand instances in well under a second', async () => {
    const d = new FakeDriver({ hostname: 'fake-scale', resources: { memoryMb: 1_000_000 } });
    const t0 = performance.now();
    const specs = Array.from({ length: 1000 }, () => spec(64));
    for (const s of specs) await d.spawn(s);
    assert.equal((await d.getInfo(specs[500].uuid)).powerState, PowerState.RUNNING);
    for (const s of specs) await d.destroy(s.uuid);
    assert.deepEqual(await d.listInstances(), []);
    assert.ok(performance.now() - t0 < 1000);
  });
});
