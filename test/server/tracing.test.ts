// Traces end to end, with real parts only: an application (this process) with the
// OpenTelemetry Node SDK exporting to a real OTLP/HTTP receiver (support/otlp-receiver.ts),
// the latchkey SDK, and `latchkey serve` as its own process on etcd and memcached, turned on
// by the standard OTEL_* variables alone and exporting OTLP JSON to the same receiver. One
// lock and one fenced cache write made inside a parent span arrive as one trace: the server's
// spans are children of the caller's, the etcd and memcached requests children of the server's.
// With lock sessions (the SDK's default) each session op is a span of its caller's trace, as
// each pipeline op is; the session's own ops (keepalives) stay under the stream's span.
// Operations of two other traces that share the session and the pipeline stream land each in
// its own trace. Unary locks (sessions: false) trace the same way, call by call. And with no
// OTEL_* variable the server loads none of the OpenTelemetry SDK.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { type ProxyTracerProvider, type SpanContext, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { connect } from '../../client/index.js';
import { TRACING_VARIABLES, tracingRequested } from '../../src/tracing-start.js';
import { etcdMissing, startEtcd, type EtcdMember } from '../support/etcd.js';
import { memcachedMissing, startMemcached, type Memcached } from '../support/memcached.js';
import { type ReceivedSpan, SpanKindCode, startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { spawnServer } from '../support/spawn.js';

const skip = etcdMissing() || memcachedMissing();
const MODULE_LOG = pathToFileURL(join(import.meta.dirname, '..', 'support', 'module-log.mjs')).href;
/** What only the server's OpenTelemetry SDK brings in (the API alone is always loaded). */
const SDK_MODULES = /\/node_modules\/@opentelemetry\/(sdk-node|sdk-trace|exporter-trace-otlp|otlp-|resources)/;
/** A cache value no span may carry. */
const SECRET = 'paid-with-card-4242';
/** A lock TTL whose session keepalive (every TTL / 3) comes within a test's patience. */
const KEPT_TTL_MS = 1_500;

/** What a process resolved, from module-log.mjs's file. */
function loaded(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function one(spans: readonly ReceivedSpan[], what: string, match: (s: ReceivedSpan) => boolean): ReceivedSpan {
  const found = spans.filter(match);
  assert.equal(found.length, 1, `${what}: expected one span, found ${found.length} among ${names(spans)}`);
  return found[0]!;
}

/** Exports what the application's SDK still holds. */
const flushApp = () =>
  (
    (trace.getTracerProvider() as ProxyTracerProvider).getDelegate() as unknown as { forceFlush(): Promise<void> }
  ).forceFlush();

const names = (spans: readonly ReceivedSpan[]) => spans.map((s) => s.name).join(', ');

/** Every span below `root` in its trace. */
function descendants(spans: readonly ReceivedSpan[], root: ReceivedSpan): ReceivedSpan[] {
  const below = spans.filter((s) => s.traceId === root.traceId && s.parentSpanId === root.spanId);
  return below.flatMap((s) => [s, ...descendants(spans, s)]);
}

test('which OTEL_* variables turn tracing on', () => {
  const on = (env: Record<string, string>) => tracingRequested(env);
  assert.equal(on({}), false, 'off by default');
  assert.equal(on({ OTEL_SERVICE_NAME: 'x', OTEL_RESOURCE_ATTRIBUTES: 'a=b' }), false, 'naming is not asking');
  assert.equal(on({ OTEL_TRACES_EXPORTER: 'otlp' }), true);
  assert.equal(on({ OTEL_TRACES_EXPORTER: 'console' }), true);
  assert.equal(on({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  assert.equal(on({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), true);
  assert.equal(on({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), true);
  assert.equal(on({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }), false, 'blank is unset');
  assert.equal(on({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), false);
  assert.equal(on({ OTEL_TRACES_EXPORTER: 'console, none' }), false);
  assert.equal(on({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }), false);
  assert.equal(on({ OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'otlp' }), true);
});

describe('OpenTelemetry traces through the SDK, the server, etcd and memcached', { skip }, () => {
  let receiver: OtlpReceiver;
  let etcd: EtcdMember;
  let memcached: Memcached;
  let app: NodeSDK;
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-tracing-'));

  before(async () => {
    receiver = await startOtlpReceiver();
    [etcd, memcached] = await Promise.all([startEtcd(), startMemcached()]);
    // The application's own SDK, as a service using latchkey sets it up.
    app = new NodeSDK({
      serviceName: 'shop',
      traceExporter: new OTLPTraceExporter({ url: `${receiver.endpoint}/v1/traces` }),
      metricReaders: [],
      logRecordProcessors: [],
      autoDetectResources: false,
    });
    app.start();
  });

  after(async () => {
    await app?.shutdown();
    await Promise.all([
      receiver?.[Symbol.asyncDispose](),
      etcd?.[Symbol.asyncDispose](),
      memcached?.[Symbol.asyncDispose](),
    ]);
    rmSync(dir, { recursive: true, force: true });
  });

  const backends = () => [
    '--etcd-endpoints',
    etcd.endpoint,
    '--backend',
    'etcd',
    '--memcached',
    memcached.address,
    '--store',
    'memcached',
  ];

  /** A traced server, a client of it, and the spans of a checkout and of two other traces. */
  async function traced(sessions: boolean) {
    const moduleLog = join(dir, `traced-${sessions ? 'sessions' : 'unary'}.modules`);
    const service = `latchkey-traced-${sessions ? 'sessions' : 'unary'}`;
    await using server = await spawnServer(backends(), {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: service,
      OTEL_BSP_SCHEDULE_DELAY: '100',
      NODE_OPTIONS: `--import=${MODULE_LOG}`,
      MODULE_LOG_FILE: moduleLog,
    });
    // Each run its own lock and key: the fenced write of a new key is what the spans show.
    const order = sessions ? 'orders/42' : 'orders/44';
    const tracer = trace.getTracer('shop');
    // One pipeline stream and one lock session for the whole test, however slow the machine:
    // they stay open while idle.
    await using client = connect(server.address, {
      pipeline: { idleMs: 60_000 },
      sessions: sessions ? { idleMs: 60_000 } : false,
    });
    const checkout = await tracer.startActiveSpan('checkout', async (span) => {
      {
        await using lock = await client.lock(order, { ttlMs: KEPT_TTL_MS, owner: 'shop' });
        if (sessions) {
          // Held until the session's keepalive has renewed it once (every TTL / 3): the
          // session's own op, sent from a timer the checkout's call armed.
          const first = lock.expiresAt.getTime();
          for (let i = 0; i < 100 && lock.expiresAt.getTime() === first; i++) await delay(50);
          assert.notEqual(lock.expiresAt.getTime(), first, 'a keepalive renewed the session');
        }
        await client.cache().set(`${order}/status`, SECRET, { fence: lock });
      }
      if (!sessions) {
        // A unary Campaign and, at the end of the block, its Resign.
        await using _leadership = await client.campaign('orders/dispatcher', 'shop-1', { ttlMs: 5_000 });
      }
      span.end();
      return span.spanContext();
    });
    // Two more traces, their locks and gets sent through the session and the stream the
    // checkout opened.
    const others = await Promise.all(
      ['a', 'b'].map((name) =>
        tracer.startActiveSpan(name, async (span): Promise<SpanContext> => {
          {
            await using _lock = await client.lock(`${order}/${name}`, { ttlMs: KEPT_TTL_MS });
            assert.equal((await client.cache().get(`${order}/status`))?.value.toString(), SECRET);
          }
          span.end();
          return span.spanContext();
        }),
      ),
    );
    // And one lock outside any span: its operations carry no trace context.
    {
      await using _lock = await client.lock(`${order}/untraced`, { ttlMs: KEPT_TTL_MS });
    }
    await client.close();
    await flushApp();
    // A stream's span ends with the stream; SIGTERM makes the server export what is left.
    assert.equal((await server.stop('SIGTERM')).code, 0, server.stderr());
    await receiver.until('the stream spans', (spans) => {
      const ours = spans.filter((s) => s.service === service);
      return (
        ours.some((s) => s.name === 'latchkey.v1.Cache/Pipeline') &&
        (!sessions || ours.some((s) => s.name === 'latchkey.v1.Locks/Session'))
      );
    });
    const spans = receiver.spans();
    const inCheckout = spans.filter((s) => s.traceId === checkout.traceId);
    const root = one(inCheckout, 'the parent span', (s) => s.name === 'checkout');
    assert.equal(root.service, 'shop');
    assert.ok(
      inCheckout.some((s) => s.service === service),
      `no server span in the checkout's trace: ${names(spans)}`,
    );
    assert.ok(
      loaded(moduleLog).some((url) => SDK_MODULES.test(url)),
      'the traced server loaded the SDK',
    );
    return { order, spans, inCheckout, root, others, serverSpans: spans.filter((s) => s.service === service) };
  }

  /** A SERVER span that is a child of the caller's span (the SDK makes no span of its own), with the gRPC conventions. */
  function assertRpc(rpc: ReceivedSpan, parent: ReceivedSpan | SpanContext, method: string) {
    assert.equal(rpc.kind, SpanKindCode.server, rpc.name);
    assert.equal(rpc.parentSpanId, parent.spanId, `${rpc.name} is a child of the caller's span`);
    assert.equal(rpc.attributes['rpc.system'], 'grpc');
    assert.equal(`${rpc.attributes['rpc.service']}/${rpc.attributes['rpc.method']}`, method);
    assert.equal(rpc.attributes['rpc.grpc.status_code'], 0, rpc.name);
  }

  /** The etcd requests under `span`: CLIENT spans with the database's name; `expected` among them. */
  function assertEtcd(spans: readonly ReceivedSpan[], span: ReceivedSpan, expected: readonly string[]) {
    const etcdSpans = descendants(spans, span).filter((s) => s.name.startsWith('etcdserverpb.'));
    for (const name of expected)
      assert.ok(
        etcdSpans.some((s) => s.name === name),
        `${span.name}: expected ${name} among its etcd requests: ${names(etcdSpans)}`,
      );
    for (const s of etcdSpans) {
      assert.equal(s.kind, SpanKindCode.client, s.name);
      assert.equal(s.attributes['db.system.name'], 'etcd');
      assert.equal(s.attributes['rpc.grpc.status_code'], 0, s.name);
    }
  }

  /** The lock backend's span under `op`: name, backend, owner and outcome. */
  function assertLockSpan(
    spans: readonly ReceivedSpan[],
    op: ReceivedSpan,
    name: string,
    lock: string,
    outcome: string,
  ): ReceivedSpan {
    const span = one(descendants(spans, op), name, (s) => s.name === name);
    assert.equal(span.parentSpanId, op.spanId);
    assert.equal(span.attributes['latchkey.lock.name'], lock);
    assert.equal(span.attributes['latchkey.lock.backend'], 'etcd');
    assert.equal(span.attributes['latchkey.outcome'], outcome);
    return span;
  }

  /**
   * The fenced write and the gets of traces a and b, through one pipeline stream: each op its
   * own span in its caller's trace (the op carried the context), linked to the stream's; a
   * fenced write of a new key on memcached reads the key, adds a claim, reads the key's
   * tombstone and swaps the claim for the value (src/cache/cache.ts).
   */
  function assertPipeline(seen: Awaited<ReturnType<typeof traced>>) {
    const { order, spans, inCheckout, root, others } = seen;
    const stream = one(inCheckout, 'the Pipeline stream', (s) => s.name === 'latchkey.v1.Cache/Pipeline');
    assertRpc(stream, root, 'latchkey.v1.Cache/Pipeline');
    const setOp = one(inCheckout, 'the pipeline set', (s) => s.name === 'latchkey.v1.Cache/Pipeline set');
    assertRpc(setOp, root, 'latchkey.v1.Cache/Pipeline');
    assert.deepEqual(setOp.links, [{ traceId: stream.traceId, spanId: stream.spanId }]);
    const cacheSet = one(descendants(spans, setOp), 'cache set', (s) => s.name === 'cache set');
    assert.equal(cacheSet.attributes['latchkey.cache.store'], 'memcached');
    assert.equal(cacheSet.attributes['latchkey.cache.key'], `${order}/status`);
    assert.equal(cacheSet.attributes['latchkey.cache.fence.lock'], order);
    assert.equal(cacheSet.attributes['latchkey.outcome'], 'STORED');
    const memcachedOfSet = descendants(spans, cacheSet);
    assert.deepEqual(memcachedOfSet.map((s) => s.name).sort(), [
      'memcached add',
      'memcached cas',
      'memcached get',
      'memcached get',
    ]);
    for (const s of memcachedOfSet) {
      assert.equal(s.kind, SpanKindCode.client);
      assert.equal(s.attributes['db.system.name'], 'memcached');
      assert.equal(s.attributes['server.port'], memcached.port);
    }
    for (const other of others) {
      const inOther = spans.filter((s) => s.traceId === other.traceId);
      const getOp = one(inOther, 'a pipeline get', (s) => s.name === 'latchkey.v1.Cache/Pipeline get');
      assertRpc(getOp, other, 'latchkey.v1.Cache/Pipeline');
      assert.deepEqual(getOp.links, [{ traceId: stream.traceId, spanId: stream.spanId }]);
      const cacheGet = one(descendants(spans, getOp), 'cache get', (s) => s.name === 'cache get');
      assert.equal(cacheGet.attributes['latchkey.outcome'], 'hit');
      assert.deepEqual(
        descendants(spans, cacheGet).map((s) => s.name),
        ['memcached get'],
      );
    }
    assert.equal(inCheckout.filter((s) => s.name.endsWith('Pipeline get')).length, 0);
  }

  /** Never a value, a lease id, a session id or a token. */
  function assertNothingSecret(serverSpans: readonly ReceivedSpan[]) {
    for (const s of serverSpans)
      for (const [key, value] of Object.entries(s.attributes)) {
        assert.doesNotMatch(key, /lease|token|value|session_id/, `${s.name}: attribute ${key}`);
        assert.ok(!JSON.stringify(value).includes(SECRET), `${s.name}: ${key} carries the cached value`);
      }
  }

  test('a lock session and a fenced cache write in a parent span: one trace, down to etcd and memcached', async () => {
    const seen = await traced(true);
    const { order, spans, inCheckout, root, others } = seen;
    // The session's stream: opened by the checkout's first lock, so a child of its span.
    const stream = one(inCheckout, 'the Session stream', (s) => s.name === 'latchkey.v1.Locks/Session');
    assertRpc(stream, root, 'latchkey.v1.Locks/Session');
    // Opening the session grants its etcd lease, under the stream's span.
    assert.ok(
      spans.some((s) => s.parentSpanId === stream.spanId && s.name === 'etcdserverpb.Lease/LeaseGrant'),
      `the session's lease grant under its stream: ${names(descendants(spans, stream))}`,
    );

    // Each op of the checkout: a SERVER span of the checkout's trace, linked to the stream's,
    // with the lock's name and backend; the backend's span under it, etcd's under that.
    const opOf = (inTrace: readonly ReceivedSpan[], op: string, lock: string) =>
      one(
        inTrace,
        `the session's ${op} of ${lock}`,
        (s) => s.name === `latchkey.v1.Locks/Session ${op}` && s.attributes['latchkey.lock.name'] === lock,
      );
    const acquire = opOf(inCheckout, 'acquire', order);
    const release = opOf(inCheckout, 'release', order);
    for (const op of [acquire, release]) {
      assertRpc(op, root, 'latchkey.v1.Locks/Session');
      assert.deepEqual(op.links, [{ traceId: stream.traceId, spanId: stream.spanId }], op.name);
      assert.equal(op.attributes['latchkey.op'], op.name.split(' ')[1]);
      assert.equal(op.attributes['latchkey.lock.name'], order);
      assert.equal(op.attributes['latchkey.lock.backend'], 'etcd');
    }
    const lockAcquire = assertLockSpan(spans, acquire, 'lock acquire', order, 'granted');
    assert.equal(lockAcquire.attributes['latchkey.lock.owner'], 'shop');
    // On the session's lease: a transaction, no grant of its own.
    assertEtcd(spans, lockAcquire, ['etcdserverpb.KV/Txn']);
    assert.ok(!descendants(spans, lockAcquire).some((s) => s.name === 'etcdserverpb.Lease/LeaseGrant'));
    assertEtcd(spans, assertLockSpan(spans, release, 'lock release', order, 'released'), ['etcdserverpb.KV/Txn']);

    // The keepalive is the session's own op, no caller's: a child of the stream's span, even
    // though the checkout's call armed its timer.
    const keepalives = seen.serverSpans.filter((s) => s.name === 'latchkey.v1.Locks/Session keepalive');
    assert.ok(keepalives.length > 0, `a keepalive op span: ${names(descendants(spans, stream))}`);
    for (const keepalive of keepalives) {
      assert.equal(keepalive.kind, SpanKindCode.internal);
      assert.equal(keepalive.parentSpanId, stream.spanId);
      assert.deepEqual(keepalive.links, []);
      assert.equal(keepalive.attributes['rpc.grpc.status_code'], 0);
      assertEtcd(spans, keepalive, ['etcdserverpb.Lease/LeaseKeepAlive']);
    }

    // The locks of traces a and b went through the session the checkout opened, each op in
    // its own caller's trace.
    others.forEach((other, i) => {
      const inOther = spans.filter((s) => s.traceId === other.traceId);
      const lock = `${order}/${'ab'[i]}`;
      for (const op of [opOf(inOther, 'acquire', lock), opOf(inOther, 'release', lock)]) {
        assertRpc(op, other, 'latchkey.v1.Locks/Session');
        assert.deepEqual(op.links, [{ traceId: stream.traceId, spanId: stream.spanId }], op.name);
      }
    });
    assert.equal(
      inCheckout.filter((s) => s.name === 'latchkey.v1.Locks/Session acquire' && s.kind === SpanKindCode.server).length,
      1,
    );
    // The lock taken outside any span: its ops sent no context, so they stay under the stream's span.
    const untraced = seen.serverSpans.filter(
      (s) =>
        s.name.startsWith('latchkey.v1.Locks/Session ') && s.attributes['latchkey.lock.name'] === `${order}/untraced`,
    );
    assert.deepEqual(untraced.map((s) => s.name).sort(), [
      'latchkey.v1.Locks/Session acquire',
      'latchkey.v1.Locks/Session release',
    ]);
    for (const op of untraced) {
      assert.equal(op.kind, SpanKindCode.internal, op.name);
      assert.equal(op.parentSpanId, stream.spanId, op.name);
      assert.deepEqual(op.links, []);
    }
    // No unary lock call: everything went through the session.
    assert.equal(seen.serverSpans.filter((s) => s.name === 'latchkey.v1.Locks/Acquire').length, 0);

    assertPipeline(seen);
    assertNothingSecret(seen.serverSpans);
  });

  test('unary locks (sessions: false) in a parent span: one trace, down to etcd and memcached', async () => {
    const seen = await traced(false);
    const { order, spans, inCheckout, root } = seen;
    const acquire = one(inCheckout, 'Acquire', (s) => s.name === 'latchkey.v1.Locks/Acquire');
    const release = one(inCheckout, 'Release', (s) => s.name === 'latchkey.v1.Locks/Release');
    assertRpc(acquire, root, 'latchkey.v1.Locks/Acquire');
    assertRpc(release, root, 'latchkey.v1.Locks/Release');
    const lockAcquire = assertLockSpan(spans, acquire, 'lock acquire', order, 'granted');
    assert.equal(lockAcquire.attributes['latchkey.lock.owner'], 'shop');
    assertEtcd(spans, lockAcquire, ['etcdserverpb.Lease/LeaseGrant', 'etcdserverpb.KV/Txn']);
    assertEtcd(spans, assertLockSpan(spans, release, 'lock release', order, 'released'), []);
    assert.ok(descendants(spans, release).some((s) => s.name.startsWith('etcdserverpb.')));
    assert.equal(seen.serverSpans.filter((s) => s.name.startsWith('latchkey.v1.Locks/Session')).length, 0);

    // The election: one backend span under each of its RPCs, etcd requests under those.
    const campaign = one(inCheckout, 'Campaign', (s) => s.name === 'latchkey.v1.Elections/Campaign');
    const resign = one(inCheckout, 'Resign', (s) => s.name === 'latchkey.v1.Elections/Resign');
    for (const rpc of [campaign, resign]) assert.equal(rpc.parentSpanId, root.spanId, rpc.name);
    const electionCampaign = one(
      descendants(spans, campaign),
      'election campaign',
      (s) => s.name === 'election campaign',
    );
    assert.equal(electionCampaign.parentSpanId, campaign.spanId);
    assert.equal(electionCampaign.attributes['latchkey.election.name'], 'orders/dispatcher');
    assert.equal(electionCampaign.attributes['latchkey.election.backend'], 'etcd');
    assert.equal(electionCampaign.attributes['latchkey.outcome'], 'elected');
    assert.ok(
      descendants(spans, electionCampaign).some((s) => s.name === 'etcdserverpb.KV/Txn'),
      `the campaign's etcd requests: ${names(descendants(spans, electionCampaign))}`,
    );
    const electionResign = one(descendants(spans, resign), 'election resign', (s) => s.name === 'election resign');
    assert.equal(electionResign.attributes['latchkey.outcome'], 'resigned');

    assertPipeline(seen);
    assertNothingSecret(seen.serverSpans);
  });

  test('with no OTEL_* variable the server loads none of the OpenTelemetry SDK and exports nothing', async () => {
    const moduleLog = join(dir, 'untraced.modules');
    const before = receiver.spans().length;
    await using server = await spawnServer(backends(), {
      // Cleared, in case the shell running the tests sets them.
      ...Object.fromEntries(TRACING_VARIABLES.map((name) => [name, ''])),
      NODE_OPTIONS: `--import=${MODULE_LOG}`,
      MODULE_LOG_FILE: moduleLog,
    });
    {
      await using client = connect(server.address);
      await trace.getTracer('shop').startActiveSpan('untraced', async (span) => {
        await using lock = await client.lock('orders/43', { ttlMs: 5_000 });
        await client.cache().set('orders/43/status', 'paid', { fence: lock });
        span.end();
      });
    }
    assert.equal((await server.stop('SIGTERM')).code, 0, server.stderr());
    const urls = loaded(moduleLog);
    assert.ok(
      urls.some((url) => url.includes('/node_modules/@opentelemetry/api/')),
      `the module log works: ${urls.length} modules`,
    );
    assert.deepEqual(
      urls.filter((url) => SDK_MODULES.test(url)),
      [],
    );
    await flushApp();
    assert.deepEqual(
      receiver
        .spans()
        .slice(before)
        .filter((s) => s.service !== 'shop')
        .map((s) => s.name),
      [],
    );
  });
});
