// The SDK writes Locks/Session frames with its own encoder (client/session-encode.ts): for
// every frame, protobuf.js must read back from its bytes exactly what it reads from the bytes
// it would have written itself, and the frames the encoder does not take go to protobuf.js.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadPackageDefinition, type SessionRequest } from '../../client/common/index.js';
import { sessionRequestEncoder } from '../../client/session-encode.js';
import { randomSessionRequest } from '../support/session-frames.js';

const method = (loadPackageDefinition()['latchkey.v1.Locks'] as Record<string, MethodDefinition<object, object>>)
  .Session!;
const loader = (value: SessionRequest) => method.requestSerialize(value);
/** What the server reads. */
const read = (buf: Buffer) => method.requestDeserialize(buf);

function counted() {
  let loaderCalls = 0;
  const encode = sessionRequestEncoder((value) => {
    loaderCalls++;
    return loader(value);
  });
  return { encode, calls: () => loaderCalls };
}

describe('SDK session frame encoder', () => {
  it('writes what protobuf.js reads back as its own bytes, for 500 random frames of acquires, releases, keepalives and cancels', () => {
    const { encode, calls } = counted();
    for (let seed = 1; seed <= 500; seed++) {
      const frame = randomSessionRequest(seed, { sdk: true });
      assert.deepStrictEqual(read(encode(frame)), read(loader(frame)), `frame ${seed}`);
    }
    assert.equal(calls(), 0);
  });

  it('writes 64-bit values exactly, above 2^53 too', () => {
    const { encode } = counted();
    for (const value of ['9007199254740993', '12345678901234567890', '18446744073709551615']) {
      const back = read(encode({ ops: [{ tag: value, acquire: { name: 'n', wait_ms: value } }] })) as {
        ops: { tag: string; acquire: { wait_ms: string } }[];
      };
      assert.equal(back.ops[0]!.tag, value);
      assert.equal(back.ops[0]!.acquire.wait_ms, value);
    }
  });

  it('hands open, end, Describe, traced ops and values of other types to protobuf.js', () => {
    const { encode, calls } = counted();
    const others: SessionRequest[] = [
      { open: { backend: 'memory', ttl_ms: '15000', resume_id: '', owner: '' } },
      { end: true },
      { ops: [{ tag: 1, describe: { name: 'a' } }] },
      { ops: [{ tag: 2, release: { name: 'a', lease_id: 'l' }, trace_context: { traceparent: '00-1-2-01' } }] },
      { ops: [{ tag: 3, acquire: { name: 'a', mode: 1 } }] },
      { ops: [{ tag: 4, acquire: { name: 'a', ttl_ms: 1.5 } }] },
      { ops: [{ tag: 5, acquire: { name: 'a' }, release: { name: 'a' } }] },
    ];
    for (const [i, frame] of others.entries()) {
      assert.deepStrictEqual(read(encode(frame)), read(loader(frame)), `frame ${i}`);
      assert.equal(calls(), i + 1, `frame ${i} went to protobuf.js`);
    }
  });
});
