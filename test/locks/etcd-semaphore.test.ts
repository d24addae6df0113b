// Semaphores, shared locks and Watch on the etcd backend, where only etcd can show them: the
// queue evaluated by two latchkey servers on one etcd, values `etcdctl` reads, `etcdctl lock`
// among semaphore and read keys, and a Watch on one server following another's grants. The
// contract suite (locks-etcd.test.ts) covers what every backend does. Real etcd, real servers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output } from '../../client/generated/latchkey/v1/Lease.js';
import type { LockEvent__Output } from '../../client/generated/latchkey/v1/LockEvent.js';
import type { LockState__Output } from '../../client/generated/latchkey/v1/LockState.js';
import type { LockMode } from '../../src/locks/backend.js';
import { VALUE_TAG } from '../../src/locks/etcd/layout.js';
import { loadProto } from '../../src/proto.js';
import { ETCD_SKIP_REASON, etcdAvailable, etcdctl, etcdctlLock, startEtcd, type EtcdMember } from '../support/etcd.js';
import { startServer, type TestServer } from '../support/server.js';
import { rejection } from '../support/assertions.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let seq = 0;
const fresh = (label: string) => `${label}-${Date.now()}-${seq++}`;
const PREFIX = `latchkey-sem-test-${process.pid}/`;

type Event = Pick<LockEvent__Output, 'type' | 'owner' | 'fencing_token' | 'mode' | 'state'>;

describe('etcd semaphores, shared locks and Watch', { skip: etcdAvailable() ? false : ETCD_SKIP_REASON }, () => {
  let etcd: EtcdMember;
  let a: TestServer;
  let b: TestServer;
  const clients: grpc.Client[] = [];

  /** Locks API of one server's etcd backend; `own`: on a channel of its own, so its waits do not queue behind others. */
  const locksOf = (server: TestServer, own = false) => {
    let client: grpc.Client = server.locks;
    if (own) {
      client = new (loadProto().latchkey.v1.Locks)(server.address, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      });
      clients.push(client);
    }
    const call = <Res>(method: string, request: object, options?: grpc.CallOptions) =>
      server.call<Res>(client, method, { backend: 'etcd', ...request }, options);
    return {
      acquire: (name: string, fields: object = {}) =>
        call<Lease__Output>('Acquire', { name, ttl_ms: 10_000, ...fields }),
      refresh: (lease: Lease__Output) => call<Lease__Output>('Refresh', { name: lease.name, lease_id: lease.lease_id }),
      release: (lease: { name: string; lease_id: string }) =>
        call<{ released: boolean }>('Release', { name: lease.name, lease_id: lease.lease_id }),
      describe: (name: string) => call<LockState__Output>('Describe', { name }),
    };
  };
  /** Opens a Watch on `server`; events collect in `events`. */
  const watch = (server: TestServer, name: string) => {
    const stream = (server.locks as unknown as { Watch(req: object): grpc.ClientReadableStream<Event> }).Watch({
      name,
      backend: 'etcd',
    });
    const events: Event[] = [];
    let ended: grpc.StatusObject | undefined;
    stream.on('data', (event: Event) => events.push(event));
    stream.on('error', () => {});
    stream.on('status', (status: grpc.StatusObject) => (ended = status));
    return { stream, events, ended: () => ended };
  };
  const pairs = (events: readonly Event[]) => events.map((e) => `${e.type} ${e.owner}`);

  before(async () => {
    etcd = await startEtcd();
    a = await startServer({ etcdEndpoints: etcd.endpoint, etcdPrefix: PREFIX });
    b = await startServer({ etcdEndpoints: etcd.endpoint, etcdPrefix: PREFIX });
  });
  after(async () => {
    for (const client of clients) client.close();
    await a?.[Symbol.asyncDispose]();
    await b?.[Symbol.asyncDispose]();
    await etcd?.[Symbol.asyncDispose]();
  });

  test('keys etcdctl reads: tagged values for semaphore and shared keys, one queue; Refresh and Release through the other server', async () => {
    const A = locksOf(a);
    const B = locksOf(b);
    const name = fresh('layout');
    const s1 = await A.acquire(name, { limit: 2, owner: 'sem-1' });
    const s2 = await A.acquire(name, { limit: 2, owner: 'sem-2' });
    const reader = A.acquire(name, { mode: 'SHARED', owner: 'reader', wait_ms: 15_000 });
    await until('reader queued', async () => (await B.describe(name)).waiters === 1);
    const keys = (
      await etcdctl(etcd.endpoint, ['get', '--prefix', '--sort-by=CREATE', '--order=ASCEND', `${PREFIX}${name}/`])
    )
      .split('\n')
      .filter((l) => l !== '');
    assert.deepEqual(keys, [
      `${PREFIX}${name}/${s1.lease_id}`,
      `${VALUE_TAG}{"owner":"sem-1","mode":"EXCLUSIVE","limit":2}`,
      `${PREFIX}${name}/${s2.lease_id}`,
      `${VALUE_TAG}{"owner":"sem-2","mode":"EXCLUSIVE","limit":2}`,
      keys[4]!,
      `${VALUE_TAG}{"owner":"reader","mode":"SHARED","limit":1}`,
    ]);
    const refreshed = await B.refresh(s2);
    assert.deepEqual(
      [refreshed.mode, refreshed.limit, refreshed.fencing_token, refreshed.owner],
      ['EXCLUSIVE', 2, s2.fencing_token, 'sem-2'],
    );
    // The reader's lease id is a waiter's: it cannot release anything.
    const readerId = keys[4]!.split('/').pop()!;
    assert.match(
      (await rejection(B.release({ name, lease_id: readerId }))).details,
      /waiting for lock .* not holding it: it is held by sem-1 .*, sem-2/,
    );
    await B.release(s1);
    await until('still queued', async () => (await B.describe(name)).waiters === 1);
    await B.release(s2);
    const r = await reader;
    assert.deepEqual([r.mode, r.limit], ['SHARED', 1]);
    assert.deepEqual((await B.refresh(r)).mode, 'SHARED');
    await B.release(r);
    assert.equal((await A.describe(name)).limit, 0);
  });

  test('a key nobody can read (foreign value) counts as a plain lock held by its text', async () => {
    const A = locksOf(a);
    const name = fresh('foreign');
    const key = `${PREFIX}${name}/abc`;
    // From stdin: an argument cannot carry the NUL.
    await etcdctl(etcd.endpoint, ['put', key], { input: `${VALUE_TAG}{broken` });
    const state = await A.describe(name);
    assert.deepEqual(
      [state.held, state.owner, state.limit, state.holders[0]?.mode],
      [true, `${VALUE_TAG}{broken`, 1, 'EXCLUSIVE'],
    );
    assert.equal((await rejection(A.acquire(name, { mode: 'SHARED', wait_ms: 0 }))).code, grpc.status.ABORTED);
    assert.equal((await rejection(A.acquire(name, { limit: 3, wait_ms: 0 }))).code, grpc.status.FAILED_PRECONDITION);
    await etcdctl(etcd.endpoint, ['del', key]);
  });

  test('a semaphore used through two servers never exceeds its limit; readers and writers through both never overlap', async () => {
    const name = fresh('two-servers');
    const limit = 2;
    let inside = 0;
    let maxInside = 0;
    let describedMax = 0;
    const tokens = new Set<string>();
    const worker = async (server: TestServer) => {
      const L = locksOf(server, true);
      for (let round = 0; round < 3; round++) {
        const lease = await L.acquire(name, { limit, wait_ms: 30_000 });
        inside++;
        maxInside = Math.max(maxInside, inside);
        tokens.add(lease.fencing_token);
        // What etcd says while we are inside: never more holders than the limit.
        describedMax = Math.max(describedMax, (await L.describe(name)).holders.length);
        await sleep(5);
        inside--;
        await L.release(lease);
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, i) => worker(i % 2 === 0 ? a : b)));
    assert.ok(
      maxInside <= limit && describedMax <= limit,
      `${maxInside} inside, ${describedMax} described, limit ${limit}`,
    );
    assert.equal(maxInside, limit, 'the semaphore never admitted two holders at once');
    assert.equal(tokens.size, 24);

    const rw = fresh('two-servers-rw');
    let readers = 0;
    let writers = 0;
    let maxReaders = 0;
    const rwWorker = async (server: TestServer, mode: LockMode) => {
      const L = locksOf(server, true);
      for (let round = 0; round < 3; round++) {
        const lease = await L.acquire(rw, { mode, wait_ms: 30_000 });
        if (mode === 'SHARED') readers++;
        else writers++;
        assert.ok(writers <= 1 && (writers === 0 || readers === 0), `${writers} writers with ${readers} readers`);
        maxReaders = Math.max(maxReaders, readers);
        await sleep(10);
        if (mode === 'SHARED') readers--;
        else writers--;
        await L.release(lease);
      }
    };
    await Promise.all([
      ...Array.from({ length: 4 }, () => rwWorker(a, 'SHARED')),
      ...Array.from({ length: 2 }, () => rwWorker(b, 'EXCLUSIVE')),
    ]);
    assert.ok(maxReaders >= 2, 'readers never shared the lock');
  });

  test('`etcdctl lock` behind semaphore holders waits for all of them, and so does everyone behind it; a semaphore behind its grant is refused', async () => {
    const A = locksOf(a);
    const B = locksOf(b);
    const name = fresh('etcdctl');
    const s1 = await A.acquire(name, { limit: 2, owner: 's1' });
    const s2 = await A.acquire(name, { limit: 2, owner: 's2' });
    await using cli = etcdctlLock(etcd.endpoint, `${PREFIX}${name}`);
    await until('etcdctl queued', async () => (await A.describe(name)).waiters === 1);
    // Agrees with the first holder's limit, so it queues, behind etcdctl.
    let s3Granted = false;
    const s3 = locksOf(b, true).acquire(name, { limit: 2, owner: 's3', wait_ms: 20_000 });
    void s3.then(
      () => (s3Granted = true),
      () => {},
    );
    await until('s3 queued', async () => (await A.describe(name)).waiters === 2);
    const state = await B.describe(name);
    assert.deepEqual(
      [state.limit, state.holders.map((h) => h.owner), state.queue.map((w) => [w.owner, w.mode])],
      [
        2,
        ['s1', 's2'],
        [
          ['', 'EXCLUSIVE'],
          ['s3', 'EXCLUSIVE'],
        ],
      ],
    );
    await A.release(s1);
    await sleep(300);
    assert.equal(cli.holding(), false, 'etcdctl got the lock while a semaphore holder remained');
    assert.equal(s3Granted, false, 's3 passed the etcdctl waiter');
    await A.release(s2);
    await cli.held();
    await sleep(200);
    assert.equal(s3Granted, false, 's3 shares the lock with etcdctl');
    // etcdctl's key is a plain lock (limit 1) and now the first: a semaphore request is refused.
    const refused = await rejection(B.acquire(name, { limit: 2, wait_ms: 0 }));
    assert.equal(refused.code, grpc.status.FAILED_PRECONDITION);
    assert.match(refused.details, /limit 1; this request asks for limit 2/);
    await cli.stop();
    const lease = await s3;
    assert.equal((await A.describe(name)).owner, 's3');
    await B.release(lease);
  });

  test('a Watch on server B sees grants, releases and waiters made through server A, in order', async () => {
    const A = locksOf(a);
    const name = fresh('watch');
    const first = await A.acquire(name, { limit: 2, owner: 'first' });
    const w = watch(b, name);
    await until('STATE', () => w.events.length >= 1);
    const state = w.events[0]!.state!;
    assert.equal(w.events[0]!.type, 'STATE');
    assert.deepEqual([state.limit, state.holders.map((h) => h.owner), state.waiters], [2, ['first'], 0]);

    const second = await A.acquire(name, { limit: 2, owner: 'second' });
    const third = locksOf(a, true).acquire(name, { limit: 2, owner: 'third', wait_ms: 15_000 });
    await until('third queued', async () => (await A.describe(name)).waiters === 1);
    // A waiter that gives up: its key comes and goes.
    const quitter = await rejection(locksOf(a, true).acquire(name, { limit: 2, owner: 'quitter', wait_ms: 300 }));
    assert.equal(quitter.code, grpc.status.ABORTED);
    await A.release(first);
    const thirdLease = await third;
    await A.release(second);
    await A.release(thirdLease);
    // Readers behind a writer, then the writer behind readers.
    const r1 = await A.acquire(name, { mode: 'SHARED', owner: 'r1' });
    const r2 = await A.acquire(name, { mode: 'SHARED', owner: 'r2' });
    const writer = locksOf(a, true).acquire(name, { owner: 'writer', wait_ms: 15_000 });
    await until('writer queued', async () => (await A.describe(name)).waiters === 1);
    await A.release(r1);
    await A.release(r2);
    await A.release(await writer);

    const expected = [
      'ACQUIRED second',
      'WAITER_ADDED third',
      'WAITER_ADDED quitter',
      'WAITER_LEFT quitter',
      'RELEASED first',
      'ACQUIRED third',
      'RELEASED second',
      'RELEASED third',
      'ACQUIRED r1',
      'ACQUIRED r2',
      'WAITER_ADDED writer',
      'RELEASED r1',
      'RELEASED r2',
      'ACQUIRED writer',
      'RELEASED writer',
    ];
    await until('every event', () => w.events.length >= expected.length + 1);
    await sleep(100);
    assert.deepEqual(pairs(w.events.slice(1)), expected);
    assert.equal(
      w.events.find((e) => e.type === 'ACQUIRED' && e.owner === 'third')!.fencing_token,
      thirdLease.fencing_token,
    );
    assert.deepEqual(
      w.events.filter((e) => e.owner === 'r1').map((e) => e.mode),
      ['SHARED', 'SHARED'],
    );
    w.stream.cancel();
  });

  test('Watch survives an etcd restart: it resumes from the last revision it saw, missing nothing', async () => {
    const A = locksOf(a);
    const name = fresh('watch-restart');
    const held = await A.acquire(name, { owner: 'before' });
    const w = watch(b, name);
    await until('STATE', () => w.events.length >= 1);
    await etcd.kill9();
    await etcd.restart();
    // Made as soon as etcd is back, likely before the watch has resumed: the revision catches it.
    await until(
      'etcd back',
      async () =>
        await A.release(held).then(
          () => true,
          () => false,
        ),
    );
    const after = await A.acquire(name, { owner: 'after' });
    await A.release(after);
    await until('events after the restart', () => w.events.length >= 4, 10_000);
    await sleep(100);
    assert.deepEqual(pairs(w.events.slice(1)), ['RELEASED before', 'ACQUIRED after', 'RELEASED after']);
    assert.equal(w.ended(), undefined, 'the stream ended');
    w.stream.cancel();
  });

  test('Watch: an expired holder is reported as RELEASED (etcd cannot tell); events sharing a revision all arrive; the stream ends cleanly when its server shuts down', async () => {
    await using c = await startServer({ etcdEndpoints: etcd.endpoint, etcdPrefix: PREFIX });
    const A = locksOf(a);
    const name = fresh('watch-expiry');
    const w = watch(c, name);
    await until('STATE', () => w.events.length >= 1);
    assert.equal(w.events[0]!.state!.held, false);
    const lease = await A.acquire(name, { ttl_ms: 1_000, owner: 'forgetful' });
    await until('expiry seen', () => w.events.length >= 3, 5_000);
    assert.deepEqual(pairs(w.events.slice(1)), ['ACQUIRED forgetful', 'RELEASED forgetful']);
    assert.equal(w.events[2]!.fencing_token, lease.fencing_token);
    // Several events in one revision (one etcd txn, one delete of a range): none is lost.
    await etcdctl(etcd.endpoint, ['txn'], { input: `\nput ${PREFIX}${name}/a1 x1\nput ${PREFIX}${name}/a2 x2\n\n\n` });
    await etcdctl(etcd.endpoint, ['del', '--prefix', `${PREFIX}${name}/`]);
    await until('the txn and the delete seen', () => w.events.length >= 8, 5_000);
    assert.deepEqual(pairs(w.events.slice(3)), [
      'ACQUIRED x1',
      'WAITER_ADDED x2',
      'RELEASED x1',
      'ACQUIRED x2',
      'RELEASED x2',
    ]);
    await c.server.shutdown(1_000);
    await until('the stream ended', () => w.ended() !== undefined, 5_000);
    assert.equal(w.ended()!.code, grpc.status.OK);
  });
});
