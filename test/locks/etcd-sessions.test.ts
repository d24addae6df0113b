// Lock sessions on etcd, beyond the contract (locks-etcd.test.ts runs it through sessions too):
// what etcd itself sees of a session, counted from etcd's own /metrics (grpc_server_handled_total
// by method), never from our code: an uncontended cycle is 2 etcd calls, a clean end with 50
// locks is one LeaseRevoke. And what a session on etcd promises: `etcdctl lock` contends with
// its locks; any server on the same etcd resumes it with every lock (its id carries what they
// need); a broken stream releases nothing; a session that expires says so; unary Refresh
// refuses its leases and unary Release releases one lock without revoking the others (the
// session is lost); a server that dies mid-wait leaves no orphan in the queue. Real
// etcd, real latchkey servers over real gRPC (two on one etcd; one in its own process where
// one is killed), raw Locks/Session streams and the SDK.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { connect } from '../../client/index.js';
import type { Lease__Output as Lease, LockState__Output as LockState } from '../../client/common/index.js';
import { loadProto } from '../../src/proto.js';
import { rejection } from '../support/assertions.js';
import { etcdctl, etcdctlLock, etcdMissing, startEtcd, type EtcdMember } from '../support/etcd.js';
import { parseMetrics } from '../support/metrics.js';
import { startServer, type TestServer } from '../support/server.js';
import { SessionStream } from '../support/session-stream.js';
import { spawnServer } from '../support/spawn.js';

const S = grpc.status;
const PREFIX = `latchkey-etcd-sessions-${process.pid}/`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let seq = 0;
const fresh = (label: string) => `${label}-${seq++}`;

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The calls etcd has handled, by gRPC method (every status code together), from its /metrics. */
async function etcdCalls(member: EtcdMember): Promise<Map<string, number>> {
  const response = await fetch(`http://${member.endpoint}/metrics`);
  assert.equal(response.status, 200);
  const calls = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    const m = /^grpc_server_handled_total\{(.*)\} (\S+)$/.exec(line);
    if (m === null) continue;
    const method = /grpc_method="([^"]+)"/.exec(m[1]!)![1]!;
    calls.set(method, (calls.get(method) ?? 0) + Number(m[2]));
  }
  return calls;
}

/** The calls etcd handled while `work` ran, by method, only those it made any of. */
async function callsDuring(member: EtcdMember, work: () => Promise<void>): Promise<Record<string, number>> {
  const before = await etcdCalls(member);
  await work();
  const after = await etcdCalls(member);
  const made: Record<string, number> = {};
  for (const [method, count] of after)
    if (count > (before.get(method) ?? 0)) made[method] = count - (before.get(method) ?? 0);
  return made;
}

describe('lock sessions on etcd', { skip: etcdMissing() }, () => {
  let etcd: EtcdMember;
  let a: TestServer;
  let b: TestServer;
  const streams: SessionStream[] = [];
  const open = async (server: TestServer, fields: object = {}) => {
    const stream = await SessionStream.open(server.locks, { backend: 'etcd', ttl_ms: 30_000, ...fields });
    streams.push(stream);
    return stream;
  };
  const unary = <Res>(server: TestServer, method: string, request: object) =>
    server.call<Res>(server.locks, method, { backend: 'etcd', ...request });
  const describeLock = (name: string) => unary<LockState>(a, 'Describe', { name });

  before(async () => {
    etcd = await startEtcd();
    const config = { etcdEndpoints: etcd.endpoint, etcdPrefix: PREFIX };
    [a, b] = await Promise.all([startServer(config), startServer(config)]);
  });
  after(async () => {
    for (const stream of streams) if (stream.end === undefined) stream.call.cancel();
    await a?.[Symbol.asyncDispose]();
    await b?.[Symbol.asyncDispose]();
    await etcd?.[Symbol.asyncDispose]();
  });

  test('an uncontended cycle is 2 etcd calls (the mutex Txn on the session lease, one delete Txn); unary is 5', async (t) => {
    const cycles = 20;
    const name = fresh('cycle');
    const stream = await open(a);
    const viaSession = await callsDuring(etcd, async () => {
      for (let i = 0; i < cycles; i++) {
        const lease = await stream.op<Lease>({ acquire: { name } });
        assert.deepEqual(await stream.op({ release: { name, lease_id: lease.lease_id } }), { released: true });
      }
    });
    assert.deepEqual(viaSession, { Txn: 2 * cycles }, 'no lease grant, keepalive, revoke, read or delete of their own');
    await stream.close();

    // The SDK's lock() and release() through its session: the same 2 per cycle.
    await using client = connect(a.address);
    const options = { backend: 'etcd', ttlMs: 30_000 };
    await (await client.lock(fresh('sdk-open'), options)).release(); // opens the session
    const viaSdk = await callsDuring(etcd, async () => {
      for (let i = 0; i < cycles; i++) await client.withLock(name, async () => {}, options);
    });
    assert.deepEqual(viaSdk, { Txn: 2 * cycles });

    const viaUnary = await callsDuring(etcd, async () => {
      for (let i = 0; i < cycles; i++) {
        const lease = await unary<Lease>(a, 'Acquire', { name, ttl_ms: 30_000 });
        await unary(a, 'Release', { name, lease_id: lease.lease_id });
      }
    });
    const perCycle = (calls: Record<string, number>) => Object.values(calls).reduce((x, y) => x + y, 0) / cycles;
    t.diagnostic(`etcd calls per uncontended cycle: session ${perCycle(viaSession)} ${JSON.stringify(viaSession)}`);
    t.diagnostic(`SDK (session) ${perCycle(viaSdk)}; unary ${perCycle(viaUnary)} ${JSON.stringify(viaUnary)}`);
    // A unary lease whose grant came back slowly is kept alive at once (its own session's
    // rule), so a loaded machine may add a LeaseKeepAlive now and then; the rest is exact.
    const { LeaseKeepAlive: _keepalives, ...unaryCalls } = viaUnary;
    assert.equal(perCycle(unaryCalls), 5, 'unary: grant, put, read the holder, delete, revoke');
  });

  test("the own-key writes of one frame go to etcd as one Txn; each lock's id still names only its lock", async () => {
    const stream = await open(a);
    const names = Array.from({ length: 8 }, (_, i) => fresh(`batch-${i}`));
    let leases: Lease[] = [];
    const acquires = await callsDuring(etcd, async () => {
      leases = await Promise.all(stream.ops<Lease>(names.map((name) => ({ acquire: { name } }))));
    });
    assert.deepEqual(acquires, { Txn: 1 }, '8 acquires, one transaction');
    // One Txn writes at one revision: every key has the same create revision (the token).
    assert.equal(new Set(leases.map((l) => l.fencing_token)).size, 1);
    assert.equal(new Set(leases.map((l) => l.lease_id)).size, 8, 'eight distinct lock ids');
    // The id of one lock of that Txn releases no other one.
    const crossed = await rejection(stream.op({ release: { name: names[1]!, lease_id: leases[0]!.lease_id } }));
    assert.equal(crossed.code, S.FAILED_PRECONDITION, crossed.details);
    assert.match(crossed.details, /is not a lock of this session on lock/);
    const unaryCrossed = await rejection(unary(b, 'Release', { name: names[1]!, lease_id: leases[0]!.lease_id }));
    assert.equal(unaryCrossed.code, S.FAILED_PRECONDITION, unaryCrossed.details);
    assert.equal((await describeLock(names[1]!)).held, true, 'the lock stayed held');

    const releases = await callsDuring(etcd, async () => {
      const answers = await Promise.all(
        stream.ops(names.map((name, i) => ({ release: { name, lease_id: leases[i]!.lease_id } }))),
      );
      assert.deepEqual(
        answers,
        names.map(() => ({ released: true })),
      );
    });
    assert.deepEqual(releases, { Txn: 1 }, '8 releases, one transaction');
    const states = await Promise.all(names.map(describeLock));
    assert.deepEqual(
      states.map((st) => st.held),
      names.map(() => false),
    );
    await stream.close();
  });

  test("a batch one member's compare fails is undone and every member runs alone, with what it would have met", async () => {
    const stream = await open(a, { owner: 'batch' });
    const leaseHex = stream.opened.session_id.split('.')[1]!;
    const [plain, retried] = [fresh('undo-plain'), fresh('undo-retried')];
    // The own key of `retried` exists already on the session's lease, as after a put whose
    // answer was lost: its create == 0 compare fails, and with it the batch's.
    await etcdctl(etcd.endpoint, ['put', `--lease=${leaseHex}`, `${PREFIX}${retried}/${leaseHex}`, 'batch']);
    let leases: Lease[] = [];
    const calls = await callsDuring(etcd, async () => {
      leases = await Promise.all(stream.ops<Lease>([{ acquire: { name: plain } }, { acquire: { name: retried } }]));
    });
    assert.deepEqual(calls, { Txn: 3 }, 'the batch, then each member alone');
    assert.deepEqual(
      leases.map((l) => l.name),
      [plain, retried],
    );
    // Alone, the retried put read its key back: granted on it (the key etcdctl put first).
    assert.ok(BigInt(leases[1]!.fencing_token) < BigInt(leases[0]!.fencing_token));
    for (const name of [plain, retried]) assert.equal((await describeLock(name)).held, true, name);
    await stream.close();
  });

  test('a clean end with 50 locks held is one LeaseRevoke: all 50 are free at once', async () => {
    await using client = connect(a.address);
    const options = { backend: 'etcd', ttlMs: 30_000 };
    const names = Array.from({ length: 50 }, (_, i) => fresh(`fifty-${i}`));
    const locks = await Promise.all(names.map((name) => client.lock(name, options)));
    assert.ok(
      locks.every((lock) => lock.leaseId.split('.')[0] === locks[0]!.leaseId.split('.')[0]),
      'one lease',
    );
    // (A waiter elsewhere would make calls of its own as the locks go: see the etcdctl test.)
    const atEnd = await callsDuring(etcd, () => client.close());
    assert.deepEqual(atEnd, { LeaseRevoke: 1 }, 'one revoke, no delete per lock');
    for (const lock of locks) assert.equal(lock.state, 'released');
    const states = await Promise.all(names.map(describeLock));
    assert.deepEqual(
      states.map((s) => s.held),
      names.map(() => false),
    );
  });

  test('`etcdctl lock` contends with session locks: FIFO both ways, fencing tokens increasing', async () => {
    const name = fresh('etcdctl');
    const stream = await open(a, { owner: 'session' });
    const mine = await stream.op<Lease>({ acquire: { name } });
    await using theirs = etcdctlLock(etcd.endpoint, PREFIX + name, { ttlS: 30 });
    await until('etcdctl queued', async () => (await describeLock(name)).waiters === 1);
    assert.equal(theirs.holding(), false, 'etcdctl got a lock a session holds');
    await stream.op({ release: { name, lease_id: mine.lease_id } });
    const key = await theirs.held();
    assert.ok(key.startsWith(`${PREFIX}${name}/`), key);
    const busy = await rejection(stream.op({ acquire: { name } }));
    assert.equal(busy.code, S.ABORTED);
    assert.match(busy.details, /held by an unnamed owner \(e\.g\. `etcdctl lock`\) \(etcd key /);
    const waiting = stream.op<Lease>({ acquire: { name, wait_ms: 20_000 } });
    await until('the session queued behind etcdctl', async () => (await describeLock(name)).waiters === 1);
    await theirs.stop();
    const again = await waiting;
    assert.ok(BigInt(again.fencing_token) > BigInt(mine.fencing_token));
    assert.equal((await describeLock(name)).owner, 'session');

    // etcdctl waiting behind a session lock gets it at the session's clean end (the revoke).
    await using next = etcdctlLock(etcd.endpoint, PREFIX + name, { ttlS: 30 });
    await until('etcdctl queued again', async () => (await describeLock(name)).waiters === 1);
    await stream.close();
    await next.held();
  });

  test('any server on the same etcd resumes a session with every lock; a broken stream released nothing', async () => {
    const [plain, sem, read, busy] = [fresh('move'), fresh('move-sem'), fresh('move-read'), fresh('move-busy')];
    const holder = await unary<Lease>(b, 'Acquire', { name: busy, ttl_ms: 30_000, owner: 'holder' });
    const first = await open(a, { owner: 'mover' });
    const leases = await Promise.all([
      first.op<Lease>({ acquire: { name: plain } }),
      first.op<Lease>({ acquire: { name: sem, limit: 3 } }),
      first.op<Lease>({ acquire: { name: read, mode: 'SHARED' } }),
    ]);
    const waiting = first.op({ acquire: { name: busy, wait_ms: 20_000 } });
    await until('the session queued', async () => (await describeLock(busy)).waiters === 1);
    await first.cancel();
    assert.equal((await rejection(waiting)).code, S.CANCELLED);
    await until('the broken stream withdrew its wait', async () => (await describeLock(busy)).waiters === 0);
    for (const lease of leases) assert.equal((await describeLock(lease.name)).fencing_token, lease.fencing_token);

    const second = await open(b, { resume_id: first.opened.session_id, owner: 'resumed' });
    assert.equal(second.opened.resumed, true);
    assert.equal(second.opened.session_id, first.opened.session_id);
    const byName = (list: readonly Lease[]) =>
      list.map((l) => [l.name, l.fencing_token, l.lease_id, l.mode, l.limit].join(' ')).sort();
    assert.deepEqual(byName(second.opened.leases), byName(leases));
    // The server that took it up refuses a name the session holds, from what etcd listed.
    const again = await rejection(second.op({ acquire: { name: sem, limit: 3 } }));
    assert.equal(again.code, S.FAILED_PRECONDITION);
    assert.match(again.details, /this session already holds lock/);
    await second.op({ keepalive: {} });
    assert.deepEqual(await second.op({ release: { name: plain, lease_id: leases[0]!.lease_id } }), {
      released: true,
    });
    assert.equal((await describeLock(plain)).held, false);
    assert.equal((await describeLock(sem)).fencing_token, leases[1]!.fencing_token);
    const metrics = parseMetrics(await b.server.metrics());
    assert.equal(metrics.value('latchkey_lock_sessions_resumed_total', { backend: 'etcd' }), 1);
    assert.equal(metrics.value('latchkey_lock_sessions_open', { backend: 'etcd' }), 1, 'b follows the session now');
    await second.close();
    for (const name of [sem, read]) assert.equal((await describeLock(name)).held, false);
    await unary(b, 'Release', { name: busy, lease_id: holder.lease_id });
  });

  test('a resume is refused for a wrong secret, a lease that is no session, an id of another form; nothing is touched', async () => {
    const name = fresh('refused');
    const stream = await open(a);
    const lease = await stream.op<Lease>({ acquire: { name } });
    const id = stream.opened.session_id;
    const [, leaseHex, secret] = id.split('.');
    const unaryLease = await unary<Lease>(a, 'Acquire', { name: fresh('unary'), ttl_ms: 30_000 });
    const cases: [string, string, grpc.status, RegExp][] = [
      [
        'a wrong secret',
        `etcd.${leaseHex}.${'0'.repeat(32)}`,
        S.FAILED_PRECONDITION,
        /is gone: etcd at .* has no such session/,
      ],
      ["a unary lock's lease", `etcd.${unaryLease.lease_id}.${secret}`, S.FAILED_PRECONDITION, /has no such session/],
      ['a lease etcd does not have', `etcd.7fffffffffffffff.${secret}`, S.FAILED_PRECONDITION, /has no such session/],
      ['not an etcd session id', `etcd.${leaseHex}`, S.INVALID_ARGUMENT, /resume_id is not an etcd session id/],
    ];
    const calls = await callsDuring(etcd, async () => {
      for (const [label, resumeId, code, message] of cases) {
        const err = await rejection(SessionStream.open(b.locks, { resume_id: resumeId }));
        assert.equal(err.code, code, `${label}: ${err.details}`);
        assert.match(err.details, message, label);
        assert.ok(!err.details.includes(secret!), `${label}: the message repeats the secret`);
      }
    });
    // One LeaseTimeToLive each where there was a lease to ask about; no keepalive, no write.
    assert.deepEqual(Object.keys(calls), ['LeaseTimeToLive'], JSON.stringify(calls));
    assert.equal((await describeLock(name)).fencing_token, lease.fencing_token);
    await stream.op({ keepalive: {} });
    await stream.close();
    await stream.ended;
    const ended = await rejection(SessionStream.open(b.locks, { resume_id: id }));
    assert.equal(ended.code, S.FAILED_PRECONDITION);
    assert.match(ended.details, /is gone/);
    await unary(a, 'Release', { name: unaryLease.name, lease_id: unaryLease.lease_id });
  });

  test("unary Refresh refuses a session's lease; unary Release releases one lock and loses the session, through any server", async () => {
    for (const [label, releaser] of [
      ['the server serving it', () => a],
      ['another server', () => b],
    ] as const) {
      const [name, other] = [fresh('outside'), fresh('outside-other')];
      const stream = await open(a, { ttl_ms: 2_000 });
      const [lease, second] = await Promise.all([
        stream.op<Lease>({ acquire: { name } }),
        stream.op<Lease>({ acquire: { name: other } }),
      ]);
      const leaseHex = stream.opened.session_id.split('.')[1]!;
      assert.equal(lease.lease_id.split('.')[0], leaseHex);
      for (const server of [a, b])
        for (const leaseId of [lease.lease_id, leaseHex]) {
          const err = await rejection(unary(server, 'Refresh', { name, lease_id: leaseId }));
          assert.equal(err.code, S.FAILED_PRECONDITION, `Refresh ${leaseId}: ${err.details}`);
          assert.match(err.details, /belongs to a lock session: its session's keepalive renews it/);
        }
      // A forged session lock id (another revision) holds nothing: refused, nothing touched.
      const forged = `${leaseHex}.${BigInt(lease.fencing_token) + 1000n}`;
      assert.equal((await rejection(unary(a, 'Release', { name, lease_id: forged }))).code, S.FAILED_PRECONDITION);
      await stream.op({ keepalive: {} });
      const released = await callsDuring(etcd, async () => {
        assert.deepEqual(await unary(releaser(), 'Release', { name, lease_id: lease.lease_id }), { released: true });
      });
      assert.equal(released.LeaseRevoke, undefined, `${label}: the session's lease was revoked`);
      assert.equal((await describeLock(name)).held, false);
      // The serving server hears it at once; another hears it at the next keepalive.
      if (label === 'another server') {
        const kept = await rejection(stream.op({ keepalive: {} }));
        assert.equal(kept.code, S.FAILED_PRECONDITION);
      }
      const end = await stream.ended;
      assert.equal(end.code, S.FAILED_PRECONDITION, label);
      assert.match(end.details, /was lost at .*released from outside the session/);
      // Its holder may not have heard yet: nobody gets its other lock before the session expires.
      assert.equal((await describeLock(other)).fencing_token, second.fencing_token);
      const next = await unary<Lease>(b, 'Acquire', { name: other, ttl_ms: 30_000, wait_ms: 10_000 });
      assert.ok(Date.now() >= Number(second.expires_at_ms) - 50, `${label}: granted before the lost session expired`);
      const resumed = await rejection(SessionStream.open(b.locks, { resume_id: stream.opened.session_id }));
      assert.equal(resumed.code, S.FAILED_PRECONDITION);
      await unary(b, 'Release', { name: other, lease_id: next.lease_id });
    }
  });

  test('a detached session keeps its locks until its TTL, then etcd frees them; one that expires attached says so, counted', async () => {
    const [kept, busy, lapsed] = [fresh('ttl-kept'), fresh('ttl-busy'), fresh('ttl-lapsed')];
    const detached = await open(a, { ttl_ms: 2_000 });
    const lease = await detached.op<Lease>({ acquire: { name: kept } });
    await detached.cancel();
    const brokeAt = Date.now();
    const next = await unary<Lease>(b, 'Acquire', { name: kept, ttl_ms: 30_000, wait_ms: 20_000 });
    assert.ok(Date.now() - brokeAt >= 1_500, `granted ${Date.now() - brokeAt} ms after the break, within the TTL`);
    assert.ok(BigInt(next.fencing_token) > BigInt(lease.fencing_token));
    await unary(b, 'Release', { name: kept, lease_id: next.lease_id });

    // Attached, with no keepalive: its wait and then its stream end FAILED_PRECONDITION.
    const holder = await unary<Lease>(b, 'Acquire', { name: busy, ttl_ms: 30_000 });
    const expiries = async () =>
      parseMetrics(await a.server.metrics()).value('latchkey_lock_sessions_expired_total', { backend: 'etcd' });
    // Sessions of the tests before (lost ones) expire too, and are counted: wait for them first.
    await sleep(2_500);
    const expiredBefore = await expiries();
    const attached = await open(a, { ttl_ms: 1_000 });
    await attached.op<Lease>({ acquire: { name: lapsed } });
    const waiting = attached.op({ acquire: { name: busy, wait_ms: 20_000 } });
    const err = await rejection(waiting);
    assert.equal(err.code, S.FAILED_PRECONDITION);
    assert.equal((err as unknown as { reason: string }).reason, 'SessionExpiredError');
    const end = await attached.ended;
    assert.equal(end.code, S.FAILED_PRECONDITION);
    assert.match(end.details, /expired at .* \(no keepalive within its TTL of 1000 ms\)/);
    assert.equal((await describeLock(lapsed)).held, false);
    assert.equal((await describeLock(busy)).waiters, 0);
    assert.equal((await expiries()) - expiredBefore, 1);
    await unary(b, 'Release', { name: busy, lease_id: holder.lease_id });
  });
});

describe('lock sessions on etcd: a server that dies', { skip: etcdMissing() }, () => {
  test('killed while its session waited: a resume elsewhere keeps the held lock and takes the dead wait out of the queue', async () => {
    await using etcd = await startEtcd();
    const prefix = `latchkey-etcd-sessions-kill-${process.pid}/`;
    await using dying = await spawnServer(['--etcd-endpoints', etcd.endpoint, '--etcd-prefix', prefix]);
    await using other = await startServer({ etcdEndpoints: etcd.endpoint, etcdPrefix: prefix });
    const proto = loadProto();
    const there = new proto.latchkey.v1.Locks(dying.address, grpc.credentials.createInsecure());
    try {
      const [held, busy] = ['kill-held', 'kill-busy'];
      const unary = <Res>(method: string, request: object) =>
        other.call<Res>(other.locks, method, { backend: 'etcd', ...request });
      const holder = await unary<Lease>('Acquire', { name: busy, ttl_ms: 30_000, owner: 'holder' });
      const stream = await SessionStream.open(there, { backend: 'etcd', ttl_ms: 30_000 });
      const lease = await stream.op<Lease>({ acquire: { name: held } });
      void stream.op({ acquire: { name: busy, wait_ms: 20_000 } }).catch(() => {});
      await until('the session queued', async () => (await unary<LockState>('Describe', { name: busy })).waiters === 1);
      assert.deepEqual(await dying.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
      // The dead server could not withdraw the wait: its key is still queued in etcd.
      assert.equal((await unary<LockState>('Describe', { name: busy })).waiters, 1);
      const resumed = await SessionStream.open(other.locks, { resume_id: stream.opened.session_id });
      assert.deepEqual(
        resumed.opened.leases.map((l) => [l.name, l.fencing_token]),
        [[held, lease.fencing_token]],
      );
      assert.equal((await unary<LockState>('Describe', { name: busy })).waiters, 0, 'the dead wait is gone');
      // So the holder's release grants nobody the client does not know of.
      await unary('Release', { name: busy, lease_id: holder.lease_id });
      assert.equal((await unary<LockState>('Describe', { name: busy })).held, false);
      const keys = await etcdctl(etcd.endpoint, ['get', '--prefix', `${prefix}${busy}/`, '--keys-only']);
      assert.equal(keys.trim(), '');
      await resumed.close();
    } finally {
      there.close();
    }
  });
});
