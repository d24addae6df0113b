// A hash index with LRU order in typed arrays: key → slot (a small integer) → one number, the
// way lru-cache keeps its order in Uint32Arrays, but without a JS Map or a string per key.
// The keys themselves live with the caller (in the slab arena, with the values); the index
// keeps only each key's 32-bit hash and asks the caller whether a slot holds the key being
// looked up. Per entry that is 4 bytes of hash, 8 of order, 8 of value and 4-8 of hash table:
// a handful of large arrays the GC never walks, whatever the number of entries.
//
// The table is open addressing with linear probing, at most 3/4 full, and deletes by
// shifting the entries after the hole back (no tombstones), so a lookup never gets slower
// because of past deletes. Slots are reused most recently freed first.
//
// NOTE: growing rehashes every entry at once (the table doubles; a 1 M-entry table takes tens
// of milliseconds), and the slot arrays double by copying, capped at maxEntries. Both happen
// only while the index is growing, never once it has reached its largest size.
//
// NOTE: the hash is seeded per process, so keys cannot be chosen offline to collide; like any
// non-cryptographic hash, a client that can observe timing could still find collisions that
// lengthen probe runs, as with V8's own Map.
import { randomBytes } from 'node:crypto';

export interface CompactIndexOptions {
  /** Most entries at once (at least 1); slots are numbered from 0 to maxEntries - 1. */
  readonly maxEntries: number;
  /**
   * Whether `slot` holds the key being looked up: find(hash) calls it for each slot whose
   * hash matches, and the caller compares its own copy of the key (e.g. in the arena).
   */
  readonly matches: (slot: number) => boolean;
  /** Slots allocated before the first growth. Default 1024 (or maxEntries if smaller). */
  readonly initialSlots?: number;
}

const NONE = 0xffffffff;
const SEED = randomBytes(4).readUInt32LE(0);

/** 32-bit MurmurHash3 (x86) of bytes[0, length), by default with the process's seed. */
export function hashBytes(bytes: Uint8Array, length: number, seed = SEED): number {
  let h = seed;
  const blocks = length & ~3;
  let i = 0;
  for (; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = length & 3;
  if (tail > 0) {
    let k = bytes[i]!;
    if (tail > 1) k |= bytes[i + 1]! << 8;
    if (tail > 2) k |= bytes[i + 2]! << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * @example
 * const index = new CompactIndex({ maxEntries: 1000, matches: (slot) => keys[slot] === wanted });
 * wanted = 'a';
 * const slot = index.insert(hash('a'), 42); // most recently used
 * index.find(hash('a')); // → slot; index.value(slot) → 42
 * index.leastRecent; // the slot to evict first
 */
export class CompactIndex {
  readonly #maxEntries: number;
  readonly #matches: (slot: number) => boolean;
  readonly #initialSlots: number;
  // Per slot.
  #hashes!: Uint32Array;
  #values!: Float64Array;
  /** Toward the least recently used; for a free slot, the next free slot. */
  #older!: Uint32Array;
  /** Toward the most recently used. */
  #newer!: Uint32Array;
  // The table: slot + 1 per bucket, 0 = empty.
  #buckets!: Uint32Array;
  #mask = 0;
  #size = 0;
  #newest = NONE;
  #oldest = NONE;
  #freeSlots = NONE;
  /** Slots below this have been used at least once. */
  #usedSlots = 0;

  constructor(options: CompactIndexOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1 || options.maxEntries >= NONE)
      throw new RangeError(`maxEntries must be an integer from 1 to ${NONE - 1}, got ${options.maxEntries}`);
    this.#maxEntries = options.maxEntries;
    this.#matches = options.matches;
    this.#initialSlots = Math.min(options.initialSlots ?? 1024, options.maxEntries);
    this.clear();
  }

  get size(): number {
    return this.#size;
  }

  /** The least recently used slot, or -1 when empty. */
  get leastRecent(): number {
    return this.#oldest === NONE ? -1 : this.#oldest;
  }

  /**
   * The slot whose key has this hash (taken as uint32) and satisfies matches(), or -1. Does
   * not change the order.
   */
  find(hash: number): number {
    hash >>>= 0;
    const buckets = this.#buckets;
    const hashes = this.#hashes;
    const mask = this.#mask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const entry = buckets[i]!;
      if (entry === 0) return -1;
      const slot = entry - 1;
      if (hashes[slot] === hash && this.#matches(slot)) return slot;
    }
  }

  /** Adds an entry as the most recently used; the caller knows its key is absent (find gave -1). */
  insert(hash: number, value: number): number {
    hash >>>= 0;
    if (this.#size >= this.#maxEntries)
      throw new RangeError(`the index holds its maxEntries (${this.#maxEntries}); remove one first`);
    if ((this.#size + 1) * 4 > this.#buckets.length * 3) this.#rehash(this.#buckets.length * 2);
    let slot: number;
    if (this.#freeSlots !== NONE) {
      slot = this.#freeSlots;
      this.#freeSlots = this.#older[slot]!;
    } else {
      if (this.#usedSlots === this.#hashes.length) this.#growSlots();
      slot = this.#usedSlots++;
    }
    this.#hashes[slot] = hash;
    this.#values[slot] = value;
    let i = hash & this.#mask;
    while (this.#buckets[i] !== 0) i = (i + 1) & this.#mask;
    this.#buckets[i] = slot + 1;
    this.#linkNewest(slot);
    this.#size++;
    return slot;
  }

  /** Forgets the entry; its slot may be handed out by the next insert. */
  remove(slot: number): void {
    const buckets = this.#buckets;
    const mask = this.#mask;
    let hole = this.#hashes[slot]! & mask;
    while (buckets[hole] !== slot + 1) {
      if (buckets[hole] === 0) throw new Error(`slot ${slot} is not in the index`);
      hole = (hole + 1) & mask;
    }
    // Backward shift: each later entry of the run moves into the hole unless its home bucket
    // lies cyclically after the hole (moving it would put it before where a lookup starts).
    for (let i = (hole + 1) & mask; buckets[i] !== 0; i = (i + 1) & mask) {
      const home = this.#hashes[buckets[i]! - 1]! & mask;
      const stays = hole <= i ? hole < home && home <= i : hole < home || home <= i;
      if (stays) continue;
      buckets[hole] = buckets[i]!;
      hole = i;
    }
    buckets[hole] = 0;
    this.#unlink(slot);
    this.#older[slot] = this.#freeSlots;
    this.#freeSlots = slot;
    this.#size--;
  }

  /** Marks the entry most recently used. */
  promote(slot: number): void {
    if (slot === this.#newest) return;
    this.#unlink(slot);
    this.#linkNewest(slot);
  }

  value(slot: number): number {
    return this.#values[slot]!;
  }

  setValue(slot: number, value: number): void {
    this.#values[slot] = value;
  }

  /** Slots from the most to the least recently used. */
  *slots(): IterableIterator<number> {
    for (let slot = this.#newest; slot !== NONE; slot = this.#older[slot]!) yield slot;
  }

  /** Empties the index and gives back its grown arrays. */
  clear(): void {
    const slots = this.#initialSlots;
    this.#hashes = new Uint32Array(slots);
    this.#values = new Float64Array(slots);
    this.#older = new Uint32Array(slots);
    this.#newer = new Uint32Array(slots);
    let buckets = 16;
    while (buckets * 3 < slots * 4) buckets *= 2;
    this.#buckets = new Uint32Array(buckets);
    this.#mask = buckets - 1;
    this.#size = 0;
    this.#newest = this.#oldest = this.#freeSlots = NONE;
    this.#usedSlots = 0;
  }

  #linkNewest(slot: number): void {
    this.#older[slot] = this.#newest;
    this.#newer[slot] = NONE;
    if (this.#newest !== NONE) this.#newer[this.#newest] = slot;
    else this.#oldest = slot;
    this.#newest = slot;
  }

  #unlink(slot: number): void {
    const older = this.#older[slot]!;
    const newer = this.#newer[slot]!;
    if (newer !== NONE) this.#older[newer] = older;
    else this.#newest = older;
    if (older !== NONE) this.#newer[older] = newer;
    else this.#oldest = newer;
  }

  #growSlots(): void {
    const length = Math.min(this.#hashes.length * 2, this.#maxEntries);
    const grow = <T extends Uint32Array | Float64Array>(old: T, make: (n: number) => T) => {
      const next = make(length);
      next.set(old);
      return next;
    };
    this.#hashes = grow(this.#hashes, (n) => new Uint32Array(n));
    this.#values = grow(this.#values, (n) => new Float64Array(n));
    this.#older = grow(this.#older, (n) => new Uint32Array(n));
    this.#newer = grow(this.#newer, (n) => new Uint32Array(n));
  }

  #rehash(bucketCount: number): void {
    const buckets = new Uint32Array(bucketCount);
    const mask = bucketCount - 1;
    for (let slot = this.#newest; slot !== NONE; slot = this.#older[slot]!) {
      let i = this.#hashes[slot]! & mask;
      while (buckets[i] !== 0) i = (i + 1) & mask;
      buckets[i] = slot + 1;
    }
    this.#buckets = buckets;
    this.#mask = mask;
  }
}
