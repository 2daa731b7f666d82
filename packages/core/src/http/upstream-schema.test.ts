import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { badRequest } from '../errors.ts';
import { pyRepr, UpstreamSchemaValidator } from './upstream-schema.ts';

const size = { type: ['integer', 'string'], pattern: '^[0-9]+$', minimum: 1, maximum: 2147483647, numericString: true };
const schema = {
  type: 'object',
  properties: {
    thing: {
      type: 'object',
      properties: {
        name: { type: ['string', 'null'], minLength: 1, maxLength: 5 },
        size,
        id: { oneOf: [{ type: 'null' }, { type: 'string', format: 'uuid' }] },
        label: { type: 'string', format: 'label' },
        mode: { type: 'string', enum: ['rw', 'ro'] },
        metadata: { type: 'object', patternProperties: { '^[a-z]{1,3}$': { type: 'string' } }, additionalProperties: false },
      },
      required: ['size'],
      additionalProperties: false,
    },
  },
  required: ['thing'],
  additionalProperties: false,
};

const v = new UpstreamSchemaValidator({
  formats: {
    uuid: { check: (x) => /^[0-9a-f]{32}$/.test(String(x).replace(/-/g, '')) },
    label: { check: (x) => String(x).trim() !== '', error: () => badRequest('The label can not be empty.') },
  },
});
const message = (data: unknown) => {
  try {
    v.check(schema, data);
  } catch (e) {
    assert.equal((e as { status: number }).status, 400);
    return (e as Error).message;
  }
  return 'valid';
};

describe('upstream schema validator', () => {
  it('words errors as Python jsonschema with upstream validation wrapper', () => {
    assert.equal(message({ thing: { size: 1 } }), 'valid');
    assert.equal(message({}), "'thing' is a required property");
    assert.equal(message({ thing: { size: 1 }, x: 1, a: 2 }), "Additional properties are not allowed ('a', 'x' were unexpected)");
    assert.equal(message({ thing: { size: 1, other: true } }), "Invalid input for field/attribute thing. Value: {'size': 1, 'other': True}. Additional properties are not allowed ('other' was unexpected)");
    assert.equal(message({ thing: {} }), "Invalid input for field/attribute thing. Value: {}. 'size' is a required property");
    assert.equal(message({ thing: { size: 'x1' } }), "Invalid input for field/attribute size. Value: x1. 'x1' does not match '^[0-9]+$'");
    assert.equal(message({ thing: { size: '0' } }), 'Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1');
    assert.equal(message({ thing: { size: 0 } }), 'Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1');
    assert.equal(message({ thing: { size: 1.5 } }), "Invalid input for field/attribute size. Value: 1.5. 1.5 is not of type 'integer', 'string'");
    assert.equal(message({ thing: { size: 1, name: '' } }), "Invalid input for field/attribute name. Value: . '' should be non-empty");
    assert.equal(message({ thing: { size: 1, name: 'abcdef' } }), "Invalid input for field/attribute name. Value: abcdef. 'abcdef' is too long");
    assert.equal(message({ thing: { size: 1, mode: 'x' } }), "Invalid input for field/attribute mode. Value: x. 'x' is not one of ['rw', 'ro']");
    assert.equal(message({ thing: { size: 1, id: 'nope' } }), "Invalid input for field/attribute id. Value: nope. 'nope' is not valid under any of the given schemas");
    assert.equal(message({ thing: { size: 1, id: null } }), 'valid');
    assert.equal(message({ thing: { size: 1, metadata: { long: 'x' } } }), "Invalid input for field/attribute metadata. Value: {'long': 'x'}. 'long' does not match any of the regexes: '^[a-z]{1,3}$'");
    assert.equal(message({ thing: { size: 1, metadata: { k: 5 } } }), "Invalid input for field/attribute k. Value: 5. 5 is not of type 'string'");
    assert.equal(message({ thing: { size: 1, label: ' ' } }), 'The label can not be empty.');
  });

  it('reports the error Python meets first: properties in schema order before required and additionalProperties', () => {
    assert.equal(message({ thing: { extra: 1, name: 5 } }), "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string', 'null'");
    assert.equal(message({ thing: { mode: 'x', name: 5, size: 1 } }), "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string', 'null'");
  });

  it('writes values as Python repr', () => {
    assert.equal(pyRepr({ a: [1, null, false], "it's": 'x' }), `{'a': [1, None, False], "it's": 'x'}`);
  });
});
