// The one call context that unary, server-streaming and bidi handlers share
// (src/call-context.ts), seen from outside through real calls: a client's cancel aborts the
// handler's signal with CancelledError, the call stays in flight until its work has settled
// (so shutdown waits for it), and it is then counted exactly once, as CANCELLED.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { CacheStore } from '../../src/cache/store.js';
import { CancelledError } from '../../src/errors.js';
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
