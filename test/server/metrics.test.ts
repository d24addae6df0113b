// Prometheus metrics, scraped over HTTP from real servers after real lock and cache calls:
// each named series moves by exactly what the calls did.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output, Leadership__Output } from '../../client/common/index.js';
import type { CacheStore } from '../../src/cache/store.js';
import { ConfigError, parseConfig } from '../../src/config.js';
import { BackendUnavailableError } from '../../src/errors.js';
import { Metrics } from '../../src/metrics.js';
import { scrape, type Scrape } from '../support/metrics.js';
import { PipelineCaller } from '../support/pipeline.js';
import { README } from '../support/readme.js';
import { startServer, type TestServer } from '../support/server.js';
import { SessionStream } from '../support/session-stream.js';

const METRICS = { metricsListen: '127.0.0.1:0' } as const;

async function rejection(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return promise.then(
    () => assert.fail('expected the call to fail'),
    (err: grpc.ServiceError) => err,
  );
}

/** Scrapes until check() holds (the server records some events just after it answers). */
async function eventually(
  s: TestServer,
  check: (m: Scrape) => boolean,
  what: string,
  withinMs = 5_000,
): Promise<Scrape> {
  const until = Date.now() + withinMs;
  for (;;) {
    const m = await scrape(s.server.metricsAddress!);
    if (check(m)) return m;
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}:\n${m.text}`);
    await sleep(20);
  }
}

const value = Buffer.from('v');

describe('GET /metrics', () => {
  test('lock grants, waits, releases (a refused one too) and a memory expiry are counted; in-flight returns to 0', async () => {
    await using s = await startServer(METRICS);
    const memory = { backend: 'memory' };
    const before = await scrape(s.server.metricsAddress!);
    assert.equal(before.value('latchkey_lock_grants_total', memory), 0);
    assert.ok(
      before.has('latchkey_lock_lease_expiries_total', memory),
      'the memory backend reports expiries from the start',
    );

    const held = await s.call<Lease__Output>(s.locks, 'Acquire', { name: 'm/a', ttl_ms: 60_000 });
    let m = await scrape(s.server.metricsAddress!);
    assert.equal(m.value('latchkey_lock_grants_total', memory), 1);
    assert.equal(m.value('latchkey_lock_waits_total', memory), 0, 'wait_ms 0 is not a wait');

    const waiter = s.call<Lease__Output>(s.locks, 'Acquire', { name: 'm/a', wait_ms: 10_000 });
    m = await eventually(
      s,
      (x) => x.value('latchkey_inflight_calls', { service: 'latchkey.v1.Locks', method: 'Acquire' }) === 1,
      'the waiter in flight',
    );
    assert.equal(m.value('latchkey_lock_waits_total', memory), 1);
    await s.call(s.locks, 'Release', { name: 'm/a', lease_id: held.lease_id });
    const second = await waiter;

    // Not granted in time: a timeout.
    assert.equal((await rejection(s.call(s.locks, 'Acquire', { name: 'm/a', wait_ms: 50 }))).code, grpc.status.ABORTED);
    // A lease that no longer holds the lock: refused, not_holder.
    assert.equal(
      (await rejection(s.call(s.locks, 'Release', { name: 'm/a', lease_id: held.lease_id }))).code,
      grpc.status.FAILED_PRECONDITION,
    );
    await s.call(s.locks, 'Release', { name: 'm/a', lease_id: second.lease_id });

    // A lease left to run out: one expiry, and its late Release says expired.
    const short = await s.call<Lease__Output>(s.locks, 'Acquire', { name: 'm/b', ttl_ms: 50 });
    await eventually(s, (x) => x.value('latchkey_lock_lease_expiries_total', memory) === 1, 'the expiry');
    assert.equal(
      (await rejection(s.call(s.locks, 'Release', { name: 'm/b', lease_id: short.lease_id }))).code,
      grpc.status.FAILED_PRECONDITION,
    );

    m = await scrape(s.server.metricsAddress!);
    assert.equal(m.value('latchkey_lock_grants_total', memory), 3);
    assert.equal(m.value('latchkey_lock_waits_total', memory), 2);
    assert.equal(m.value('latchkey_lock_wait_seconds_count', { ...memory, outcome: 'granted' }), 1);
    assert.equal(m.value('latchkey_lock_wait_seconds_count', { ...memory, outcome: 'timeout' }), 1);
    assert.ok(
      m.value('latchkey_lock_wait_seconds_sum', { ...memory, outcome: 'timeout' }) >= 0.04,
      'the timeout waited its 50 ms',
    );
    assert.equal(m.value('latchkey_lock_wait_seconds_bucket', { ...memory, outcome: 'timeout', le: '+Inf' }), 1);
    assert.equal(m.value('latchkey_lock_releases_total', { ...memory, outcome: 'released' }), 2);
    assert.equal(m.value('latchkey_lock_releases_total', { ...memory, outcome: 'not_holder' }), 1);
    assert.equal(m.value('latchkey_lock_releases_total', { ...memory, outcome: 'expired' }), 1);
    assert.equal(m.value('latchkey_lock_lease_expiries_total', memory), 1);
    assert.equal(
      m.value('latchkey_rpc_handled_total', { service: 'latchkey.v1.Locks', method: 'Acquire', code: 'OK' }),
      3,
    );
    assert.equal(
      m.value('latchkey_rpc_handled_total', { service: 'latchkey.v1.Locks', method: 'Acquire', code: 'ABORTED' }),
      1,
    );
    assert.equal(
      m.value('latchkey_rpc_handled_total', {
        service: 'latchkey.v1.Locks',
        method: 'Release',
        code: 'FAILED_PRECONDITION',
      }),
      2,
    );
    for (const method of ['Acquire', 'Refresh', 'Release', 'Describe'])
      assert.equal(m.value('latchkey_inflight_calls', { service: 'latchkey.v1.Locks', method }), 0, method);
    assert.ok(!m.has('latchkey_backend_errors_total'), 'answers are not backend failures');
    // No label carries a lock name.
    assert.doesNotMatch(m.text, /m\/a|m\/b/);
  });

  test('campaigns by outcome and resigns by outcome are counted, whether unary or in a lock session', async () => {
    await using s = await startServer(METRICS);
    const memory = { backend: 'memory' };
    const before = await scrape(s.server.metricsAddress!);
    assert.equal(before.value('latchkey_election_campaigns_total', { ...memory, outcome: 'elected' }), 0);
    assert.equal(before.value('latchkey_election_resigns_total', { ...memory, outcome: 'not_leader' }), 0);

    const won = await s.call<Leadership__Output>(s.elections, 'Campaign', { name: 'e/a', value: 'a', ttl_ms: 10_000 });
    // Not leading within wait_ms: not elected.
    const late = await rejection(s.call(s.elections, 'Campaign', { name: 'e/a', value: 'b', wait_ms: 50 }));
    assert.equal(late.code, grpc.status.ABORTED);
    // Withdrawn by its caller: cancelled.
    const call = s.elections.Campaign({ name: 'e/a', value: 'c' }, () => {});
    await eventually(
      s,
      (x) => x.value('latchkey_inflight_calls', { service: 'latchkey.v1.Elections', method: 'Campaign' }) === 1,
      'the waiting campaign in flight',
    );
    call.cancel();
    await eventually(
      s,
      (x) => x.value('latchkey_election_campaigns_total', { ...memory, outcome: 'cancelled' }) === 1,
      'the cancelled campaign',
    );
    await s.call(s.elections, 'Resign', { leadership: won });
    // Its second resign is refused: not the leader.
    assert.equal(
      (await rejection(s.call(s.elections, 'Resign', { leadership: won }))).code,
      grpc.status.FAILED_PRECONDITION,
    );
    // A campaign in a lock session counts the same.
    const stream = await SessionStream.open(s.locks, { backend: 'memory', ttl_ms: 10_000 });
    try {
      await s.call(s.elections, 'Campaign', { name: 'e/b', value: 's', session_id: stream.opened.session_id });
    } finally {
      await stream.close();
    }

    const m = await scrape(s.server.metricsAddress!);
    assert.equal(m.value('latchkey_election_campaigns_total', { ...memory, outcome: 'elected' }), 2);
    assert.equal(m.value('latchkey_election_campaigns_total', { ...memory, outcome: 'not_elected' }), 1);
    assert.equal(m.value('latchkey_election_campaigns_total', { ...memory, outcome: 'cancelled' }), 1);
    assert.equal(m.value('latchkey_election_campaigns_total', { ...memory, outcome: 'error' }), 0);
    assert.equal(m.value('latchkey_election_resigns_total', { ...memory, outcome: 'resigned' }), 1);
    assert.equal(m.value('latchkey_election_resigns_total', { ...memory, outcome: 'not_leader' }), 1);
    assert.ok(!m.has('latchkey_backend_errors_total'), 'answers are not backend failures');
    assert.doesNotMatch(m.text, /e\/a|e\/b/);
  });

  test('a waiter whose caller cancels ends as a cancelled wait', async () => {
    await using s = await startServer(METRICS);
    const held = await s.call<Lease__Output>(s.locks, 'Acquire', { name: 'cancelled' });
    const call = s.locks.Acquire({ name: 'cancelled', wait_ms: 10_000 }, () => {});
    await eventually(s, (m) => m.value('latchkey_lock_waits_total', { backend: 'memory' }) === 1, 'the wait to start');
    call.cancel();
    const m = await eventually(
      s,
      (x) => x.value('latchkey_lock_wait_seconds_count', { backend: 'memory', outcome: 'cancelled' }) === 1,
      'the cancelled wait',
    );
    assert.equal(m.value('latchkey_inflight_calls', { service: 'latchkey.v1.Locks', method: 'Acquire' }), 0);
    await s.call(s.locks, 'Release', { name: 'cancelled', lease_id: held.lease_id });
  });

  test('an open Watch stream is one call in flight; cancelled, it is counted as CANCELLED', async () => {
    await using s = await startServer(METRICS);
    const watch = { service: 'latchkey.v1.Locks', method: 'Watch' };
    const stream = s.locks.Watch({ name: 'watched' });
    stream.on('data', () => {});
    stream.on('error', () => {});
    await eventually(s, (m) => m.value('latchkey_inflight_calls', watch) === 1, 'the stream in flight');
    stream.cancel();
    const m = await eventually(
      s,
      (x) => x.value('latchkey_rpc_handled_total', { ...watch, code: 'CANCELLED' }) === 1,
      'the stream to end',
    );
    assert.equal(m.value('latchkey_inflight_calls', watch), 0);
  });

  test('the file backend reports its expiries too', async () => {
    const lockDir = mkdtempSync(join(tmpdir(), 'latchkey-metrics-'));
    try {
      await using s = await startServer({ ...METRICS, lockDir });
      await s.call(s.locks, 'Acquire', { name: 'f', backend: 'file', ttl_ms: 50 });
      const m = await eventually(
        s,
        (x) => x.value('latchkey_lock_lease_expiries_total', { backend: 'file' }) === 1,
        'the file expiry',
      );
      assert.equal(m.value('latchkey_lock_grants_total', { backend: 'file' }), 1);
      assert.equal(m.value('latchkey_lock_lease_expiries_total', { backend: 'memory' }), 0);
    } finally {
      rmSync(lockDir, { recursive: true, force: true });
    }
  });

  test('cache ops by store, op and outcome, hits and misses, over unary calls, batches and the pipeline', async () => {
    await using s = await startServer(METRICS);
    await s.call(s.cache, 'Set', { key: 'k', value });
    const got = await s.call<{ cas: string }>(s.cache, 'Get', { key: 'k' });
    await s.call(s.cache, 'Get', { key: 'key-never-set-7f' });
    await s.call(s.cache, 'Add', { key: 'k', value });
    await s.call(s.cache, 'Cas', { key: 'k', value, cas: (BigInt(got.cas) + 1n).toString() });
    await s.call(s.cache, 'Cas', { key: 'k', value, cas: got.cas });
    await s.call(s.cache, 'Touch', { key: 'key-never-set-7f', ttl_ms: 1_000 });
    await s.call(s.cache, 'Delete', { key: 'k' });
    await s.call(s.cache, 'Delete', { key: 'k' });
    await s.call(s.cache, 'Incr', { key: 'n', delta: '1', initial: '5' });
    await s.call(s.cache, 'Set', { key: 'key-with-words-7f', value: Buffer.from('not a number') });
    assert.equal(
      (await rejection(s.call(s.cache, 'Incr', { key: 'key-with-words-7f', delta: '1' }))).code,
      grpc.status.FAILED_PRECONDITION,
    );
    await s.call(s.cache, 'GetMany', { keys: ['n', 'key-never-set-7f'] });
    await s.call(s.cache, 'SetMany', { items: [{ key: 'x', value }] });
    const pipeline = new PipelineCaller(s.cache);
    await pipeline.call('Get', { key: 'n' });
    await pipeline.call('Set', { key: 'p', value });
    pipeline.close();
    // A store this server does not have is refused, and gets no series.
    assert.equal(
      (await rejection(s.call(s.cache, 'Get', { store: 'nope', key: 'k' }))).code,
      grpc.status.INVALID_ARGUMENT,
    );

    const pipe = { service: 'latchkey.v1.Cache', method: 'Pipeline' };
    const m = await eventually(
      s,
      (x) => x.value('latchkey_rpc_handled_total', { ...pipe, code: 'OK' }) === 1,
      'the pipeline stream to end',
    );
    const op = (o: string, outcome: string) => m.value('latchkey_cache_ops_total', { store: 'lru', op: o, outcome });
    assert.equal(op('set', 'STORED'), 4, 'Set k, Set word, SetMany x, pipeline set p');
    assert.equal(op('get', 'hit'), 3, 'Get k, GetMany n, pipeline get n');
    assert.equal(op('get', 'miss'), 2, 'Get and GetMany of a key never set');
    assert.equal(op('add', 'EXISTS'), 1);
    assert.equal(op('cas', 'EXISTS'), 1);
    assert.equal(op('cas', 'STORED'), 1);
    assert.equal(op('touch', 'NOT_FOUND'), 1);
    assert.equal(op('delete', 'DELETED'), 1);
    assert.equal(op('delete', 'NOT_FOUND'), 1);
    assert.equal(op('incr', 'STORED'), 1);
    assert.equal(op('incr', 'error'), 1);
    assert.equal(m.value('latchkey_cache_hits_total', { store: 'lru' }), 3);
    assert.equal(m.value('latchkey_cache_misses_total', { store: 'lru' }), 2);
    assert.ok(!m.has('latchkey_cache_ops_total', { store: 'nope' }));
    assert.ok(!m.has('latchkey_backend_errors_total'), 'a non-numeric Incr is an answer, not a store failure');
    assert.equal(m.value('latchkey_inflight_calls', pipe), 0);
    assert.equal(
      m.value('latchkey_rpc_handled_total', { service: 'latchkey.v1.Cache', method: 'GetMany', code: 'OK' }),
      1,
    );
    // No label carries a key, and no value appears.
    assert.doesNotMatch(m.text, /key-never-set-7f|key-with-words-7f|not a number/);
  });

  test('a fenced write, a fenced delete and an Add over its tombstone each count once, as the op the client asked for', async () => {
    await using s = await startServer(METRICS);
    const lease = await s.call<Lease__Output>(s.locks, 'Acquire', { name: 'fence-lock' });
    const fence = { lock: 'fence-lock', token: lease.fencing_token };
    // On the store: a get, an add (the claim), a get (of the tombstone) and a cas; then a get
    // and a cas; then a get, a cas (the claim), a get and an add (the tombstone) and a delete.
    await s.call(s.cache, 'Set', { key: 'fenced', value, fence });
    await s.call(s.cache, 'Set', { key: 'fenced', value, fence });
    await s.call(s.cache, 'Delete', { key: 'fenced', fence });
    // The deleted key is absent: an add, beside its tombstone.
    await s.call(s.cache, 'Add', { key: 'fenced', value });
    const m = await scrape(s.server.metricsAddress!);
    const op = (o: string, outcome: string) => m.value('latchkey_cache_ops_total', { store: 'lru', op: o, outcome });
    assert.equal(op('set', 'STORED'), 2);
    assert.equal(op('delete', 'DELETED'), 1);
    assert.equal(op('add', 'STORED'), 1);
    assert.ok(!m.has('latchkey_cache_ops_total', { op: 'get' }), 'no client asked for a get');
    assert.ok(!m.has('latchkey_cache_ops_total', { op: 'cas' }), 'no client asked for a cas');
    assert.equal(m.value('latchkey_cache_hits_total', { store: 'lru' }), 0);
    assert.equal(m.value('latchkey_cache_misses_total', { store: 'lru' }), 0);
  });

  test('store failures count by store and error class, batch entries included', async () => {
    const fail = async (): Promise<never> => {
      throw new BackendUnavailableError('the test store is down');
    };
    const down: CacheStore = {
      kind: 'down',
      get: fail,
      set: fail,
      cas: fail,
      add: fail,
      delete: fail,
      incr: fail,
      touch: fail,
      close: async () => {},
    };
    await using s = await startServer(METRICS, { stores: [down] });
    assert.equal((await rejection(s.call(s.cache, 'Get', { store: 'down', key: 'k' }))).code, grpc.status.UNAVAILABLE);
    await s.call(s.cache, 'GetMany', { store: 'down', keys: ['a', 'b'] });
    const m = await scrape(s.server.metricsAddress!);
    assert.equal(
      m.value('latchkey_backend_errors_total', { backend: 'down', error_class: 'BackendUnavailableError' }),
      3,
    );
    assert.equal(m.value('latchkey_cache_ops_total', { store: 'down', op: 'get', outcome: 'error' }), 3);
    assert.equal(
      m.value('latchkey_rpc_handled_total', { service: 'latchkey.v1.Cache', method: 'Get', code: 'UNAVAILABLE' }),
      1,
    );
  });

  test('each server has its own registry; process metrics are served; other paths and methods are refused', async () => {
    await using a = await startServer(METRICS);
    await using b = await startServer(METRICS);
    await a.call(a.locks, 'Acquire', { name: 'only-on-a' });
    assert.equal(
      (await scrape(a.server.metricsAddress!)).value('latchkey_lock_grants_total', { backend: 'memory' }),
      1,
    );
    const other = await scrape(b.server.metricsAddress!);
    assert.equal(other.value('latchkey_lock_grants_total', { backend: 'memory' }), 0);
    assert.ok(
      other.has('process_cpu_user_seconds_total') && other.has('nodejs_heap_size_used_bytes'),
      'default process metrics',
    );
    assert.equal(
      (await b.server.metrics()).includes('latchkey_lock_grants_total{backend="memory"} 0'),
      true,
      'server.metrics() is the same text',
    );

    assert.equal((await fetch(`http://${a.server.metricsAddress}/`)).status, 404);
    const post = await fetch(`http://${a.server.metricsAddress}/metrics`, { method: 'POST' });
    assert.deepEqual([post.status, post.headers.get('allow')], [405, 'GET, HEAD']);
  });

  test("the README's Metrics section lists every latchkey_ metric with its labels", async () => {
    await using s = await startServer(METRICS);
    const text = await s.server.metrics();
    const readme = readFileSync(README, 'utf8');
    const section = readme.slice(
      readme.indexOf('## Metrics'),
      readme.indexOf('\n## ', readme.indexOf('## Metrics') + 1),
    );
    const names = [...text.matchAll(/^# TYPE (latchkey_\w+) /gm)].map((m) => m[1]!);
    assert.ok(names.length >= 11, text);
    const registry = new Metrics().registry.getMetricsAsArray();
    for (const name of names) {
      const row = section.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
      assert.ok(row, `README's Metrics section does not list ${name}`);
      const labels = (
        registry.find((metric) => (metric as unknown as { name: string }).name === name) as unknown as {
          labelNames: string[];
        }
      ).labelNames;
      for (const label of labels)
        assert.ok(row.includes(`\`${label}\``), `README's row of ${name} does not name its label ${label}`);
    }
  });

  test('a server without --metrics-listen serves no endpoint, and shutdown closes it', async () => {
    const s = await startServer();
    assert.equal(s.server.metricsAddress, undefined);
    await s[Symbol.asyncDispose]();
    const m = await startServer(METRICS);
    const address = m.server.metricsAddress!;
    await m[Symbol.asyncDispose]();
    await assert.rejects(fetch(`http://${address}/metrics`));
  });
});

describe('--metrics-listen and --log-level', () => {
  test('metrics are plain HTTP: loopback only unless --insecure', () => {
    assert.equal(parseConfig(['--metrics-listen', '127.0.0.1:9464'], {}).metricsListen, '127.0.0.1:9464');
    assert.equal(parseConfig([], { LATCHKEY_METRICS_LISTEN: '[::1]:0' }).metricsListen, '[::1]:0');
    assert.equal(parseConfig([], {}).metricsListen, '');
    assert.throws(
      () => parseConfig(['--metrics-listen', '0.0.0.0:9464'], {}),
      (err: Error) => err instanceof ConfigError && /not a loopback address.*--insecure/.test(err.message),
    );
    assert.equal(parseConfig(['--metrics-listen', '0.0.0.0:9464', '--insecure'], {}).metricsListen, '0.0.0.0:9464');
    assert.throws(() => parseConfig(['--metrics-listen', '9464'], {}), /--metrics-listen must be host:port/);
    assert.throws(() => parseConfig(['--metrics-listen', '127.0.0.1:70000'], {}), /--metrics-listen must be host:port/);
  });

  test('--log-level takes the six pino levels, default info', () => {
    assert.equal(parseConfig([], {}).logLevel, 'info');
    assert.equal(parseConfig(['--log-level', 'debug'], {}).logLevel, 'debug');
    assert.equal(parseConfig([], { LATCHKEY_LOG_LEVEL: 'warn' }).logLevel, 'warn');
    assert.throws(
      () => parseConfig(['--log-level', 'loud'], {}),
      /--log-level must be one of fatal, error, warn, info, debug, trace, got "loud"/,
    );
  });

  test('a metrics port already taken fails listen() with a ConfigError naming --metrics-listen', async () => {
    await using s = await startServer(METRICS);
    await assert.rejects(
      startServer({ metricsListen: s.server.metricsAddress! }),
      (err: Error) => err instanceof ConfigError && /--metrics-listen/.test(err.message),
    );
  });
});
