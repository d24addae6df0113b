// TTL and hand-off logic of the memory backend, on a manual clock (no sleeping).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import {
  CancelledError,
  LeaseExpiredError,
  LockBusyError,
  NotHolderError,
  ShuttingDownError,
} from '../../src/errors.js';
import { MemoryLockBackend } from '../../src/locks/memory.js';

const open = () => new AbortController().signal;

function setup() {
  const clock = new ManualClock();
  const backend = new MemoryLockBackend({ clock });
  const acquire = (
    name: string,
    fields: { ttlMs?: number; waitMs?: number; owner?: string; signal?: AbortSignal } = {},
  ) =>
    backend.acquire({
      name,
      ttlMs: 1000,
      waitMs: 0,
      owner: 'test',
      mode: 'EXCLUSIVE',
      limit: 1,
      signal: open(),
      ...fields,
    });
  return { clock, backend, acquire };
}

test('a lease expires exactly at its TTL and the lock is free at once', async () => {
  const { clock, backend, acquire } = setup();
  const lease = await acquire('l', { ttlMs: 1000 });
  assert.equal(lease.expiresAtMs, clock.now() + 1000);
  clock.advance(999);
  await assert.rejects(acquire('l'), LockBusyError);
  clock.advance(1);
  assert.equal((await backend.describe('l', open())).held, false);
  await assert.rejects(backend.refresh({ name: 'l', leaseId: lease.leaseId, signal: open() }, 0), LeaseExpiredError);
  await assert.rejects(backend.release({ name: 'l', leaseId: lease.leaseId, signal: open() }), LeaseExpiredError);
});

test('expiry hands the lock to exactly the next waiter, in order', async () => {
  const { clock, backend, acquire } = setup();
  await acquire('l', { ttlMs: 100 });
  const granted: string[] = [];
  const waiters = ['w1', 'w2', 'w3'].map((owner) =>
    acquire('l', { owner, ttlMs: 100, waitMs: 10_000 }).then((lease) => (granted.push(owner), lease)),
  );
  assert.equal((await backend.describe('l', open())).waiters, 3);
  clock.advance(100);
  await Promise.resolve();
  await new Promise(setImmediate);
  assert.deepEqual(granted, ['w1']);
  assert.equal((await backend.describe('l', open())).waiters, 2);
  clock.advance(100);
  clock.advance(100);
  const leases = await Promise.all(waiters);
  assert.deepEqual(granted, ['w1', 'w2', 'w3']);
  assert.ok(leases[0]!.fencingToken < leases[1]!.fencingToken && leases[1]!.fencingToken < leases[2]!.fencingToken);
});

test('refresh moves the expiry; refreshing with ttl 0 keeps the TTL', async () => {
  const { clock, backend, acquire } = setup();
  const lease = await acquire('l', { ttlMs: 1000 });
  clock.advance(900);
  const refreshed = await backend.refresh({ name: 'l', leaseId: lease.leaseId, signal: open() }, 0);
  assert.equal(refreshed.expiresAtMs, clock.now() + 1000);
  clock.advance(900);
  assert.equal((await backend.describe('l', open())).held, true);
  const longer = await backend.refresh({ name: 'l', leaseId: lease.leaseId, signal: open() }, 5000);
  assert.equal(longer.expiresAtMs, clock.now() + 5000);
  clock.advance(4999);
  assert.equal((await backend.describe('l', open())).held, true);
  clock.advance(1);
  assert.equal((await backend.describe('l', open())).held, false);
});

test('a wait times out with LockBusyError naming the holder; the waiter is gone', async () => {
  const { clock, backend, acquire } = setup();
  await acquire('l', { owner: 'holder-x', ttlMs: 60_000 });
  const waiting = acquire('l', { waitMs: 500 });
  clock.advance(500);
  await assert.rejects(
    waiting,
    (err: Error) => err instanceof LockBusyError && /holder-x/.test(err.message) && /500 ms/.test(err.message),
  );
  assert.equal((await backend.describe('l', open())).waiters, 0);
});

test('an aborted waiter leaves and is never granted', async () => {
  const { clock, backend, acquire } = setup();
  const held = await acquire('l', { ttlMs: 60_000 });
  const controller = new AbortController();
  const waiting = acquire('l', { waitMs: 10_000, signal: controller.signal });
  controller.abort();
  await assert.rejects(waiting, CancelledError);
  await backend.release({ name: 'l', leaseId: held.leaseId, signal: open() });
  assert.equal((await backend.describe('l', open())).held, false);
  clock.advance(20_000);
});

test('releasing with another lease id is NotHolderError and the holder keeps the lock', async () => {
  const { backend, acquire } = setup();
  const held = await acquire('l');
  await assert.rejects(backend.release({ name: 'l', leaseId: 'nope', signal: open() }), NotHolderError);
  assert.equal((await backend.describe('l', open())).fencingToken, held.fencingToken);
});

test('tokens never repeat for a name, even after it goes idle and is forgotten', async () => {
  const { backend, acquire } = setup();
  const first = await acquire('l');
  await backend.release({ name: 'l', leaseId: first.leaseId, signal: open() });
  await acquire('other');
  const second = await acquire('l');
  assert.ok(second.fencingToken > first.fencingToken);
});

test('close fails every waiter with ShuttingDownError and refuses new acquires', async () => {
  const { backend, acquire } = setup();
  await acquire('l', { ttlMs: 60_000 });
  const waiting = acquire('l', { waitMs: 60_000 });
  await backend.close();
  await assert.rejects(waiting, ShuttingDownError);
  await assert.rejects(acquire('m'), ShuttingDownError);
});
