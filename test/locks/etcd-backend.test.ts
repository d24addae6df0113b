// What only the etcd backend does: it shares locks with `etcdctl lock`, with other latchkey
// servers (Refresh/Release through any of them), and survives etcd going away. Real etcd
// processes, real latchkey servers; every wait is bounded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output } from '../../client/generated/latchkey/v1/Lease.js';
import type { LockState__Output } from '../../client/generated/latchkey/v1/LockState.js';
import { ConfigError, parseConfig } from '../../src/config.js';
import { EtcdLockBackend } from '../../src/locks/etcd/lock-backend.js';
import { createServer } from '../../src/server.js';
import {
  ETCD_SKIP_REASON,
  etcdAvailable,
  etcdctl,
  etcdctlLock,
  startEtcd,
  startEtcdCluster,
  type EtcdMember,
} from '../support/etcd.js';
import { startServer, type TestServer } from '../support/server.js';
import { rejection } from '../support/assertions.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let seq = 0;
const fresh = (label: string) => `${label}-${Date.now()}-${seq++}`;
const PREFIX = `latchkey-test-${process.pid}/`;

/** Locks API of one server, etcd backend. */
function locksOf(server: TestServer) {
  const call = <Res>(method: string, request: object, options?: grpc.CallOptions) =>
    server.call<Res>(server.locks, method, { backend: 'etcd', ...request }, options);
  return {
    acquire: (name: string, fields: object = {}, options?: grpc.CallOptions) =>
      call<Lease__Output>('Acquire', { name, ttl_ms: 10_000, ...fields }, options),
    refresh: (lease: Lease__Output, ttlMs = 0) =>
      call<Lease__Output>('Refresh', { name: lease.name, lease_id: lease.lease_id, ttl_ms: ttlMs }),
    release: (lease: { name: string; lease_id: string }) =>
      call<{ released: boolean }>('Release', { name: lease.name, lease_id: lease.lease_id }),
    describe: (name: string) => call<LockState__Output>('Describe', { name }),
  };
}

test('config: --backend etcd needs --etcd-endpoints; the flags and env vars parse', () => {
  assert.throws(
    () => createServer({ backend: 'etcd' }),
    (err: unknown) => err instanceof ConfigError && /--etcd-endpoints/.test(err.message),
  );
  assert.throws(() => parseConfig(['--etcd-endpoints', '127.0.0.1'], {}), ConfigError);
  const config = parseConfig(['--backend', 'etcd', '--etcd-endpoints', '127.0.0.1:2379,http://10.0.0.2:2379'], {
    LATCHKEY_ETCD_PREFIX: 'p/',
  });
  assert.equal(config.etcdEndpoints, '127.0.0.1:2379,http://10.0.0.2:2379');
  assert.equal(config.etcdPrefix, 'p/');
  assert.equal(parseConfig([], {}).etcdPrefix, 'latchkey/locks/');
  assert.equal(parseConfig([], {}).etcdEndpoints, '');
});

describe('etcd backend', { skip: etcdAvailable() ? false : ETCD_SKIP_REASON }, () => {
  let etcd: EtcdMember;
  let a: TestServer;
  let b: TestServer;
  let A: ReturnType<typeof locksOf>;
  let B: ReturnType<typeof locksOf>;
  /** The etcd keys of lock `name`, oldest first. */
  const queue = async (name: string) =>
    (
      await etcdctl(etcd.endpoint, [
        'get',
        '--prefix',
        '--keys-only',
        '--sort-by=CREATE',
        '--order=ASCEND',
        `${PREFIX}${name}/`,
      ])
    )
      .split('\n')
      .filter((l) => l !== '');

  before(async () => {
    etcd = await startEtcd();
    // Two servers on one etcd: nothing about a lease lives in either of them.
    a = await startServer({ etcdEndpoints: etcd.endpoint, etcdPrefix: PREFIX });
    b = await startServer({ etcdEndpoints: etcd.endpoint, etcdPrefix: PREFIX });
    A = locksOf(a);
    B = locksOf(b);
  });
  after(async () => {
    await a?.[Symbol.asyncDispose]();
    await b?.[Symbol.asyncDispose]();
    await etcd?.[Symbol.asyncDispose]();
  });

  test("the key layout is etcdctl lock's: <prefix><name>/<lease_id>, value = owner", async () => {
    const name = fresh('layout');
    const lease = await A.acquire(name, { owner: 'layout-owner' });
    assert.match(lease.lease_id, /^[1-9a-f][0-9a-f]*$/);
    const key = `${PREFIX}${name}/${lease.lease_id}`;
    assert.deepEqual(await queue(name), [key]);
    assert.equal((await etcdctl(etcd.endpoint, ['get', '--print-value-only', key])).trim(), 'layout-owner');
    // The lease is an etcd lease, of TTL ⌈ttl_ms / 1000⌉ s.
    assert.match(await etcdctl(etcd.endpoint, ['lease', 'timetolive', lease.lease_id]), /granted with TTL\(10s\)/);
    await A.release(lease);
    assert.deepEqual(await queue(name), []);
    assert.match(await etcdctl(etcd.endpoint, ['lease', 'timetolive', lease.lease_id]), /already expired/);
  });

  test('`etcdctl lock` holding the lock blocks latchkey, which gets it when etcdctl lets go', async () => {
    const name = fresh('etcdctl-holds');
    await using holder = etcdctlLock(etcd.endpoint, `${PREFIX}${name}`);
    const key = await holder.held();
    assert.ok(key.startsWith(`${PREFIX}${name}/`), key);
    const busy = await rejection(A.acquire(name, { wait_ms: 0 }));
    assert.equal(busy.code, grpc.status.ABORTED);
    assert.ok(busy.details.includes(key), busy.details);
    const state = await B.describe(name);
    assert.equal(state.held, true);
    assert.equal(state.owner, '');
    const waiting = A.acquire(name, { wait_ms: 15_000, owner: 'after-etcdctl' });
    await until('latchkey queued behind etcdctl', async () => (await B.describe(name)).waiters === 1);
    await sleep(200);
    assert.equal((await B.describe(name)).owner, '', 'granted while etcdctl still held the lock');
    await holder.stop();
    const lease = await waiting;
    assert.ok(BigInt(lease.fencing_token) > BigInt(state.fencing_token));
    assert.equal((await B.describe(name)).owner, 'after-etcdctl');
    await B.release(lease);
  });

  test('latchkey holding the lock blocks `etcdctl lock`, queued FIFO with latchkey waiters; Describe counts them all', async () => {
    const name = fresh('latchkey-holds');
    const held = await A.acquire(name, { owner: 'first' });
    await using first = etcdctlLock(etcd.endpoint, `${PREFIX}${name}`);
    await until('etcdctl queued', async () => (await A.describe(name)).waiters === 1);
    const third = B.acquire(name, { wait_ms: 15_000, owner: 'third' });
    await until('latchkey waiter queued', async () => (await A.describe(name)).waiters === 2);
    await using fourth = etcdctlLock(etcd.endpoint, `${PREFIX}${name}`);
    await until('second etcdctl queued', async () => (await A.describe(name)).waiters === 3);
    await sleep(300);
    assert.equal(first.holding(), false, 'etcdctl got the lock latchkey holds');

    await A.release(held);
    await first.held();
    assert.equal(fourth.holding(), false);
    let thirdGranted = false;
    void third.then(
      () => (thirdGranted = true),
      () => {},
    );
    await sleep(200);
    assert.equal(thirdGranted, false, 'the latchkey waiter jumped the etcdctl holder');
    assert.equal((await B.describe(name)).waiters, 2);

    await first.stop();
    const lease = await third;
    assert.equal(fourth.holding(), false);
    await B.release(lease);
    await fourth.held();
    await fourth.stop();
    assert.equal((await A.describe(name)).held, false);
  });

  test('stateless: acquire on server A, refresh, describe and release through server B', async () => {
    const name = fresh('stateless');
    const acquiredAt = Date.now();
    const lease = await A.acquire(name, { ttl_ms: 3_000, owner: 'roaming' });
    const waiter = A.acquire(name, { wait_ms: 15_000, owner: 'next' });
    await until('waiter queued', async () => (await B.describe(name)).waiters === 1);
    await sleep(1_500);
    const refreshed = await B.refresh(lease);
    assert.equal(refreshed.fencing_token, lease.fencing_token);
    assert.equal(refreshed.lease_id, lease.lease_id);
    assert.equal(refreshed.owner, 'roaming');
    assert.ok(
      Number(refreshed.expires_at_ms) >= Number(lease.expires_at_ms) + 1_000,
      `${refreshed.expires_at_ms} vs ${lease.expires_at_ms}`,
    );
    // Refreshed through B, the lease outlives its first TTL (etcd revokes within 0.5 s of it).
    await sleep(acquiredAt + 3_700 - Date.now());
    assert.ok(Date.now() < Number(refreshed.expires_at_ms) - 200, 'too slow to tell');
    assert.equal((await A.describe(name)).owner, 'roaming');
    assert.deepEqual(await B.release(lease), { released: true });
    const next = await waiter;
    assert.equal(next.owner, 'next');
    await B.release(next);
  });

  test('no server keeps a granted lease alive: without Refresh it expires after its TTL', async () => {
    const name = fresh('no-keepalive');
    const started = Date.now();
    const lease = await A.acquire(name, { ttl_ms: 1_000 });
    assert.ok(Number(lease.expires_at_ms) <= Date.now() + 1_000);
    await until('the lease expired', async () => !(await B.describe(name)).held, 5_000);
    const after = Date.now() - started;
    assert.ok(after >= 900 && after < 4_000, `expired after ${after} ms`);
    for (const err of [await rejection(B.refresh(lease)), await rejection(B.release(lease))]) {
      assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
      assert.match(err.details, /no longer exists in etcd/);
    }
  });

  test('Refresh: ttl_ms above the granted TTL is refused (etcd leases keep their TTL); up to it is served with it', async () => {
    const name = fresh('refresh-ttl');
    const lease = await A.acquire(name, { ttl_ms: 3_000 });
    const longer = await rejection(B.refresh(lease, 5_000));
    assert.equal(longer.code, grpc.status.FAILED_PRECONDITION);
    assert.match(longer.details, /fixed TTL of 3 s/);
    for (const ttl of [0, 3_000, 2_500, 500]) {
      const before = Date.now();
      const refreshed = await B.refresh(lease, ttl);
      const expiresIn = Number(refreshed.expires_at_ms) - before;
      assert.ok(expiresIn >= 2_900 && expiresIn <= 3_500, `ttl ${ttl}: expires in ${expiresIn} ms`);
    }
    await B.release(lease);
  });

  test("a waiter's lease id cannot refresh or release the lock", async () => {
    const name = fresh('waiter-id');
    const held = await A.acquire(name, { owner: 'holder' });
    const waiting = B.acquire(name, { wait_ms: 15_000 });
    await until('waiter queued', async () => (await queue(name)).length === 2);
    const waiterId = (await queue(name))[1]!.split('/').pop()!;
    for (const err of [
      await rejection(A.release({ name, lease_id: waiterId })),
      await rejection(A.refresh({ ...held, lease_id: waiterId })),
    ]) {
      assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
      assert.match(err.details, /waiting for lock .* not holding it: it is held by holder/);
    }
    assert.equal((await A.describe(name)).owner, 'holder');
    assert.equal((await A.describe(name)).waiters, 1);
    await A.release(held);
    await B.release(await waiting);
  });

  test('a waiter whose etcd lease is revoked behind its back is ABORTED at once', async () => {
    const name = fresh('revoked');
    const held = await A.acquire(name);
    const started = Date.now();
    // ttl 3 s: the waiter's lease is kept alive every second, which is when it notices.
    const waiting = B.acquire(name, { wait_ms: 20_000, ttl_ms: 3_000 });
    await until('waiter queued', async () => (await queue(name)).length === 2);
    const waiterId = (await queue(name))[1]!.split('/').pop()!;
    await etcdctl(etcd.endpoint, ['lease', 'revoke', waiterId]);
    const err = await rejection(waiting);
    assert.equal(err.code, grpc.status.ABORTED);
    assert.match(err.details, new RegExp(`lease ${waiterId} was revoked or expired`));
    assert.ok(Date.now() - started < 5_000);
    assert.equal((await A.describe(name)).waiters, 0);
    await A.release(held);
  });

  test('a waiter whose key is deleted behind its back is ABORTED, not granted', async () => {
    const name = fresh('key-deleted');
    const held = await A.acquire(name);
    const waiting = B.acquire(name, { wait_ms: 20_000 });
    await until('waiter queued', async () => (await queue(name)).length === 2);
    await etcdctl(etcd.endpoint, ['del', (await queue(name))[1]!]);
    await A.release(held);
    const err = await rejection(waiting);
    assert.equal(err.code, grpc.status.ABORTED);
    assert.match(err.details, /key was removed while waiting/);
    assert.equal((await A.describe(name)).held, false);
  });

  test('lock "x" and lock "x/y" are different locks, though one key prefix contains the other', async () => {
    const name = fresh('nested');
    const inner = await A.acquire(`${name}/y`, { owner: 'inner' });
    const outer = await A.acquire(name, { wait_ms: 0, owner: 'outer' });
    assert.equal((await A.describe(name)).owner, 'outer');
    assert.equal((await A.describe(name)).waiters, 0);
    assert.equal((await A.describe(`${name}/y`)).owner, 'inner');
    await A.release(inner);
    await A.release(outer);
  });

  test('the queue is found past many keys of a nested lock (range pages)', async () => {
    const name = fresh('paged');
    // 20 keys of locks under "<name>/" before the holder and 20 after it: more than a page
    // (16) either way. (Each batch is one etcd txn: empty compares, puts, empty failure ops.)
    const nested = (from: number) =>
      `\n${Array.from({ length: 20 }, (_, i) => `put ${PREFIX}${name}/n${from + i}/${(from + i + 1).toString(16)} v`).join('\n')}\n\n\n`;
    await etcdctl(etcd.endpoint, ['txn'], { input: nested(0) });
    const held = await A.acquire(name, { owner: 'paged-holder' });
    await etcdctl(etcd.endpoint, ['txn'], { input: nested(20) });
    assert.equal((await rejection(B.acquire(name, { wait_ms: 0 }))).code, grpc.status.ABORTED);
    const waiting = B.acquire(name, { wait_ms: 15_000, owner: 'paged-waiter' });
    await until('waiter queued', async () => (await A.describe(name)).waiters === 1);
    assert.equal((await A.describe(name)).owner, 'paged-holder');
    await A.release(held);
    const next = await waiting;
    assert.equal((await A.describe(name)).owner, 'paged-waiter');
    await B.release(next);
    await etcdctl(etcd.endpoint, ['del', '--prefix', `${PREFIX}${name}/`]);
  });
});

describe('etcd backend when etcd goes away', { skip: etcdAvailable() ? false : ETCD_SKIP_REASON }, () => {
  let etcd: EtcdMember;
  let server: TestServer;
  let L: ReturnType<typeof locksOf>;

  before(async () => {
    etcd = await startEtcd();
    server = await startServer({ etcdEndpoints: etcd.endpoint, etcdPrefix: PREFIX });
    L = locksOf(server);
  });
  after(async () => {
    await server?.[Symbol.asyncDispose]();
    await etcd?.[Symbol.asyncDispose]();
  });

  test('UNAVAILABLE naming the endpoint while etcd is down, memory locks unaffected, and back when etcd is', async () => {
    const name = fresh('outage');
    const before = await L.acquire(name, { ttl_ms: 1_000 });
    // A waiter whose etcd vanishes: its lease cannot be kept alive, so it is ABORTED once
    // its TTL has run out (or UNAVAILABLE if its wait ends first).
    const waiting = L.acquire(name, { wait_ms: 20_000, ttl_ms: 1_000 });
    await until('waiter queued', async () => (await L.describe(name)).waiters === 1);
    await etcd.kill9();
    const started = Date.now();
    const waiterErr = await rejection(waiting);
    assert.equal(waiterErr.code, grpc.status.ABORTED, waiterErr.details);
    assert.match(waiterErr.details, /expired \(etcd did not answer a keepalive/);
    assert.ok(Date.now() - started < 4_000, `waiter failed after ${Date.now() - started} ms`);

    for (const call of [
      () => L.acquire(fresh('down')),
      () => L.describe(name),
      () => L.refresh(before),
      () => L.release(before),
    ]) {
      const t0 = Date.now();
      const err = await rejection(call());
      assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
      assert.ok(err.details.includes(etcd.endpoint), err.details);
      assert.ok(Date.now() - t0 < 4_000, 'an unreachable etcd must fail fast');
    }
    const memory = await server.call<Lease__Output>(server.locks, 'Acquire', {
      name,
      backend: 'memory',
      ttl_ms: 1_000,
    });
    assert.equal(memory.backend, 'memory');
    await server.call(server.locks, 'Release', { name, backend: 'memory', lease_id: memory.lease_id });

    await etcd.restart();
    let lease: Lease__Output | undefined;
    await until('etcd locks work again', async () => {
      lease = await L.acquire(fresh('back'), { wait_ms: 0 }).catch(() => undefined);
      return lease !== undefined;
    });
    await L.release(lease!);
  });
});

test('an etcd that hangs (SIGSTOP) fails calls with UNAVAILABLE after the per-operation timeout, not never', {
  skip: etcdAvailable() ? false : ETCD_SKIP_REASON,
}, async () => {
  await using etcd = await startEtcd();
  const backend = new EtcdLockBackend({ endpoints: etcd.endpoint, prefix: PREFIX, opTimeoutMs: 1_000 });
  await using server = await startServer({}, { lockBackends: [backend] });
  const L = locksOf(server);
  const name = fresh('hung');
  await L.release(await L.acquire(name));
  const pid = etcd.pid!;
  process.kill(pid, 'SIGSTOP');
  try {
    // The signal is delivered asynchronously: wait until the kernel reports etcd stopped, or
    // a request sent right away can still be answered.
    await until('etcd stopped', async () => /^\d+ \(.*\) [Tt] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')));
    for (const call of [() => L.describe(name), () => L.acquire(name)]) {
      const started = Date.now();
      const err = await rejection(call());
      const took = Date.now() - started;
      assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
      assert.ok(err.details.includes(etcd.endpoint), err.details);
      assert.ok(took >= 900 && took < 3_000, `failed after ${took} ms`);
    }
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await until(
    'etcd answers again',
    async () =>
      await L.describe(name).then(
        () => true,
        () => false,
      ),
  );
});

describe('etcd backend on a 3-member cluster', { skip: etcdAvailable() ? false : ETCD_SKIP_REASON }, () => {
  test('locks keep working while one member is killed, through the others; shutdown fails waiters with UNAVAILABLE', async () => {
    await using cluster = await startEtcdCluster(3);
    await using a = await startServer({ etcdEndpoints: cluster.endpoints, etcdPrefix: PREFIX });
    await using b = await startServer({ etcdEndpoints: cluster.members[2]!.endpoint, etcdPrefix: PREFIX });
    const A = locksOf(a);
    const B = locksOf(b);
    const name = fresh('cluster');
    const held = await A.acquire(name, { owner: 'survivor' });
    await cluster.members[0]!.kill9();
    // Each call goes to a random member; several calls all succeed only if the dead one is skipped.
    for (let i = 0; i < 6; i++) {
      assert.equal((await A.describe(name)).owner, 'survivor');
      await A.refresh(held);
    }
    const waiting = A.acquire(name, { wait_ms: 20_000 });
    await until('waiter queued', async () => (await B.describe(name)).waiters === 1);
    await A.release(held);
    const next = await waiting;
    await cluster.members[0]!.restart();

    // Shutdown: a waiter on the server going away gets UNAVAILABLE and leaves the queue.
    const doomed = A.acquire(name, { wait_ms: 20_000 });
    await until('waiter queued', async () => (await B.describe(name)).waiters === 1);
    const shutdown = a.server.shutdown(1_000);
    const err = await rejection(doomed);
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.match(err.details, /shutting down/);
    await shutdown;
    assert.equal((await B.describe(name)).waiters, 0);
    await B.release(next);
  });
});
