import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import YAML from 'yaml';
import { tempDir } from '@onestack/testing/index.ts';
import { mergeClouds, removeClouds } from './clouds-yaml.ts';

describe('clouds.yaml', () => {
  const dir = tempDir();
  after(() => dir.remove());
  const entry = { auth: { auth_url: 'http://x/v3', username: 'admin', password: 'p' }, region_name: 'RegionOne', interface: 'public', identity_api_version: 3 };

  it('merges with what the user has, keeping comments, and is private', () => {
    const path = join(dir.path, 'clouds.yaml');
    writeFileSync(path, '# mine\nclouds:\n  other:\n    auth: {auth_url: "http://elsewhere"}\n', { mode: 0o644 });
    mergeClouds({ onestack: entry }, path);
    const text = readFileSync(path, 'utf8');
    assert.match(text, /# mine/);
    const doc = YAML.parse(text);
    assert.equal(doc.clouds.other.auth.auth_url, 'http://elsewhere');
    assert.equal(doc.clouds.onestack.auth.password, 'p');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    mergeClouds({ onestack: { ...entry, auth: { ...entry.auth, password: 'q' } } }, path);
    assert.equal(YAML.parse(readFileSync(path, 'utf8')).clouds.onestack.auth.password, 'q');
    removeClouds(['onestack'], path);
    const after = YAML.parse(readFileSync(path, 'utf8'));
    assert.equal(after.clouds.onestack, undefined);
    assert.ok(after.clouds.other);
  });

  it('creates the file and its directory when missing', () => {
    const path = join(dir.path, 'new', 'openstack', 'clouds.yaml');
    mergeClouds({ onestack: entry }, path);
    assert.equal(YAML.parse(readFileSync(path, 'utf8')).clouds.onestack.region_name, 'RegionOne');
  });
});
