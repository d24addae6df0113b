// The SDK's lock API against a real in-process server over real gRPC, once through lock
// sessions (the default) and once with `sessions: false` (a unary RPC per lock operation).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import {
  AbortError,
  CancelledError,
  connect,
  DeadlineExceededError,
  FailedPreconditionError,
  FencedOutError,
  fromStatus,
  InternalError,
  InvalidArgumentError,
  LatchkeyError,
  LeaseLostError,
  LockBusyError,
  NotHolderError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  type ConnectOptions,
  type LockHandle,
} from '../../client/index.js';
import { startServer } from '../support/server.js';

// NOTE: a small LRU: the default (1M entries) preallocates ~35 MB and ~250 ms per server.
const serve = (config: Parameters<typeof startServer>[0] = {}) => startServer({ lruMaxEntries: 10_000, ...config });

/** Resolves with the signal's reason once it aborts; fails the test after withinMs. */
function aborted(signal: AbortSignal, withinMs: number): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`signal not aborted within ${withinMs} ms`)), withinMs);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(signal.reason);
    });
  });
}

/** Polls until check() is true; fails the test after withinMs. */
async function until(what: string, check: () => Promise<boolean>, withinMs = 2_000): Promise<void> {
  const end = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Blocks the event loop, like a long GC pause: no timer (client or server) runs meanwhile. */
function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** The Locks methods a client's calls and streams start, in order (an outer interceptor sees them). */
function observeCalls(): { calls: string[]; channelOptions: grpc.ChannelOptions } {
  const calls: string[] = [];
  const interceptor: grpc.Interceptor = (options, next) => {
    calls.push(options.method_definition.path.split('/').pop()!);
    return new grpc.InterceptingCall(next(options));
  };
  return { calls, channelOptions: { interceptors: [interceptor] } };
}

for (const sessions of [true, false]) {
  const connectTo = (address: string, options: ConnectOptions = {}) => connect(address, { sessions, ...options });
  describe(`SDK locks (${sessions ? 'sessions' : 'unary'})`, () => {
    it('lock operations go through one Session stream, or only through unary calls', async () => {
      await using s = await serve();
      const { calls, channelOptions } = observeCalls();
      await using client = connectTo(s.address, { channelOptions });
      const locks = await Promise.all(['t/a', 't/b', 't/c'].map((name) => client.lock(name, { ttlMs: 1_000 })));
      assert.equal((await client.describe('t/a')).fencingToken, locks[0]!.fencingToken);
      // Past a third of the TTL: the locks have been renewed at least once.
      await sleep(500);
      for (const lock of locks) assert.equal(await lock.release(), 'released');
      if (sessions) assert.deepEqual(calls, ['Session']);
      else {
        assert.ok(!calls.includes('Session'), calls.join(','));
        assert.deepEqual([...new Set(calls)].sort(), ['Acquire', 'Describe', 'Refresh', 'Release'], calls.join(','));
      }
    });

    it('await using releases on scope exit, so a second client can then acquire', async () => {
      await using s = await serve();
      await using a = connectTo(s.address);
      await using b = connectTo(s.address);
      let handle: LockHandle;
      {
        await using lock = await a.lock('scope', { ttlMs: 5_000, owner: 'a' });
        handle = lock;
        assert.equal(lock.state, 'held');
        await assert.rejects(b.lock('scope'), LockBusyError);
      }
      assert.equal(handle.state, 'released');
      assert.equal(handle.error, undefined);
      assert.ok(handle.signal.aborted, 'a released handle no longer protects anything');
      assert.ok(handle.signal.reason instanceof CancelledError);
      assert.equal(await handle.release(), 'released', 'release is idempotent');

      await using again = await b.lock('scope', { ttlMs: 5_000 });
      assert.equal(again.state, 'held');
    });

    it('hands out bigint fencing tokens that increase with every grant', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      const tokens: bigint[] = [];
      for (let i = 0; i < 3; i++) {
        await using lock = await client.lock('fenced', { ttlMs: 5_000 });
        assert.equal(typeof lock.fencingToken, 'bigint');
        assert.ok(lock.expiresAt instanceof Date && lock.expiresAt.getTime() > Date.now());
        assert.equal(lock.name, 'fenced');
        assert.equal(lock.backend, 'memory');
        assert.ok(lock.leaseId.length > 0);
        tokens.push(lock.fencingToken);
      }
      assert.ok(tokens[0]! < tokens[1]! && tokens[1]! < tokens[2]!, `tokens ${tokens.join(', ')}`);
    });

    it('refreshes a 1 s lease so it stays held across 3× its TTL', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      await using other = connectTo(s.address);
      // 1 s, not less: a refresh every 333 ms must survive timer lag on a loaded 2-core machine.
      await using lock = await client.lock('kept', { ttlMs: 1_000, owner: 'keeper' });
      const firstExpiry = lock.expiresAt.getTime();
      await sleep(3_000);
      assert.equal(lock.state, 'held');
      assert.equal(lock.signal.aborted, false);
      assert.ok(lock.expiresAt.getTime() > firstExpiry, 'expiresAt moves with each Refresh');
      const state = await client.describe('kept');
      assert.equal(state.held, true);
      assert.equal(state.fencingToken, lock.fencingToken);
      assert.equal(state.owner, 'keeper');
      await assert.rejects(other.lock('kept'), LockBusyError);
    });

    it('aborts the signal when the lease is released behind the handle’s back', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      const lock = await client.lock('stolen', { ttlMs: 1_000 });
      const other = await client.lock('stolen/other', { ttlMs: 1_000 });
      await s.call(s.locks, 'Release', { name: 'stolen', backend: lock.backend, lease_id: lock.leaseId });
      // Unary: the next Refresh (within ttl/3) is answered FAILED_PRECONDITION. Session: the
      // session can no longer vouch for its locks, and its stream ends FAILED_PRECONDITION.
      const reason = await aborted(lock.signal, 3_000);
      assert.ok(reason instanceof LeaseLostError);
      assert.ok(reason instanceof NotHolderError);
      assert.ok(reason.cause instanceof NotHolderError, `the cause is the server’s answer: ${String(reason.cause)}`);
      assert.equal(lock.state, 'lost');
      assert.equal(lock.error, reason);
      assert.equal(await lock.release(), 'lost', 'release of a lost lease reports, does not throw');
      if (sessions) {
        // The session's other lock is lost with it (the server keeps it until the session expires).
        assert.ok((await aborted(other.signal, 100)) instanceof LeaseLostError);
        assert.equal((await client.describe('stolen/other')).fencingToken, other.fencingToken);
      } else {
        assert.equal(other.state, 'held');
      }
      await other.release();
    });

    it('aborts the signal no later than the lease’s expiry when refreshes stop getting through', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      const lock = await client.lock('cut-off', { ttlMs: 1_000 });
      await s.server.shutdown(0);
      const reason = await aborted(lock.signal, 3_000);
      const abortedAt = Date.now();
      // lock.expiresAt is the server's expiry after the last Refresh that got through. The
      // handle gives up ttl/10 (100 ms) early, which absorbs a late timer on a loaded
      // machine; the 20 ms on top is slack for the clock reads.
      assert.ok(
        abortedAt <= lock.expiresAt.getTime() + 20,
        `aborted ${abortedAt - lock.expiresAt.getTime()} ms after the lease expired`,
      );
      assert.ok(reason instanceof LeaseLostError);
      assert.ok(reason.cause instanceof LatchkeyError, `cause: ${String(reason.cause)}`);
      assert.equal(lock.state, 'lost');
      await lock[Symbol.asyncDispose]();
      assert.equal(lock.state, 'lost');
    });

    it('disposing a handle whose lease expired (process stalled) does not throw and reports it', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      let handle: LockHandle;
      {
        await using lock = await client.lock('stalled', { ttlMs: 100 });
        handle = lock;
        stall(250);
      }
      assert.equal(handle.state, 'lost');
      assert.ok(handle.error instanceof LeaseLostError);
      assert.match(handle.error.message, /expired/);
      assert.ok(handle.signal.reason instanceof LeaseLostError);
      await using next = await client.lock('stalled', { ttlMs: 5_000 });
      assert.ok(next.fencingToken > handle.fencingToken);
    });

    it('disposing when Release cannot reach the server does not throw, and does not mask the body’s error', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      let handle: LockHandle | undefined;
      await assert.rejects(async () => {
        await using lock = await client.lock('unreachable', { ttlMs: 10_000 });
        handle = lock;
        await s.server.shutdown(0);
        throw new Error('body failed');
      }, /body failed/);
      assert.equal(handle?.state, 'release-failed');
      assert.ok(handle.error instanceof UnavailableError, `error: ${String(handle.error)}`);
      assert.ok(handle.signal.aborted);
    });

    it('withLock returns fn’s result and releases even when fn throws', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      const result = await client.withLock('guarded', (lock) => lock.fencingToken * 2n, { ttlMs: 5_000 });
      assert.equal(typeof result, 'bigint');

      let seen: LockHandle | undefined;
      await assert.rejects(
        client.withLock('guarded', async (lock) => {
          seen = lock;
          assert.equal((await client.describe('guarded')).held, true);
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(seen?.state, 'released');
      assert.equal((await client.describe('guarded')).held, false);
    });

    it('maps status codes to typed errors: LockBusyError names the holder, bad names are InvalidArgumentError', async () => {
      await using s = await serve();
      await using a = connectTo(s.address);
      await using b = connectTo(s.address);
      await using held = await a.lock('busy', { ttlMs: 5_000, owner: 'alice@host-1' });
      await assert.rejects(b.lock('busy', { waitMs: 50 }), (err: unknown) => {
        assert.ok(err instanceof LockBusyError && err instanceof LatchkeyError);
        assert.equal(err.code, status.ABORTED);
        assert.equal(err.method, 'Acquire');
        assert.match(err.message, /alice@host-1/);
        assert.equal(err.details, err.message);
        return true;
      });
      for (const name of ['has space', '', 'x'.repeat(251)]) {
        await assert.rejects(
          b.lock(name),
          (err: unknown) => err instanceof InvalidArgumentError && err.code === status.INVALID_ARGUMENT,
        );
      }
      await assert.rejects(b.lock('busy', { backend: 'nope' }), /backend "nope" is not enabled/);
      await assert.rejects(b.lock('busy', { ttlMs: 0 }), InvalidArgumentError);
      await assert.rejects(b.lock('busy', { ttlMs: 1.5 }), InvalidArgumentError);
      assert.equal(held.state, 'held');
    });

    it('describe returns typed state', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      const free = await client.describe('described');
      assert.equal(free.held, false);
      assert.equal(free.fencingToken, 0n);
      assert.equal(free.expiresAt, undefined);
      assert.deepEqual(free.capabilities, {
        acrossHosts: false,
        fencing: true,
        fifo: true,
        autoRelease: true,
        semaphore: true,
        shared: true,
        watch: true,
        sessions: true,
        elections: true,
      });

      await using lock = await client.lock('described', { ttlMs: 5_000, owner: 'me' });
      const state = await client.describe('described', { backend: 'memory' });
      assert.equal(state.held, true);
      assert.equal(state.owner, 'me');
      assert.equal(state.fencingToken, lock.fencingToken);
      assert.ok(state.expiresAt instanceof Date);
      assert.equal(state.waiters, 0);
    });

    it('a per-call AbortSignal cancels a waiting acquire, and the server drops the waiter', async () => {
      await using s = await serve();
      await using a = connectTo(s.address);
      await using b = connectTo(s.address);
      await using holder = await a.lock('waited', { ttlMs: 5_000 });
      const controller = new AbortController();
      const pending = b.lock('waited', { waitMs: 10_000, signal: controller.signal });
      await until('the waiter to register', async () => (await a.describe('waited')).waiters === 1);
      const start = Date.now();
      controller.abort(new Error('caller gave up'));
      await assert.rejects(pending, (err: unknown) => {
        assert.ok(err instanceof AbortError && err instanceof CancelledError);
        assert.equal(err.name, 'AbortError');
        assert.equal((err.cause as Error).message, 'caller gave up');
        return true;
      });
      assert.ok(Date.now() - start < 1_000, 'rejects at once, not when the wait ends');
      await until('the server to drop the waiter', async () => (await a.describe('waited')).waiters === 0);
      assert.equal(holder.state, 'held');
      await assert.rejects(b.lock('waited', { signal: AbortSignal.abort() }), AbortError);
    });

    it('a lease granted after a long wait is confirmed and then kept alive', async () => {
      await using s = await serve();
      await using a = connectTo(s.address);
      await using b = connectTo(s.address);
      const holder = await a.lock('late', { ttlMs: 5_000 });
      const pending = b.lock('late', { ttlMs: 200, waitMs: 5_000 });
      await until('the waiter to register', async () => (await a.describe('late')).waiters === 1);
      // Longer than half the waiter's TTL: its "sent + ttl" estimate is too old to trust.
      await sleep(150);
      await holder.release();
      await using lock = await pending;
      await sleep(400);
      assert.equal(lock.state, 'held');
      assert.equal(lock.signal.aborted, false);
      assert.equal((await a.describe('late')).fencingToken, lock.fencingToken);
    });

    it('close() releases the handles still held; calls after close are CancelledError', async () => {
      await using s = await serve();
      await using other = connectTo(s.address);
      const client = connectTo(s.address);
      const lock = await client.lock('closing', { ttlMs: 5_000 });
      await client.close();
      await client.close();
      assert.equal(lock.state, 'released');
      await assert.rejects(client.describe('closing'), CancelledError);
      await using mine = await other.lock('closing', { ttlMs: 5_000 });
      assert.equal(mine.state, 'held');
    });

    it('retries UNAVAILABLE for idempotent calls only', async () => {
      const first = await serve();
      const address = first.address;
      const channelOptions = { 'grpc.initial_reconnect_backoff_ms': 50, 'grpc.max_reconnect_backoff_ms': 100 };
      await using noRetry = connectTo(address, { retry: false, channelOptions });
      await using retrying = connectTo(address, {
        retry: { attempts: 100, baseDelayMs: 20, maxDelayMs: 50 },
        channelOptions,
      });
      await first[Symbol.asyncDispose]();

      await assert.rejects(noRetry.describe('r'), UnavailableError);
      // Set is not idempotent: never retried, whatever the policy says.
      await assert.rejects(retrying.cache().set('r', 'v'), UnavailableError);

      const described = retrying.describe('r', { deadlineMs: 5_000 });
      await sleep(100);
      await using _second = await serve({ listen: address });
      const state = await described;
      assert.equal(state.held, false);
    });
  });
}

describe('SDK errors', () => {
  it('fromStatus maps every status the SDK names to its error class, keeping code and details', () => {
    const cases: [status, string, typeof LatchkeyError][] = [
      [status.ABORTED, 'Acquire', LockBusyError],
      [status.ABORTED, 'Set', LatchkeyError],
      [status.FAILED_PRECONDITION, 'Release', NotHolderError],
      [status.FAILED_PRECONDITION, 'Set', FencedOutError],
      [status.FAILED_PRECONDITION, 'Incr', FailedPreconditionError],
      [status.INVALID_ARGUMENT, 'Get', InvalidArgumentError],
      [status.UNAVAILABLE, 'Get', UnavailableError],
      [status.DEADLINE_EXCEEDED, 'Get', DeadlineExceededError],
      [status.CANCELLED, 'Get', CancelledError],
      [status.PERMISSION_DENIED, 'Get', PermissionDeniedError],
      [status.UNAUTHENTICATED, 'Get', UnauthenticatedError],
      [status.RESOURCE_EXHAUSTED, 'Get', ResourceExhaustedError],
      [status.INTERNAL, 'Get', InternalError],
      [status.UNIMPLEMENTED, 'Get', LatchkeyError],
    ];
    for (const [code, method, type] of cases) {
      const wire = Object.assign(new Error(`${code} ${status[code]}: what the server said`), {
        code,
        details: 'what the server said',
      });
      const err = fromStatus(wire, method);
      assert.equal(err.constructor, type, `${status[code]} from ${method}`);
      assert.equal(err.code, code);
      assert.equal(err.details, 'what the server said');
      assert.equal(err.message, 'what the server said');
      assert.equal(err.method, method);
      assert.equal(err.cause, wire);
    }
    assert.ok(fromStatus(new TypeError('not a status'), 'Get') instanceof InternalError);
  });
});
