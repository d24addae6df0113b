// An LRU map of string keys to cache entries, bounded by entry count and by bytes (key UTF-8
// + value), with its items in a slab arena (slab-arena.ts) and its index and recency order in
// typed arrays (compact-index.ts). Nothing per entry is a JS object: a million entries are a
// few hundred Buffers and a few typed arrays to the GC. Entries come out as fresh objects.
//
// Each item is one chunk, laid out as memcached lays out an item (key beside the value):
//
//   cas (f64) | expiresAtMs (f64) | flags (u32) | value length (u32) | key length (u16) |
//   key (UTF-8) | value
//
// NOTE: the cas is kept as a float64, exact for every integer below 2^53: at a million writes
// a second that is 285 years of writes, so a cas never rounds.

import { CompactIndex, hashBytes } from './compact-index.js';
import { SlabArena, type SlabArenaOptions } from './slab-arena.js';

export interface CompactEntry {
  readonly value: Buffer;
  /** memcached's 32-bit client flags. */
  readonly flags: number;
  /** Below 2^53. */
  readonly cas: bigint;
  /** 0 = never expires. */
  readonly expiresAtMs: number;
}

export interface CompactLruOptions {
  /** Most entries kept (at least 1); past it the least recently used goes first. */
  readonly maxEntries: number;
  /**
   * Most bytes kept, counting each key's UTF-8 bytes plus its value's bytes; whichever of
   * this and maxEntries is reached first evicts. An entry larger than all of it is refused.
   */
  readonly maxBytes: number;
  /** The arena's page size and size classes (see slab-arena.ts); defaults there. */
  readonly arena?: Omit<SlabArenaOptions, 'onMove'>;
}

const CAS = 0;
const EXPIRES = 8;
const FLAGS = 16;
const VALUE_LENGTH = 20;
const KEY_LENGTH = 24;
const KEY = 26;
const MAX_KEY_BYTES = 0xffff;

/**
 * @example
 * const lru = new CompactLru({ maxEntries: 100_000, maxBytes: 64 * 1024 ** 2 });
 * lru.set('k', { value: Buffer.from('v'), flags: 0, cas: 1n, expiresAtMs: 0 });
 * lru.get('k')?.value; // a copy of the stored bytes; 'k' is now the most recently used
 */
export class CompactLru {
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #arena: SlabArena;
  readonly #index: CompactIndex;
  /** The key being looked up, UTF-8, in #key[0, #keyLength). */
  #key = Buffer.allocUnsafeSlow(1024);
  #keyLength = 0;
  #bytes = 0;

  constructor(options: CompactLruOptions) {
    this.#maxEntries = options.maxEntries;
    this.#maxBytes = options.maxBytes;
    this.#arena = new SlabArena({
      ...options.arena,
      onMove: (slot, to) => this.#index.setValue(slot, to),
    });
    this.#index = new CompactIndex({ maxEntries: options.maxEntries, matches: (slot) => this.#holdsKey(slot) });
  }

  get size(): number {
    return this.#index.size;
  }

  /** Bytes counted against maxBytes: keys' UTF-8 plus values. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes of arena pages held (items with their headers and rounding, and free chunks). */
  get arenaBytes(): number {
    return this.#arena.reservedBytes;
  }

  /** The entry, now the most recently used; undefined if absent. */
  get(key: string): CompactEntry | undefined {
    const slot = this.#index.find(this.#hashKey(key));
    if (slot < 0) return undefined;
    this.#index.promote(slot);
    const address = this.#index.value(slot);
    const { bytes, u32, f64 } = this.#arena.page(address);
    const at = this.#arena.offset(address);
    const valueLength = u32[(at + VALUE_LENGTH) / 4]!;
    const valueAt = at + KEY + (bytes[at + KEY_LENGTH]! | (bytes[at + KEY_LENGTH + 1]! << 8));
    // NOTE: a copy, never a view: the chunk is reused (or moved) by the next write, while a
    // reply may still be waiting to be serialized.
    const value = Buffer.allocUnsafe(valueLength);
    bytes.copy(value, 0, valueAt, valueAt + valueLength);
    return {
      value,
      flags: u32[(at + FLAGS) / 4]!,
      cas: BigInt(f64[(at + CAS) / 8]!),
      expiresAtMs: f64[(at + EXPIRES) / 8]!,
    };
  }

  /** Stores a copy of the entry as the most recently used, evicting the least recently used past the limits. */
  set(key: string, entry: CompactEntry): void {
    const hash = this.#hashKey(key);
    const keyLength = this.#keyLength;
    const size = keyLength + entry.value.length;
    if (size > this.#maxBytes)
      throw new RangeError(`an entry of ${size} bytes does not fit in maxBytes ${this.#maxBytes}`);
    const need = KEY + size;
    let slot = this.#index.find(hash);
    if (slot >= 0) {
      this.#index.promote(slot);
      this.#bytes -= this.#sizeOf(this.#index.value(slot));
      // The entry is the most recently used: eviction takes the others first, and never it,
      // since it fits alone.
      while (this.#bytes + size > this.#maxBytes) this.#evictOldest();
      const old = this.#index.value(slot);
      if (this.#arena.fits(old, need)) {
        this.#write(old, entry);
      } else {
        const address = this.#arena.alloc(need, slot);
        this.#write(address, entry);
        this.#index.setValue(slot, address);
        // Last: freeing may compact the class, which moves chunks and updates their slots.
        this.#arena.free(old);
      }
    } else {
      while (this.#index.size >= this.#maxEntries || this.#bytes + size > this.#maxBytes) this.#evictOldest();
      // Eviction hashed nothing, so #key still holds this key.
      slot = this.#index.insert(hash, 0);
      const address = this.#arena.alloc(need, slot);
      this.#write(address, entry);
      this.#index.setValue(slot, address);
    }
    this.#bytes += size;
  }

  /** Whether the key was there. */
  delete(key: string): boolean {
    const slot = this.#index.find(this.#hashKey(key));
    if (slot < 0) return false;
    this.#remove(slot);
    return true;
  }

  clear(): void {
    this.#index.clear();
    this.#arena.clear();
    this.#bytes = 0;
  }

  /** Keys from the most to the least recently used (for tests and debugging; decodes every key). */
  *keys(): IterableIterator<string> {
    for (const slot of this.#index.slots()) {
      const address = this.#index.value(slot);
      const { bytes } = this.#arena.page(address);
      const at = this.#arena.offset(address);
      yield bytes.toString('utf8', at + KEY, at + KEY + (bytes[at + KEY_LENGTH]! | (bytes[at + KEY_LENGTH + 1]! << 8)));
    }
  }

  /** Puts the key's UTF-8 in #key and returns its hash. */
  #hashKey(key: string): number {
    // A UTF-16 unit is at most 3 bytes of UTF-8; measure exactly only when that may not fit.
    if (key.length * 3 > this.#key.length) {
      const bytes = Buffer.byteLength(key, 'utf8');
      if (bytes > MAX_KEY_BYTES) throw new RangeError(`a key of ${bytes} bytes is longer than ${MAX_KEY_BYTES}`);
      if (bytes > this.#key.length) this.#key = Buffer.allocUnsafeSlow(bytes);
    }
    this.#keyLength = this.#key.write(key, 0);
    return hashBytes(this.#key, this.#keyLength);
  }

  #holdsKey(slot: number): boolean {
    const address = this.#index.value(slot);
    const { bytes } = this.#arena.page(address);
    const at = this.#arena.offset(address);
    const length = this.#keyLength;
    if ((bytes[at + KEY_LENGTH]! | (bytes[at + KEY_LENGTH + 1]! << 8)) !== length) return false;
    const key = this.#key;
    const start = at + KEY;
    for (let i = 0; i < length; i++) if (bytes[start + i] !== key[i]) return false;
    return true;
  }

  #sizeOf(address: number): number {
    const { bytes, u32 } = this.#arena.page(address);
    const at = this.#arena.offset(address);
    return (bytes[at + KEY_LENGTH]! | (bytes[at + KEY_LENGTH + 1]! << 8)) + u32[(at + VALUE_LENGTH) / 4]!;
  }

  /** Writes the entry with the key in #key into the chunk. */
  #write(address: number, entry: CompactEntry): void {
    const { bytes, u32, f64 } = this.#arena.page(address);
    const at = this.#arena.offset(address);
    f64[(at + CAS) / 8] = Number(entry.cas);
    f64[(at + EXPIRES) / 8] = entry.expiresAtMs;
    u32[(at + FLAGS) / 4] = entry.flags;
    u32[(at + VALUE_LENGTH) / 4] = entry.value.length;
    bytes[at + KEY_LENGTH] = this.#keyLength & 0xff;
    bytes[at + KEY_LENGTH + 1] = this.#keyLength >>> 8;
    this.#key.copy(bytes, at + KEY, 0, this.#keyLength);
    entry.value.copy(bytes, at + KEY + this.#keyLength);
  }

  #evictOldest(): void {
    this.#remove(this.#index.leastRecent);
  }

  #remove(slot: number): void {
    const address = this.#index.value(slot);
    this.#bytes -= this.#sizeOf(address);
    this.#index.remove(slot);
    this.#arena.free(address);
  }
}
