import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSearchValue } from './search-value.ts';

test('search values as upstream documents them', () => {
  assert.deepEqual(parseSearchValue('d74'), { id: 74 });
  assert.deepEqual(parseSearchValue('r4'), { region: 4 });
  assert.deepEqual(parseSearchValue('z1-1.2.3.4'), { zone: 1, ip: '1.2.3.4' });
  assert.deepEqual(parseSearchValue('1.2.3.4'), { ip: '1.2.3.4' });
  assert.deepEqual(parseSearchValue('z1:5678'), { zone: 1, port: 5678 });
  assert.deepEqual(parseSearchValue(':5678'), { port: 5678 });
  assert.deepEqual(parseSearchValue('R5.6.7.8'), { replication_ip: '5.6.7.8' });
  assert.deepEqual(parseSearchValue('R:5678'), { replication_port: 5678 });
  assert.deepEqual(parseSearchValue('1.2.3.4R5.6.7.8'), { ip: '1.2.3.4', replication_ip: '5.6.7.8' });
  assert.deepEqual(parseSearchValue('/sdb1'), { device: 'sdb1' });
  assert.deepEqual(parseSearchValue('_"snet: 5.6.7.8"'), { meta: 'snet: 5.6.7.8' });
  assert.deepEqual(parseSearchValue('z1-[::1]:5678'), { zone: 1, ip: '::1', port: 5678 });
  assert.deepEqual(parseSearchValue('d74r4z1-1.2.3.4:5678/sdb1_"snet: 5.6.7.8"'), { id: 74, region: 4, zone: 1, ip: '1.2.3.4', port: 5678, device: 'sdb1', meta: 'snet: 5.6.7.8' });
  assert.deepEqual(parseSearchValue('r1z2-storage-1.example:6200R10.0.0.2:6300/d1'), {
    region: 1,
    zone: 2,
    ip: 'storage-1.example',
    port: 6200,
    replication_ip: '10.0.0.2',
    replication_port: 6300,
    device: 'd1',
  });
  assert.throws(() => parseSearchValue(''), /Invalid <search-value>/);
  assert.throws(() => parseSearchValue('z1!x'), /Invalid <search-value>/);
});
