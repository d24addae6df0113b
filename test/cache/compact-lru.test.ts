// CompactLru against lru-cache configured as the LRU store used it (max, maxSize, size = key
// UTF-8 + value bytes): the same operations must keep the same entries, in the same recency
// order, with the same bytes. Small arena pages make items move (compaction) and big values
// take pages of their own.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { LRUCache } from 'lru-cache';
import { CompactLru, type CompactEntry } from '../../src/cache/compact-lru.js';

const entry = (value: Buffer | string, cas = 1n, flags = 0, expiresAtMs = 0): CompactEntry => ({
  value: Buffer.from(value),
  flags,
  cas,
  expiresAtMs,
});

describe('compact LRU', () => {
  test('keeps what lru-cache keeps, in the same order, with the same bytes (property)', () => {
    const keys = fc.constantFrom('a', 'b', 'key-c', 'ключ', '鍵-e', 'f'.repeat(250), 'g', 'h', 'i', 'j');
    const op = fc.oneof(
      {
        arbitrary: fc.record({
          op: fc.constant('set' as const),
          key: keys,
          length: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 5000 })),
          fill: fc.nat({ max: 255 }),
          flags: fc.nat({ max: 0xffffffff }),
        }),
        weight: 3,
      },
      fc.record({ op: fc.constant('get' as const), key: keys }),
      fc.record({ op: fc.constant('delete' as const), key: keys }),
    );
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 300, size: 'max' }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 6000, max: 30_000 }),
        (ops, maxEntries, maxBytes) => {
          const lru = new CompactLru({ maxEntries, maxBytes, arena: { pageBytes: 4096 } });
          const model = new LRUCache<string, CompactEntry>({
            max: maxEntries,
            maxSize: maxBytes,
            sizeCalculation: (e, key) => Buffer.byteLength(key) + e.value.length,
          });
          let cas = 0n;
          for (const step of ops) {
            if (step.op === 'set') {
              const e = entry(Buffer.alloc(step.length, step.fill), ++cas, step.flags, Number(cas) * 1000);
              lru.set(step.key, e);
              model.set(step.key, e);
            } else if (step.op === 'get') {
              assert.deepEqual(lru.get(step.key), model.get(step.key), `get ${step.key}`);
            } else {
              assert.equal(lru.delete(step.key), model.delete(step.key), `delete ${step.key}`);
            }
            assert.deepEqual([...lru.keys()], [...model.keys()]);
            assert.equal(lru.bytes, model.calculatedSize);
          }
          // A copy of the keys: get() reorders them.
          for (const key of [...model.keys()]) assert.deepEqual(lru.get(key), model.get(key));
        },
      ),
      { numRuns: 200 },
    );
  });

  test('get gives a copy: later writes to the key, or to the copy, change nothing else', () => {
    const lru = new CompactLru({ maxEntries: 10, maxBytes: 1 << 20 });
    lru.set('k', entry('first', 7n, 0xffffffff, 1_700_000_000_123));
    const got = lru.get('k')!;
    lru.set('k', entry('other', 8n));
    assert.equal(got.value.toString(), 'first');
    assert.equal(got.flags, 0xffffffff);
    assert.equal(got.cas, 7n);
    assert.equal(got.expiresAtMs, 1_700_000_000_123);
    got.value.fill(0);
    assert.equal(lru.get('k')!.value.toString(), 'other');
  });

  test('a cas up to 2^53 - 1 and an empty value come back exact', () => {
    const lru = new CompactLru({ maxEntries: 10, maxBytes: 1 << 20 });
    lru.set('k', entry('', 2n ** 53n - 1n));
    assert.deepEqual(lru.get('k'), entry('', 2n ** 53n - 1n));
  });

  test('an entry larger than maxBytes is refused, and the key keeps its value', () => {
    const lru = new CompactLru({ maxEntries: 10, maxBytes: 100 });
    lru.set('k', entry('v'));
    assert.throws(() => lru.set('k', entry(Buffer.alloc(100))), /101 bytes does not fit in maxBytes 100/);
    assert.equal(lru.get('k')?.value.toString(), 'v');
  });

  test('100 k entries of 100 bytes take one chunk each plus a few pages, and give the pages back when deleted', () => {
    const lru = new CompactLru({ maxEntries: 200_000, maxBytes: 1 << 30 });
    const key = (i: number) => `mem:${String(i).padStart(7, '0')}`;
    const value = Buffer.alloc(100, 1);
    for (let i = 0; i < 100_000; i++) lru.set(key(i), entry(value, BigInt(i + 1)));
    // 26-byte header + 11-byte key + 100 bytes → a 160-byte chunk; pages of 256 KiB.
    const page = 256 * 1024;
    const perPage = Math.floor(page / 160);
    assert.equal(lru.arenaBytes, Math.ceil(100_000 / perPage) * page);
    for (let i = 0; i < 100_000; i++) if (i % 100 !== 0) lru.delete(key(i));
    assert.ok(lru.arenaBytes <= (Math.ceil(1000 / perPage) + 2) * page, `${lru.arenaBytes} bytes for 1000 entries`);
    for (let i = 0; i < 100_000; i += 100) assert.equal(lru.get(key(i))?.cas, BigInt(i + 1));
    lru.clear();
    assert.equal(lru.arenaBytes, 0);
    assert.equal(lru.size, 0);
  });
});
