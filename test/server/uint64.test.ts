// uint64(): a reply's 64-bit field handed to protobufjs as a number where that is faster must
// encode to the very bytes its decimal string did, at every edge (0, 2^32, 2^53, past it,
// negative, fractional, and tags as the loader decodes them).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadPackageDefinition } from '../../client/common/index.js';
import { uint64 } from '../../src/uint64.js';

const locks = loadPackageDefinition()['latchkey.v1.Locks'] as unknown as ServiceDefinition;
/** The encoder of a Lease reply (what Acquire answers), as the server's grpc-js uses it. */
const encodeLease = (fields: object) => locks.Acquire!.responseSerialize(fields);
const encodeSessionResponse = (fields: object) => locks.Session!.responseSerialize(fields);

const lease = (value: string | number) => ({
  name: 'n',
  backend: 'memory',
  lease_id: 'id',
  fencing_token: value,
  expires_at_ms: value,
  owner: 'o',
  ttl_ms: value,
  mode: 'EXCLUSIVE',
  limit: 1,
});

test('uint64 encodes exactly as the decimal string did', () => {
  const numbers = [0, 1, 127, 128, 2 ** 31, 2 ** 32, 1_700_000_000_123, 2 ** 53 - 1, 2 ** 53, 2 ** 64, -1, 1.5];
  for (const n of numbers)
    assert.deepEqual(encodeLease(lease(uint64(n))), encodeLease(lease(String(n))), `number ${n}`);
  const bigints = [0n, 5n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];
  for (const b of bigints)
    assert.deepEqual(encodeLease(lease(uint64(b))), encodeLease(lease(b.toString())), `bigint ${b}`);
  for (const tag of ['0', '1', '42', '007', '999999999999999', '9007199254740993', '18446744073709551615']) {
    const frame = (t: string | number) =>
      encodeSessionResponse({ results: [{ tag: t, released: { released: true } }] });
    assert.deepEqual(frame(uint64(tag)), frame(tag), `tag ${tag}`);
  }
});

test('uint64 gives a number only where a number is exact', () => {
  assert.equal(uint64(2n ** 53n - 1n), 2 ** 53 - 1);
  assert.equal(uint64(2n ** 53n), '9007199254740992');
  assert.equal(uint64(-1), '-1');
  assert.equal(uint64(1.5), '1.5');
  assert.equal(uint64('42'), 42);
  // Not canonical: String() of a number would not give it back.
  assert.equal(uint64('007'), '007');
  assert.equal(uint64('9007199254740993'), '9007199254740993');
});
