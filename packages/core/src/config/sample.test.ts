import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commonOptions } from './common-options.ts';
import { defineGroup, opt } from './options.ts';
import { sampleConfig } from './sample.ts';

describe('sampleConfig', () => {
  it('shows every option commented out with its help, type, limits and default', () => {
    const keystone = defineGroup(
      'keystone',
      {
        token_expiration: opt.int({ default: 3600, min: 1, help: 'Token lifetime in seconds.' }),
        password: opt.string({ secret: true, help: 'A password.' }),
      },
      { help: 'Identity service options.' },
    );
    const text = sampleConfig([commonOptions, keystone]);
    assert.ok(text.includes('\n[DEFAULT]\n'));
    assert.ok(text.includes('#state_dir = /var/lib/onestack\n'));
    assert.ok(text.includes('# Possible values:\n# trace\n# debug\n# info\n# warn\n# error\n# fatal\n#log_level = info\n'));
    assert.ok(text.includes('#transport_url = inprocess://\n'));
    assert.ok(text.includes('#debug = false\n'));
    assert.ok(text.includes('\n[keystone]\n\n#\n# Identity service options.\n#\n'));
    assert.ok(text.includes('# Token lifetime in seconds. (integer value)\n# Minimum value: 1\n#token_expiration = 3600\n'));
    assert.ok(text.includes('# A password. (string value)\n#password =\n'));
    for (const line of text.split('\n')) assert.ok(line.length <= 79, line);
  });
});
