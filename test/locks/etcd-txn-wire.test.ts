// The lock path's Txns on HTTP/2 without etcd3 (src/locks/etcd/txn-wire.ts), against a real
// etcd, directly and through a TCP proxy that cuts or stalls the connection: the answers and
// the errors must be the ones etcd3 gives, and a transport failure must end in time and move
// on to the next host.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCUnavailableError,
  isRecoverableError,
  type ITxnRequest,
} from 'etcd3';
import { type Pauses, TxnWire } from '../../src/locks/etcd/txn-wire.js';
import { etcdMissing, startEtcd, type EtcdMember } from '../support/etcd.js';
import { startTcpProxy, type TcpProxy } from '../support/loopback-proxy.js';
import { freePort } from '../support/ports.js';

const key = (name: string) => Buffer.from(`txn-wire/${name}`);
/** Puts `name` if it is absent, and reads the queue it is in: an acquire's shape. */
const putIfAbsent = (name: string, value = ''): ITxnRequest => ({
  compare: [{ key: key(name), target: 'Create', result: 'Equal', create_revision: 0 }],
  success: [
    { request_put: { key: key(name), value: Buffer.from(value) } },
    { request_range: { key: key(''), range_end: Buffer.from('txn-wire0'), sort_target: 'Create', limit: 10 } },
  ],
  failure: [{ request_range: { key: key(name) } }],
});

const wireOn = (
  hosts: string[],
  options: { opTimeoutMs?: number; pauses?: Pauses; pauseMs?: number; streamsPerConnection?: number } = {},
) =>
  new TxnWire({
    hosts,
    opTimeoutMs: options.opTimeoutMs ?? 5_000,
    pauses: options.pauses ?? new Map(),
    pauseMs: options.pauseMs ?? 0,
    streamsPerConnection: options.streamsPerConnection,
  });

async function rejection(promise: Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const start = performance.now();
  try {
    await promise;
  } catch (err) {
    return { err, ms: performance.now() - start };
  }
  assert.fail('the call was answered');
}

describe('TxnWire on a real etcd', { skip: etcdMissing() }, () => {
  let etcd: EtcdMember;
  let etcd3: Etcd3;
  let proxy: TcpProxy;
  const wires: TxnWire[] = [];
  const wire = (...args: Parameters<typeof wireOn>) => {
    const made = wireOn(...args);
    wires.push(made);
    return made;
  };

  before(async () => {
    etcd = await startEtcd();
    etcd3 = new Etcd3({ hosts: [etcd.endpoint] });
    proxy = await startTcpProxy(etcd.endpoint);
  });
  after(async () => {
    for (const w of wires) w.close();
    etcd3.close();
    await proxy?.close();
    await etcd?.[Symbol.asyncDispose]();
  });

  test('answers are the objects etcd3 gives, for writes and reads alike', async () => {
    const w = wire([etcd.endpoint]);
    const put = await w.txn(putIfAbsent('a', 'one'));
    assert.equal(put.succeeded, true);
    assert.deepEqual(
      put.responses[1]!.response_range.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.create_revision]),
      [['txn-wire/a', 'one', put.header.revision]],
    );
    // The same key again: the compare fails, etcd runs the failure branch.
    const again = await w.txn(putIfAbsent('a', 'two'));
    assert.equal(again.succeeded, false);
    assert.equal(again.responses[0]!.response_range.kvs[0]!.value.toString(), 'one');
    // With no write in between, one read through either client is one answer, field for field.
    const read = putIfAbsent('a');
    assert.deepEqual(await w.txn(read), await etcd3.kv.txn(read));
    const del: ITxnRequest = { compare: [], success: [{ request_delete_range: { key: key('a'), prev_kv: true } }] };
    const deleted = await w.txn(del);
    assert.equal(deleted.responses[0]!.response_delete_range.deleted, '1');
    assert.equal(deleted.responses[0]!.response_delete_range.prev_kvs[0]!.value.toString(), 'one');
  });

  test("etcd's refusals are etcd3's errors, not transport failures", async () => {
    const w = wire([etcd.endpoint]);
    const noLease = await rejection(
      w.txn({ compare: [], success: [{ request_put: { key: key('b'), value: Buffer.alloc(0), lease: '12345' } }] }),
    );
    assert.ok(noLease.err instanceof EtcdLeaseInvalidError, String(noLease.err));
    const twice = await rejection(
      w.txn({
        compare: [],
        success: [
          { request_put: { key: key('c'), value: Buffer.alloc(0) } },
          { request_put: { key: key('c'), value: Buffer.alloc(0) } },
        ],
      }),
    );
    assert.ok(twice.err instanceof GRPCInvalidArgumentError, String(twice.err));
    assert.match((twice.err as Error).message, /duplicate key/);
    assert.equal(isRecoverableError(twice.err as Error), false);
  });

  test('a stalled connection ends at the deadline; the next call connects anew', async () => {
    const w = wire([proxy.address], { opTimeoutMs: 400 });
    await w.txn(putIfAbsent('d'));
    const connections = proxy.accepted;
    proxy.stall();
    try {
      const stalled = await rejection(w.txn(putIfAbsent('e')));
      assert.ok(stalled.err instanceof GRPCDeadlineExceededError, String(stalled.err));
      assert.ok(isRecoverableError(stalled.err as Error));
      assert.ok(stalled.ms >= 390 && stalled.ms < 2_000, `ended after ${stalled.ms.toFixed(0)} ms`);
    } finally {
      proxy.resume();
    }
    // The stalled connection was given up: a new one serves the next call.
    const next = await w.txn(putIfAbsent('f'));
    assert.equal(next.succeeded, true);
    assert.equal(proxy.accepted, connections + 1);
  });

  test('a connection reset mid-call fails at once as UNAVAILABLE, not at the deadline', async () => {
    const w = wire([proxy.address], { opTimeoutMs: 5_000 });
    await w.txn(putIfAbsent('g'));
    proxy.stall();
    const call = rejection(w.txn(putIfAbsent('h')));
    await new Promise((resolve) => setTimeout(resolve, 100));
    proxy.cut();
    proxy.resume();
    const cut = await call;
    assert.ok(cut.err instanceof GRPCUnavailableError, String(cut.err));
    assert.ok(cut.ms < 2_000, `ended after ${cut.ms.toFixed(0)} ms`);
    assert.equal((await w.txn(putIfAbsent('i'))).succeeded, true);
  });

  test('with a host down, every call is answered by the other, and the dead host is passed over', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const pauses: Pauses = new Map();
    const w = wire([dead, etcd.endpoint], { pauses, pauseMs: 1_000 });
    for (let i = 0; i < 8; i++) assert.equal((await w.txn(putIfAbsent(`j${i}`))).succeeded, true);
    assert.ok((pauses.get(dead) ?? 0) > Date.now(), 'the dead host is paused');
    assert.equal(pauses.has(etcd.endpoint), false);
    // One host only, and it is down: the call fails, as a transport failure, without waiting.
    const alone = await rejection(wire([dead]).txn(putIfAbsent('k')));
    assert.ok(alone.err instanceof GRPCUnavailableError, String(alone.err));
    // The message says why: the connection was refused.
    assert.match((alone.err as Error).message, new RegExp(`etcd at ${dead}: .*ECONNREFUSED`));
    assert.ok(alone.ms < 2_000, `ended after ${alone.ms.toFixed(0)} ms`);
  });

  test('a connection carries streamsPerConnection calls, then the next one takes over', async () => {
    const w = wire([proxy.address], { streamsPerConnection: 2 });
    const before = proxy.accepted;
    for (let i = 0; i < 5; i++) assert.equal((await w.txn(putIfAbsent(`n${i}`))).succeeded, true);
    assert.equal(proxy.accepted - before, 3, 'calls 1-2, 3-4 and 5 each on a connection of their own');
    // Calls in flight on a connection that is handed over finish there: the first of these
    // goes with call 5, the next two on a fourth connection (handed over while it connects),
    // the last two on a fifth.
    const txns = await Promise.all(Array.from({ length: 5 }, (_, i) => w.txn(putIfAbsent(`o${i}`))));
    assert.deepEqual(
      txns.map((t) => t.succeeded),
      [true, true, true, true, true],
    );
    assert.equal(proxy.accepted - before, 5);
  });

  test('after close, calls throw ClientClosedError', async () => {
    const w = wire([etcd.endpoint]);
    await w.txn(putIfAbsent('l'));
    w.close();
    await assert.rejects(w.txn(putIfAbsent('m')), ClientClosedError);
  });
});
