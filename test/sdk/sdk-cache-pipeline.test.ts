// What the SDK's cache pipeline adds over unary calls: concurrent calls share frames on one
// Cache/Pipeline stream, within a bounded window; it falls back to unary calls against a
// server without the method, while a broken stream backs off, and for big values; deadlines
// and aborts behave as on unary calls; an idle stream ends so the process can exit. The
// cache API's behaviour itself is checked both ways in sdk-cache*.test.ts.
// Traffic is observed from outside the SDK, with a grpc-js client interceptor.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  AbortError,
  connect,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
} from '../../client/index.js';
import { LruStore } from '../../src/cache/lru.js';
import type { CacheStore } from '../../src/cache/store.js';
import { startServer } from '../support/server.js';

/** What went over the wire, as a client interceptor saw it. */
interface Traffic {
  /** Pipeline streams opened. */
  streams: number;
  /** Pipeline request frames, the operations in them, and the most in one. */
  frames: number;
  ops: number;
  largestFrame: number;
  /** Status codes the Pipeline streams ended with, in order. */
  ended: grpc.status[];
  /** Unary calls by method name. */
  unary: Map<string, number>;
}

function watch(): { traffic: Traffic; channelOptions: grpc.ChannelOptions } {
  const traffic: Traffic = { streams: 0, frames: 0, ops: 0, largestFrame: 0, ended: [], unary: new Map() };
  const interceptor: grpc.Interceptor = (options, next) => {
    const method = options.method_definition.path.split('/').pop()!;
    if (method !== 'Pipeline') {
      traffic.unary.set(method, (traffic.unary.get(method) ?? 0) + 1);
      return new grpc.InterceptingCall(next(options));
    }
    traffic.streams++;
    const requester = new grpc.RequesterBuilder()
      .withStart((metadata, _listener, start) => {
        start(
          metadata,
          new grpc.ListenerBuilder()
            .withOnReceiveStatus((status, nextStatus) => {
              traffic.ended.push(status.code);
              nextStatus(status);
            })
            .build(),
        );
      })
      .withSendMessage((message: { ops: unknown[] }, send) => {
        traffic.frames++;
        traffic.ops += message.ops.length;
        traffic.largestFrame = Math.max(traffic.largestFrame, message.ops.length);
        send(message);
      })
      .build();
    return new grpc.InterceptingCall(next(options), requester);
  };
  return { traffic, channelOptions: { interceptors: [interceptor] } };
}

const unaryCalls = (traffic: Traffic) => [...traffic.unary.values()].reduce((a, b) => a + b, 0);

/** An LRU store named "slow" whose every operation takes `delayMs` first: calls that stay in flight. */
class SlowStore implements CacheStore {
  readonly kind = 'slow';
  readonly #lru: CacheStore = new LruStore({ maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 });
  running = 0;
  maxRunning = 0;
  completed = 0;
  constructor(public delayMs: number) {}

  async #slowly<T>(fn: () => Promise<T>): Promise<T> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      await sleep(this.delayMs);
      return await fn();
    } finally {
      this.running--;
      this.completed++;
    }
  }

  get: CacheStore['get'] = (...a) => this.#slowly(() => this.#lru.get(...a));
  set: CacheStore['set'] = (...a) => this.#slowly(() => this.#lru.set(...a));
  cas: CacheStore['cas'] = (...a) => this.#slowly(() => this.#lru.cas(...a));
  add: CacheStore['add'] = (...a) => this.#slowly(() => this.#lru.add(...a));
  delete: CacheStore['delete'] = (...a) => this.#slowly(() => this.#lru.delete(...a));
  incr: CacheStore['incr'] = (...a) => this.#slowly(() => this.#lru.incr(...a));
  touch: CacheStore['touch'] = (...a) => this.#slowly(() => this.#lru.touch(...a));
  close = () => this.#lru.close();
}

// NOTE: a small LRU: the default preallocates for 1M entries.
const serve = (
  slow?: SlowStore,
  options: { disablePipeline?: boolean; maxBatch?: number; maxStreams?: number } = {},
) => {
  const { disablePipeline, ...config } = options;
  return startServer({ lruMaxEntries: 10_000, ...config }, { stores: slow ? [slow] : [], disablePipeline });
};

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A TCP proxy in front of the server whose connections can be cut, as a network failure would. */
async function startProxy(target: string): Promise<{ address: string; cut(): void } & AsyncDisposable> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((downstream) => {
    const upstream = net.connect(port, host);
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        downstream.destroy();
        upstream.destroy();
      });
    }
    downstream.pipe(upstream).pipe(downstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cut = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    cut,
    async [Symbol.asyncDispose]() {
      cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('SDK cache pipeline', () => {
  it('multiplexes concurrent calls onto one stream, many to a frame, matched back by tag', async () => {
    await using s = await serve();
    const { traffic, channelOptions } = watch();
    await using client = connect(s.address, { channelOptions });
    const cache = client.cache();
    await Promise.all(Array.from({ length: 1000 }, (_, i) => cache.set(`k${i}`, `value ${i}`)));
    const framesBefore = traffic.frames;
    const items = await Promise.all(Array.from({ length: 1000 }, (_, i) => cache.get(`k${i}`)));
    items.forEach((item, i) => assert.equal(item?.value.toString(), `value ${i}`));
    const frames = traffic.frames - framesBefore;
    assert.ok(frames <= 10, `1000 concurrent gets took ${frames} frames`);
    assert.equal(traffic.ops, 2000);
    assert.equal(traffic.streams, 1);
    assert.equal(unaryCalls(traffic), 0, 'no cache call went unary');

    const { traffic: off, channelOptions: offOptions } = watch();
    await using unary = connect(s.address, { pipeline: false, channelOptions: offOptions });
    await Promise.all(Array.from({ length: 10 }, (_, i) => unary.cache().get(`k${i}`)));
    assert.equal(off.streams, 0, 'pipeline: false never opens the stream');
    assert.equal(off.unary.get('Get'), 10);
  });

  it("keeps frames within maxFrameOps and the server's --max-batch, and at most maxOutstanding calls in flight", async () => {
    const slow = new SlowStore(20);
    await using s = await serve(slow, { maxBatch: 100 });
    const { traffic, channelOptions } = watch();
    await using client = connect(s.address, { channelOptions, pipeline: { maxFrameOps: 100 } });
    // More than --max-batch calls at once: a frame over it would be refused op by op.
    const cas = await Promise.all(Array.from({ length: 1000 }, (_, i) => client.cache().set(`k${i}`, 'v')));
    assert.equal(new Set(cas).size, 1000);
    assert.ok(
      traffic.largestFrame <= 100 && traffic.frames >= 10,
      `${traffic.frames} frames, the largest of ${traffic.largestFrame} ops`,
    );

    const { traffic: narrow, channelOptions: narrowOptions } = watch();
    await using windowed = connect(s.address, { channelOptions: narrowOptions, pipeline: { maxOutstanding: 8 } });
    const counts = await Promise.all(Array.from({ length: 64 }, () => windowed.cache('slow').incr('n', 1)));
    assert.deepEqual(
      counts.map((c) => c.value).sort((a, b) => Number(a - b)),
      Array.from({ length: 64 }, (_, i) => BigInt(i)),
    );
    assert.ok(slow.maxRunning <= 8, `${slow.maxRunning} calls ran at once on the server`);
    assert.ok(narrow.largestFrame <= 8);
    assert.equal(unaryCalls(narrow), 0);
  });

  it('cuts frames by size, and sends a big value as a unary call', async () => {
    await using s = await serve();
    const { traffic, channelOptions } = watch();
    await using client = connect(s.address, { channelOptions });
    const cache = client.cache();
    const kib = Buffer.alloc(1024, 'x');
    await Promise.all(Array.from({ length: 100 }, (_, i) => cache.set(`kib${i}`, kib)));
    assert.equal(traffic.ops, 100);
    assert.ok(
      traffic.largestFrame < 40 && traffic.frames >= 3,
      `100 sets of 1 KiB in ${traffic.frames} frames, the largest of ${traffic.largestFrame}`,
    );
    const big = Buffer.alloc(64 * 1024, 'y');
    await cache.set('big', big);
    assert.equal(traffic.unary.get('Set'), 1);
    assert.deepEqual((await cache.get('big'))?.value, big);
  });

  it('falls back to unary calls against a server without the Pipeline method, running each call once', async () => {
    await using s = await serve(undefined, { disablePipeline: true });
    const { traffic, channelOptions } = watch();
    await using client = connect(s.address, { channelOptions });
    const cache = client.cache();
    // These are all on the stream when UNIMPLEMENTED comes back; they go again as unary calls.
    const counts = await Promise.all(Array.from({ length: 50 }, () => cache.incr('n', 1)));
    assert.equal(Math.max(...counts.map((c) => Number(c.value))), 49, 'no increment was lost or applied twice');
    assert.equal((await cache.get('n'))?.value.toString(), '49');
    await cache.set('word', 'not a number');
    await assert.rejects(cache.incr('word', 1), FailedPreconditionError);
    await assert.rejects(cache.get('white space'), InvalidArgumentError);
    assert.equal(traffic.streams, 1, 'one try at the stream, then unary for good');
    assert.deepEqual(traffic.ended, [grpc.status.UNIMPLEMENTED]);
    assert.equal(traffic.unary.get('Incr'), 51);
  });

  it('a server refusing the stream (at its --max-streams) gets the calls as unary ones, each run once', async () => {
    await using s = await serve(undefined, { maxStreams: 1 });
    await using holder = connect(s.address, { pipeline: { idleMs: 60_000 } });
    await holder.cache().set('n', '100'); // its stream stays open: the server's one
    const { traffic, channelOptions } = watch();
    await using client = connect(s.address, {
      channelOptions: { ...channelOptions, 'grpc.use_local_subchannel_pool': 1 },
    });
    const counts = await Promise.all(Array.from({ length: 20 }, () => client.cache().incr('n', 1)));
    assert.equal(Math.max(...counts.map((c) => Number(c.value))), 120, 'no increment was lost or applied twice');
    assert.deepEqual(traffic.ended, [grpc.status.RESOURCE_EXHAUSTED]);
    assert.equal(traffic.unary.get('Incr'), 20);
    await client.cache().get('n');
    assert.equal(traffic.streams, 1, 'no new try at the stream right after a refusal');
  });

  it('deadlines and aborts end a pipelined call like a unary one; its late answer is dropped', async () => {
    const slow = new SlowStore(1_000);
    await using s = await serve(slow);
    const { traffic, channelOptions } = watch();
    await using client = connect(s.address, { channelOptions });
    const cache = client.cache('slow');

    const started = performance.now();
    await assert.rejects(cache.get('a', { deadlineMs: 100 }), DeadlineExceededError);
    assert.ok(performance.now() - started < 900, 'the deadline, not the answer, ended it');

    const controller = new AbortController();
    const aborted = cache.set('b', 'v', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('no longer needed')), 50);
    await assert.rejects(
      aborted,
      (err: unknown) =>
        err instanceof AbortError && err.name === 'AbortError' && (err.cause as Error).message === 'no longer needed',
    );

    // The client's default deadline: one sweep timer for every call, not one timer each.
    await using short = connect(s.address, { channelOptions, deadlineMs: 150 });
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => short.cache('slow').get(`c${i}`)));
    assert.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof DeadlineExceededError));

    // The server still answers them all; those answers are dropped, and the streams go on.
    await until(() => slow.completed === 22, 'the slow calls to finish on the server');
    slow.delayMs = 0;
    assert.equal(
      (await cache.get('b'))?.value.toString(),
      'v',
      'an aborted write may still have been applied, as with unary',
    );
    assert.equal(await short.cache().get('c0'), undefined);
    assert.equal(unaryCalls(traffic), 0, 'all of it went through the pipeline');
  });

  it('a broken stream fails its calls with UnavailableError, retries Gets, goes unary while it backs off, then reopens', async () => {
    const slow = new SlowStore(500);
    await using s = await serve(slow);
    await using proxy = await startProxy(s.address);
    const { traffic, channelOptions } = watch();
    await using client = connect(proxy.address, {
      channelOptions: {
        ...channelOptions,
        'grpc.initial_reconnect_backoff_ms': 50,
        'grpc.max_reconnect_backoff_ms': 100,
      },
    });
    const sets = Array.from({ length: 5 }, (_, i) => client.cache('slow').set(`s${i}`, 'v'));
    const gets = Array.from({ length: 5 }, (_, i) => client.cache('slow').get(`g${i}`));
    await until(() => slow.running === 10, 'the calls to run on the server');
    proxy.cut();
    for (const set of sets)
      await assert.rejects(
        set,
        (err: unknown) => err instanceof UnavailableError && /may or may not have been applied/.test(err.message),
      );
    const unarySets = traffic.unary.get('Set') ?? 0;
    await client.cache().set('during-backoff', 'x');
    assert.equal(traffic.unary.get('Set'), unarySets + 1, 'a call right after the break goes unary');
    for (const item of await Promise.all(gets)) assert.equal(item, undefined);

    await sleep(200); // the first backoff is at most 100 ms
    const before = { streams: traffic.streams, unary: unaryCalls(traffic) };
    assert.equal((await client.cache().get('during-backoff'))?.value.toString(), 'x');
    assert.equal(unaryCalls(traffic), before.unary, 'after the backoff, calls use the stream again');
    assert.ok(traffic.streams >= 2 && traffic.streams <= before.streams + 1);
  });

  it('a stream that never connected gives its calls back: each fails as its unary call would, not "may or may not have been applied"', async () => {
    // A port nobody listens on: grpc-js fails the stream before sending anything.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(probe.address() as net.AddressInfo).port}`;
    await new Promise((resolve) => probe.close(resolve));
    const { traffic, channelOptions } = watch();
    await using client = connect(address, { channelOptions, retry: false, deadlineMs: 5_000 });
    const cache = client.cache();
    const results = await Promise.allSettled([cache.set('a', '1'), cache.get('b'), cache.incr('c', 1)]);
    for (const r of results) {
      assert.ok(
        r.status === 'rejected' && r.reason instanceof UnavailableError,
        String(r.status === 'rejected' ? r.reason : r.value),
      );
      assert.doesNotMatch((r.reason as Error).message, /may or may not/);
    }
    assert.equal(traffic.streams, 1);
    assert.deepEqual([...traffic.unary.keys()].sort(), ['Get', 'Incr', 'Set']);
  });

  it('server shutdown mid-stream: every call gets its answer or UnavailableError, none hangs', async () => {
    const slow = new SlowStore(100);
    await using s = await serve(slow);
    await using client = connect(s.address, { retry: false });
    const cache = client.cache('slow');
    const answered: number[] = [];
    const failures: unknown[] = [];
    const loops = Array.from({ length: 16 }, async (_, i) => {
      for (let n = 0; ; n++) {
        try {
          await cache.set(`k${i}`, String(n));
          answered.push(i);
        } catch (err) {
          failures.push(err);
          return;
        }
      }
    });
    await until(() => answered.length >= 32, 'calls to go through');
    const shutdown = s.server.shutdown(5_000);
    const settled = await Promise.race([Promise.all(loops).then(() => true), sleep(10_000, false, { ref: false })]);
    assert.ok(settled, 'every caller saw its call settle');
    await shutdown;
    assert.equal(failures.length, 16);
    for (const err of failures)
      assert.ok(err instanceof UnavailableError, `${(err as Error).name}: ${(err as Error).message}`);
  });

  it('ends an idle stream and reopens on demand; close() ends it too', async () => {
    await using s = await serve();
    const { traffic, channelOptions } = watch();
    const client = connect(s.address, { channelOptions, pipeline: { idleMs: 100 } });
    const cache = client.cache();
    await cache.set('a', '1');
    await until(() => traffic.ended.length === 1, 'the idle stream to end');
    assert.deepEqual(traffic.ended, [grpc.status.OK]);
    assert.equal((await cache.get('a'))?.value.toString(), '1');
    assert.equal(traffic.streams, 2);
    const last = cache.set('b', '2');
    await client.close();
    assert.equal(typeof (await last), 'bigint', 'a call made before close() still gets its answer');
    await until(() => traffic.ended.length === 2, 'close() to end the stream');
    assert.deepEqual(traffic.ended, [grpc.status.OK, grpc.status.OK]);
    await assert.rejects(cache.get('a'), /closed/);
  });

  it('an idle client process exits on its own after its last call, without close()', async () => {
    await using s = await serve();
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT; // else the child would speak the test runner's protocol
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/idle-client.ts', s.address], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // tsx compiles on start, slowly on a busy machine; the stream then ends after ~1 s idle.
      const code = await Promise.race([exit, sleep(30_000, 'timeout' as const, { ref: false })]);
      assert.notEqual(code, 'timeout', `the client process did not exit; it printed: ${output}`);
      assert.equal(code, 0);
      assert.equal(output.trim(), 'done');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
