// The SDK's cache API against a real in-process server over real gRPC, once with cache calls
// multiplexed onto the Cache/Pipeline stream (the default) and once as unary RPCs: both must
// behave the same. Pipeline-only behaviour is in sdk-cache-pipeline.test.ts.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  AbortError,
  CasConflictError,
  connect,
  DeadlineExceededError,
  FailedPreconditionError,
  FencedOutError,
  InvalidArgumentError,
  NotHolderError,
} from '../../client/index.js';
import { startServer } from '../support/server.js';

// NOTE: a small LRU: the default (1M entries) preallocates ~35 MB and ~250 ms per server.
const serve = () => startServer({ lruMaxEntries: 10_000 });

for (const pipeline of [true, false]) {
  describe(`SDK cache (pipeline ${pipeline ? 'on' : 'off'})`, () => {
    it('round-trips binary and UTF-8 values with bigint cas', async () => {
      await using s = await serve();
      await using client = connect(s.address, { pipeline });
      const cache = client.cache();
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const cas = await cache.set('bin', bytes);
      assert.equal(typeof cas, 'bigint');
      const item = await cache.get('bin');
      assert.ok(item !== undefined);
      assert.ok(Buffer.isBuffer(item.value));
      assert.deepEqual(item.value, bytes);
      assert.equal(item.cas, cas);

      await cache.set('text', 'héllo ✓');
      assert.equal((await cache.get('text'))?.value.toString('utf8'), 'héllo ✓');
      await cache.set('view', new Uint8Array(bytes.buffer, bytes.byteOffset + 10, 3));
      assert.deepEqual((await cache.get('view'))?.value, Buffer.from([10, 11, 12]));

      // An empty value is still a hit: `found`, not the value's length, decides.
      await cache.set('empty', '');
      assert.equal((await cache.get('empty'))?.value.length, 0);
      assert.equal(await cache.get('missing'), undefined);
    });

    it('cas: a stale cas gives EXISTS, the current one STORED, an absent key NOT_FOUND', async () => {
      await using s = await serve();
      await using client = connect(s.address, { pipeline });
      const cache = client.cache('lru');
      const first = await cache.set('k', 'one');
      const second = await cache.set('k', 'two');
      assert.notEqual(first, second);

      const stale = await cache.cas('k', 'three', first);
      assert.equal(stale.outcome, 'EXISTS');
      assert.equal((await cache.get('k'))?.value.toString(), 'two');

      const stored = await cache.cas('k', 'three', second);
      assert.equal(stored.outcome, 'STORED');
      assert.ok(stored.cas > second);
      assert.deepEqual(await cache.get('k'), { value: Buffer.from('three'), cas: stored.cas });

      assert.equal((await cache.cas('absent', 'x', 1n)).outcome, 'NOT_FOUND');
    });

    it('add, delete with and without cas, touch', async () => {
      await using s = await serve();
      await using client = connect(s.address, { pipeline });
      const cache = client.cache();
      const added = await cache.add('a', 'v1');
      assert.equal(added.outcome, 'STORED');
      assert.equal((await cache.add('a', 'v2')).outcome, 'EXISTS');

      assert.equal(await cache.delete('a', { cas: added.cas + 1n }), 'EXISTS');
      assert.equal(await cache.delete('a', { cas: added.cas }), 'DELETED');
      assert.equal(await cache.delete('a'), 'NOT_FOUND');

      await cache.set('t', 'short-lived', { ttlMs: 100 });
      assert.equal(await cache.touch('t', 0), 'TOUCHED');
      await cache.set('gone', 'short-lived', { ttlMs: 100 });
      await sleep(150);
      assert.equal((await cache.get('t'))?.value.toString(), 'short-lived', 'touch(…, 0) removed the expiry');
      assert.equal(await cache.get('gone'), undefined);
      assert.equal(await cache.touch('gone', 1_000), 'NOT_FOUND');
    });

    it('incr: bigint counters with initial, decrement stopping at 0, wrap at 2^64', async () => {
      await using s = await serve();
      await using client = connect(s.address, { pipeline });
      const cache = client.cache();
      assert.equal((await cache.incr('n', 5, { initial: 10 })).value, 10n, 'an absent key takes `initial`');
      assert.equal((await cache.incr('n', 5n)).value, 15n);
      assert.equal((await cache.incr('n', -20)).value, 0n);

      await cache.set('max', (2n ** 64n - 1n).toString());
      const wrapped = await cache.incr('max', 1);
      assert.equal(wrapped.value, 0n);
      assert.equal(typeof wrapped.cas, 'bigint');

      await cache.set('word', 'not a number');
      await assert.rejects(cache.incr('word', 1), (err: unknown) => {
        // FAILED_PRECONDITION from the cache is not about lock holders.
        assert.ok(err instanceof FailedPreconditionError && !(err instanceof NotHolderError));
        assert.equal(err.code, status.FAILED_PRECONDITION);
        return true;
      });
      await assert.rejects(cache.incr('n', 1.5), InvalidArgumentError);
      await assert.rejects(cache.incr('n', 2n ** 63n), InvalidArgumentError);
    });

    it('update: 8 concurrent updaters × 25 increments on one key give the exact total', async () => {
      await using s = await serve();
      await using client = connect(s.address, { pipeline });
      const cache = client.cache();
      const increment = (current: Buffer | undefined) => String(Number(current?.toString() ?? '0') + 1);
      // maxAttempts well above the default: this checks the loop's correctness under heavy
      // contention, not how many rounds 8 contenders need (often 10-20).
      const updater = async () => {
        for (let i = 0; i < 25; i++) await cache.update('counter', increment, { maxAttempts: 1_000 });
      };
      await Promise.all(Array.from({ length: 8 }, updater));
      assert.equal((await cache.get('counter'))?.value.toString(), '200');
    });

    it('update adds an absent key, and throws CasConflictError when its attempts run out', async () => {
      await using s = await serve();
      await using client = connect(s.address, { pipeline });
      const cache = client.cache();
      const seen: (string | undefined)[] = [];
      const created = await cache.update('fresh', (current) => {
        seen.push(current?.toString());
        return 'first';
      });
      assert.deepEqual(seen, [undefined]);
      assert.deepEqual(await cache.get('fresh'), created);

      let calls = 0;
      await assert.rejects(
        cache.update(
          'fresh',
          async () => {
            calls++;
            await cache.set('fresh', `interloper ${calls}`); // another writer wins every round
            return 'mine';
          },
          { maxAttempts: 3 },
        ),
        (err: unknown) => err instanceof CasConflictError && err.attempts === 3 && err.code === status.ABORTED,
      );
      assert.equal(calls, 3);
      assert.equal((await cache.get('fresh'))?.value.toString(), 'interloper 3');
    });

    it('fenced writes: a holder whose lock is stale is FencedOutError and changes nothing', async () => {
      await using s = await serve();
      await using client = connect(s.address, { pipeline });
      const cache = client.cache();
      const old = await client.lock('fence-lock', { ttlMs: 5_000 });
      await cache.set('fenced', 'from old', { fence: old });
      await old.release();
      await using current = await client.lock('fence-lock', { ttlMs: 5_000 });
      const cas = await cache.set('fenced', 'from current', { fence: current });

      await assert.rejects(cache.set('fenced', 'late write', { fence: old }), (err: unknown) => {
        assert.ok(err instanceof FencedOutError && err instanceof FailedPreconditionError);
        assert.match(err.message, /stale/);
        return true;
      });
      await assert.rejects(cache.cas('fenced', 'late write', cas, { fence: old }), FencedOutError);
      await assert.rejects(cache.delete('fenced', { fence: old }), FencedOutError);
      // A fence by hand is the same three fields a LockHandle has.
      const byHand = { name: 'fence-lock', backend: current.backend, fencingToken: current.fencingToken };
      assert.deepEqual(await cache.get('fenced'), { value: Buffer.from('from current'), cas });
      assert.equal((await cache.cas('fenced', 'again', cas, { fence: byHand })).outcome, 'STORED');
    });

    it('maps bad requests, deadlines and aborts to typed errors', async () => {
      await using s = await serve();
      await using client = connect(s.address, { pipeline });
      const cache = client.cache();
      await assert.rejects(cache.get('white space'), InvalidArgumentError);
      await assert.rejects(client.cache('nope').get('k'), /store "nope" is not enabled/);
      await assert.rejects(cache.set('k', 'v', { ttlMs: -1 }), InvalidArgumentError);
      await assert.rejects(cache.get('k', { deadlineMs: 0 }), DeadlineExceededError);
      await assert.rejects(
        cache.get('k', { signal: AbortSignal.abort() }),
        (err: unknown) => err instanceof AbortError && err.name === 'AbortError',
      );
    });
  });
}
