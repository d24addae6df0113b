// A waiter's etcd lease through an etcd hiccup: one member stalled (SIGSTOP) while the
// waiter's lease is granted, and the leader killed (SIGKILL) just as waiters arrive. etcd
// answers the grant late but the lease is sound, so a waiter with a long wait_ms must wait on
// and be granted when the lock is free, never be refused early for a lease it still has.
// Real 3-member etcd clusters, real latchkey servers; members are signalled by PID.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { Lease__Output } from '../../client/generated/latchkey/v1/Lease.js';
import type { LockState__Output } from '../../client/generated/latchkey/v1/LockState.js';
import { etcdMissing, startEtcdCluster } from '../support/etcd.js';
import { etcdLeader, sleep, until } from '../support/faults.js';
import { startServer, type TestServer } from '../support/server.js';

const PREFIX = `latchkey-waiter-lease-${process.pid}/`;
/** The waiters' lease: short, so that a clock started before the grant runs out during the hiccup. */
const WAITER_TTL_MS = 2_000;
const WAIT_MS = 15_000;
/** Inside the 1.5–2.5 s that a stalled member or an election takes in practice. */
const STALL_MS = 2_000;

let seq = 0;
const fresh = (label: string) => `${label}-${Date.now()}-${seq++}`;

function locksOf(server: TestServer) {
  const call = <Res>(method: string, request: object, options?: grpc.CallOptions) =>
    server.call<Res>(server.locks, method, { backend: 'etcd', ...request }, options);
  return {
    acquire: (name: string, fields: object = {}) => call<Lease__Output>('Acquire', { name, ttl_ms: 10_000, ...fields }),
    release: (lease: Lease__Output) =>
      call<{ released: boolean }>('Release', { name: lease.name, lease_id: lease.lease_id }),
    describe: (name: string) => call<LockState__Output>('Describe', { name }),
  };
}

/** A call whose outcome can be checked without awaiting it (and never rejects unhandled). */
function watched<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: grpc.ServiceError; atMs?: number } = { settled: false };
  const started = Date.now();
  const done = promise.then(
    (value) => Object.assign(state, { settled: true, value, atMs: Date.now() - started }),
    (error: grpc.ServiceError) => Object.assign(state, { settled: true, error, atMs: Date.now() - started }),
  );
  return { state, done };
}

/**
 * Waits (bounded) until every lock in `names` has one waiter queued, failing at once if any
 * of the waiting calls was answered meanwhile.
 */
async function untilQueued(L: ReturnType<typeof locksOf>, names: readonly string[], waiting: readonly Watched[]) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    for (const [i, w] of waiting.entries()) assertStillWaiting(`waiter ${i}`, w.state);
    const states = await Promise.all(names.map((name) => L.describe(name).catch(() => undefined)));
    if (states.every((s) => s?.waiters === 1)) return;
    assert.ok(
      Date.now() < deadline,
      `waiters not queued within 15 s: ${JSON.stringify(states.map((s) => s?.waiters))}`,
    );
    await sleep(50);
  }
}

type Watched = ReturnType<typeof watched<Lease__Output>>;

function assertStillWaiting(label: string, state: ReturnType<typeof watched>['state']): void {
  assert.ok(
    !state.settled,
    `${label} was answered after ${state.atMs} ms while the lock was still held: ${state.error?.code} ${state.error?.details ?? 'granted'}`,
  );
}

describe('etcd waiters through an etcd hiccup (3-member cluster)', { skip: etcdMissing() }, () => {
  test('a waiter whose etcd member stalls (SIGSTOP) while its lease is granted waits on and is granted', {
    timeout: 60_000,
  }, async () => {
    await using cluster = await startEtcdCluster(3);
    const leader = await etcdLeader(cluster);
    const stalled = cluster.members.find((m) => m !== leader)!;
    await using holderServer = await startServer({ etcdEndpoints: cluster.endpoints, etcdPrefix: PREFIX });
    // The waiter's server knows only the member that stalls, so its lease grant is the one held up.
    await using waiterServer = await startServer({ etcdEndpoints: stalled.endpoint, etcdPrefix: PREFIX });
    const H = locksOf(holderServer);
    const W = locksOf(waiterServer);
    const name = fresh('stall');
    const held = await H.acquire(name, { owner: 'holder' });

    const pid = stalled.pid!;
    process.kill(pid, 'SIGSTOP');
    let waiting: Watched;
    try {
      // The signal is delivered asynchronously: wait until the kernel reports the member stopped.
      await until('the member stopped', 5_000, () =>
        /^\d+ \(.*\) [Tt] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) ? true : undefined,
      );
      waiting = watched(W.acquire(name, { owner: 'waiter', ttl_ms: WAITER_TTL_MS, wait_ms: WAIT_MS }));
      await sleep(STALL_MS);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await untilQueued(H, [name], [waiting]);
    // Held for 1.5 TTLs more: the waiter's lease must be kept alive, not just have been lucky.
    await sleep(WAITER_TTL_MS * 1.5);
    assertStillWaiting('the waiter', waiting.state);
    await H.release(held);
    await waiting.done;
    assert.equal(waiting.state.error, undefined, `the waiter was refused: ${waiting.state.error?.details}`);
    const granted = waiting.state.value!;
    assert.equal(granted.owner, 'waiter');
    assert.ok(BigInt(granted.fencing_token) > BigInt(held.fencing_token), 'the waiter got a later fencing token');
    assert.equal((await H.describe(name)).owner, 'waiter');
    await W.release(granted);
  });

  test('waiters that arrive as the etcd leader is killed (SIGKILL) wait on and are granted', {
    timeout: 60_000,
  }, async () => {
    await using cluster = await startEtcdCluster(3);
    await using server = await startServer({ etcdEndpoints: cluster.endpoints, etcdPrefix: PREFIX });
    const L = locksOf(server);
    const names = [fresh('leader'), fresh('leader'), fresh('leader')];
    const held = await Promise.all(names.map((name) => L.acquire(name, { owner: 'holder', ttl_ms: 20_000 })));
    const leader = await etcdLeader(cluster);
    assert.ok(leader !== undefined, 'the cluster has a leader');
    await leader.kill9();
    // Right after the kill the followers still take the dead member for leader: the grants
    // wait for the election (or time out and go to another member), and are answered late.
    const waiting = names.map((name) =>
      watched(L.acquire(name, { owner: 'waiter', ttl_ms: WAITER_TTL_MS, wait_ms: WAIT_MS })),
    );
    await untilQueued(L, names, waiting);
    await sleep(WAITER_TTL_MS * 1.5);
    for (const [i, w] of waiting.entries()) assertStillWaiting(`waiter ${i}`, w.state);
    await Promise.all(held.map((lease) => L.release(lease)));
    await Promise.all(waiting.map((w) => w.done));
    for (const [i, w] of waiting.entries()) {
      assert.equal(w.state.error, undefined, `waiter ${i} was refused: ${w.state.error?.details}`);
      assert.equal(w.state.value!.owner, 'waiter');
      await L.release(w.state.value!);
    }
  });
});
