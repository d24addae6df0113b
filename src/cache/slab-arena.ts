// A slab allocator over a few large Buffers, after memcached's slabs.c: memory comes in pages
// (256 KiB by default), each page is cut into equal chunks of one size class, and the class
// sizes grow by a constant factor, so an item wastes at most that factor in rounding. An
// item too big for the largest class (half a page) gets a page of its own, of its exact size.
// The garbage collector sees one Buffer per page, never one object per item.
//
// A chunk is named by an address, a plain number (page * 2^16 + chunk index), so callers can
// keep addresses in typed arrays. Each chunk has an owner (a caller's small integer, e.g. an
// index slot) kept beside the page, not in it, which is what lets the arena move chunks.
//
// NOTE: memcached never gives a page back to its class pool once assigned ("slab
// calcification": a workload that moves from small items to large ones keeps the small
// items' pages). Here a class that holds more than two pages' worth of free chunks is
// compacted when a chunk is freed: the live chunks of its emptiest page are copied into free
// chunks of its other pages, each owner is told its chunk's new address (onMove), and the
// emptied page is dropped for the GC to return. Two pages, not one, so that freeing and
// allocating around a page boundary does not move items back and forth. The cost is
// amortized: moving at most one page's chunks frees a page's worth of them.

export interface SlabArenaOptions {
  /** Bytes per page; a multiple of 8. Default 256 KiB. */
  readonly pageBytes?: number;
  /** The smallest chunk size in bytes (rounded up to 8). Default 32. */
  readonly minChunkBytes?: number;
  /** Each size class is this much bigger than the one before (> 1). Default 1.125. */
  readonly growthFactor?: number;
  /**
   * Called, synchronously from inside free(), when compaction moves the chunk of `owner` to
   * `to`: the old address is invalid from then on. The caller must be ready for it at every
   * free() (its state consistent, no address of a live chunk held in a local).
   */
  readonly onMove: (owner: number, to: number) => void;
}

/** A page as the caller reads and writes it: three views of the same memory. */
export interface Page {
  readonly bytes: Buffer;
  readonly u32: Uint32Array;
  readonly f64: Float64Array;
}

interface PageRecord {
  readonly view: Page;
  /** Index into #classes, or LARGE for a page of one item. */
  readonly cls: number;
  readonly chunkBytes: number;
  /** owner + 1 per chunk; 0 = free. */
  readonly owners: Uint32Array;
  live: number;
}

interface SizeClass {
  readonly chunkBytes: number;
  readonly perPage: number;
  /** Addresses of free chunks (a stack: the chunk freed last is reused first). */
  free: number[];
  readonly pages: Set<number>;
}

const CHUNK_SPACE = 2 ** 16;
const LARGE = -1;

const roundUp8 = (n: number) => Math.ceil(n / 8) * 8;

export class SlabArena {
  readonly #pageBytes: number;
  readonly #classes: SizeClass[] = [];
  readonly #onMove: (owner: number, to: number) => void;
  readonly #pages: (PageRecord | undefined)[] = [];
  /** Page numbers released, for reuse, so addresses stay small. */
  #freePages: number[] = [];
  #reservedBytes = 0;

  constructor(options: SlabArenaOptions) {
    const pageBytes = options.pageBytes ?? 256 * 1024;
    const factor = options.growthFactor ?? 1.125;
    const min = roundUp8(options.minChunkBytes ?? 32);
    if (pageBytes % 8 !== 0 || pageBytes < 2 * min)
      throw new RangeError(`pageBytes must be a multiple of 8 and at least 2 × minChunkBytes, got ${pageBytes}`);
    if (pageBytes / min > CHUNK_SPACE)
      throw new RangeError(`a page of ${pageBytes} bytes would hold more than ${CHUNK_SPACE} chunks of ${min}`);
    if (!(factor > 1)) throw new RangeError(`growthFactor must be above 1, got ${factor}`);
    this.#pageBytes = pageBytes;
    this.#onMove = options.onMove;
    const sizes: number[] = [];
    for (let size = min; size < pageBytes / 2; size = Math.max(size + 8, roundUp8(size * factor))) sizes.push(size);
    // The largest class is half a page, as memcached's slab_chunk_max.
    sizes.push(pageBytes / 2);
    for (const size of sizes)
      this.#classes.push({ chunkBytes: size, perPage: Math.floor(pageBytes / size), free: [], pages: new Set() });
  }

  /** The largest item kept in a shared page; bigger ones get a page of their own. */
  get maxChunkBytes(): number {
    return this.#classes[this.#classes.length - 1]!.chunkBytes;
  }

  /** Bytes of all pages held (what the arena costs in memory, give or take the allocator's share). */
  get reservedBytes(): number {
    return this.#reservedBytes;
  }

  /** Pages held, shared and own. */
  get pageCount(): number {
    return this.#pages.length - this.#freePages.length;
  }

  /** Each size class that holds pages: its chunk size, pages, chunks per page and live chunks. */
  classes(): { chunkBytes: number; pages: number; perPage: number; live: number }[] {
    return this.#classes
      .filter((c) => c.pages.size > 0)
      .map((c) => ({
        chunkBytes: c.chunkBytes,
        pages: c.pages.size,
        perPage: c.perPage,
        live: c.pages.size * c.perPage - c.free.length,
      }));
  }

  /** The chunk size `bytes` would be given. */
  chunkBytesFor(bytes: number): number {
    const cls = this.#classFor(bytes);
    return cls === LARGE ? roundUp8(bytes) : this.#classes[cls]!.chunkBytes;
  }

  /** A chunk of at least `bytes` for `owner` (a non-negative integer below 2^32 - 1); its address. */
  alloc(bytes: number, owner: number): number {
    const cls = this.#classFor(bytes);
    if (cls === LARGE) {
      const page = this.#newPage(LARGE, roundUp8(Math.max(bytes, 8)), 1);
      const record = this.#pages[page]!;
      record.owners[0] = owner + 1;
      record.live = 1;
      return page * CHUNK_SPACE;
    }
    const sizeClass = this.#classes[cls]!;
    if (sizeClass.free.length === 0) this.#addPage(cls);
    const address = sizeClass.free.pop()!;
    const record = this.#pages[pageOf(address)]!;
    record.owners[address % CHUNK_SPACE] = owner + 1;
    record.live++;
    return address;
  }

  /** Gives the chunk back. May move other chunks of its class (see onMove). */
  free(address: number): void {
    const page = pageOf(address);
    const record = this.#record(address);
    const chunk = address % CHUNK_SPACE;
    if (record.owners[chunk] === 0) throw new Error(`chunk ${address} is already free`);
    record.owners[chunk] = 0;
    record.live--;
    if (record.cls === LARGE) {
      this.#release(page);
      return;
    }
    const sizeClass = this.#classes[record.cls]!;
    sizeClass.free.push(address);
    if (sizeClass.free.length > 2 * sizeClass.perPage) this.#compact(record.cls);
  }

  /** Whether alloc(bytes) would give a chunk of this one's size class (so the item can stay where it is). */
  fits(address: number, bytes: number): boolean {
    const record = this.#record(address);
    return record.cls !== LARGE && this.#classFor(bytes) === record.cls;
  }

  /** The page holding the chunk. */
  page(address: number): Page {
    return this.#record(address).view;
  }

  /** The chunk's first byte in its page (a multiple of 8). */
  offset(address: number): number {
    return (address % CHUNK_SPACE) * this.#record(address).chunkBytes;
  }

  /** The chunk's size in bytes. */
  capacity(address: number): number {
    return this.#record(address).chunkBytes;
  }

  /** The owner given to alloc (or told by onMove). */
  owner(address: number): number {
    const owner = this.#record(address).owners[address % CHUNK_SPACE]!;
    if (owner === 0) throw new Error(`chunk ${address} is free`);
    return owner - 1;
  }

  /** Drops every page. */
  clear(): void {
    this.#pages.length = 0;
    this.#freePages = [];
    this.#reservedBytes = 0;
    for (const sizeClass of this.#classes) {
      sizeClass.free = [];
      sizeClass.pages.clear();
    }
  }

  #classFor(bytes: number): number {
    const classes = this.#classes;
    if (bytes > classes[classes.length - 1]!.chunkBytes) return LARGE;
    let lo = 0;
    let hi = classes.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (classes[mid]!.chunkBytes >= bytes) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  #record(address: number): PageRecord {
    const record = this.#pages[pageOf(address)];
    if (record === undefined) throw new Error(`address ${address} is not in the arena`);
    return record;
  }

  #newPage(cls: number, chunkBytes: number, chunks: number): number {
    const bytes = cls === LARGE ? chunkBytes : this.#pageBytes;
    const buffer = Buffer.allocUnsafeSlow(bytes);
    const view: Page = {
      bytes: buffer,
      u32: new Uint32Array(buffer.buffer, buffer.byteOffset, bytes / 4),
      f64: new Float64Array(buffer.buffer, buffer.byteOffset, bytes / 8),
    };
    const record: PageRecord = { view, cls, chunkBytes, owners: new Uint32Array(chunks), live: 0 };
    const page = this.#freePages.pop() ?? this.#pages.length;
    this.#pages[page] = record;
    this.#reservedBytes += bytes;
    return page;
  }

  #addPage(cls: number): void {
    const sizeClass = this.#classes[cls]!;
    const page = this.#newPage(cls, sizeClass.chunkBytes, sizeClass.perPage);
    sizeClass.pages.add(page);
    // Pushed last chunk first, so the page fills from its start.
    for (let chunk = sizeClass.perPage - 1; chunk >= 0; chunk--) sizeClass.free.push(page * CHUNK_SPACE + chunk);
  }

  #release(page: number): void {
    const record = this.#pages[page]!;
    this.#reservedBytes -= record.view.bytes.length;
    this.#pages[page] = undefined;
    this.#freePages.push(page);
    if (record.cls !== LARGE) this.#classes[record.cls]!.pages.delete(page);
  }

  /** Empties the class's emptiest page into its other pages' free chunks, then drops it. */
  #compact(cls: number): void {
    const sizeClass = this.#classes[cls]!;
    let victim = -1;
    let fewest = Number.POSITIVE_INFINITY;
    for (const page of sizeClass.pages) {
      const live = this.#pages[page]!.live;
      if (live < fewest) [victim, fewest] = [page, live];
    }
    const from = this.#pages[victim]!;
    sizeClass.free = sizeClass.free.filter((address) => pageOf(address) !== victim);
    // More than 2 × perPage were free and at most perPage of them were in the victim, so the
    // other pages have a free chunk for each of its live ones.
    for (let chunk = 0; from.live > 0 && chunk < sizeClass.perPage; chunk++) {
      const owner = from.owners[chunk]!;
      if (owner === 0) continue;
      const to = sizeClass.free.pop()!;
      const target = this.#pages[pageOf(to)]!;
      const at = chunk * sizeClass.chunkBytes;
      from.view.bytes.copy(target.view.bytes, (to % CHUNK_SPACE) * sizeClass.chunkBytes, at, at + sizeClass.chunkBytes);
      target.owners[to % CHUNK_SPACE] = owner;
      target.live++;
      from.owners[chunk] = 0;
      from.live--;
      this.#onMove(owner - 1, to);
    }
    this.#release(victim);
  }
}

function pageOf(address: number): number {
  return Math.floor(address / CHUNK_SPACE);
}
