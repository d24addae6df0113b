// The races the claim protocol (src/cache/cache.ts) exists for, made to happen: one
// operation is held at a chosen store call while another runs, on a real LRU store. The
// contract suite checks the same rules end to end on every store, but cannot choose the
// interleaving.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import { FencedOutError } from '../../src/errors.js';
import { encode, FENCED_FLAGS, tombstoneKey, type Fence } from '../../src/cache/fencing.js';
import { type Cache, createCache } from '../../src/cache/cache.js';
import { LruStore } from '../../src/cache/lru.js';
import type { CacheStore, Item } from '../../src/cache/store.js';

/** An LRU store whose next get of a chosen key, once read, waits until released to answer. */
class HeldStore implements CacheStore {
  readonly kind = 'lru';
  readonly #inner: CacheStore = new LruStore({ maxEntries: 1000, maxBytes: 1 << 20 });
  readonly #holds = new Map<string, { reached: () => void; released: Promise<void> }>();

  /** Holds the next get of `key`: `reached` resolves when it is waiting, `release` lets it go. */
  holdNextGet(key: string): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.#holds.set(key, { reached, released });
    return { reached: reachedPromise, release };
  }

  async get(key: string, signal: AbortSignal): Promise<Item | undefined> {
    const item = await this.#inner.get(key, signal);
    const hold = this.#holds.get(key);
    if (hold !== undefined) {
      // Held with what it read: whatever runs meanwhile happens between that read and the
      // caller's next step.
      this.#holds.delete(key);
      hold.reached();
      await hold.released;
    }
    return item;
  }
  set = (...args: Parameters<CacheStore['set']>) => this.#inner.set(...args);
  cas = (...args: Parameters<CacheStore['cas']>) => this.#inner.cas(...args);
  add = (...args: Parameters<CacheStore['add']>) => this.#inner.add(...args);
  delete = (...args: Parameters<CacheStore['delete']>) => this.#inner.delete(...args);
  incr = (...args: Parameters<CacheStore['incr']>) => this.#inner.incr(...args);
  touch = (...args: Parameters<CacheStore['touch']>) => this.#inner.touch(...args);
  close = () => this.#inner.close();
}

const signal = new AbortController().signal;
const fence = (token: bigint): Fence => ({ lock: 'the-lock', backend: 'memory', token });
const setup = (clock?: ManualClock) => {
  const store = new HeldStore();
  return { store, cache: createCache(store, { tombstoneRetentionMs: 60_000, clock }) };
};
const text = async (cache: Cache, key: string) => (await cache.get(key, signal))?.value.toString();

describe('cache: the claim protocol under chosen interleavings', () => {
  test('a fenced delete that comes while a fenced write checks the tombstone waits, then deletes what it wrote', async () => {
    const { store, cache } = setup();
    const hold = store.holdNextGet(tombstoneKey('k'));
    const write = cache.set('k', Buffer.from('six'), 0, fence(6n), signal);
    await hold.reached; // the write has claimed the absent key and read that it has no tombstone
    assert.equal(await cache.get('k', signal), undefined, 'a claim reads as absent');
    const deletion = cache.delete('k', 0n, fence(7n), signal);
    await new Promise((resolve) => setTimeout(resolve, 20));
    hold.release();
    assert.ok((await write) > 0n);
    assert.equal(await deletion, 'DELETED', 'the delete saw the write that went first');
    assert.equal(await cache.get('k', signal), undefined);
    await assert.rejects(cache.set('k', Buffer.from('late'), 0, fence(6n), signal), FencedOutError);
  });

  test('a fenced write that comes while a fenced delete publishes its tombstone waits, then is refused', async () => {
    const { store, cache } = setup();
    await cache.set('k', Buffer.from('five'), 0, fence(5n), signal);
    const hold = store.holdNextGet(tombstoneKey('k'));
    const deletion = cache.delete('k', 0n, fence(7n), signal);
    await hold.reached; // the delete has claimed the value and read the tombstone it replaces
    assert.equal(await cache.get('k', signal), undefined, 'the delete has happened');
    const write = cache.set('k', Buffer.from('six'), 0, fence(6n), signal);
    await new Promise((resolve) => setTimeout(resolve, 20));
    hold.release();
    assert.equal(await deletion, 'DELETED');
    await assert.rejects(write, FencedOutError);
    assert.equal(await cache.get('k', signal), undefined);
  });

  test('ops without a fence see a claimed key as absent, and writes without one replace the claim', async () => {
    const { store, cache } = setup();
    const hold = store.holdNextGet(tombstoneKey('k'));
    const write = cache.set('k', Buffer.from('fenced'), 0, fence(6n), signal);
    await hold.reached;
    assert.equal(await cache.touch('k', 1000, signal), 'NOT_FOUND');
    assert.deepEqual(await cache.cas('k', Buffer.from('x'), 12345n, 0, undefined, signal), {
      outcome: 'NOT_FOUND',
      cas: 0n,
    });
    assert.equal(await cache.delete('k', 0n, undefined, signal), 'NOT_FOUND');
    assert.equal((await cache.add('k', Buffer.from('plain'), 0, undefined, signal)).outcome, 'STORED');
    hold.release();
    // The fenced Set found its claim replaced, started again over the plain value, and won.
    await write;
    assert.equal(await text(cache, 'k'), 'fenced');

    const again = store.holdNextGet(tombstoneKey('n'));
    const counted = cache.set('n', Buffer.from('1'), 0, fence(6n), signal);
    await again.reached;
    assert.deepEqual((await cache.incr('n', 5n, 100n, 0, signal)).value, 100n, 'incr starts from initial');
    again.release();
    await counted;
    assert.equal(await text(cache, 'n'), '1');
  });

  test('a fenced write waits for a claim whose owner is gone, then takes it over', async () => {
    const clock = new ManualClock();
    const { store, cache } = setup(clock);
    // What a server that died between claim and write leaves behind (here, without expiry).
    await store.add('k', encode(fence(6n), 'claim'), FENCED_FLAGS, 0, signal);
    let written: bigint | undefined;
    const write = cache.set('k', Buffer.from('seven'), 0, fence(7n), signal).then((cas) => (written = cas));
    const started = clock.now();
    while (clock.now() - started < 60_000) {
      await new Promise((resolve) => setImmediate(resolve));
      if (written !== undefined) break;
      assert.equal(await text(cache, 'k'), undefined, 'the claim reads as absent while the write waits');
      clock.advance(100);
    }
    await write;
    const waitedMs = clock.now() - started;
    assert.ok(waitedMs >= 6_000 && waitedMs < 7_000, `took the claim over after ${waitedMs} ms`);
    assert.equal(await text(cache, 'k'), 'seven');
  });
});
