import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sharedCloud, type Cloud } from './cloud.ts';

/** The unmodified openstack CLI with osc-placement (python3-osc-placement) against Placement in `onestack up`. */
describe('openstack CLI (osc-placement) against Placement', () => {
  let c: Cloud;
  /** `openstack --os-placement-api-version V ARGS -f json` as the cloud admin. */
  const os = (version: string, ...args: string[]) => c.os('onestack', '--os-placement-api-version', version, ...args);
  const osRaw = (version: string, ...args: string[]) => c.osRaw('onestack', '--os-placement-api-version', version, ...args);

  before(async () => {
    c = await sharedCloud('placement-cli');
  });
  after(async () => {
    await c?.stop();
  });

  it('creates, lists, shows and deletes resource providers, with trees from 1.14', async () => {
    const rp = await os('1.0', 'resource', 'provider', 'create', 'e2e-host-1');
    assert.equal(rp.name, 'e2e-host-1');
    assert.equal(rp.generation, 0);
    const child = await os('1.14', 'resource', 'provider', 'create', '--parent-provider', rp.uuid, 'e2e-host-1-numa0');
    assert.equal(child.parent_provider_uuid, rp.uuid);
    assert.equal(child.root_provider_uuid, rp.uuid);
    const list = await os('1.14', 'resource', 'provider', 'list', '--in-tree', rp.uuid);
    assert.deepEqual(list.map((r: { name: string }) => r.name).sort(), ['e2e-host-1', 'e2e-host-1-numa0']);
    const shown = await os('1.0', 'resource', 'provider', 'show', rp.uuid);
    assert.equal(shown.uuid, rp.uuid);
    await osRaw('1.0', 'resource', 'provider', 'delete', child.uuid);
    const after = await os('1.0', 'resource', 'provider', 'list');
    assert.ok(!after.some((r: { uuid: string }) => r.uuid === child.uuid));
  });

  it('sets and lists inventories, claims with allocation set, and finds allocation candidates', async () => {
    const rp = await os('1.0', 'resource', 'provider', 'create', 'e2e-host-2');
    const inv = await os('1.0', 'resource', 'provider', 'inventory', 'set', rp.uuid, '--resource', 'VCPU=4', '--resource', 'VCPU:allocation_ratio=2.0', '--resource', 'MEMORY_MB=2048');
    const vcpu = inv.find((r: { resource_class: string }) => r.resource_class === 'VCPU');
    assert.equal(vcpu.total, 4);
    assert.equal(vcpu.allocation_ratio, 2);
    const listed = await os('1.0', 'resource', 'provider', 'inventory', 'list', rp.uuid);
    assert.deepEqual(listed.map((r: { resource_class: string }) => r.resource_class).sort(), ['MEMORY_MB', 'VCPU']);
    const consumer = randomUUID();
    const project = randomUUID();
    const user = randomUUID();
    const set = await os('1.39', 'resource', 'provider', 'allocation', 'set', consumer, '--allocation', `rp=${rp.uuid},VCPU=2,MEMORY_MB=512`, '--project-id', project, '--user-id', user, '--consumer-type', 'INSTANCE');
    assert.equal(set[0].resource_provider, rp.uuid);
    const shown = await os('1.39', 'resource', 'provider', 'allocation', 'show', consumer);
    assert.deepEqual(shown[0].resources, { VCPU: 2, MEMORY_MB: 512 });
    assert.equal(shown[0].consumer_type, 'INSTANCE');
    // capacity (4 - 0) * 2 = 8 VCPU, 2 used: 6 more fit, 7 do not.
    const fits = await os('1.39', 'allocation', 'candidate', 'list', '--resource', 'VCPU=6');
    assert.ok(fits.some((r: Record<string, string>) => r['resource provider'] === rp.uuid));
    const tooBig = await os('1.39', 'allocation', 'candidate', 'list', '--resource', 'VCPU=7');
    assert.ok(!tooBig.some((r: Record<string, string>) => r['resource provider'] === rp.uuid));
    const usages = await os('1.39', 'resource', 'provider', 'usage', 'show', rp.uuid);
    assert.deepEqual(Object.fromEntries(usages.map((u: { resource_class: string; usage: number }) => [u.resource_class, u.usage])), { VCPU: 2, MEMORY_MB: 512 });
    const projectUsage = await os('1.9', 'resource', 'usage', 'show', project);
    assert.deepEqual(Object.fromEntries(projectUsage.map((u: { resource_class: string; usage: number }) => [u.resource_class, u.usage])), { VCPU: 2, MEMORY_MB: 512 });
    await osRaw('1.39', 'resource', 'provider', 'allocation', 'delete', consumer);
    await osRaw('1.0', 'resource', 'provider', 'delete', rp.uuid);
  });

  it('lists resource classes and traits, creates custom ones, sets provider traits and aggregates', async () => {
    const classes = await os('1.2', 'resource', 'class', 'list');
    assert.ok(classes.some((r: { name: string }) => r.name === 'VCPU'));
    await osRaw('1.7', 'resource', 'class', 'set', 'CUSTOM_E2E');
    assert.ok((await os('1.2', 'resource', 'class', 'list')).some((r: { name: string }) => r.name === 'CUSTOM_E2E'));
    const traits = await os('1.6', 'trait', 'list');
    assert.ok(traits.some((t: { name: string }) => t.name === 'HW_CPU_X86_AVX2'));
    await osRaw('1.6', 'trait', 'create', 'CUSTOM_E2E_TRAIT');
    const custom = await os('1.6', 'trait', 'list', '--name', 'startswith:CUSTOM_');
    // Other files on the shared cloud may add custom traits of their own.
    assert.ok(custom.some((t: { name: string }) => t.name === 'CUSTOM_E2E_TRAIT'));
    assert.ok(custom.every((t: { name: string }) => t.name.startsWith('CUSTOM_')));
    const rp = await os('1.20', 'resource', 'provider', 'create', 'e2e-host-3');
    const set = await os('1.6', 'resource', 'provider', 'trait', 'set', rp.uuid, '--trait', 'CUSTOM_E2E_TRAIT', '--trait', 'HW_CPU_X86_AVX2');
    assert.deepEqual(set.map((t: { name: string }) => t.name).sort(), ['CUSTOM_E2E_TRAIT', 'HW_CPU_X86_AVX2']);
    assert.equal((await os('1.6', 'resource', 'provider', 'trait', 'list', rp.uuid)).length, 2);
    const agg = randomUUID();
    const generation = (await os('1.20', 'resource', 'provider', 'show', rp.uuid)).generation;
    const aggs = await os('1.19', 'resource', 'provider', 'aggregate', 'set', rp.uuid, '--aggregate', agg, '--generation', String(generation));
    assert.deepEqual(aggs.map((a: { uuid: string }) => a.uuid), [agg]);
    const members = await os('1.3', 'resource', 'provider', 'list', '--aggregate-uuid', agg);
    assert.deepEqual(members.map((r: { uuid: string }) => r.uuid), [rp.uuid]);
  });
});
