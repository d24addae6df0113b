// Traces end to end, with real parts only: an application (this process) with the
// OpenTelemetry Node SDK exporting to a real OTLP/HTTP receiver (support/otlp-receiver.ts),
// the latchkey SDK, and `latchkey serve` as its own process on etcd and memcached, turned on
// by the standard OTEL_* variables alone and exporting OTLP JSON to the same receiver. One
// lock and one fenced cache write made inside a parent span arrive as one trace: the server's
// spans are children of the caller's, the etcd and memcached requests children of the server's.
// Operations of two other traces that share the pipeline stream land each in its own trace.
// And with no OTEL_* variable the server loads none of the OpenTelemetry SDK.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  test('a lock and a fenced cache write in a parent span: one trace, down to etcd and memcached', async () => {
    const moduleLog = join(dir, 'traced.modules');
    await using server = await spawnServer(backends(), {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'latchkey-traced',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      NODE_OPTIONS: `--import=${MODULE_LOG}`,
      MODULE_LOG_FILE: moduleLog,
    });
    const tracer = trace.getTracer('shop');
    // One pipeline stream for the whole test, however slow the machine: it stays open while idle.
    // Unary locks (sessions: false): the lock's trace below is Acquire's and Release's; a lock
    // session's operations carry no trace context of their own (the Session call's span does).
    await using client = connect(server.address, { pipeline: { idleMs: 60_000 }, sessions: false });
    const checkout = await tracer.startActiveSpan('checkout', async (span) => {
      {
        await using lock = await client.lock('orders/42', { ttlMs: 5_000, owner: 'shop' });
        await client.cache().set('orders/42/status', SECRET, { fence: lock });
      }
      {
        // A unary Campaign (sessions: false) and, at the end of the block, its Resign.
        await using _leadership = await client.campaign('orders/dispatcher', 'shop-1', { ttlMs: 5_000 });
      }
      span.end();
      return span.spanContext();
    });
    // Two more traces, their gets sent through the stream the checkout opened.
    const others = await Promise.all(
      ['a', 'b'].map((name) =>
        tracer.startActiveSpan(name, async (span): Promise<SpanContext> => {
          assert.equal((await client.cache().get('orders/42/status'))?.value.toString(), SECRET);
          span.end();
          return span.spanContext();
        }),
      ),
    );
    await client.close();
    await flushApp();
    // The stream's span ends with the stream; SIGTERM makes the server export what is left.
    assert.equal((await server.stop('SIGTERM')).code, 0, server.stderr());
    await receiver.until('the pipeline stream span', (spans) =>
      spans.some((s) => s.service === 'latchkey-traced' && s.name === 'latchkey.v1.Cache/Pipeline'),
    );

    const spans = receiver.spans();
    const inCheckout = spans.filter((s) => s.traceId === checkout.traceId);
    const root = one(inCheckout, 'the parent span', (s) => s.name === 'checkout');
    assert.equal(root.service, 'shop');
    const server_ = inCheckout.filter((s) => s.service === 'latchkey-traced');
    assert.ok(server_.length > 0, `no server span in the checkout's trace: ${names(spans)}`);

    // RPC spans: SERVER, children of the caller's span (the SDK makes no span of its own), with
    // the gRPC conventions.
    const acquire = one(inCheckout, 'Acquire', (s) => s.name === 'latchkey.v1.Locks/Acquire');
    const release = one(inCheckout, 'Release', (s) => s.name === 'latchkey.v1.Locks/Release');
    const stream = one(inCheckout, 'the Pipeline stream', (s) => s.name === 'latchkey.v1.Cache/Pipeline');
    for (const rpc of [acquire, release, stream]) {
      assert.equal(rpc.kind, SpanKindCode.server, rpc.name);
      assert.equal(rpc.parentSpanId, root.spanId, `${rpc.name} is a child of the caller's span`);
      assert.equal(rpc.attributes['rpc.system'], 'grpc');
      assert.equal(`${rpc.attributes['rpc.service']}/${rpc.attributes['rpc.method']}`, rpc.name);
      assert.equal(rpc.attributes['rpc.grpc.status_code'], 0, rpc.name);
    }

    // The lock: one backend span under each RPC, etcd requests under those.
    const lockAcquire = one(descendants(spans, acquire), 'lock acquire', (s) => s.name === 'lock acquire');
    assert.equal(lockAcquire.parentSpanId, acquire.spanId);
    assert.equal(lockAcquire.attributes['latchkey.lock.name'], 'orders/42');
    assert.equal(lockAcquire.attributes['latchkey.lock.backend'], 'etcd');
    assert.equal(lockAcquire.attributes['latchkey.lock.owner'], 'shop');
    assert.equal(lockAcquire.attributes['latchkey.outcome'], 'granted');
    const etcdOfAcquire = descendants(spans, lockAcquire).filter((s) => s.name.startsWith('etcdserverpb.'));
    assert.ok(
      etcdOfAcquire.some((s) => s.name === 'etcdserverpb.Lease/LeaseGrant') &&
        etcdOfAcquire.some((s) => s.name === 'etcdserverpb.KV/Txn'),
      `the acquire's etcd requests: ${names(etcdOfAcquire)}`,
    );
    for (const s of etcdOfAcquire) {
      assert.equal(s.kind, SpanKindCode.client, s.name);
      assert.equal(s.attributes['db.system.name'], 'etcd');
      assert.equal(s.attributes['rpc.grpc.status_code'], 0, s.name);
    }
    const lockRelease = one(descendants(spans, release), 'lock release', (s) => s.name === 'lock release');
    assert.equal(lockRelease.attributes['latchkey.outcome'], 'released');
    assert.ok(
      descendants(spans, lockRelease).some((s) => s.name.startsWith('etcdserverpb.')),
      `the release's etcd requests: ${names(descendants(spans, lockRelease))}`,
    );

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

    // The fenced write: its own span in the caller's trace (the op carried the context),
    // linked to the stream's; a fenced write of a new key on memcached reads the key, adds a
    // claim, reads the key's tombstone and swaps the claim for the value (src/cache/cache.ts).
    const setOp = one(inCheckout, 'the pipeline set', (s) => s.name === 'latchkey.v1.Cache/Pipeline set');
    assert.equal(setOp.parentSpanId, root.spanId);
    assert.deepEqual(setOp.links, [{ traceId: stream.traceId, spanId: stream.spanId }]);
    assert.equal(setOp.attributes['rpc.grpc.status_code'], 0);
    const cacheSet = one(descendants(spans, setOp), 'cache set', (s) => s.name === 'cache set');
    assert.equal(cacheSet.attributes['latchkey.cache.store'], 'memcached');
    assert.equal(cacheSet.attributes['latchkey.cache.key'], 'orders/42/status');
    assert.equal(cacheSet.attributes['latchkey.cache.fence.lock'], 'orders/42');
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

    // The gets of traces a and b went through the stream the checkout opened, each in its own trace.
    for (const other of others) {
      const inOther = spans.filter((s) => s.traceId === other.traceId);
      const getOp = one(inOther, 'a pipeline get', (s) => s.name === 'latchkey.v1.Cache/Pipeline get');
      assert.equal(getOp.parentSpanId, other.spanId);
      assert.deepEqual(getOp.links, [{ traceId: stream.traceId, spanId: stream.spanId }]);
      const cacheGet = one(descendants(spans, getOp), 'cache get', (s) => s.name === 'cache get');
      assert.equal(cacheGet.attributes['latchkey.outcome'], 'hit');
      assert.deepEqual(
        descendants(spans, cacheGet).map((s) => s.name),
        ['memcached get'],
      );
    }
    assert.equal(inCheckout.filter((s) => s.name.endsWith('Pipeline get')).length, 0);

    // Never a value, a lease id or a token.
    const serverSpans = spans.filter((s) => s.service === 'latchkey-traced');
    for (const s of serverSpans)
      for (const [key, value] of Object.entries(s.attributes)) {
        assert.doesNotMatch(key, /lease|token|value/, `${s.name}: attribute ${key}`);
        assert.ok(!JSON.stringify(value).includes(SECRET), `${s.name}: ${key} carries the cached value`);
      }
    assert.ok(
      loaded(moduleLog).some((url) => SDK_MODULES.test(url)),
      'the traced server loaded the SDK',
    );
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
