// The slab arena on its own: size classes, reuse, pages of their own for big items, and
// compaction that moves live chunks (their bytes intact) and gives emptied pages back.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { SlabArena } from '../../src/cache/slab-arena.js';

const PAGE = 4096;

/** An arena whose owners' addresses are tracked through onMove, as a real caller does. */
function tracked(options: { pageBytes?: number; growthFactor?: number } = {}) {
  const addresses = new Map<number, number>();
  const moves: number[] = [];
  const arena = new SlabArena({
    pageBytes: options.pageBytes ?? PAGE,
    growthFactor: options.growthFactor,
    onMove: (owner, to) => {
      assert.ok(addresses.has(owner), `onMove for owner ${owner}, which holds no chunk`);
      addresses.set(owner, to);
      moves.push(owner);
    },
  });
  const fill = (owner: number, bytes: number) => {
    const address = addresses.get(owner)!;
    arena.page(address).bytes.fill(owner & 0xff, arena.offset(address), arena.offset(address) + bytes);
  };
  const intact = (owner: number, bytes: number) => {
    const address = addresses.get(owner)!;
    const at = arena.offset(address);
    const page = arena.page(address).bytes;
    for (let i = 0; i < bytes; i++)
      if (page[at + i] !== (owner & 0xff)) return `owner ${owner}: byte ${i} is ${page[at + i]}`;
    return arena.owner(address) === owner ? undefined : `chunk ${address} names owner ${arena.owner(address)}`;
  };
  return { arena, addresses, moves, fill, intact };
}

describe('slab arena', () => {
  test('each size gets the smallest class that holds it, within the growth factor', () => {
    const arena = new SlabArena({ pageBytes: 256 * 1024, onMove: () => {} });
    for (let bytes = 1; bytes <= arena.maxChunkBytes; bytes += 7) {
      const chunk = arena.chunkBytesFor(bytes);
      assert.ok(chunk >= bytes, `${bytes} bytes got a chunk of ${chunk}`);
      assert.equal(chunk % 8, 0);
      assert.ok(chunk <= Math.max(32, bytes * 1.125 + 8), `${bytes} bytes got a chunk of ${chunk}`);
    }
    assert.equal(arena.maxChunkBytes, arena.chunkBytesFor(128 * 1024));
    assert.equal(arena.chunkBytesFor(128 * 1024 + 1), 128 * 1024 + 8, 'past the largest class: its own size');
  });

  test('live chunks never overlap, and a freed chunk is the next one handed out', () => {
    const { arena, addresses, fill, intact } = tracked();
    const sizes = [1, 30, 33, 100, 100, 700, 2048, 2049, 5000];
    sizes.forEach((bytes, owner) => {
      addresses.set(owner, arena.alloc(bytes, owner));
      fill(owner, bytes);
    });
    sizes.forEach((bytes, owner) => assert.equal(intact(owner, bytes), undefined));
    const freed = addresses.get(3)!;
    arena.free(freed);
    addresses.delete(3);
    assert.equal(arena.alloc(90, 3), freed, 'same class: the chunk just freed');
    assert.throws(() => arena.free(arena.alloc(10, 20) + 1), /already free|not in the arena/);
  });

  test('an item past the largest class has a page of its own, given back when freed', () => {
    const { arena } = tracked();
    const before = arena.reservedBytes;
    const big = arena.alloc(3000, 1);
    assert.equal(arena.capacity(big), 3000);
    assert.equal(arena.offset(big), 0);
    assert.equal(arena.reservedBytes, before + 3000);
    arena.free(big);
    assert.equal(arena.reservedBytes, before);
    assert.throws(() => arena.page(big), /not in the arena/);
  });

  test('freeing most of a class compacts it: pages are given back and every live chunk keeps its bytes', () => {
    const { arena, addresses, moves, fill, intact } = tracked();
    const bytes = 100; // chunk 104: 39 per 4 KiB page
    const perPage = Math.floor(PAGE / arena.chunkBytesFor(bytes));
    for (let owner = 0; owner < perPage * 20; owner++) {
      addresses.set(owner, arena.alloc(bytes, owner));
      fill(owner, bytes);
    }
    assert.equal(arena.pageCount, 20);
    // Keep every 10th: the survivors are spread over every page.
    for (let owner = 0; owner < perPage * 20; owner++) {
      if (owner % 10 === 0) continue;
      arena.free(addresses.get(owner)!);
      addresses.delete(owner);
    }
    assert.ok(moves.length > 0, 'no chunk was moved');
    for (const owner of addresses.keys()) assert.equal(intact(owner, bytes), undefined);
    // The survivors fill 2 pages; at most 2 pages' worth of free chunks remain beside them.
    assert.ok(arena.pageCount <= 2 + 2, `${arena.pageCount} pages held for ${addresses.size} chunks`);
    assert.equal(arena.reservedBytes, arena.pageCount * PAGE);
  });

  test('random allocs and frees: bytes intact, no page more than a class needs (property)', () => {
    fc.assert(
      fc.property(
        // A few sizes often (so classes fill pages, then empty them), any size sometimes.
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('alloc' as const),
              bytes: fc.oneof(fc.constantFrom(24, 100, 500), fc.integer({ min: 1, max: 6000 })),
            }),
            { arbitrary: fc.record({ op: fc.constant('free' as const), pick: fc.nat() }), weight: 3 },
          ),
          { maxLength: 600, size: 'max' },
        ),
        fc.nat({ max: 400 }),
        (mixed, grow) => {
          const ops = [
            ...Array.from({ length: grow }, (_, i) => ({ op: 'alloc' as const, bytes: [24, 100, 500][i % 3]! })),
            ...mixed,
          ];
          const { arena, addresses, fill, intact } = tracked();
          const sizes = new Map<number, number>();
          let nextOwner = 0;
          for (const step of ops) {
            if (step.op === 'alloc') {
              const owner = nextOwner++;
              addresses.set(owner, arena.alloc(step.bytes, owner));
              sizes.set(owner, step.bytes);
              fill(owner, step.bytes);
            } else if (sizes.size > 0) {
              const owner = [...sizes.keys()][step.pick % sizes.size]!;
              arena.free(addresses.get(owner)!);
              addresses.delete(owner);
              sizes.delete(owner);
            }
            if (nextOwner % 50 === 0) for (const [owner, bytes] of sizes) assert.equal(intact(owner, bytes), undefined);
          }
          for (const [owner, bytes] of sizes) assert.equal(intact(owner, bytes), undefined);
          // Per class: the pages its live chunks fill plus at most 2 pages' worth of free
          // chunks; big items a page each, of their size.
          const live = new Map<number, number>();
          let own = 0;
          for (const bytes of sizes.values()) {
            const chunk = arena.chunkBytesFor(bytes);
            if (chunk > arena.maxChunkBytes) own += chunk;
            else live.set(chunk, (live.get(chunk) ?? 0) + 1);
          }
          let shared = 0;
          for (const c of arena.classes()) {
            assert.equal(c.live, live.get(c.chunkBytes) ?? 0, `live chunks of ${c.chunkBytes} bytes`);
            assert.ok(
              c.pages <= Math.ceil(c.live / c.perPage) + 2,
              `${c.pages} pages of ${c.chunkBytes}-byte chunks hold ${c.live} live chunks`,
            );
            shared += c.pages;
          }
          assert.equal(arena.reservedBytes, shared * PAGE + own);
        },
      ),
      { numRuns: 100 },
    );
  });

  test('clear drops every page', () => {
    const { arena } = tracked();
    for (let i = 0; i < 100; i++) arena.alloc(200, i);
    arena.alloc(10_000, 100);
    assert.ok(arena.reservedBytes > 0);
    arena.clear();
    assert.equal(arena.reservedBytes, 0);
    assert.equal(arena.pageCount, 0);
    assert.equal(arena.offset(arena.alloc(200, 0)), 0, 'allocation starts over');
  });

  test('options that cannot make an arena are refused', () => {
    assert.throws(() => new SlabArena({ pageBytes: 1001, onMove: () => {} }), /multiple of 8/);
    assert.throws(() => new SlabArena({ growthFactor: 1, onMove: () => {} }), /growthFactor/);
    assert.throws(() => new SlabArena({ pageBytes: 8 * 2 ** 20, minChunkBytes: 8, onMove: () => {} }), /chunks/);
  });
});
