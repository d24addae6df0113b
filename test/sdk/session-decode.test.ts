// The SDK reads Locks/Session answers with its own decoder (client/session-decode.ts): it must
// give, for every frame, exactly the objects protobuf.js gives through the loader, and leave
// to protobuf.js the frames it does not take.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MethodDefinition } from '@grpc/proto-loader';
import {
  loadPackageDefinition,
  type SessionResponse,
  type SessionResponse__Output,
} from '../../client/common/index.js';
import { sessionResponseDecoder } from '../../client/session-decode.js';
import { bytesField, key, varint } from '../support/protowire.js';
import { randomSessionResponse, U64_EDGES } from '../support/session-frames.js';

const method = (loadPackageDefinition()['latchkey.v1.Locks'] as Record<string, MethodDefinition<object, object>>)
  .Session!;
const encode = (message: SessionResponse) => method.responseSerialize(message);
const loader = (buf: Buffer) => method.responseDeserialize(buf) as SessionResponse__Output;

/** The SDK's decoder, counting the frames it hands to the loader. */
function counted() {
  let loaderCalls = 0;
  const decode = sessionResponseDecoder((buf) => {
    loaderCalls++;
    return loader(buf);
  });
  return { decode, calls: () => loaderCalls };
}

/** A length-delimited field. */
const field = bytesField;
/** A field's key byte(s). */
const k = (number: number, wire: 0 | 1 | 2 | 5) => key(number, wire);

describe('SDK session answer decoder', () => {
  it('gives what protobuf.js gives, without it, for 500 random frames of leases, releases, keepalives and errors', () => {
    const { decode, calls } = counted();
    for (let seed = 1; seed <= 500; seed++) {
      const buf = encode(randomSessionResponse(seed));
      assert.deepStrictEqual(decode(buf), loader(buf), `frame ${seed}`);
    }
    assert.equal(calls(), 0);
  });

  it('reads 64-bit values exactly, above 2^53 too', () => {
    const { decode } = counted();
    for (const value of U64_EDGES.map(String)) {
      const out = decode(encode({ results: [{ tag: value, kept_alive: { expires_at_ms: value, ttl_ms: value } }] }));
      assert.deepStrictEqual(out.results[0], {
        tag: value,
        kept_alive: { expires_at_ms: value, ttl_ms: value },
        result: 'kept_alive',
      });
    }
  });

  it('skips fields it does not know, as protobuf.js does', () => {
    const { decode, calls } = counted();
    // A Lease with unknown fields between its own: a varint (20), a fixed64 (21), a string
    // (22) and a fixed32 (23); and a string (30) in the result after it.
    const lease = Buffer.concat([
      field(1, Buffer.from('n')),
      k(20, 0),
      varint(300n),
      field(3, Buffer.from('l')),
      k(21, 1),
      Buffer.alloc(8, 1),
      field(22, Buffer.from('extra')),
      k(9, 0),
      varint(1n),
      k(23, 5),
      Buffer.alloc(4, 2),
    ]);
    const result = Buffer.concat([k(1, 0), varint(3n), field(2, lease), field(30, Buffer.from('later'))]);
    const frame = field(2, result);
    assert.deepStrictEqual(decode(frame), loader(frame));
    assert.equal(decode(frame).results[0]!.lease!.lease_id, 'l');
    assert.equal(calls(), 0);
  });

  it('keeps a LockMode value the enum does not name as a number, as protobuf.js does', () => {
    const lease = Buffer.concat([field(1, Buffer.from('n')), k(8, 0), varint(5n)]);
    const frame = field(2, Buffer.concat([k(1, 0), varint(1n), field(2, lease)]));
    const { decode } = counted();
    assert.deepStrictEqual(decode(frame), loader(frame));
    assert.equal(decode(frame).results[0]!.lease!.mode as unknown, 5);
  });

  it('hands the session opened message and Describe states to protobuf.js, whole', () => {
    const { decode, calls } = counted();
    const opened = encode({
      opened: {
        session_id: 'memory.abc',
        backend: 'memory',
        ttl_ms: '15000',
        expires_at_ms: '1',
        resumed: true,
        leases: [{ name: 'a' }],
      },
      results: [{ tag: '1', released: { released: true } }],
    });
    assert.deepStrictEqual(decode(opened), loader(opened));
    assert.equal(calls(), 1);
    const state = encode({ results: [{ tag: '2', state: { name: 'a', held: true, holders: [{ owner: 'o' }] } }] });
    assert.deepStrictEqual(decode(state), loader(state));
    assert.equal(calls(), 2);
  });

  it('leaves a malformed frame to protobuf.js, which refuses it', () => {
    const { decode, calls } = counted();
    const truncated = encode({ results: [{ tag: '1', lease: { name: 'orders/42' } }] }).subarray(0, 8);
    assert.throws(() => loader(truncated));
    assert.throws(() => decode(truncated));
    assert.equal(calls(), 1);
  });
});
