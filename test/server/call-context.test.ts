// The one call context that unary, server-streaming and bidi handlers share
// (src/call-context.ts), seen from outside through real calls: a client's cancel aborts the
// handler's signal with CancelledError, the call stays in flight until its work has settled
// (so shutdown waits for it), and it is then counted exactly once, as CANCELLED.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { CacheStore } from '../../src/cache/store.js';
import {
  createCallContext,
  DEADLINE_MARGIN_CAP_MS,
  DEADLINE_MARGIN_FLOOR_MS,
  deadlineMarginMs,
  InflightCalls,
} from '../../src/call-context.js';
import { CancelledError, ShuttingDownError } from '../../src/errors.js';
import { lineLogger } from '../../src/log.js';
import { loadProto } from '../../src/proto.js';
import { scrape } from '../support/metrics.js';
import { startServer, type TestServer } from '../support/server.js';

/** A store whose get waits for its caller's signal to abort, then for the test to let it go. */
function stuckStore() {
  const seen = { calls: 0, reasons: [] as unknown[] };
  let letGo!: () => void;
  const released = new Promise<void>((resolve) => (letGo = resolve));
  const refuse = async (): Promise<never> => {
    throw new Error('not used by this test');
  };
  const store: CacheStore = {
    kind: 'stuck',
    get: (_key, signal) => {
      seen.calls++;
      return new Promise((_resolve, reject) => {
        signal.addEventListener(
          'abort',
          () => {
            seen.reasons.push(signal.reason);
            void released.then(() => reject(signal.reason));
          },
          { once: true },
        );
      });
    },
    set: refuse,
    cas: refuse,
    add: refuse,
    delete: refuse,
    incr: refuse,
    touch: refuse,
    close: async () => {},
  };
  return { store, seen, letGo };
}

async function until(what: string, check: () => boolean | Promise<boolean>, withinMs = 5_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const calls = (s: TestServer, method: string) => ({
  inflight: async () =>
    (await scrape(s.server.metricsAddress!)).value('latchkey_inflight_calls', { service: 'latchkey.v1.Cache', method }),
  handled: async (code?: string) =>
    (await scrape(s.server.metricsAddress!)).value('latchkey_rpc_handled_total', {
      service: 'latchkey.v1.Cache',
      method,
      ...(code === undefined ? {} : { code }),
    }),
});

const kinds: {
  method: string;
  start: (s: TestServer) => grpc.ClientUnaryCall | grpc.ClientDuplexStream<object, object>;
}[] = [
  { method: 'Get', start: (s) => s.cache.Get({ store: 'stuck', key: 'k' }, () => {}) },
  {
    method: 'Pipeline',
    start: (s) => {
      const stream = s.cache.Pipeline();
      stream.on('data', () => {});
      stream.on('error', () => {});
      stream.write({ ops: [{ tag: '1', get: { store: 'stuck', key: 'k' } }] });
      return stream;
    },
  },
];

describe('a cancelled call, unary or bidi (a server stream: metrics.test.ts, Watch)', () => {
  for (const { method, start } of kinds) {
    test(`${method}: the signal aborts with CancelledError; in flight until its work settles; counted once as CANCELLED`, async () => {
      const { store, seen, letGo } = stuckStore();
      await using s = await startServer({ metricsListen: '127.0.0.1:0' }, { stores: [store] });
      const m = calls(s, method);
      const call = start(s);
      await until('the store to be called', () => seen.calls === 1);
      assert.equal(await m.inflight(), 1);
      call.cancel();
      await until('the store to see the abort', () => seen.reasons.length === 1);
      assert.ok(seen.reasons[0] instanceof CancelledError, `aborted with ${String(seen.reasons[0])}`);
      // The store is still working on it: the call has not ended yet.
      assert.equal(await m.inflight(), 1);
      assert.equal(await m.handled(), 0);
      letGo();
      await until('the call to end', async () => (await m.inflight()) === 0);
      await until('the call to be counted', async () => (await m.handled('CANCELLED')) === 1);
      assert.equal(await m.handled(), 1, 'counted once');
    });
  }
});

test('a signal first read after the call was cancelled or cut off is made aborted, with the first reason', async () => {
  // NOTE: the context makes its AbortSignal when a handler first reads it (an LRU Get never
  // does); an abort that came before must not be lost. A bare grpc-js server whose Get
  // handler reads the signal only once grpc-js has told it of the client's cancel.
  const proto = loadProto();
  const server = new grpc.Server();
  const inflight = new InflightCalls();
  const env = { inflight, log: lineLogger(() => {}), auth: undefined };
  const counted: number[] = [];
  const meter = { begin: () => {}, end: (code: number) => counted.push(code), answered: () => {} };
  const seen: { aborted: boolean; reason: unknown }[] = [];
  let handlerRan = () => {};
  server.addService(proto.latchkey.v1.Cache.service, {
    Get: (call: grpc.ServerUnaryCall<object, object>, callback: grpc.sendUnaryData<object>) => {
      const scope = createCallContext(call, env, meter);
      handlerRan();
      // Registered after the context's own listener: runs once the context has seen the cancel.
      call.on('cancelled', () => {
        seen.push({ aborted: scope.ctx.signal.aborted, reason: scope.ctx.signal.reason });
        scope.end(grpc.status.OK);
        callback(null, {});
      });
    },
  } as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const client = new proto.latchkey.v1.Cache(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  /** One Get that the client cancels once the handler runs, after `before` (on the server). */
  const cancelled = async (before: () => void) => {
    const started = new Promise<void>((resolve) => (handlerRan = resolve));
    const call = client.Get({ store: 'x', key: 'k' }, () => {});
    await started;
    before();
    call.cancel();
    const n = seen.length;
    await until('the handler to read its signal', () => seen.length === n + 1);
    return seen[n]!;
  };
  try {
    const first = await cancelled(() => {});
    assert.equal(first.aborted, true, 'the cancel before the first read was lost');
    assert.ok(first.reason instanceof CancelledError, `aborted with ${String(first.reason)}`);
    // Cut off at shutdown, then cancelled: the signal keeps the first reason.
    const second = await cancelled(() => inflight.abortAll());
    assert.ok(second.reason instanceof ShuttingDownError, `aborted with ${String(second.reason)}`);
    assert.deepEqual(counted, [grpc.status.CANCELLED, grpc.status.CANCELLED]);
    assert.equal(inflight.size, 0);
  } finally {
    client.close();
    server.forceShutdown();
  }
});

/**
 * The timeout gRPC's C core sends for `ms` left, in ms: Timeout::FromMillis of grpc's
 * src/core/lib/transport/timeout_encoding.cc, which rounds up to three significant digits
 * of ms, tens/hundreds of ms, s, tens/hundreds of s, min, tens/hundreds of min or h (a unit
 * whose value would be a whole number of the next one moves on to that one).
 */
function cCoreTimeoutMs(ms: number): number {
  const up = (a: number, b: number) => Math.ceil(a / b);
  // [below, unit ms, next unit ms]: the three-digit ranges of each unit.
  const ranges: [number, number, number][] = [
    [1_000, 1, 1],
    [10_000, 10, 1_000],
    [100_000, 100, 1_000],
  ];
  for (const [below, unit, next] of ranges) {
    if (ms < below) {
      const value = up(ms, unit);
      if (unit === 1 || (value * unit) % next !== 0) return value * unit;
      break;
    }
  }
  const scaled = (n: number, unitMs: number, nextMs: number, then: (n: number) => number): number => {
    for (const [below, step] of [
      [1_000, 1],
      [10_000, 10],
      [100_000, 100],
    ] as const) {
      if (n < below) {
        const value = up(n, step);
        if ((value * step * unitMs) % nextMs !== 0) return value * step * unitMs;
        break;
      }
    }
    return then(up(n * unitMs, nextMs));
  };
  const hours = (h: number) => h * 3_600_000;
  const minutes = (m: number) => scaled(m, 60_000, 3_600_000, hours);
  return scaled(up(ms, 1_000), 1_000, 60_000, minutes);
}

test('C core rounds grpc-timeout up as observed (1 s is sent as 1010m, 5 s as 5010m)', () => {
  // C core's clock makes the time left at sending a hair over the deadline set: +1 ms.
  assert.equal(cCoreTimeoutMs(1_001), 1_010);
  assert.equal(cCoreTimeoutMs(5_001), 5_010);
  assert.equal(cCoreTimeoutMs(100_001), 101_000);
  assert.equal(cCoreTimeoutMs(3_600_001), 3_610_000);
  assert.equal(cCoreTimeoutMs(120_000), 120_000, '2 min is sent as 2M, exactly');
  assert.equal(cCoreTimeoutMs(68_001_653), 68_400_000, 'past 16.6 h: 19H, 398 s over');
});

test('the deadline margin leaves a C-core client the floor to spare at every deadline a wait can meet', () => {
  const maxWaitMs = 86_400_000; // the largest --max-wait-ms
  let checked = 0;
  for (let deadlineMs = 1; deadlineMs <= maxWaitMs + DEADLINE_MARGIN_CAP_MS; ) {
    for (const late of [0, 1, 2]) {
      const readMs = cCoreTimeoutMs(deadlineMs + late);
      const answeredAtMs = readMs - deadlineMarginMs(readMs);
      if (answeredAtMs > maxWaitMs) continue; // the wait ends first; the deadline bounds nothing
      const spareMs = deadlineMs - answeredAtMs;
      assert.ok(
        spareMs >= DEADLINE_MARGIN_FLOOR_MS - 3,
        `deadline ${deadlineMs} ms, read as ${readMs} ms: answered only ${spareMs} ms before it`,
      );
      checked++;
    }
    deadlineMs = deadlineMs < 20_000 ? deadlineMs + 1 : deadlineMs + 997;
  }
  assert.ok(checked > 100_000);
  assert.equal(deadlineMarginMs(0), DEADLINE_MARGIN_FLOOR_MS);
  assert.equal(deadlineMarginMs(maxWaitMs), DEADLINE_MARGIN_CAP_MS, 'the cap binds on the longest waits');
});
