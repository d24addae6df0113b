// SDK cache behaviour that must hold on every store: exact totals under contention, fenced
// writes with a lock handle, single-flight getOrSet. Runs on LRU and on a real memcached, with
// cache calls through the Cache/Pipeline stream (the default) and as unary RPCs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { connect } from '../../client/index.js';
import { memcachedMissing, startMemcached, type Memcached } from '../support/memcached.js';
import { startServer, type TestServer } from '../support/server.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const memcachedSkip = memcachedMissing();
const memcached: Memcached | undefined = memcachedSkip ? undefined : await startMemcached();
after(() => memcached?.[Symbol.asyncDispose]());

const targets: { store: string; skip: string | false; start: () => Promise<TestServer> }[] = [
  { store: 'lru', skip: false, start: () => startServer({ lruMaxEntries: 10_000 }) },
  {
    store: 'memcached',
    skip: memcachedSkip,
    start: () => startServer({ lruMaxEntries: 10_000, memcached: memcached!.address }),
  },
];

for (const { store, skip, start } of targets) {
  for (const pipeline of [true, false]) {
    describe(`SDK cache on ${store} (pipeline ${pipeline ? 'on' : 'off'})`, { skip }, () => {
      test('8 clients x 200 concurrent update() increments give the exact total', async () => {
        await using s = await start();
        const key = `sdk:${store}:counter:${Date.now()}`;
        const clients = Array.from({ length: 8 }, () =>
          connect(s.address, { pipeline, channelOptions: { 'grpc.use_local_subchannel_pool': 1 } }),
        );
        try {
          await Promise.all(
            clients.map(async (client) => {
              const cache = client.cache(store);
              for (let i = 0; i < 200; i++) {
                await cache.update(key, (current) => String(Number(current?.toString() ?? '0') + 1), {
                  maxAttempts: 10_000,
                });
              }
            }),
          );
          const total = await clients[0]!.cache(store).get(key);
          assert.equal(total?.value.toString(), '1600');
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
      });

      test('a holder frozen past its TTL is fenced out; the new holder keeps its data', async () => {
        await using s = await start();
        await using client = connect(s.address, { pipeline });
        const cache = client.cache(store);
        const key = `sdk:${store}:fenced:${Date.now()}`;
        const lockName = `sdk-fence-${store}-${Date.now()}`;
        // Holder A lives in its own process, so it can really be frozen (like a long GC pause).
        const a = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            'test/support/fenced-writer.ts',
            s.address,
            store,
            lockName,
            key,
            '400',
            pipeline ? 'pipeline' : 'unary',
          ],
          { stdio: ['pipe', 'pipe', 'inherit'] },
        );
        const lines = createInterface({ input: a.stdout! })[Symbol.asyncIterator]();
        const next = async () => JSON.parse((await lines.next()).value as string) as Record<string, string>;
        try {
          const { token } = await next();
          process.kill(a.pid!, 'SIGSTOP');
          await using b = await client.lock(lockName, { ttlMs: 10_000, waitMs: 10_000 });
          assert.ok(b.fencingToken > BigInt(token!), "B got the lock only after A's lease expired");
          await cache.set(key, 'written by B', { fence: b });
          process.kill(a.pid!, 'SIGCONT');
          a.stdin!.write('late write by A\n');
          const late = await next();
          assert.equal(late.error, 'FencedOutError', JSON.stringify(late));
          assert.match(late.message!, new RegExp(`fencing token ${b.fencingToken}`));
          assert.equal((await cache.get(key))?.value.toString(), 'written by B');
        } finally {
          a.kill('SIGKILL');
        }
      });

      test('a key deleted under a lock handle is absent to every call; incr works on fenced values', async () => {
        await using s = await start();
        await using client = connect(s.address, { pipeline });
        const cache = client.cache(store);
        const key = `sdk:${store}:tombstone:${Date.now()}-${pipeline}`;
        await using lock = await client.lock(`sdk-tomb-${store}-${Date.now()}-${pipeline}`, { ttlMs: 10_000 });
        const { cas } = (await cache.add(key, '7', { fence: lock })) as { cas: bigint };
        assert.deepEqual(await cache.incr(key, 3), { value: 10n, cas: (await cache.get(key))!.cas });
        assert.equal(await cache.delete(key, { fence: lock }), 'DELETED');
        assert.equal(await cache.get(key), undefined);
        assert.equal(await cache.touch(key, 1000), 'NOT_FOUND');
        assert.deepEqual(await cache.cas(key, 'x', cas), { outcome: 'NOT_FOUND', cas: 0n });
        assert.equal(await cache.delete(key, { fence: lock }), 'NOT_FOUND');
        assert.equal((await cache.incr(key, 1, { initial: 100n })).value, 100n);
        assert.equal(await cache.delete(key), 'DELETED');
        assert.equal((await cache.add(key, 'plain')).outcome, 'STORED');
      });

      test('getOrSet runs the loader once for concurrent callers and caches its value', async () => {
        await using s = await start();
        await using client = connect(s.address, { pipeline });
        const cache = client.cache(store);
        const key = `sdk:${store}:aside:${Date.now()}`;
        let loads = 0;
        const loader = async () => {
          loads++;
          await sleep(50);
          return `loaded-${loads}`;
        };
        const values = await Promise.all(
          Array.from({ length: 10 }, () => cache.getOrSet(key, loader, { ttlMs: 60_000 })),
        );
        assert.equal(loads, 1);
        assert.deepEqual(new Set(values.map((v) => v.toString())), new Set(['loaded-1']));
        assert.equal((await cache.getOrSet(key, loader)).toString(), 'loaded-1', 'a later call reads the cache');
        assert.equal(loads, 1);
        const failing = cache.getOrSet(`${key}:x`, async () => {
          throw new Error('origin down');
        });
        await assert.rejects(failing, /origin down/);
        assert.equal(await cache.get(`${key}:x`), undefined, 'a failed load stores nothing');
      });

      test('getOrSet across clients: one loader run for both; a loader that throws gives its lease up', async () => {
        await using s = await start();
        await using a = connect(s.address, { pipeline });
        await using b = connect(s.address, { pipeline });
        const key = `sdk:${store}:leased:${Date.now()}`;
        let loads = 0;
        const loader = async () => {
          loads++;
          await sleep(200);
          return `loaded-${loads}`;
        };
        const values = await Promise.all([
          a.cache(store).getOrSet(key, loader, { ttlMs: 60_000 }),
          sleep(50).then(() => b.cache(store).getOrSet(key, loader, { ttlMs: 60_000 })),
        ]);
        assert.equal(loads, 1, 'the second client waited for the value of the first');
        assert.deepEqual(
          values.map((v) => v.toString()),
          ['loaded-1', 'loaded-1'],
        );
        // A 60 s lease kept by a failed loader would hold b past its 10 s deadline.
        const failed = `${key}:failed`;
        const down = async () => {
          throw new Error('origin down');
        };
        await assert.rejects(a.cache(store).getOrSet(failed, down, { leaseMs: 60_000 }), /origin down/);
        const next = await b.cache(store).getOrSet(failed, async () => 'second try', {
          leaseMs: 60_000,
          deadlineMs: 10_000,
        });
        assert.equal(next.toString(), 'second try');
      });

      test('getOrSet whose key is deleted while it loads returns what it loaded and stores nothing', async () => {
        await using s = await start();
        await using client = connect(s.address, { pipeline });
        await using other = connect(s.address, { pipeline });
        const cache = client.cache(store);
        const key = `sdk:${store}:deleted-during-load:${Date.now()}`;
        const value = await cache.getOrSet(key, async () => {
          assert.equal(await other.cache(store).delete(key), 'NOT_FOUND');
          return 'loaded before the delete';
        });
        assert.equal(value.toString(), 'loaded before the delete');
        assert.equal(await cache.get(key), undefined, 'the value loaded before the Delete was put back');
        assert.equal((await cache.getOrSet(key, () => 'after the delete')).toString(), 'after the delete');
      });
    });
  }
}
