// One store as clients see it: the CacheStore operations with fencing applied (a write with
// a fence goes through fencing.ts's CAS loop) and tombstones read as absent (a fenced
// delete's tombstone is a miss, and Add may replace it). The service validates a request,
// picks the Cache of its store, and calls one method per operation; the metering decorator
// (metered-cache.ts) wraps this interface, so each operation a client asked for counts once,
// however many store round trips it took.
import { decode, fencedAdd, fencedCas, fencedDelete, fencedSet, type Fence } from './fencing.js';
import type { CacheStore } from './store.js';

export interface Cache {
  /** The store's name (CacheStore.kind). */
  readonly kind: string;
  /** undefined = miss: absent, expired, or a fenced delete's tombstone. */
  get(key: string, signal: AbortSignal): Promise<{ value: Buffer; cas: bigint } | undefined>;
  /**
   * ttlMs 0 = no expiry. Returns the new cas. A fenced write a newer holder has overtaken →
   * FencedOutError.
   */
  set(key: string, value: Buffer, ttlMs: number, fence: Fence | undefined, signal: AbortSignal): Promise<bigint>;
  /** STORED (with the new cas), EXISTS (cas differs) or NOT_FOUND. */
  cas(
    key: string,
    value: Buffer,
    cas: bigint,
    ttlMs: number,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<{ outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint }>;
  /** STORED only if absent (a tombstone counts as absent), else EXISTS. */
  add(
    key: string,
    value: Buffer,
    ttlMs: number,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<{ outcome: 'STORED' | 'EXISTS'; cas: bigint }>;
  /** cas 0n = unconditional. DELETED, NOT_FOUND, or EXISTS when the cas does not match. */
  delete(
    key: string,
    cas: bigint,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<'DELETED' | 'NOT_FOUND' | 'EXISTS'>;
  /** As CacheStore.incr. */
  incr(
    key: string,
    delta: bigint,
    initial: bigint,
    ttlMs: number,
    signal: AbortSignal,
  ): Promise<{ value: bigint; cas: bigint }>;
  /** As CacheStore.touch: TOUCHED or NOT_FOUND. */
  touch(key: string, ttlMs: number, signal: AbortSignal): Promise<'TOUCHED' | 'NOT_FOUND'>;
}

export function createCache(store: CacheStore): Cache {
  return {
    kind: store.kind,

    async get(key, signal) {
      const item = await store.get(key, signal);
      const value = item === undefined ? undefined : decode(item).value;
      return value === undefined ? undefined : { value, cas: item!.cas };
    },

    set(key, value, ttlMs, fence, signal) {
      return fence === undefined
        ? store.set(key, value, 0, ttlMs, signal)
        : fencedSet(store, key, value, ttlMs, fence, signal);
    },

    cas(key, value, cas, ttlMs, fence, signal) {
      return fence === undefined
        ? store.cas(key, value, 0, cas, ttlMs, signal)
        : fencedCas(store, key, value, cas, ttlMs, fence, signal);
    },

    async add(key, value, ttlMs, fence, signal) {
      if (fence !== undefined) return fencedAdd(store, key, value, ttlMs, fence, signal);
      for (;;) {
        const added = await store.add(key, value, 0, ttlMs, signal);
        if (added.outcome === 'STORED') return added;
        // A tombstone of a fenced delete reads as absent, so Add may replace it.
        const current = await store.get(key, signal);
        if (current === undefined) continue;
        if (decode(current).value !== undefined) return { outcome: 'EXISTS', cas: 0n };
        const replaced = await store.cas(key, value, 0, current.cas, ttlMs, signal);
        if (replaced.outcome === 'STORED') return { outcome: 'STORED', cas: replaced.cas };
      }
    },

    delete(key, cas, fence, signal) {
      return fence === undefined ? store.delete(key, cas, signal) : fencedDelete(store, key, cas, fence, signal);
    },

    incr: (key, delta, initial, ttlMs, signal) => store.incr(key, delta, initial, ttlMs, signal),
    touch: (key, ttlMs, signal) => store.touch(key, ttlMs, signal),
  };
}
