// A hash index with LRU order in typed arrays: key → slot (a small integer) → one number, the
// way lru-cache keeps its order in Uint32Arrays, but without a JS Map or a string per key.
// The keys themselves live with the caller (in the slab arena, with the values); the index
// keeps only each key's 32-bit hash and asks the caller whether a slot holds the key being
// looked up. Per entry that is one 20-byte slot record (hash, the two recency links, the
// value) and 4-8 bytes of hash table: two large arrays the GC never walks, whatever the
// number of entries.
//
// NOTE: a slot's fields sit side by side in one record, not in an array each, because with a
// million entries every array touched at a random slot is a cache miss of its own: a lookup
// and promote reads one table bucket, one record and its two neighbours' records.
//
// The table is open addressing with linear probing, at most 3/4 full, and deletes by
// shifting the entries after the hole back (no tombstones), so a lookup never gets slower
// because of past deletes. Slots are reused most recently freed first.
//
// A bucket holds slot + 1 in its low bits and, in the bits slot numbers up to maxEntries
// leave free (11 of them for a million entries), the top bits of the slot's hash: a probe
// passes over a bucket of another key without reading that key's record, which at a million
// entries is a cache miss of its own (about half a miss per lookup at the table's load).
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
// A slot record: its key's hash, the slots used just before and after it (or, for a free
// slot, OLDER links to the next free one), and its value in two 32-bit halves.
const RECORD = 5;
const HASH = 0;
const OLDER = 1;
const NEWER = 2;
const LOW = 3;
const HIGH = 4;
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
  /** RECORD words per slot: HASH, OLDER, NEWER, LOW, HIGH. */
  #slots!: Uint32Array;
  /** Slots the records have room for. */
  #capacity = 0;
  // The table: per bucket (hash & #tagMask) | (slot + 1); 0 = empty.
  #buckets!: Uint32Array;
  /** The bucket bits that hold slot + 1, and the rest (the hash's, as a tag; 0 when none are left). */
  readonly #slotMask: number;
  readonly #tagMask: number;
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
    const slotBits = 32 - Math.clz32(options.maxEntries);
    this.#slotMask = slotBits === 32 ? 0xffffffff : 2 ** slotBits - 1;
    this.#tagMask = (0xffffffff - this.#slotMask) >>> 0;
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
    const slots = this.#slots;
    const mask = this.#mask;
    const slotMask = this.#slotMask;
    const tagMask = this.#tagMask;
    const tag = hash & tagMask;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const entry = buckets[i]!;
      if (entry === 0) return -1;
      if ((entry & tagMask) !== tag) continue;
      const slot = ((entry & slotMask) >>> 0) - 1;
      if (slots[slot * RECORD + HASH] === hash && this.#matches(slot)) return slot;
    }
  }

  /**
   * Adds an entry as the most recently used, with a value (an integer from 0 to 2^53 - 1);
   * the caller knows its key is absent (find gave -1).
   */
  insert(hash: number, value: number): number {
    hash >>>= 0;
    if (this.#size >= this.#maxEntries)
      throw new RangeError(`the index holds its maxEntries (${this.#maxEntries}); remove one first`);
    if ((this.#size + 1) * 4 > this.#buckets.length * 3) this.#rehash(this.#buckets.length * 2);
    let slot: number;
    if (this.#freeSlots !== NONE) {
      slot = this.#freeSlots;
      this.#freeSlots = this.#slots[slot * RECORD + OLDER]!;
    } else {
      if (this.#usedSlots === this.#capacity) this.#growSlots();
      slot = this.#usedSlots++;
    }
    this.#slots[slot * RECORD + HASH] = hash;
    this.setValue(slot, value);
    let i = hash & this.#mask;
    while (this.#buckets[i] !== 0) i = (i + 1) & this.#mask;
    this.#buckets[i] = this.#entry(hash, slot);
    this.#linkNewest(slot);
    this.#size++;
    return slot;
  }

  /** Forgets the entry; its slot may be handed out by the next insert. */
  remove(slot: number): void {
    const buckets = this.#buckets;
    const slots = this.#slots;
    const mask = this.#mask;
    const slotMask = this.#slotMask;
    let hole = slots[slot * RECORD + HASH]! & mask;
    while ((buckets[hole]! & slotMask) >>> 0 !== slot + 1) {
      if (buckets[hole] === 0) throw new Error(`slot ${slot} is not in the index`);
      hole = (hole + 1) & mask;
    }
    // Backward shift: each later entry of the run moves into the hole unless its home bucket
    // lies cyclically after the hole (moving it would put it before where a lookup starts).
    for (let i = (hole + 1) & mask; buckets[i] !== 0; i = (i + 1) & mask) {
      const home = slots[(((buckets[i]! & slotMask) >>> 0) - 1) * RECORD + HASH]! & mask;
      const stays = hole <= i ? hole < home && home <= i : hole < home || home <= i;
      if (stays) continue;
      buckets[hole] = buckets[i]!;
      hole = i;
    }
    buckets[hole] = 0;
    this.#unlink(slot);
    slots[slot * RECORD + OLDER] = this.#freeSlots;
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
    const at = slot * RECORD;
    return this.#slots[at + LOW]! + this.#slots[at + HIGH]! * 2 ** 32;
  }

  /** An integer from 0 to 2^53 - 1. */
  setValue(slot: number, value: number): void {
    const at = slot * RECORD;
    this.#slots[at + LOW] = value % 2 ** 32;
    this.#slots[at + HIGH] = Math.floor(value / 2 ** 32);
  }

  /** Slots from the most to the least recently used. */
  *slots(): IterableIterator<number> {
    for (let slot = this.#newest; slot !== NONE; slot = this.#slots[slot * RECORD + OLDER]!) yield slot;
  }

  /** Empties the index and gives back its grown arrays. */
  clear(): void {
    this.#capacity = this.#initialSlots;
    this.#slots = new Uint32Array(this.#capacity * RECORD);
    let buckets = 16;
    while (buckets * 3 < this.#capacity * 4) buckets *= 2;
    this.#buckets = new Uint32Array(buckets);
    this.#mask = buckets - 1;
    this.#size = 0;
    this.#newest = this.#oldest = this.#freeSlots = NONE;
    this.#usedSlots = 0;
  }

  #entry(hash: number, slot: number): number {
    return ((hash & this.#tagMask) | (slot + 1)) >>> 0;
  }

  #linkNewest(slot: number): void {
    const slots = this.#slots;
    slots[slot * RECORD + OLDER] = this.#newest;
    slots[slot * RECORD + NEWER] = NONE;
    if (this.#newest !== NONE) slots[this.#newest * RECORD + NEWER] = slot;
    else this.#oldest = slot;
    this.#newest = slot;
  }

  #unlink(slot: number): void {
    const slots = this.#slots;
    const older = slots[slot * RECORD + OLDER]!;
    const newer = slots[slot * RECORD + NEWER]!;
    if (newer !== NONE) slots[newer * RECORD + OLDER] = older;
    else this.#newest = older;
    if (older !== NONE) slots[older * RECORD + NEWER] = newer;
    else this.#oldest = newer;
  }

  #growSlots(): void {
    this.#capacity = Math.min(this.#capacity * 2, this.#maxEntries);
    const slots = new Uint32Array(this.#capacity * RECORD);
    slots.set(this.#slots);
    this.#slots = slots;
  }

  #rehash(bucketCount: number): void {
    const buckets = new Uint32Array(bucketCount);
    const mask = bucketCount - 1;
    for (let slot = this.#newest; slot !== NONE; slot = this.#slots[slot * RECORD + OLDER]!) {
      const hash = this.#slots[slot * RECORD + HASH]!;
      let i = hash & mask;
      while (buckets[i] !== 0) i = (i + 1) & mask;
      buckets[i] = this.#entry(hash, slot);
    }
    this.#buckets = buckets;
    this.#mask = mask;
  }
}
