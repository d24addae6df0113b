// The server reads and writes Locks/Session frames with its own codec (src/locks/session-codec.ts):
// what its handler sees must be what protobuf.js gives, what it writes must read back through
// protobuf.js as protobuf.js's own bytes do, and every other frame must go to protobuf.js.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadPackageDefinition, type SessionRequest, type SessionResponse } from '../../client/common/index.js';
import { sessionRequestDecoder, sessionResponseEncoder } from '../../src/locks/session-codec.js';
import { randomSessionRequest, randomSessionResponse } from '../support/session-frames.js';

const method = (loadPackageDefinition()['latchkey.v1.Locks'] as Record<string, MethodDefinition<object, object>>)
  .Session!;
type Out = ReturnType<typeof method.requestDeserialize>;

function counted() {
  let calls = 0;
  const decode = sessionRequestDecoder((buf) => {
    calls++;
    return method.requestDeserialize(buf) as never;
  });
  const encode = sessionResponseEncoder((value) => {
    calls++;
    return method.responseSerialize(value);
  });
  return { decode, encode, calls: () => calls };
}

describe('server session codec', () => {
  it('reads 500 random frames of ops as protobuf.js reads them, without it', () => {
    const { decode, calls } = counted();
    for (let seed = 1; seed <= 500; seed++) {
      const buf = method.requestSerialize(randomSessionRequest(seed));
      assert.deepStrictEqual(decode(buf), method.requestDeserialize(buf), `frame ${seed}`);
    }
    assert.equal(calls(), 0);
  });

  it('writes 500 random frames of results that protobuf.js reads back as its own bytes, without it', () => {
    const { encode, calls } = counted();
    for (let seed = 1; seed <= 500; seed++) {
      const frame = randomSessionResponse(seed);
      assert.deepStrictEqual(
        method.responseDeserialize(encode(frame)),
        method.responseDeserialize(method.responseSerialize(frame)),
        `frame ${seed}`,
      );
    }
    assert.equal(calls(), 0);
  });

  it('hands open, Describe, trace_context and malformed frames to protobuf.js on reading', () => {
    const { decode, calls } = counted();
    const frames: SessionRequest[] = [
      { open: { backend: 'memory', ttl_ms: '15000' }, ops: [{ tag: 1, keepalive: {} }] },
      { ops: [{ tag: 2, describe: { name: 'a' } }] },
      { ops: [{ tag: 3, release: { name: 'a', lease_id: 'l' }, trace_context: { traceparent: '00-1-2-01' } }] },
    ];
    for (const [i, frame] of frames.entries()) {
      const buf = method.requestSerialize(frame);
      assert.deepStrictEqual(decode(buf), method.requestDeserialize(buf), `frame ${i}`);
      assert.equal(calls(), i + 1);
    }
    const truncated = method.requestSerialize({ ops: [{ tag: 1, acquire: { name: 'orders/42' } }] }).subarray(0, 8);
    assert.throws(() => method.requestDeserialize(truncated));
    assert.throws(() => decode(truncated));
    assert.equal(calls(), frames.length + 1);
  });

  it('keeps a LockMode value the enum does not name as a number, for validation to refuse', () => {
    const { decode } = counted();
    // AcquireRequest { name: "n", mode: 9 } in op { tag: 1 }
    const acquire = Buffer.from([0x0a, 0x01, 0x6e, 0x38, 0x09]);
    const op = Buffer.concat([Buffer.from([0x08, 0x01, 0x12, acquire.length]), acquire]);
    const buf = Buffer.concat([Buffer.from([0x12, op.length]), op]);
    const out = decode(buf) as Out & { ops: { acquire: { mode: unknown } }[] };
    assert.deepStrictEqual(out, method.requestDeserialize(buf));
    assert.equal(out.ops[0]!.acquire.mode, 9);
  });

  it('hands opened, LockState and values of other types to protobuf.js on writing', () => {
    const { encode, calls } = counted();
    const frames: SessionResponse[] = [
      { opened: { session_id: 'memory.a', backend: 'memory', ttl_ms: '1', expires_at_ms: '2' }, results: [] },
      { results: [{ tag: 1, state: { name: 'a', held: true } }] },
      { results: [{ tag: 2, kept_alive: { expires_at_ms: '1234.5', ttl_ms: 1 } }] },
      { results: [{ tag: 3, lease: { name: 'a', mode: 1 } }] },
    ];
    for (const [i, frame] of frames.entries()) {
      assert.deepStrictEqual(
        method.responseDeserialize(encode(frame)),
        method.responseDeserialize(method.responseSerialize(frame)),
        `frame ${i}`,
      );
      assert.equal(calls(), i + 1);
    }
  });
});
