// The compact index on its own, against a model (a Map and an array in recency order), with
// hashes squeezed into a few values so that probe runs collide, wrap around the table's end
// and are cut by deletes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { CompactIndex, hashBytes } from '../../src/cache/compact-index.js';

/** An index over integer keys, each slot's key kept beside it as a real caller keeps its own. */
function indexed(maxEntries: number, hash: (key: number) => number, initialSlots?: number) {
  const keys: number[] = [];
  let wanted = -1;
  const index = new CompactIndex({ maxEntries, initialSlots, matches: (slot) => keys[slot] === wanted });
  return {
    index,
    find(key: number) {
      wanted = key;
      return index.find(hash(key));
    },
    insert(key: number, value: number) {
      const slot = index.insert(hash(key), value);
      keys[slot] = key;
      return slot;
    },
    keyOf: (slot: number) => keys[slot]!,
  };
}

const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('set' as const), key: fc.nat({ max: 300 }), value: fc.maxSafeNat() }),
    fc.record({ op: fc.constant('get' as const), key: fc.nat({ max: 300 }) }),
    fc.record({ op: fc.constant('delete' as const), key: fc.nat({ max: 300 }) }),
  ),
  { maxLength: 1500, size: 'max' },
);

describe('compact index', () => {
  test('as a bounded LRU map it agrees with a model, through collisions, growth and deletes (property)', () => {
    fc.assert(
      fc.property(
        ops,
        // Past 200 no eviction: 2^31 - 1 and 2^32 - 2 leave one bit and no bit of a bucket for the
        // hash's tag (slots are allocated as used, so the large limits cost nothing).
        fc.oneof(fc.integer({ min: 1, max: 200 }), fc.constantFrom(2 ** 31 - 1, 2 ** 32 - 2)),
        fc.constantFrom(1, 7, 64, 2 ** 32, -1),
        (steps, max, spread) => {
          // spread 1: every key hashes alike (one probe run); 2^32: the real hash; -1: seven
          // buckets, each shared by hashes that differ in their top bits (the bucket's tag).
          const hash = (key: number) =>
            spread === 2 ** 32
              ? hashBytes(Buffer.from(String(key)), String(key).length)
              : spread === -1
                ? ((key % 7) + (Math.floor(key / 7) % 4) * 2 ** 30) >>> 0
                : key % spread;
          const { index, find, insert, keyOf } = indexed(max, hash, 4);
          const model = new Map<number, number>();
          let order: number[] = []; // most recent first
          const touch = (key: number) => (order = [key, ...order.filter((k) => k !== key)]);
          for (const step of steps) {
            const slot = find(step.key);
            assert.equal(slot >= 0, model.has(step.key), `find(${step.key})`);
            if (step.op === 'get') {
              if (slot >= 0) {
                assert.equal(index.value(slot), model.get(step.key));
                index.promote(slot);
                touch(step.key);
              }
            } else if (step.op === 'delete') {
              if (slot >= 0) index.remove(slot);
              model.delete(step.key);
              order = order.filter((k) => k !== step.key);
            } else if (slot >= 0) {
              index.setValue(slot, step.value);
              index.promote(slot);
              model.set(step.key, step.value);
              touch(step.key);
            } else {
              if (index.size === max) {
                const oldest = index.leastRecent;
                assert.equal(keyOf(oldest), order.at(-1));
                index.remove(oldest);
                model.delete(order.pop()!);
              }
              insert(step.key, step.value);
              model.set(step.key, step.value);
              touch(step.key);
            }
            assert.equal(index.size, model.size);
          }
          assert.deepEqual(
            [...index.slots()].map(keyOf),
            order,
            'slots() walks from the most to the least recently used',
          );
          for (const [key, value] of model) assert.equal(index.value(find(key)), value);
          for (let key = 0; key <= 300; key++) if (!model.has(key)) assert.equal(find(key), -1);
        },
      ),
      { numRuns: 150 },
    );
  });

  test('a delete in a run that wraps around the end of the table keeps the rest of the run findable', () => {
    // 16 buckets (the smallest table): keys 1-99 start at bucket 14, 101-199 at 15, 201- at 0,
    // so a run fills 14, 15, 0, 1, 2 with entries whose home is before and after the end.
    const { index, find, insert } = indexed(12, (key) => (key < 100 ? 14 : key < 200 ? 15 : 0));
    const keys = [1, 2, 201, 3, 202, 101];
    for (const key of keys) insert(key, key);
    const gone = new Set<number>();
    for (const key of [1, 201, 2, 101]) {
      index.remove(find(key));
      gone.add(key);
      for (const k of keys) assert.equal(find(k) >= 0 ? index.value(find(k)) : -1, gone.has(k) ? -1 : k, `key ${k}`);
    }
  });

  test('slots are reused, and the index refuses to hold more than maxEntries', () => {
    const { index, find, insert } = indexed(3, (key) => key);
    const slots = [insert(1, 1), insert(2, 2), insert(3, 3)];
    assert.deepEqual(
      [...slots].sort((a, b) => a - b),
      [0, 1, 2],
    );
    assert.throws(() => insert(4, 4), /maxEntries \(3\)/);
    index.remove(find(2));
    assert.equal(insert(4, 4), slots[1], 'the freed slot');
    assert.equal(index.leastRecent, slots[0]);
    index.promote(slots[0]!);
    assert.equal(index.leastRecent, slots[2]);
  });

  test('clear gives an empty index that works as a new one', () => {
    const { index, find, insert } = indexed(10_000, (key) => key * 2654435761);
    for (let key = 0; key < 5000; key++) insert(key, key);
    index.clear();
    assert.equal(index.size, 0);
    assert.equal(index.leastRecent, -1);
    assert.equal(find(7), -1);
    insert(7, 70);
    assert.equal(index.value(find(7)), 70);
  });

  test('the hash is MurmurHash3 (x86, 32-bit) over the bytes given, spread across the table', () => {
    const vector = (text: string, seed: number) => hashBytes(Buffer.from(text), Buffer.byteLength(text), seed);
    assert.equal(vector('', 0), 0);
    assert.equal(vector('', 1), 0x514e28b7);
    assert.equal(vector('', 0xffffffff), 0x81f16f39);
    assert.equal(vector('\0\0\0\0', 0), 0x2362f9de);
    assert.equal(vector('aaaa', 0x9747b28c), 0x5a97808a);
    assert.equal(vector('Hello, world!', 0x9747b28c), 0x24884cba);
    assert.equal(vector('The quick brown fox jumps over the lazy dog', 0x9747b28c), 0x2fa826cd);
    const a = Buffer.from('mem:0000001');
    assert.equal(hashBytes(a, a.length), hashBytes(Buffer.from('mem:0000001xyz'), a.length), 'only length bytes count');
    assert.notEqual(hashBytes(a, a.length), hashBytes(Buffer.from('mem:0000002'), a.length));
    // 64 k similar keys over 1024 buckets: no bucket far from the mean of 64.
    const buckets = new Uint32Array(1024);
    for (let i = 0; i < 65_536; i++) {
      const key = Buffer.from(`mem:${String(i).padStart(7, '0')}`);
      buckets[hashBytes(key, key.length) & 1023]!++;
    }
    assert.ok(
      Math.max(...buckets) < 64 * 1.6 && Math.min(...buckets) > 64 * 0.4,
      `${Math.min(...buckets)}..${Math.max(...buckets)}`,
    );
  });
});
