// getOrSet's leases across processes and servers: three real latchkey servers on one real
// memcached, each caller an SDK client in a process of its own (test/support/get-or-set-worker.ts),
// loader runs counted in a file the loaders append to, outside the SDK.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { GetOrSetWorkerConfig } from '../support/get-or-set-worker.js';
import { memcachedMissing, startMemcached, type Memcached } from '../support/memcached.js';
import { runScript, type Script } from '../support/script.js';
import { startServer, type TestServer } from '../support/server.js';

const WORKER = join('test', 'support', 'get-or-set-worker.ts');
/** Twenty tsx processes starting at once on a busy 2-core machine take a while. */
const START_TIMEOUT_MS = 120_000;
const skip = memcachedMissing();

describe('getOrSet leases across processes, on one memcached through three servers', { skip }, () => {
  let memcached: Memcached;
  let servers: TestServer[] = [];
  let dir: string;
  let seq = 0;

  before(async () => {
    memcached = await startMemcached();
    servers = await Promise.all([0, 1, 2].map(() => startServer({ memcached: memcached.address })));
    dir = await mkdtemp(join(tmpdir(), 'latchkey-leases-'));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s[Symbol.asyncDispose]()));
    await memcached?.[Symbol.asyncDispose]();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const worker = (overrides: Partial<GetOrSetWorkerConfig> & Pick<GetOrSetWorkerConfig, 'id' | 'key' | 'runsFile'>) =>
    runScript(WORKER, [
      JSON.stringify({
        address: servers[overrides.id % servers.length]!.address,
        store: 'memcached',
        concurrency: 1,
        leaseMs: 10_000,
        loadMs: 0,
        hang: false,
        deadlineMs: 30_000,
        ...overrides,
      } satisfies GetOrSetWorkerConfig),
    ]);
  const runs = async (file: string) =>
    (await readFile(file, 'utf8').catch(() => ''))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        const [id, atMs] = line.split(' ').map(Number);
        return { id: id!, atMs: atMs! };
      });

  test('20 processes x 10 concurrent getOrSet of one missing key through 3 servers: the loader runs once', async () => {
    const key = `leases:stampede:${process.pid}-${Date.now()}-${seq++}`;
    const runsFile = join(dir, `${key.replaceAll(':', '_')}.runs`);
    const workers: Script[] = [];
    try {
      for (let id = 0; id < 20; id++) workers.push(worker({ id, key, runsFile, concurrency: 10, loadMs: 300 }));
      await Promise.all(workers.map((w) => w.waitFor((m) => m.ready === true, 'ready', START_TIMEOUT_MS)));
      for (const w of workers) w.send('go');
      const reports = await Promise.all(workers.map((w) => w.waitFor((m) => m.done === true, 'its values', 60_000)));
      const loads = await runs(runsFile);
      assert.equal(loads.length, 1, `the loader ran ${loads.length} times: ${JSON.stringify(loads)}`);
      const values = reports.flatMap((r) => r.values as string[]);
      assert.equal(values.length, 200);
      assert.deepEqual(new Set(values), new Set([`loaded by ${loads[0]!.id}`]));
      for (const w of workers) assert.deepEqual(await w.exited(), { code: 0, signal: null }, w.stderr());
    } finally {
      await Promise.all(workers.map((w) => w[Symbol.asyncDispose]()));
    }
  });

  test('a lease holder SIGKILLed mid-load: another process loads once the lease runs out', async () => {
    const key = `leases:holder-death:${process.pid}-${Date.now()}-${seq++}`;
    const runsFile = join(dir, `${key.replaceAll(':', '_')}.runs`);
    const leaseMs = 1_500;
    await using holder = worker({ id: 0, key, runsFile, leaseMs, hang: true });
    await using waiter = worker({ id: 1, key, runsFile, leaseMs, concurrency: 3 });
    await Promise.all([holder, waiter].map((w) => w.waitFor((m) => m.ready === true, 'ready', START_TIMEOUT_MS)));
    const goMs = Date.now();
    holder.send('go');
    await holder.waitFor((m) => m.loading === true, 'its loader to start');
    waiter.send('go');
    holder.kill('SIGKILL');
    assert.equal((await holder.exited()).signal, 'SIGKILL');
    const report = await waiter.waitFor((m) => m.done === true, 'its values', 30_000);
    const loads = await runs(runsFile);
    assert.deepEqual(
      loads.map((l) => l.id),
      [0, 1],
      'the holder loaded, died, and then the waiter loaded',
    );
    // The holder's Get, which took the lease, came after "go"; nobody else may load until the
    // lease runs out, and the waiter, polling, loads soon after.
    const afterGoMs = loads[1]!.atMs - goMs;
    assert.ok(
      afterGoMs >= leaseMs,
      `the waiter loaded ${afterGoMs} ms after the holder's go, inside its ${leaseMs} ms lease`,
    );
    assert.ok(afterGoMs < leaseMs + 10_000, `the waiter loaded only ${afterGoMs} ms after the holder's go`);
    assert.deepEqual(report.values, ['loaded by 1', 'loaded by 1', 'loaded by 1']);
    assert.deepEqual(await waiter.exited(), { code: 0, signal: null }, waiter.stderr());
  });
});
