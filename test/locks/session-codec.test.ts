// The server reads and writes Locks/Session frames with its own codec (src/locks/session-codec.ts):
// what its handler sees must be what protobuf.js gives, what it writes must read back through
// protobuf.js as protobuf.js's own bytes do, and every other frame must go to protobuf.js.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MethodDefinition } from '@grpc/proto-loader';
import {
  loadPackageDefinition,
  type SessionOp,
  type SessionRequest,
  type SessionResponse,
} from '../../client/common/index.js';
import { sessionRequestDecoder, sessionResponseEncoder } from '../../src/locks/session-codec.js';

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

function random(seed: number) {
  let x = seed;
  const rand = (n: number) => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % n;
  };
  const big = ['9007199254740993', '12345678901234567890', '18446744073709551615'];
  const u64 = (): number | string =>
    rand(4) === 0 ? big[rand(big.length)]! : [0, 1, 127, 128, 2 ** 32, 2 ** 53 - 1, rand(2 ** 30)][rand(7)]!;
  const text = () => ['', 'a', 'orders/42', 'ключ', '鍵 🔑', 'x'.repeat(rand(300))][rand(6)]!;
  return { rand, u64, text };
}

/** A random frame of the ops an SDK writes (through protobuf.js here: the server reads any client's). */
function randomRequest(seed: number): SessionRequest {
  const { rand, u64, text } = random(seed);
  const ops: SessionOp[] = [];
  for (let i = rand(12); i > 0; i--) {
    const tag = u64();
    switch (rand(5)) {
      case 0:
        ops.push({
          tag,
          acquire: {
            name: text(),
            backend: text(),
            ttl_ms: u64(),
            wait_ms: u64(),
            owner: text(),
            limit: [0, 1, 7, 2 ** 32 - 1][rand(4)]!,
            mode: rand(2) === 0 ? 'EXCLUSIVE' : 'SHARED',
          },
        });
        break;
      case 1:
        ops.push({ tag, release: { name: text(), backend: text(), lease_id: text() } });
        break;
      case 2:
        ops.push({ tag, keepalive: {} });
        break;
      case 3:
        ops.push({ tag: 0, cancel: { tag: u64() } });
        break;
      default:
        ops.push({ tag });
    }
  }
  return rand(5) === 0 ? { ops, end: true } : { ops };
}

/** A random frame of the results the service answers. */
function randomResponse(seed: number): SessionResponse {
  const { rand, u64, text } = random(seed);
  const results: NonNullable<SessionResponse['results']> = [];
  for (let i = rand(12); i > 0; i--) {
    const tag = u64();
    switch (rand(5)) {
      case 0:
        results.push({
          tag,
          lease: {
            name: text(),
            backend: ['memory', 'etcd'][rand(2)],
            lease_id: text(),
            fencing_token: u64(),
            expires_at_ms: u64(),
            owner: text(),
            ttl_ms: u64(),
            mode: rand(2) === 0 ? 'EXCLUSIVE' : 'SHARED',
            limit: [0, 1, 7, 2 ** 32 - 1][rand(4)]!,
          },
        });
        break;
      case 1:
        results.push({ tag, released: { released: rand(2) === 0 } });
        break;
      case 2:
        results.push({ tag, kept_alive: { expires_at_ms: u64(), ttl_ms: u64() } });
        break;
      case 3:
        results.push({ tag, error: { code: rand(17), message: text(), reason: text() } });
        break;
      default:
        results.push({ tag });
    }
  }
  return { results };
}

describe('server session codec', () => {
  it('reads 500 random frames of ops as protobuf.js reads them, without it', () => {
    const { decode, calls } = counted();
    for (let seed = 1; seed <= 500; seed++) {
      const buf = method.requestSerialize(randomRequest(seed));
      assert.deepStrictEqual(decode(buf), method.requestDeserialize(buf), `frame ${seed}`);
    }
    assert.equal(calls(), 0);
  });

  it('writes 500 random frames of results that protobuf.js reads back as its own bytes, without it', () => {
    const { encode, calls } = counted();
    for (let seed = 1; seed <= 500; seed++) {
      const frame = randomResponse(seed);
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
