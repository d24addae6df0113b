// The SDK beyond one holder, against a real in-process server (memory backend, which declares
// all three): semaphores (limit), shared locks (mode SHARED), describe()'s holders and queue,
// and watch(); through lock sessions (one client's several holders of a name each go through
// a session of their own) and with `sessions: false`.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  connect,
  FailedPreconditionError,
  InvalidArgumentError,
  LockBusyError,
  NotHolderError,
  type ConnectOptions,
  type LatchkeyClient,
  type LockEvent,
} from '../../client/index.js';
import { startServer } from '../support/server.js';

const serve = (config: Parameters<typeof startServer>[0] = {}) => startServer({ lruMaxEntries: 10_000, ...config });

async function until(what: string, check: () => Promise<boolean>, withinMs = 5_000): Promise<void> {
  const end = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

const waiters = (client: LatchkeyClient, name: string, n: number) =>
  until(`${n} waiter(s) on "${name}"`, async () => (await client.describe(name)).waiters === n);

/** The next event, failing the test if none comes in time. */
async function next(events: AsyncIterator<LockEvent>, withinMs = 5_000): Promise<IteratorResult<LockEvent>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`no watch event within ${withinMs} ms`)), withinMs)),
  );
  try {
    return await Promise.race([events.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function event(events: AsyncIterator<LockEvent>): Promise<LockEvent> {
  const result = await next(events);
  assert.equal(result.done, false, 'the watch ended early');
  return result.value as LockEvent;
}

for (const sessions of [true, false]) {
  const mode = sessions ? 'sessions' : 'unary';
  const connectTo = (address: string, options: ConnectOptions = {}) => connect(address, { sessions, ...options });

  describe(`SDK semaphores (${mode})`, () => {
    it('limit 2 admits two holders and queues the third, which gets the first freed slot', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      const a = await client.lock('pool', { limit: 2, ttlMs: 10_000, owner: 'a' });
      const b = await client.lock('pool', { limit: 2, ttlMs: 10_000, owner: 'b' });
      assert.deepEqual([a.mode, a.limit, b.mode, b.limit], ['EXCLUSIVE', 2, 'EXCLUSIVE', 2]);
      assert.ok(b.fencingToken > a.fencingToken, 'each holder has its own, increasing token');
      await assert.rejects(client.lock('pool', { limit: 2, owner: 'try-once' }), LockBusyError);

      const third = client.lock('pool', { limit: 2, ttlMs: 10_000, waitMs: 10_000, owner: 'c' });
      await waiters(client, 'pool', 1);
      const state = await client.describe('pool');
      assert.equal(state.held, true);
      assert.equal(state.limit, 2);
      assert.deepEqual(
        state.holders.map((h) => [h.owner, h.fencingToken, h.mode, h.expiresAt instanceof Date]),
        [
          ['a', a.fencingToken, 'EXCLUSIVE', true],
          ['b', b.fencingToken, 'EXCLUSIVE', true],
        ],
      );
      assert.deepEqual(state.queue, [{ owner: 'c', mode: 'EXCLUSIVE' }]);
      assert.deepEqual(state.capabilities, {
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
      // The first holder's fields stay where a plain lock's are.
      assert.equal(state.owner, 'a');
      assert.equal(state.fencingToken, a.fencingToken);

      assert.equal(await a.release(), 'released');
      const c = await third;
      assert.ok(c.fencingToken > b.fencingToken);
      assert.deepEqual(
        (await client.describe('pool')).holders.map((h) => h.owner),
        ['b', 'c'],
      );
      await b.release();
      await c.release();
      assert.deepEqual(await client.describe('pool'), {
        ...(await client.describe('pool')),
        held: false,
        holders: [],
        queue: [],
        limit: 0,
      });
    });

    it('a different limit on a name in use is a FailedPreconditionError, not NotHolderError', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      await using held = await client.lock('agreed', { limit: 3, ttlMs: 10_000 });
      const err = await client.lock('agreed', { limit: 2 }).catch((e: unknown) => e);
      assert.ok(err instanceof FailedPreconditionError, String(err));
      assert.ok(!(err instanceof NotHolderError));
      assert.match(err.message, /limit 3/);
      assert.equal(held.state, 'held');
    });

    it('limit and mode are checked before anything is sent', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      for (const limit of [0, -1, 1.5, 2 ** 32])
        await assert.rejects(client.lock('x', { limit }), InvalidArgumentError, String(limit));
      await assert.rejects(client.lock('x', { mode: 'READ' as never }), InvalidArgumentError);
      // The server refuses a limit on a SHARED lock, and says why.
      await assert.rejects(
        client.lock('x', { mode: 'SHARED', limit: 2 }),
        (err: Error) => err instanceof InvalidArgumentError && /SHARED/.test(err.message),
      );
    });

    it('a backend without the capability refuses it by name', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'latchkey-sdk-modes-'));
      try {
        await using s = await serve({ lockDir: dir });
        await using client = connectTo(s.address);
        const semaphore = await client.lock('f', { backend: 'file', limit: 2 }).catch((e: unknown) => e);
        assert.ok(
          semaphore instanceof FailedPreconditionError && !(semaphore instanceof NotHolderError),
          String(semaphore),
        );
        assert.match(semaphore.message, /capability semaphore/);
        await assert.rejects(client.lock('f', { backend: 'file', mode: 'SHARED' }), /capability shared/);
        const described = await client.describe('f', { backend: 'file' });
        assert.deepEqual(
          [described.capabilities.semaphore, described.capabilities.shared, described.capabilities.watch],
          [false, false, false],
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe(`SDK shared locks (${mode})`, () => {
    it('readers share; a writer waits for them all, and a reader behind the writer waits too', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      const r1 = await client.lock('doc', { mode: 'SHARED', ttlMs: 10_000, owner: 'r1' });
      const r2 = await client.lock('doc', { mode: 'SHARED', ttlMs: 10_000, owner: 'r2' });
      assert.deepEqual([r1.mode, r1.limit, r2.mode], ['SHARED', 1, 'SHARED']);
      await assert.rejects(client.lock('doc', { owner: 'writer-now' }), LockBusyError);

      let written = false;
      const writer = client.lock('doc', { waitMs: 10_000, ttlMs: 10_000, owner: 'w' }).then((lock) => {
        written = true;
        return lock;
      });
      await waiters(client, 'doc', 1);
      // FIFO across modes: a new reader does not pass the waiting writer.
      await assert.rejects(client.lock('doc', { mode: 'SHARED', owner: 'r3' }), LockBusyError);
      const state = await client.describe('doc');
      assert.deepEqual(
        state.holders.map((h) => [h.owner, h.mode]),
        [
          ['r1', 'SHARED'],
          ['r2', 'SHARED'],
        ],
      );
      assert.deepEqual(state.queue, [{ owner: 'w', mode: 'EXCLUSIVE' }]);

      await r1.release();
      await sleep(50);
      assert.equal(written, false, 'the writer got in while a reader still held the lock');
      await r2.release();
      await using w = await writer;
      assert.equal(w.mode, 'EXCLUSIVE');
      assert.deepEqual(
        (await client.describe('doc')).holders.map((h) => [h.owner, h.mode]),
        [['w', 'EXCLUSIVE']],
      );
    });
  });

  describe(`SDK watch (${mode})`, () => {
    it('yields STATE, then ACQUIRED, WAITER_ADDED, RELEASED in order, and ends quietly on abort', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      await using other = connectTo(s.address);
      const stop = new AbortController();
      const events = client.watch('watched', { signal: stop.signal })[Symbol.asyncIterator]();
      const first = await event(events);
      assert.equal(first.type, 'STATE');
      assert.ok(first.type === 'STATE' && first.state.held === false && first.state.capabilities.watch);

      const alice = await other.lock('watched', { ttlMs: 10_000, owner: 'alice' });
      const acquired = await event(events);
      assert.deepEqual(
        [acquired.type, acquired.name, acquired.owner, acquired.fencingToken, acquired.mode, acquired.state],
        ['ACQUIRED', 'watched', 'alice', alice.fencingToken, 'EXCLUSIVE', undefined],
      );
      assert.ok(acquired.at instanceof Date && Math.abs(acquired.at.getTime() - Date.now()) < 5_000);

      const bob = other.lock('watched', { ttlMs: 10_000, waitMs: 10_000, owner: 'bob', mode: 'EXCLUSIVE' });
      assert.deepEqual([(await event(events)).type, ...[]], ['WAITER_ADDED']);
      await alice.release();
      const released = await event(events);
      assert.deepEqual(
        [released.type, released.owner, released.fencingToken],
        ['RELEASED', 'alice', alice.fencingToken],
      );
      const handedOver = await event(events);
      const bobLock = await bob;
      assert.deepEqual(
        [handedOver.type, handedOver.owner, handedOver.fencingToken],
        ['ACQUIRED', 'bob', bobLock.fencingToken],
      );
      await bobLock.release();
      assert.equal((await event(events)).type, 'RELEASED');

      // Aborting while the loop waits for the next event ends the iteration, without error.
      const pending = next(events);
      stop.abort();
      assert.deepEqual(await pending, { done: true, value: undefined });
    });

    it('STATE carries the holders and queue at the time the watch starts; for await works', async () => {
      await using s = await serve();
      await using client = connectTo(s.address);
      await using held = await client.lock('busy', { ttlMs: 10_000, owner: 'holder' });
      const waiting = client.lock('busy', { waitMs: 10_000, owner: 'queued' });
      await waiters(client, 'busy', 1);
      const stop = new AbortController();
      const seen: LockEvent[] = [];
      for await (const ev of client.watch('busy', { signal: stop.signal })) {
        seen.push(ev);
        if (ev.type === 'STATE') void held.release();
        if (ev.type === 'ACQUIRED') stop.abort();
      }
      assert.deepEqual(
        seen.map((e) => [e.type, e.owner]),
        [
          ['STATE', ''],
          ['RELEASED', 'holder'],
          ['ACQUIRED', 'queued'],
        ],
      );
      const state = seen[0]!.type === 'STATE' ? seen[0]!.state : assert.fail('no STATE first');
      assert.deepEqual(
        state.holders.map((h) => h.owner),
        ['holder'],
      );
      assert.deepEqual(state.queue, [{ owner: 'queued', mode: 'EXCLUSIVE' }]);
      await (await waiting).release();
    });

    it('ends without error when the server shuts down, when the client closes, and when the signal was already aborted', async () => {
      {
        const s = await serve();
        const client = connectTo(s.address);
        try {
          const events = client.watch('w')[Symbol.asyncIterator]();
          assert.equal((await event(events)).type, 'STATE');
          const pending = next(events);
          await s.server.shutdown(1_000);
          assert.equal((await pending).done, true);
        } finally {
          await client.close();
          await s[Symbol.asyncDispose]();
        }
      }
      await using s = await serve();
      const client = connectTo(s.address);
      const events = client.watch('w')[Symbol.asyncIterator]();
      assert.equal((await event(events)).type, 'STATE');
      const pending = next(events);
      await client.close();
      assert.equal((await pending).done, true);
      await assert.rejects(client.watch('w')[Symbol.asyncIterator]().next(), /closed/);

      await using again = connectTo(s.address);
      const aborted = AbortSignal.abort();
      assert.deepEqual(await again.watch('w', { signal: aborted })[Symbol.asyncIterator]().next(), {
        done: true,
        value: undefined,
      });
    });

    it('breaking out of the loop cancels the stream', async () => {
      await using s = await serve();
      const statuses: grpc.status[] = [];
      const observer: grpc.Interceptor = (options, nextCall) =>
        new grpc.InterceptingCall(
          nextCall(options),
          new grpc.RequesterBuilder()
            .withStart((metadata, _listener, start) =>
              start(
                metadata,
                new grpc.ListenerBuilder()
                  .withOnReceiveStatus((status, nextStatus) => {
                    statuses.push(status.code);
                    nextStatus(status);
                  })
                  .build(),
              ),
            )
            .build(),
        );
      await using client = connectTo(s.address, { channelOptions: { interceptors: [observer] } });
      for await (const ev of client.watch('brk')) {
        assert.equal(ev.type, 'STATE');
        break;
      }
      await until('the Watch call to end', async () => statuses.length === 1);
      assert.deepEqual(statuses, [grpc.status.CANCELLED]);
    });

    it('a backend without watch: FailedPreconditionError naming the capability', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'latchkey-sdk-watch-'));
      try {
        await using s = await serve({ lockDir: dir });
        await using client = connectTo(s.address);
        await assert.rejects(
          (async () => {
            for await (const _ of client.watch('f', { backend: 'file' })) assert.fail('no event expected');
          })(),
          (err: Error) =>
            err instanceof FailedPreconditionError &&
            /capability watch/.test(err.message) &&
            !(err instanceof NotHolderError),
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
