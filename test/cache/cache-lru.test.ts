import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { LruStore } from '../../src/cache/lru.js';
import { ManualClock } from '../../src/clock.js';
import type { CacheStore } from '../../src/cache/store.js';
import { cacheStoreContract } from '../cache/contract.js';
import { startServer } from '../support/server.js';

cacheStoreContract({ store: 'lru', shortTtlMs: 200, start: (config) => startServer(config) });
cacheStoreContract({ store: 'lru', shortTtlMs: 200, start: (config) => startServer(config), transport: 'pipeline' });

const signal = new AbortController().signal;

test('lru: evicts the least recently used entry past --lru-max-entries', async () => {
  await using s = await startServer({ lruMaxEntries: 3 });
  const set = (key: string) => s.call(s.cache, 'Set', { key, value: Buffer.from(key) });
  const found = async (key: string) => (await s.call<{ found: boolean }>(s.cache, 'Get', { key })).found;
  await set('a');
  await set('b');
  await set('c');
  assert.equal(await found('a'), true); // a is now the most recently used
  await set('d');
  assert.deepEqual([await found('a'), await found('b'), await found('c'), await found('d')], [true, false, true, true]);
});

test('lru: evicts by total bytes of keys and values past --lru-max-bytes', async () => {
  await using s = await startServer({ lruMaxBytes: 4096, maxValueBytes: 1024 });
  const value = Buffer.alloc(1000, 1);
  for (let i = 0; i < 8; i++) await s.call(s.cache, 'Set', { key: `k${i}`, value });
  const present: number[] = [];
  for (let i = 0; i < 8; i++)
    if ((await s.call<{ found: boolean }>(s.cache, 'Get', { key: `k${i}` })).found) present.push(i);
  // 4 entries of 1002 bytes fit in 4096; the newest survive.
  assert.deepEqual(present, [4, 5, 6, 7]);
  const err = (await s
    .call(s.cache, 'Set', { key: 'big', value: Buffer.alloc(1025) })
    .catch((e: unknown) => e)) as grpc.ServiceError;
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  assert.match(err.details, /--max-value-bytes/);
});

test('lru: TTL is exact to the millisecond against the store clock', async () => {
  const clock = new ManualClock();
  const store: CacheStore = new LruStore({ maxEntries: 10, maxBytes: 1 << 20, clock });
  await store.set('k', Buffer.from('v'), 0, 1000, signal);
  clock.advance(999);
  assert.ok(await store.get('k', signal));
  clock.advance(1);
  assert.equal(await store.get('k', signal), undefined);
  assert.equal((await store.cas('k', Buffer.from('x'), 0, 1n, 0, signal)).outcome, 'NOT_FOUND');
});

test('lru: touch and incr keep or set expiry as memcached does', async () => {
  const clock = new ManualClock();
  const store: CacheStore = new LruStore({ maxEntries: 10, maxBytes: 1 << 20, clock });
  await store.incr('n', 1n, 10n, 500, signal); // created from initial, expires in 500 ms
  await store.incr('n', 1n, 0n, 0, signal); // an existing key keeps its expiry
  clock.advance(400);
  assert.equal((await store.get('n', signal))?.value.toString(), '11');
  assert.equal((await store.touch('n', 1000, signal))?.value.toString(), '11');
  clock.advance(900);
  assert.equal((await store.get('n', signal))?.value.toString(), '11');
  clock.advance(100);
  assert.equal(await store.get('n', signal), undefined);
});

test('GetMany answers within --max-message-bytes: values past it are refused per key', async () => {
  await using s = await startServer({ maxValueBytes: 60_000, maxMessageBytes: 65_536 + 60_000 });
  for (const key of ['m1', 'm2', 'm3']) await s.call(s.cache, 'Set', { key, value: Buffer.alloc(50_000, 7) });
  const reply = await s.call<{
    results: { key: string; found: boolean; value: Buffer; error: { code: number; message: string } | null }[];
  }>(s.cache, 'GetMany', { keys: ['m1', 'm2', 'm3'] });
  assert.equal(reply.results[0]!.value.length, 50_000);
  for (const result of reply.results.slice(1)) {
    assert.equal(result.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(result.error!.message, /--max-message-bytes/);
  }
});
