// The etcd backend runs its timers and expiry estimates on the clock it is given, as the
// memory and file backends do: wait_ms, the waiter's lease estimate, the expiry it reports
// and event times follow a manual clock, not the machine's. A real etcd; the clock is
// stepped by the test, and every step stays far inside the real TTLs etcd counts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import { LockBusyError } from '../../src/errors.js';
import type { AcquireOptions, Lease } from '../../src/locks/backend.js';
import { EtcdLockBackend } from '../../src/locks/etcd/lock-backend.js';
import { etcdMissing, startEtcd, type EtcdMember } from '../support/etcd.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let seq = 0;
const fresh = (label: string) => `${label}-${Date.now()}-${seq++}`;

/** An outcome to look at without awaiting it (never an unhandled rejection). */
function watched(promise: Promise<Lease>) {
  const state: { settled: boolean; value?: Lease; error?: unknown } = { settled: false };
  const done = promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return { state, done };
}

/** Resolves with the outcome, or fails the test if it takes more than ms of real time. */
async function settledWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms of real time`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('etcd backend on a manual clock', { skip: etcdMissing() }, () => {
  let etcd: EtcdMember;
  const request = (name: string, fields: Partial<AcquireOptions> = {}): AcquireOptions => ({
    name,
    ttlMs: 10_000,
    waitMs: 0,
    owner: 'owner',
    mode: 'EXCLUSIVE',
    limit: 1,
    signal: new AbortController().signal,
    ...fields,
  });
  const ref = (lease: Lease) => ({ name: lease.name, leaseId: lease.leaseId, signal: new AbortController().signal });

  /** Runs `run` on a backend of its own on a fresh manual clock, and closes it. */
  async function onClock(run: (backend: EtcdLockBackend, clock: ManualClock) => Promise<void>): Promise<void> {
    const clock = new ManualClock();
    const backend = new EtcdLockBackend({ endpoints: etcd.endpoint, prefix: `latchkey-clock-${process.pid}/`, clock });
    try {
      await run(backend, clock);
    } finally {
      await backend.close();
    }
  }

  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.[Symbol.asyncDispose]();
  });

  test('a grant, Refresh, Describe and Watch report times on the given clock', async () => {
    await onClock(async (backend, clock) => {
      const name = fresh('times');
      const lease = await backend.acquire(request(name));
      // The clock does not move by itself: the lease's earliest expiry is exactly now + TTL.
      assert.equal(lease.expiresAtMs, clock.now() + 10_000);
      clock.advance(4_000);
      const refreshed = await backend.refresh(ref(lease), 0);
      assert.equal(refreshed.expiresAtMs, clock.now() + 10_000);
      const state = await backend.describe(name, new AbortController().signal);
      const left = state.expiresAtMs - clock.now();
      assert.ok(left === 9_000 || left === 10_000, `Describe: expires ${left} ms from the clock's now`);
      const stop = new AbortController();
      for await (const event of backend.watch(name, stop.signal)) {
        assert.equal(event.type, 'STATE');
        assert.equal(event.atMs, clock.now());
        break;
      }
      await backend.release(ref(lease));
    });
  });

  test('wait_ms runs on the given clock: a waiter waits until the clock says its time is up', async () => {
    await onClock(async (backend, clock) => {
      const name = fresh('wait');
      const held = await backend.acquire(request(name, { owner: 'holder' }));
      const waiting = watched(backend.acquire(request(name, { owner: 'waiter', waitMs: 1_000 })));
      await sleep(1_500);
      assert.ok(!waiting.state.settled, `answered before the clock moved: ${String(waiting.state.error)}`);
      clock.advance(1_000);
      await settledWithin(waiting.done, 3_000, 'the waiter after its wait_ms on the clock');
      assert.ok(waiting.state.error instanceof LockBusyError, String(waiting.state.error));
      assert.match(waiting.state.error.message, /still held by holder .* after waiting 1000 ms/);
      assert.equal((await backend.describe(name, new AbortController().signal)).waiters, 0, 'the waiter left');
      await backend.release(ref(held));
    });
  });

  test("the waiter's lease estimate runs on the given clock: a TTL passed on it without an answer is a lost lease", async () => {
    await onClock(async (backend, clock) => {
      const name = fresh('estimate');
      const held = await backend.acquire(request(name, { owner: 'holder' }));
      const waiting = watched(backend.acquire(request(name, { owner: 'waiter', ttlMs: 3_000, waitMs: 60_000 })));
      await sleep(500);
      assert.ok(!waiting.state.settled, String(waiting.state.error));
      // 3 s pass on the clock in one step: the keepalive due at 1 s is sent, but no answer can
      // arrive within the step, so the estimate says the lease ran out (etcd, on real time,
      // still has it: this shows only whose time the estimate follows).
      clock.advance(3_001);
      await settledWithin(waiting.done, 3_000, 'the waiter after its TTL on the clock');
      assert.ok(waiting.state.error instanceof LockBusyError, String(waiting.state.error));
      assert.match(
        waiting.state.error.message,
        /the waiter's etcd lease [0-9a-f]+ expired \(etcd did not answer a keepalive for 3 s\)/,
      );
      await backend.release(ref(held));
    });
  });
});
