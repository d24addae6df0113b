// Lock sessions beyond the contract (which runs through them too): the stream protocol of
// Locks/Session on every backend that declares sessions — tags answered out of order, a
// waiting acquire holding up nothing, one name per session, the clean end releasing all, a
// half-close or a cancel releasing nothing, cancel ops, resume and takeover, stream-level
// mistakes, expiry while attached, shutdown, bounded frames — and the TTL logic of detached sessions on a manual clock, metrics and logs, and
// the file backend's session record and lost sessions. Real servers over real gRPC, raw
// grpc-js streams (test/support/session-stream.ts), not the SDK. A client process that dies
// is in session-death.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type {
  Lease__Output as Lease,
  LockEvent__Output,
  LockState__Output as LockState,
  SessionKeptAlive__Output as KeptAlive,
} from '../../client/common/index.js';
import { ManualClock } from '../../src/clock.js';
import type { Config } from '../../src/config.js';
import type { LockBackend } from '../../src/locks/backend.js';
import { FileLockBackend } from '../../src/locks/file.js';
import { MemoryLockBackend } from '../../src/locks/memory.js';
import { MAX_LEASE_MESSAGE_BYTES, maxSessionLocks } from '../../src/locks/service.js';
import { rejection } from '../support/assertions.js';
import { parseMetrics } from '../support/metrics.js';
import { startServer, type TestServer } from '../support/server.js';
import { SessionStream } from '../support/session-stream.js';

const S = grpc.status;
const scratch = mkdtempSync(join(tmpdir(), 'latchkey-sessions-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(scratch, `dir-${dirs++}`);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Whether the promise has settled, without waiting for it. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  const winner = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    Promise.resolve(marker),
  ]);
  return winner !== marker;
}

let seq = 0;
const fresh = (label: string) => `sessions/${label}/${process.pid}-${seq++}`;

interface Target {
  readonly backend: 'memory' | 'file';
  start(config?: Partial<Config>): Promise<TestServer>;
}

const TARGETS: readonly Target[] = [
  { backend: 'memory', start: (config = {}) => startServer(config) },
  { backend: 'file', start: (config = {}) => startServer({ backend: 'file', lockDir: freshDir(), ...config }) },
];

for (const target of TARGETS) {
  const { backend } = target;
  describe(`lock sessions: ${backend}`, () => {
    let s: TestServer;
    const streams: SessionStream[] = [];
    const open = async (fields: object = {}, options?: grpc.CallOptions) => {
      const stream = await SessionStream.open(s.locks, { backend, ttl_ms: 30_000, ...fields }, options);
      streams.push(stream);
      return stream;
    };
    const unary = <Res>(method: string, request: object) => s.call<Res>(s.locks, method, { backend, ...request });
    const describeLock = (name: string) => unary<LockState>('Describe', { name });

    before(async () => {
      s = await target.start();
    });
    after(async () => {
      for (const stream of streams) if (stream.end === undefined) stream.call.cancel();
      await s?.[Symbol.asyncDispose]();
    });

    test('ops of one frame are answered by tag as each finishes: a waiting acquire sent first is answered last', async () => {
      const busy = fresh('busy');
      const free = fresh('free');
      const holder = await unary<Lease>('Acquire', { name: busy, ttl_ms: 30_000, owner: 'holder' });
      const stream = await open({ owner: 'frame' });
      const [waiting, described, kept, other] = stream.ops([
        { acquire: { name: busy, wait_ms: 20_000 } },
        { describe: { name: busy } },
        { keepalive: {} },
        { acquire: { name: free } },
      ]);
      const state = (await described) as LockState;
      assert.equal(state.owner, 'holder');
      assert.equal(state.waiters, 1, "the stream's own waiting acquire is queued");
      assert.ok(Number(((await kept) as KeptAlive).expires_at_ms) > Date.now());
      assert.equal(((await other) as Lease).owner, 'frame');
      assert.deepEqual([...stream.answered].sort(), ['2', '3', '4'], 'tags 2-4 answered, tag 1 still waits');
      assert.equal(await settled(waiting), false);
      await unary('Release', { name: busy, lease_id: holder.lease_id });
      const lease = (await waiting) as Lease;
      assert.equal(lease.name, busy);
      assert.ok(BigInt(lease.fencing_token) > BigInt(holder.fencing_token));
      assert.equal(stream.answered.at(-1), '1');
      assert.equal((await stream.close()).code, S.OK);
    });

    test('a waiting acquire does not hold up a describe or a keepalive sent after it on the same stream', async () => {
      const name = fresh('not-blocked');
      const holder = await unary<Lease>('Acquire', { name, ttl_ms: 30_000, owner: 'holder' });
      const stream = await open({ owner: 'waiter' });
      const waiting = stream.op<Lease>({ acquire: { name, wait_ms: 20_000 } });
      await until('the session queued', async () => (await describeLock(name)).waiters === 1);
      const state = await stream.op<LockState>({ describe: { name } });
      assert.equal(state.waiters, 1);
      assert.equal(state.owner, 'holder');
      const kept = await stream.op<KeptAlive>({ keepalive: {} });
      assert.ok(Number(kept.expires_at_ms) > Date.now() + 20_000);
      assert.equal(await settled(waiting), false, 'the acquire is still waiting');
      await unary('Release', { name, lease_id: holder.lease_id });
      assert.equal((await waiting).owner, 'waiter');
      await stream.close();
    });

    test('a session asking again for a name it holds or waits for gets FAILED_PRECONDITION and keeps what it has', async () => {
      const name = fresh('again');
      const stream = await open();
      const lease = await stream.op<Lease>({ acquire: { name } });
      const again = await rejection(stream.op({ acquire: { name, wait_ms: 1_000 } }));
      assert.equal(again.code, S.FAILED_PRECONDITION);
      assert.equal((again as unknown as { reason: string }).reason, 'FailedPreconditionError');
      assert.match(again.details, /this session already holds lock/);
      assert.equal((await describeLock(name)).fencing_token, lease.fencing_token);

      const other = fresh('again-waiting');
      const holder = await unary<Lease>('Acquire', { name: other, ttl_ms: 30_000 });
      const waiting = stream.op<Lease>({ acquire: { name: other, wait_ms: 20_000 } });
      await until('the session queued', async () => (await describeLock(other)).waiters === 1);
      const twice = await rejection(stream.op({ acquire: { name: other, wait_ms: 20_000 } }));
      assert.equal(twice.code, S.FAILED_PRECONDITION);
      assert.match(twice.details, /this session already waits for lock/);
      assert.equal((await describeLock(other)).waiters, 1, 'the refused acquire did not queue');

      // Once released, the name may be taken again in the same session.
      assert.deepEqual(await stream.op({ release: { name, lease_id: lease.lease_id } }), { released: true });
      const retaken = await stream.op<Lease>({ acquire: { name } });
      assert.ok(BigInt(retaken.fencing_token) > BigInt(lease.fencing_token));
      await unary('Release', { name: other, lease_id: holder.lease_id });
      await waiting;
      await stream.close();
    });

    test('an end with 50 locks held releases all 50 at once: waiters elsewhere get them; the session is over', async () => {
      const names = Array.from({ length: 50 }, (_, i) => fresh(`fifty-${i}`));
      const stream = await open({ ttl_ms: 60_000 });
      const leases = await Promise.all(stream.ops<Lease>(names.map((name) => ({ acquire: { name } }))));
      const waiters = names.map((name) => unary<Lease>('Acquire', { name, ttl_ms: 30_000, wait_ms: 20_000 }));
      const elsewhere = fresh('fifty-elsewhere');
      await unary<Lease>('Acquire', { name: elsewhere, ttl_ms: 30_000 });
      const ownWait = stream.op({ acquire: { name: elsewhere, wait_ms: 20_000 } });
      await until('every waiter queued', async () => {
        const states = await Promise.all([...names, elsewhere].map(describeLock));
        return states.every((state) => state.waiters === 1);
      });
      const closedAt = Date.now();
      const end = await stream.close();
      assert.equal(end.code, S.OK, end.details);
      const cancelled = await rejection(ownWait);
      assert.equal(cancelled.code, S.CANCELLED, 'the waiting acquire of the ended session');
      const granted = await Promise.all(waiters);
      assert.ok(Date.now() - closedAt < 10_000, 'released by the end, not by the 60 s TTL');
      granted.forEach((lease, i) => assert.ok(BigInt(lease.fencing_token) > BigInt(leases[i]!.fencing_token)));
      // The waiters hold them now: the session's grants are gone.
      for (const [i, name] of names.entries())
        assert.equal((await describeLock(name)).fencing_token, granted[i]!.fencing_token);
      const resumed = await rejection(SessionStream.open(s.locks, { resume_id: stream.opened.session_id }));
      assert.equal(resumed.code, S.FAILED_PRECONDITION);
      assert.match(resumed.details, /ended at/);
      await Promise.all(granted.map((lease) => unary('Release', { name: lease.name, lease_id: lease.lease_id })));
    });

    test('a resume within the TTL keeps every lock, and takes the session over from a stream still attached (ABORTED)', async () => {
      const names = [fresh('resume-a'), fresh('resume-b'), fresh('resume-c')];
      const first = await open({ owner: 'first' });
      const leases = await Promise.all(first.ops<Lease>(names.map((name) => ({ acquire: { name } }))));
      const busy = fresh('resume-busy');
      const holder = await unary<Lease>('Acquire', { name: busy, ttl_ms: 30_000 });
      const waiting = first.op({ acquire: { name: busy, wait_ms: 20_000 } });
      await until('the session queued', async () => (await describeLock(busy)).waiters === 1);

      const second = await open({ resume_id: first.opened.session_id, owner: 'second' });
      assert.equal(second.opened.resumed, true);
      assert.equal(second.opened.session_id, first.opened.session_id);
      const byName = (list: readonly Lease[]) =>
        list.map((l) => [l.name, l.fencing_token, l.lease_id]).sort((x, y) => x[0]!.localeCompare(y[0]!));
      assert.deepEqual(byName(second.opened.leases), byName(leases));
      const taken = await first.ended;
      assert.equal(taken.code, S.ABORTED);
      assert.match(taken.details, /resumed by another stream/);
      await rejection(waiting);
      await until('the old stream withdrew its waiter', async () => (await describeLock(busy)).waiters === 0);
      for (const lease of leases) assert.equal((await describeLock(lease.name)).fencing_token, lease.fencing_token);
      await second.op({ keepalive: {} });
      assert.deepEqual(await second.op({ release: { name: names[0]!, lease_id: leases[0]!.lease_id } }), {
        released: true,
      });
      // A lock taken after the resume gets the resuming stream's default owner.
      assert.equal((await second.op<Lease>({ acquire: { name: fresh('resume-new') } })).owner, 'second');
      await second.close();
      for (const name of names) assert.equal((await describeLock(name)).held, false);
      await unary('Release', { name: busy, lease_id: holder.lease_id });
    });

    test('a resume is refused with a reason: ended, not an id, another backend, another server', async (t) => {
      const ended = await open();
      await ended.close();
      const cases: [string, object, grpc.status, RegExp][] = [
        ['ended', { resume_id: ended.opened.session_id }, S.FAILED_PRECONDITION, /ended at/],
        ['not an id', { resume_id: 'nonsense' }, S.INVALID_ARGUMENT, /resume_id is not a session id/],
        ['a malformed id', { resume_id: `${backend}.zz.zz` }, S.INVALID_ARGUMENT, /resume_id is not a \w+ session id/],
        [
          'a backend not enabled',
          { resume_id: 'redis.0.0' },
          S.INVALID_ARGUMENT,
          /backend "redis", which is not enabled/,
        ],
        [
          'a backend other than the id',
          { resume_id: ended.opened.session_id, backend: 'elsewhere' },
          S.INVALID_ARGUMENT,
          /does not match resume_id/,
        ],
      ];
      for (const [label, openFields, code, message] of cases) {
        await t.test(label, async () => {
          const err = await rejection(SessionStream.open(s.locks, openFields));
          assert.equal(err.code, code, err.details);
          assert.match(err.details, message);
        });
      }
      await t.test('a session of another server (or of this one before a restart)', async () => {
        await using other = await target.start();
        const there = await SessionStream.open(other.locks, { backend, ttl_ms: 30_000 });
        const err = await rejection(SessionStream.open(s.locks, { resume_id: there.opened.session_id }));
        assert.equal(err.code, S.FAILED_PRECONDITION);
        assert.match(err.details, /opened by another latchkey server process.*acrossHosts/);
        await there.close();
      });
    });

    test('stream-level mistakes end the stream with a status and leave the session to its TTL', async (t) => {
      await t.test('a first request without open: INVALID_ARGUMENT', async () => {
        const stream = new SessionStream(s.locks, null);
        stream.writeRaw({ ops: [{ tag: '1', describe: { name: fresh('no-open') } }] });
        const end = await stream.ended;
        assert.equal(end.code, S.INVALID_ARGUMENT);
        assert.match(end.details, /first SessionRequest of a stream must carry open/);
      });
      await t.test('open again: INVALID_ARGUMENT; the session and its lock stay, resumable', async () => {
        const name = fresh('open-twice');
        const stream = await open();
        const lease = await stream.op<Lease>({ acquire: { name } });
        stream.writeRaw({ open: { backend } });
        const end = await stream.ended;
        assert.equal(end.code, S.INVALID_ARGUMENT);
        assert.match(end.details, /open may come only in the first SessionRequest/);
        assert.equal((await describeLock(name)).fencing_token, lease.fencing_token);
        const resumed = await open({ resume_id: stream.opened.session_id });
        assert.deepEqual(
          resumed.opened.leases.map((l) => l.lease_id),
          [lease.lease_id],
        );
        await resumed.close();
      });
      await t.test('a tag in use by an unanswered op: INVALID_ARGUMENT; its waiting acquire is withdrawn', async () => {
        const name = fresh('dup-tag');
        await unary<Lease>('Acquire', { name, ttl_ms: 30_000 });
        const stream = await open();
        stream.writeRaw({ ops: [{ tag: '7', acquire: { name, wait_ms: 20_000 } }] });
        await until('the session queued', async () => (await describeLock(name)).waiters === 1);
        stream.writeRaw({ ops: [{ tag: '7', describe: { name } }] });
        const end = await stream.ended;
        assert.equal(end.code, S.INVALID_ARGUMENT);
        assert.match(end.details, /tag 7 is already used by an unanswered operation/);
        await until('the waiter withdrawn', async () => (await describeLock(name)).waiters === 0);
      });
      await t.test('a stream that ends before sending anything ends OK', async () => {
        const stream = new SessionStream(s.locks, null);
        assert.equal((await stream.halfClose()).code, S.OK);
        assert.equal(stream.frames.length, 0);
      });
    });

    test('a half-close without end releases nothing: waits are answered CANCELLED, the stream ends OK, the session resumes', async () => {
      const name = fresh('half-close');
      const busy = fresh('half-close-busy');
      await unary<Lease>('Acquire', { name: busy, ttl_ms: 30_000 });
      const stream = await open();
      const lease = await stream.op<Lease>({ acquire: { name } });
      const waiting = stream.op({ acquire: { name: busy, wait_ms: 20_000 } });
      await until('the session queued', async () => (await describeLock(busy)).waiters === 1);
      const end = await stream.halfClose();
      assert.equal(end.code, S.OK);
      assert.equal((await rejection(waiting)).code, S.CANCELLED);
      assert.equal((await describeLock(busy)).waiters, 0);
      assert.equal((await describeLock(name)).fencing_token, lease.fencing_token, 'a half-close released a lock');
      const resumed = await open({ resume_id: stream.opened.session_id });
      assert.deepEqual(
        resumed.opened.leases.map((l) => l.lease_id),
        [lease.lease_id],
      );
      await resumed.close();
      assert.equal((await describeLock(name)).held, false);
    });

    test('a client cancel releases nothing (grpc-js shows it to the server as a half-close first)', async () => {
      const name = fresh('cancel');
      const stream = await open();
      const lease = await stream.op<Lease>({ acquire: { name } });
      const handled = async () => {
        const text = await s.server.metrics();
        return [...text.matchAll(/^latchkey_rpc_handled_total\{[^}]*method="Session"[^}]*\} (\d+)$/gm)].reduce(
          (sum, m) => sum + Number(m[1]),
          0,
        );
      };
      const before = await handled();
      assert.equal((await stream.cancel()).code, S.CANCELLED);
      // However the server saw it (a half-close, then the reset), the stream is over there too.
      await until('the server ended the stream', async () => (await handled()) > before);
      await sleep(100);
      assert.equal((await describeLock(name)).fencing_token, lease.fencing_token, 'a cancel released a lock');
      const resumed = await open({ resume_id: stream.opened.session_id });
      assert.equal(resumed.opened.leases.length, 1);
      await resumed.close();
    });

    test('a cancel op withdraws one waiting acquire (answered CANCELLED) and nothing else', async () => {
      const [a, b] = [fresh('withdraw-a'), fresh('withdraw-b')];
      const holders = await Promise.all([a, b].map((name) => unary<Lease>('Acquire', { name, ttl_ms: 30_000 })));
      const stream = await open();
      const [first, second] = stream.ops<Lease>([
        { acquire: { name: a, wait_ms: 20_000 } },
        { acquire: { name: b, wait_ms: 20_000 } },
      ]);
      await until('both queued', async () => (await describeLock(a)).waiters + (await describeLock(b)).waiters === 2);
      stream.writeRaw({
        ops: [
          { tag: '99', cancel: { tag: '1' } },
          { tag: '100', cancel: { tag: '12345' } },
        ],
      });
      const err = await rejection(first);
      assert.equal(err.code, S.CANCELLED);
      assert.match(err.details, /cancelled/);
      await until('the waiter of a withdrawn', async () => (await describeLock(a)).waiters === 0);
      assert.equal((await describeLock(b)).waiters, 1);
      await unary('Release', { name: b, lease_id: holders[1]!.lease_id });
      assert.equal((await second).name, b);
      assert.ok(!stream.answered.includes('99') && !stream.answered.includes('100'), 'a cancel got an answer');
      await stream.close();
      await unary('Release', { name: a, lease_id: holders[0]!.lease_id });
    });

    test('a try-once acquire withdrawn while it runs answers CANCELLED and leaves the lock free', async () => {
      const [name, other] = [fresh('withdraw-try-once'), fresh('withdraw-try-once-other')];
      const stream = await open();
      // The cancel follows its acquire in the same frame: the acquire has run (on memory, it
      // was granted at once) but not yet been answered.
      stream.writeRaw({
        ops: [
          { tag: '7', acquire: { name, wait_ms: 0 } },
          { tag: '0', cancel: { tag: '7' } },
          { tag: '8', acquire: { name: other, wait_ms: 0 } },
        ],
      });
      const [withdrawn, kept] = [stream.expect('7'), stream.expect<Lease>('8')];
      const err = await rejection(withdrawn);
      assert.equal(err.code, S.CANCELLED);
      assert.match(err.details, /withdrawn|cancelled/);
      assert.equal((await kept).name, other, 'a cancel withdrew another acquire');
      assert.equal((await describeLock(name)).held, false, 'a withdrawn acquire left its lock held');
      // The session does not count it either: the name can be asked for again.
      assert.equal((await stream.op<Lease>({ acquire: { name } })).name, name);
      await stream.close();
    });

    test("unary Refresh refuses a session's lease; unary Release releases it and loses the session, whose other lock stays until it expires", async () => {
      const [a, b] = [fresh('outside-a'), fresh('outside-b')];
      const stream = await open({ ttl_ms: 1_500 });
      const [leaseA, leaseB] = await Promise.all(
        stream.ops<Lease>([{ acquire: { name: a } }, { acquire: { name: b } }]),
      );
      const refresh = await rejection(unary('Refresh', { name: a, lease_id: leaseA!.lease_id }));
      assert.equal(refresh.code, S.FAILED_PRECONDITION);
      assert.match(refresh.details, /belongs to a lock session: its session's keepalive renews it/);
      assert.deepEqual(await unary('Release', { name: a, lease_id: leaseA!.lease_id }), { released: true });
      assert.equal((await describeLock(a)).held, false);
      const end = await stream.ended;
      assert.equal(end.code, S.FAILED_PRECONDITION);
      assert.match(end.details, /was lost at .*released from outside the session/);
      // Its holder may not have heard yet: nobody gets its other lock before the session expires.
      assert.equal((await describeLock(b)).fencing_token, leaseB!.fencing_token);
      const next = await unary<Lease>('Acquire', { name: b, ttl_ms: 30_000, wait_ms: 10_000 });
      assert.ok(Date.now() >= Number(leaseB!.expires_at_ms) - 50, 'granted before the lost session expired');
      const resumed = await rejection(SessionStream.open(s.locks, { resume_id: stream.opened.session_id }));
      assert.equal(resumed.code, S.FAILED_PRECONDITION);
      await unary('Release', { name: b, lease_id: next.lease_id });
    });

    test('a session that expires while attached: its waiting acquire, then the stream, get FAILED_PRECONDITION; its lock is freed', async () => {
      const name = fresh('expires');
      const busy = fresh('expires-busy');
      const holder = await unary<Lease>('Acquire', { name: busy, ttl_ms: 30_000 });
      const stream = await open({ ttl_ms: 400 });
      const lease = await stream.op<Lease>({ acquire: { name } });
      const waiting = stream.op({ acquire: { name: busy, wait_ms: 20_000 } });
      const next = await unary<Lease>('Acquire', { name, ttl_ms: 30_000, wait_ms: 20_000 });
      assert.ok(Date.now() >= Number(lease.expires_at_ms) - 50, 'granted before the session expired');
      assert.ok(BigInt(next.fencing_token) > BigInt(lease.fencing_token));
      const err = await rejection(waiting);
      assert.equal(err.code, S.FAILED_PRECONDITION);
      assert.equal((err as unknown as { reason: string }).reason, 'SessionExpiredError');
      const end = await stream.ended;
      assert.equal(end.code, S.FAILED_PRECONDITION);
      assert.match(end.details, /expired at .* \(no keepalive within its TTL of 400 ms\)/);
      await unary('Release', { name, lease_id: next.lease_id });
      await unary('Release', { name: busy, lease_id: holder.lease_id });
    });

    test('at shutdown a waiting acquire is answered UNAVAILABLE and the stream ends UNAVAILABLE', async () => {
      await using server = await target.start();
      const name = fresh('shutdown');
      await server.call(server.locks, 'Acquire', { name, backend, ttl_ms: 30_000 });
      const stream = await SessionStream.open(server.locks, { backend, ttl_ms: 30_000 });
      const held = await stream.op<Lease>({ acquire: { name: fresh('shutdown-held') } });
      assert.ok(held.lease_id !== '');
      const waiting = stream.op({ acquire: { name, wait_ms: 20_000 } });
      await until('the session queued', async () => {
        const state = await server.call<LockState>(server.locks, 'Describe', { name, backend });
        return state.waiters === 1;
      });
      await server.server.shutdown(5_000);
      assert.equal((await rejection(waiting)).code, S.UNAVAILABLE);
      const end = await stream.ended;
      assert.equal(end.code, S.UNAVAILABLE, end.details);
    });
  });
}

describe('lock sessions: TTL logic on a manual clock (memory)', () => {
  test('a detached session keeps its locks until its TTL, then they expire as leases do: EXPIRED events, counted', async () => {
    const clock = new ManualClock(Date.now());
    await using s = await startServer({}, { clock });
    const [a, b] = [fresh('clock-a'), fresh('clock-b')];
    const stream = await SessionStream.open(s.locks, { ttl_ms: 1_000, owner: 'detached' });
    const leases = await Promise.all(stream.ops<Lease>([{ acquire: { name: a } }, { acquire: { name: b } }]));
    const events: LockEvent__Output[] = [];
    const watch = s.locks.Watch({ name: a });
    watch.on('data', (event: LockEvent__Output) => events.push(event));
    watch.on('error', () => {});
    await until('the watch started', () => events.length === 1);
    await stream.cancel();
    await until(
      'the server saw the break',
      async () => parseMetrics(await s.server.metrics()).value('latchkey_inflight_calls', { method: 'Session' }) === 0,
    );
    clock.advance(999);
    for (const lease of leases) {
      const state = await s.call<LockState>(s.locks, 'Describe', { name: lease.name });
      assert.equal(state.fencing_token, lease.fencing_token, 'a broken stream released a lock');
    }
    clock.advance(1);
    for (const name of [a, b]) assert.equal((await s.call<LockState>(s.locks, 'Describe', { name })).held, false);
    await until('the EXPIRED event', () => events.some((e) => e.type === 'EXPIRED'));
    const expired = events.find((e) => e.type === 'EXPIRED')!;
    assert.equal(expired.owner, 'detached');
    assert.equal(expired.fencing_token, leases[0]!.fencing_token);
    const m = parseMetrics(await s.server.metrics());
    assert.equal(m.value('latchkey_lock_lease_expiries_total', { backend: 'memory' }), 2);
    assert.equal(m.value('latchkey_lock_sessions_expired_total', { backend: 'memory' }), 1);
    assert.equal(m.value('latchkey_lock_sessions_open', { backend: 'memory' }), 0);
    const err = await rejection(SessionStream.open(s.locks, { resume_id: stream.opened.session_id }));
    assert.equal(err.code, S.FAILED_PRECONDITION);
    assert.match(err.details, /expired at/);
    watch.cancel();
  });

  test('one keepalive renews every lock of the session; a resume at the last moment keeps them', async () => {
    const clock = new ManualClock(Date.now());
    await using s = await startServer({}, { clock });
    const names = [fresh('renew-a'), fresh('renew-b'), fresh('renew-c')];
    const stream = await SessionStream.open(s.locks, { ttl_ms: 1_000 });
    const leases = await Promise.all(stream.ops<Lease>(names.map((name) => ({ acquire: { name } }))));
    clock.advance(900);
    const kept = await stream.op<KeptAlive>({ keepalive: {} });
    assert.equal(Number(kept.expires_at_ms), clock.now() + 1_000);
    clock.advance(900);
    for (const lease of leases) {
      const state = await s.call<LockState>(s.locks, 'Describe', { name: lease.name });
      assert.equal(state.fencing_token, lease.fencing_token);
      assert.equal(state.expires_at_ms, kept.expires_at_ms, "each lock's expiry is the session's");
    }
    await stream.cancel();
    clock.advance(99);
    const resumed = await SessionStream.open(s.locks, { resume_id: stream.opened.session_id });
    assert.equal(resumed.opened.leases.length, 3);
    await resumed.op({ keepalive: {} });
    clock.advance(999);
    assert.equal((await s.call<LockState>(s.locks, 'Describe', { name: names[2]! })).held, true);
    clock.advance(1);
    assert.equal((await s.call<LockState>(s.locks, 'Describe', { name: names[2]! })).held, false);
    const end = await resumed.ended;
    assert.equal(end.code, S.FAILED_PRECONDITION);
  });
});

describe('lock sessions: metrics and logs', () => {
  test('sessions open, opened, resumed and expired are counted; debug logs name a session by a digest, never its id', async () => {
    const logs: string[] = [];
    await using s = await startServer({ logLevel: 'debug' }, { log: (line) => logs.push(line) });
    const metric = async (name: string) => parseMetrics(await s.server.metrics()).value(name, { backend: 'memory' });
    const one = await SessionStream.open(s.locks, { ttl_ms: 30_000 });
    const two = await SessionStream.open(s.locks, { ttl_ms: 300 });
    await one.op({ acquire: { name: fresh('metrics') } });
    assert.equal(await metric('latchkey_lock_sessions_open'), 2);
    await one.cancel();
    const back = await SessionStream.open(s.locks, { resume_id: one.opened.session_id });
    assert.equal(await metric('latchkey_lock_sessions_resumed_total'), 1);
    await back.close();
    assert.equal(await metric('latchkey_lock_sessions_open'), 1);
    await two.ended;
    assert.equal(await metric('latchkey_lock_sessions_expired_total'), 1);
    assert.equal(await metric('latchkey_lock_sessions_open'), 0);
    assert.equal(await metric('latchkey_lock_sessions_opened_total'), 2);
    const events = (kind: string) => logs.filter((l) => l.startsWith(kind));
    assert.equal(events('lock session opened').length, 2);
    assert.equal(events('lock session resumed').length, 1);
    assert.equal(events('lock session ended').length, 1);
    assert.equal(events('lock session expired').length, 1);
    assert.match(events('lock session ended')[0]!, /"session":"[0-9a-f]{16}".*"how":"ended","locks":1/);
    for (const id of [one.opened.session_id, two.opened.session_id])
      assert.ok(!logs.some((l) => l.includes(id.split('.')[2]!)), 'a log line carries a session id');
  });
});

describe('lock sessions: bounded messages', () => {
  const maxMessageBytes = 128 * 1024;

  test('a session holds at most as many locks as one opened message lists; results past a frame come in several', async () => {
    await using s = await startServer({ maxMessageBytes, maxValueBytes: 1024 });
    const limit = maxSessionLocks({ maxMessageBytes } as Config);
    assert.ok(limit > 10 && limit < 100, `limit ${limit}`);
    const owner = 'o'.repeat(1024);
    const stream = await SessionStream.open(s.locks, { ttl_ms: 30_000, owner });
    const names = Array.from({ length: limit + 1 }, (_, i) => `${fresh('many')}-${i}`);
    const results = await Promise.allSettled(stream.ops<Lease>(names.map((name) => ({ acquire: { name } }))));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(refused.length, 1);
    const err = (refused[0] as PromiseRejectedResult).reason as { code: number; details: string };
    assert.equal(err.code, S.RESOURCE_EXHAUSTED);
    assert.match(err.details, new RegExp(`the limit is ${limit}`));
    // Describes of all of them in one frame: answers of about 3 KiB each, over 64 KiB in all.
    const framesBefore = stream.frames.length;
    const states = await Promise.all(
      stream.ops<LockState>(names.slice(0, limit).map((name) => ({ describe: { name } }))),
    );
    assert.ok(states.every((state) => state.owner === owner));
    const answers = stream.frames.length - framesBefore;
    assert.ok(answers >= 2, `${limit} describes with ${owner.length}-byte owners came in ${answers} frame(s)`);
    // The resume lists every lock in one message within --max-message-bytes.
    await stream.cancel();
    const resumed = await SessionStream.open(s.locks, { resume_id: stream.opened.session_id });
    assert.equal(resumed.opened.leases.length, limit);
    assert.ok(limit * MAX_LEASE_MESSAGE_BYTES <= maxMessageBytes / 2);
    await resumed.close();
  });

  test('an answer too big for one message fails only its op (RESOURCE_EXHAUSTED); the stream goes on', async () => {
    await using s = await startServer({ maxMessageBytes, maxValueBytes: 1024 });
    const name = fresh('big-describe');
    const owner = 'h'.repeat(1024);
    // 150 semaphore holders with 1 KiB owners: a LockState of about 160 KiB.
    for (let i = 0; i < 150; i++)
      await s.call(s.locks, 'Acquire', { name, ttl_ms: 30_000, limit: 200, owner: `${owner.slice(4)}${i}` });
    const stream = await SessionStream.open(s.locks, { ttl_ms: 30_000 });
    const err = await rejection(stream.op({ describe: { name } }));
    assert.equal(err.code, S.RESOURCE_EXHAUSTED);
    assert.match(err.details, /more than --max-message-bytes/);
    assert.equal((await stream.op<LockState>({ describe: { name: fresh('small') } })).held, false);
    assert.equal((await stream.close()).code, S.OK);
  });
});

/** A backend like memory but declaring no sessions (as an older or simpler backend would). */
function sessionlessBackend(): LockBackend {
  const inner = new MemoryLockBackend();
  return {
    kind: 'plain',
    capabilities: { ...inner.capabilities, sessions: false },
    acquire: (o) => inner.acquire(o),
    refresh: (r, ttl) => inner.refresh(r, ttl),
    release: (r) => inner.release(r),
    describe: (n, sig) => inner.describe(n, sig),
    close: () => inner.close(),
  };
}

test('a backend without sessions: the stream ends FAILED_PRECONDITION naming the capability and the backends that have it', async () => {
  await using s = await startServer({}, { lockBackends: [sessionlessBackend()] });
  const err = await rejection(SessionStream.open(s.locks, { backend: 'plain' }));
  assert.equal(err.code, S.FAILED_PRECONDITION);
  assert.match(err.details, /backend plain does not support lock sessions .*capability sessions.*; use memory/);
});

describe('lock sessions: file backend specifics', () => {
  test("another server on the lock dir sees the session's renewed expiry in Describe", async () => {
    const lockDir = freshDir();
    await using a = await startServer({ backend: 'file', lockDir });
    await using b = await startServer({ backend: 'file', lockDir });
    const name = fresh('file-record');
    const stream = await SessionStream.open(a.locks, { backend: 'file', ttl_ms: 30_000 });
    const lease = await stream.op<Lease>({ acquire: { name } });
    await sleep(50);
    const kept = await stream.op<KeptAlive>({ keepalive: {} });
    assert.ok(Number(kept.expires_at_ms) > Number(lease.expires_at_ms));
    const seen = () => b.call<LockState>(b.locks, 'Describe', { name, backend: 'file' });
    assert.equal((await seen()).fencing_token, lease.fencing_token);
    // The record is written after the keepalive is answered (see FileLockBackend's keepAlive).
    await until(
      'the other server to read the renewed expiry',
      async () => (await seen()).expires_at_ms === kept.expires_at_ms,
    );
    await stream.close();
    assert.equal((await b.call<LockState>(b.locks, 'Describe', { name, backend: 'file' })).held, false);
  });

  test('a session whose lock is taken over is lost: the stream ends FAILED_PRECONDITION, its other lock stays until it expires', async () => {
    const dir = freshDir();
    // staleMs 2000: proper-lockfile checks its lock every 1 s, so the loss shows within about 1 s.
    const backend = new FileLockBackend({ dir, staleMs: 2_000 });
    await using s = await startServer({}, { lockBackends: [backend] });
    const [a, b] = [fresh('lost-a'), fresh('lost-b')];
    const stream = await SessionStream.open(s.locks, { backend: 'file', ttl_ms: 3_000 });
    const leases = await Promise.all(stream.ops<Lease>([{ acquire: { name: a } }, { acquire: { name: b } }]));
    rmSync(`${backend.pathOf(a)}.lock`, { recursive: true, force: true });
    const end = await stream.ended;
    assert.equal(end.code, S.FAILED_PRECONDITION);
    assert.match(end.details, /was lost at .*its lock ".*lost-a.*" was compromised/);
    const state = await s.call<LockState>(s.locks, 'Describe', { name: b, backend: 'file' });
    assert.equal(state.fencing_token, leases[1]!.fencing_token, 'the lost session still holds its other lock');
    const next = await s.call<Lease>(s.locks, 'Acquire', { name: b, backend: 'file', ttl_ms: 10_000, wait_ms: 10_000 });
    assert.ok(Date.now() >= Number(leases[1]!.expires_at_ms) - 50, 'granted before the session expired');
    const resumed = await rejection(SessionStream.open(s.locks, { resume_id: stream.opened.session_id }));
    assert.equal(resumed.code, S.FAILED_PRECONDITION);
    await s.call(s.locks, 'Release', { name: b, backend: 'file', lease_id: next.lease_id });
  });
});
