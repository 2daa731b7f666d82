import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from './metrics.ts';

describe('createMetrics', () => {
  it('records HTTP request durations per service in one process-wide registry', async () => {
    const keystone = createMetrics('keystone');
    const nova = createMetrics('nova');
    assert.equal(keystone.registry, nova.registry);
    keystone.observeHttpRequest('GET', '/v3/users/:user_id', 200, 0.003);
    keystone.observeHttpRequest('GET', '/v3/users/:user_id', 200, 0.2);
    nova.observeHttpRequest('POST', '/v2.1/servers', 202, 1.5);
    const text = await keystone.render();
    assert.match(keystone.contentType, /^text\/plain/);
    assert.ok(
      text.includes(
        'onestack_http_request_duration_seconds_count{service="keystone",method="GET",route="/v3/users/:user_id",status="200"} 2',
      ),
      text,
    );
    assert.ok(
      text.includes(
        'onestack_http_request_duration_seconds_bucket{le="0.005",service="keystone",method="GET",route="/v3/users/:user_id",status="200"} 1',
      ),
    );
    assert.ok(text.includes('onestack_http_request_duration_seconds_count{service="nova",method="POST",route="/v2.1/servers",status="202"} 1'));
    assert.match(text, /^process_cpu_user_seconds_total /m);
  });
});
