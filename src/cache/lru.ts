// In-process cache store: bounded by entry count and by bytes (key + value), per-item TTL,
// and a cas unique that changes on every write. The entries live in a CompactLru
// (compact-lru.ts): values and their cas, expiry and flags in a slab arena of large Buffers,
// the index and recency order in typed arrays, so the GC sees a few objects, not millions.
import { systemClock, type Clock } from '../clock.js';
import { InvalidArgumentError } from '../errors.js';
import { CompactLru, type CompactEntry as Entry } from './compact-lru.js';
import { addDelta, type CacheStore, type Item, notANumber, parseCounter } from './store.js';

export interface LruStoreOptions {
  /**
   * Most entries kept (at least 1); past it the least recently used goes first. The index
   * grows with the entries (24-28 bytes each). Required (the server passes --lru-max-entries).
   */
  readonly maxEntries: number;
  /**
   * Most bytes kept, counting each key's UTF-8 bytes plus its value's bytes (at least 1);
   * whichever of this and maxEntries is reached first evicts. An item larger than all of
   * it is refused. Required (the server passes --lru-max-bytes).
   */
  readonly maxBytes: number;
  /** Time source for TTLs; default the system clock. */
  readonly clock?: Clock;
}

export class LruStore implements CacheStore {
  readonly kind = 'lru';
  /** No operation here waits, or reads its signal. */
  readonly inProcess = true;
  readonly #lru: CompactLru;
  readonly #clock: Clock;
  readonly #maxBytes: number;
  #lastCas = 0n;

  constructor(options: LruStoreOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#maxBytes = options.maxBytes;
    // NOTE: expiry is kept in the entry and checked on read (against the injected clock),
    // with no timer per entry. Expired entries are dropped when read, or evicted like any
    // other cold entry.
    this.#lru = new CompactLru({ maxEntries: options.maxEntries, maxBytes: options.maxBytes });
  }

  async get(key: string): Promise<Item | undefined> {
    return this.#live(key);
  }

  async set(key: string, value: Buffer, flags: number, ttlMs: number): Promise<bigint> {
    return this.#write(key, value, flags, ttlMs);
  }

  async cas(key: string, value: Buffer, flags: number, cas: bigint, ttlMs: number) {
    const current = this.#live(key);
    if (current === undefined) return { outcome: 'NOT_FOUND' as const, cas: 0n };
    if (current.cas !== cas) return { outcome: 'EXISTS' as const, cas: 0n };
    return { outcome: 'STORED' as const, cas: this.#write(key, value, flags, ttlMs) };
  }

  async add(key: string, value: Buffer, flags: number, ttlMs: number) {
    const current = this.#live(key);
    if (current !== undefined) return { outcome: 'EXISTS' as const, cas: 0n };
    return { outcome: 'STORED' as const, cas: this.#write(key, value, flags, ttlMs) };
  }

  async delete(key: string, cas: bigint) {
    const current = this.#live(key);
    if (current === undefined) return 'NOT_FOUND' as const;
    if (cas !== 0n && current.cas !== cas) return 'EXISTS' as const;
    this.#lru.delete(key);
    return 'DELETED' as const;
  }

  async incr(key: string, delta: bigint, initial: bigint, ttlMs: number) {
    const current = this.#live(key);
    if (current === undefined) {
      return { value: initial, cas: this.#write(key, Buffer.from(initial.toString()), 0, ttlMs) };
    }
    const counter = parseCounter(current.value);
    if (counter === undefined) throw notANumber(key);
    const value = addDelta(counter, delta);
    const entry = {
      value: Buffer.from(value.toString()),
      flags: current.flags,
      cas: ++this.#lastCas,
      expiresAtMs: current.expiresAtMs,
    };
    this.#lru.set(key, entry);
    return { value, cas: entry.cas };
  }

  async touch(key: string, ttlMs: number): Promise<Item | undefined> {
    const current = this.#live(key);
    if (current === undefined) return undefined;
    this.#lru.set(key, { ...current, expiresAtMs: this.#expiry(ttlMs) });
    return current;
  }

  async close(): Promise<void> {
    this.#lru.clear();
  }

  #live(key: string): Entry | undefined {
    const entry = this.#lru.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs !== 0 && this.#clock.now() >= entry.expiresAtMs) {
      this.#lru.delete(key);
      return undefined;
    }
    return entry;
  }

  #write(key: string, value: Buffer, flags: number, ttlMs: number): bigint {
    // NOTE: an entry larger than maxBytes could only be stored by evicting everything and
    // would still not fit; an acknowledged write must never vanish, so it is refused.
    const size = Buffer.byteLength(key, 'utf8') + value.length;
    if (size > this.#maxBytes)
      throw new InvalidArgumentError(
        `item of ${size} bytes does not fit in the LRU store (--lru-max-bytes ${this.#maxBytes})`,
      );
    const cas = ++this.#lastCas;
    // The LRU copies the bytes into its arena: the request's buffer may be a view into a
    // larger gRPC frame.
    this.#lru.set(key, { value, flags, cas, expiresAtMs: this.#expiry(ttlMs) });
    return cas;
  }

  #expiry(ttlMs: number): number {
    return ttlMs > 0 ? this.#clock.now() + ttlMs : 0;
  }
}
