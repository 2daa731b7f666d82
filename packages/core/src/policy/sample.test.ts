import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RuleDefault } from './enforcer.ts';
import { generateSampleYaml } from './sample.ts';

// Expected texts are upstream's oslo_policy/tests/test_generator.py.
const admin = (description: string): RuleDefault[] => [{ name: 'admin', checkStr: 'is_admin:True', description }];

describe('generateSampleYaml', () => {
  it('prints commented defaults with wrapped descriptions and operations', () => {
    const defaults: RuleDefault[] = [
      { name: 'admin', checkStr: 'is_admin:True', description: 'Basic admin check' },
      {
        name: 'owner',
        checkStr: 'project_id:%(project_id)s',
        description: 'This is a long description to check that line wrapping functions properly',
        operations: [
          { path: '/foo/', method: 'GET' },
          { path: '/test/', method: 'POST' },
        ],
      },
      { name: 'shared', checkStr: 'field:networks:shared=True' },
      { name: 'admin_or_owner', checkStr: 'rule:admin or rule:owner' },
    ];
    assert.equal(
      generateSampleYaml(defaults),
      `# Basic admin check
#"admin": "is_admin:True"

# This is a long description to check that line wrapping functions
# properly
# GET  /foo/
# POST  /test/
#"owner": "project_id:%(project_id)s"

#"shared": "field:networks:shared=True"

#"admin_or_owner": "rule:admin or rule:owner"

`,
    );
  });

  it('prints the intended scopes', () => {
    assert.equal(
      generateSampleYaml([
        {
          name: 'identity:get_user',
          checkStr: 'role:reader',
          description: 'Show user details.',
          operations: [{ path: '/v3/users/{user_id}', method: 'GET' }],
          scopeTypes: ['system', 'domain', 'project'],
        },
      ]),
      `# Show user details.
# GET  /v3/users/{user_id}
# Intended scope(s): system, domain, project
#"identity:get_user": "role:reader"

`,
    );
  });

  it('prints rules deprecated for removal', () => {
    assert.equal(
      generateSampleYaml([
        {
          name: 'foo:post_bar',
          checkStr: 'role:fizz',
          description: 'Create a bar.',
          deprecatedForRemoval: true,
          deprecatedReason: 'This policy is not used anymore',
          deprecatedSince: 'N',
        },
      ]),
      `# DEPRECATED
# "foo:post_bar" has been deprecated since N.
# This policy is not used anymore
# Create a bar.
#"foo:post_bar": "role:fizz"

`,
    );
  });

  it('aliases renamed rules to their new names', () => {
    assert.equal(
      generateSampleYaml([
        {
          name: 'foo:create_bar',
          checkStr: 'role:fizz',
          description: 'Create a bar.',
          deprecatedRule: {
            name: 'foo:post_bar',
            checkStr: 'role:fizz',
            deprecatedReason: 'foo:post_bar is being removed in favor of foo:create_bar',
            deprecatedSince: 'N',
          },
        },
      ]),
      `# Create a bar.
#"foo:create_bar": "role:fizz"

# DEPRECATED
# "foo:post_bar":"role:fizz" has been deprecated since N in favor of
# "foo:create_bar":"role:fizz".
# foo:post_bar is being removed in favor of foo:create_bar
# WARNING: A rule name change has been identified.
#          This may be an artifact of new rules being
#          included which require legacy fallback
#          rules to ensure proper policy behavior.
#          Alternatively, this may just be an alias.
#          Please evaluate on a case by case basis
#          keeping in mind the format for aliased
#          rules is:
#          "old_rule_name": "new_rule_name".
# "foo:post_bar": "rule:foo:create_bar"

`,
    );
  });

  it('notes a changed default under the same name', () => {
    assert.equal(
      generateSampleYaml([
        {
          name: 'foo:create_bar',
          checkStr: 'role:fizz',
          description: 'Create a bar.',
          deprecatedRule: {
            name: 'foo:create_bar',
            checkStr: 'role:old',
            deprecatedReason: 'role:fizz is a more sane default for foo:create_bar',
            deprecatedSince: 'N',
          },
        },
      ]),
      `# Create a bar.
#"foo:create_bar": "role:fizz"

# DEPRECATED
# "foo:create_bar":"role:old" has been deprecated since N in favor of
# "foo:create_bar":"role:fizz".
# role:fizz is a more sane default for foo:create_bar

`,
    );
  });

  it('keeps empty lines without trailing spaces', () => {
    assert.equal(
      generateSampleYaml(admin('Check Summary \n\nThis is a description to check that empty line has no white spaces.')),
      `# Check Summary
#
# This is a description to check that empty line has no white spaces.
#"admin": "is_admin:True"

`,
    );
  });

  it('wraps paragraphs at 70 columns', () => {
    assert.equal(
      generateSampleYaml(
        admin("\nHere's a neat description with a paragraph. We want to make sure that it wraps\nproperly.\n"),
      ),
      `# Here's a neat description with a paragraph. We want to make sure
# that it wraps properly.
#"admin": "is_admin:True"

`,
    );
  });

  it('keeps literal blocks, separating them from a preceding paragraph', () => {
    assert.equal(
      generateSampleYaml(
        admin(`Here's another description.

    This one has a literal block.
    They should not be wrapped, even though they may be longer than 70 chars
`),
      ),
      `# Here's another description.
#
#     This one has a literal block.
#     They should not be wrapped, even though they may be longer than 70 chars
#"admin": "is_admin:True"

`,
    );
    assert.equal(
      generateSampleYaml(
        admin(`Here's a broken description.

We have some text...
    Followed by a literal block without any spaces.
`),
      ),
      `# Here's a broken description.
#
# We have some text...
#
#     Followed by a literal block without any spaces.
#"admin": "is_admin:True"

`,
    );
  });

  it('breaks words longer than a line as textwrap does, after a hyphen when one fits', () => {
    const url = `https://docs.openstack.org/${'x'.repeat(30)}/long-path-${'y'.repeat(40)}`;
    assert.equal(
      generateSampleYaml(admin(`See ${url} for details.`)),
      `# See https://docs.openstack.org/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/long-
# path-yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy for details.
#"admin": "is_admin:True"

`,
    );
  });
});
