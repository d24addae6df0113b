// What `npm run bench` measures. Scenarios come in groups; within a group every scenario is
// measured at one concurrency, then all of them at the next, so a scenario and the baseline
// it is divided by are measured back to back, seconds apart, in the same run.
//
// "ratio" is "higher is better" for speed: subject/baseline for throughput, baseline/subject
// for latency rows (hand-off's p50, the hot key's p99). For memory rows (ratioOf 'value') it is
// subject/baseline MB, lower is better, and their targets say so (value-ratio: ≤ max×).
import { once } from 'node:events';
import { connect as connectTcp } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import memjs from 'memjs';
import { connect, type ConnectOptions, type LatchkeyClient, type LockHandle } from '../client/index.js';
import {
  type CacheProto,
  type LocksProto,
  type CacheClient as CacheStub,
  type GetManyResponse__Output,
  type GetResponse__Output,
  type Lease__Output,
  type LocksClient as LocksStub,
  type PipelineResponse__Output,
  type SetManyResponse__Output,
  type SetResponse__Output,
  loadPackageDefinition,
} from '../client/common/index.js';
import { Redis } from 'ioredis';
import Redlock from 'redlock';
import { DirectEtcdMutex } from './etcd-mutex.js';
import { Samples, percentile, settle, sleep, type Cell, type LoadOptions, type Op } from './measure.js';
import { rssMb, startMemcachedChild } from './servers.js';

export type Needs = 'etcd' | 'memcached' | 'redis';

export type Target =
  /** ratio ≥ min, at the listed concurrencies (all when omitted). */
  | { readonly kind: 'ratio'; readonly min: number; readonly at?: readonly number[] }
  /** the server's CPU per op ≤ max × the baseline server's, at every concurrency. */
  | { readonly kind: 'cpu'; readonly max: number }
  /** p50 ≤ maxMs at every concurrency. */
  | { readonly kind: 'p50'; readonly maxMs: number }
  /** the measured value (e.g. MB) ≤ max. */
  | { readonly kind: 'value'; readonly max: number }
  /** the measured value ≤ max × the baseline's measured value (ratioOf 'value'). */
  | { readonly kind: 'value-ratio'; readonly max: number };

export interface Env {
  readonly quick: boolean;
  readonly echo: string;
  /** The latchkey server this scenario talks to. */
  readonly latchkey: string;
  readonly memcached: string | undefined;
  readonly etcd: string | undefined;
  readonly redis: string | undefined;
  /**
   * A second latchkey server started as the group's own is (same flags), on first call, and
   * stopped with the group's: for rows that must see a store of a different size side by
   * side with it (the memory group's 1 k rows). Only in groups with serverArgs.
   */
  readonly twin?: () => Promise<{ readonly address: string; readonly pid: number }>;
}

export interface Prepared {
  /** One operation of a closed-loop worker (the usual case). */
  readonly op?: Op;
  /** Or a measurement of its own at concurrency c (hand-off, memory). */
  readonly run?: (concurrency: number, load: LoadOptions) => Promise<Cell & { value?: number; note?: string }>;
  /** The server whose CPU time is metered, when it is not the one the scenario's kind implies (a twin). */
  readonly serverPid?: number;
  readonly close?: () => Promise<void> | void;
}

export interface Scenario {
  readonly id: string;
  readonly label: string;
  /** What the throughput column counts. */
  readonly unit: 'req' | 'keys' | 'cycles' | 'hand-offs' | 'MB';
  readonly needs?: readonly Needs[];
  /** Whether it talks to a latchkey server (with --profile it gets a profiled one of its own). */
  readonly latchkey: boolean;
  /** The server whose CPU time is metered, when it is not latchkey. */
  readonly meter?: 'echo' | 'memcached' | 'etcd' | 'redis';
  /** Overrides the group's levels (the RSS row runs once). */
  readonly concurrencies?: readonly number[];
  readonly baseline?: string;
  readonly ratioOf?: 'rps' | 'p50' | 'p99' | 'value';
  readonly target?: Target | readonly Target[];
  readonly prepare: (env: Env) => Promise<Prepared>;
}

export interface Group {
  readonly name: string;
  readonly title: string;
  /** Concurrency levels (hand-off: contenders). */
  readonly concurrencies: readonly number[];
  /**
   * by-concurrency: every scenario at c=1, then every one at c=16, ... (baselines next to
   * their subjects); by-row: each scenario at every level before the next (state carried
   * from one scenario to the next, as in the memory group).
   */
  readonly order: 'by-concurrency' | 'by-row';
  /** A latchkey server of the group's own (e.g. a big LRU), instead of the shared one. */
  readonly serverArgs?: readonly string[];
  /**
   * Rounds per cell when --rounds gives fewer (not in a quick run): for ratios that must
   * hold on a shared machine, more pairs of short rounds to take the median of.
   */
  readonly minRounds?: number;
  readonly scenarios: readonly Scenario[];
}

// ---- clients ------------------------------------------------------------------------------

type Services = (CacheProto & LocksProto)['latchkey']['v1'];
let services: Services | undefined;
const proto = (): Services =>
  (services ??= (grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as CacheProto & LocksProto).latchkey
    .v1);

/** A raw grpc-js stub on a channel of its own; no deadline, no metadata: the least a client can do. */
function cacheStub(address: string): CacheStub {
  return new (proto().Cache)(address, grpc.credentials.createInsecure());
}

function locksStub(address: string): LocksStub {
  return new (proto().Locks)(address, grpc.credentials.createInsecure());
}

function unary<Res>(fn: (cb: grpc.requestCallback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res!))));
}

/** The SDK, with the transparent cache pipeline asked for on or off. */
function sdk(address: string, pipeline: boolean, extra: Partial<ConnectOptions> = {}): LatchkeyClient {
  // `pipeline` is the SDK's switch for multiplexing concurrent cache calls onto Cache/Pipeline.
  const options: ConnectOptions & { readonly pipeline: boolean } = { ...extra, pipeline };
  return connect(address, options);
}

/**
 * Whether the SDK really sends cache calls through Cache/Pipeline when asked to: a client
 * with a recording interceptor makes a few concurrent Gets and reports the methods it saw.
 */
export async function sdkPipelines(address: string): Promise<boolean> {
  const methods = new Set<string>();
  const spy: grpc.Interceptor = (options, next) => {
    methods.add(options.method_definition.path);
    return new grpc.InterceptingCall(next(options));
  };
  const client = sdk(address, true, { channelOptions: { interceptors: [spy] } });
  try {
    await Promise.all(Array.from({ length: 8 }, (_, i) => client.cache('lru').get(`probe-${i}`)));
  } finally {
    await client.close();
  }
  return [...methods].some((m) => m.endsWith('/Pipeline'));
}

/** Multiplexes Get frames over one Cache/Pipeline stream: tags in, results matched by tag. */
class RawPipeline {
  readonly #stream: grpc.ClientDuplexStream<object, PipelineResponse__Output>;
  readonly #waiting = new Map<string, { left: number; resolve: () => void; reject: (err: Error) => void }>();
  #tag = 0;
  #failure: Error | undefined;

  constructor(stub: CacheStub) {
    this.#stream = stub.Pipeline();
    this.#stream.on('data', (response: PipelineResponse__Output) => {
      for (const result of response.results) {
        const frame = this.#waiting.get(result.tag);
        this.#waiting.delete(result.tag);
        if (frame === undefined) continue;
        if (result.result === 'error') frame.reject(new Error(`pipeline op failed: ${result.error!.message}`));
        else if (--frame.left === 0) frame.resolve();
      }
    });
    this.#stream.on('error', (err: Error) => {
      this.#failure = err;
      for (const frame of this.#waiting.values()) frame.reject(err);
      this.#waiting.clear();
    });
  }

  /** One frame of Gets; resolves when every one is answered. */
  get(store: string, keys: readonly string[]): Promise<number> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const frame = { left: keys.length, resolve: () => resolve(keys.length), reject };
      const ops = keys.map((key) => {
        const tag = String(++this.#tag);
        this.#waiting.set(tag, frame);
        return { tag, get: { store, key } };
      });
      this.#stream.write({ ops });
    });
  }

  close(): void {
    this.#stream.end();
  }
}

// ---- data -----------------------------------------------------------------------------------

const KEYS = 1000;
const VALUE = Buffer.alloc(100, 'v');
const getKey = (i: number) => `bench:get:${i % KEYS}`;
const setKey = (i: number) => `bench:set:${i % KEYS}`;
const batchKeys = (start: number, n: number) => Array.from({ length: n }, (_, j) => getKey(start + j));

/** Stores the Get keys: with SetMany on latchkey, with concurrent Sets on the echo server. */
async function preloadGrpc(stub: CacheStub, store: string, echo: boolean): Promise<void> {
  if (echo) {
    await Promise.all(
      Array.from({ length: KEYS }, (_, i) =>
        unary<SetResponse__Output>((cb) => stub.Set({ store, key: getKey(i), value: VALUE }, cb)),
      ),
    );
    return;
  }
  const items = Array.from({ length: KEYS }, (_, i) => ({ key: getKey(i), value: VALUE, ttl_ms: '0' }));
  const res = await unary<SetManyResponse__Output>((cb) => stub.SetMany({ store, items }, cb));
  const failed = res.results.find((r) => r.error);
  if (failed) throw new Error(`preload of ${store} failed: ${failed.error!.message}`);
}

function counter(): () => number {
  let n = 0;
  return () => n++;
}

// ---- scenario builders --------------------------------------------------------------------

/** Raw grpc-js unary Get (or Set) against the echo server or latchkey, same client code. */
function rawUnary(kind: 'get' | 'set', target: 'echo' | 'latchkey', store = 'lru'): Scenario['prepare'] {
  return async (env) => {
    const stub = cacheStub(target === 'echo' ? env.echo : env.latchkey);
    if (kind === 'get') await preloadGrpc(stub, store, target === 'echo');
    const next = counter();
    const op: Op =
      kind === 'get'
        ? () =>
            unary<GetResponse__Output>((cb) => stub.Get({ store, key: getKey(next()) }, cb)).then((res) => {
              if (!res.found) throw new Error('Get missed a preloaded key');
            })
        : () =>
            unary<SetResponse__Output>((cb) => stub.Set({ store, key: setKey(next()), value: VALUE }, cb)).then(
              () => {},
            );
    return { op, close: () => stub.close() };
  };
}

function sdkCache(kind: 'get' | 'set', store: 'lru' | 'memcached', pipeline: boolean): Scenario['prepare'] {
  return async (env) => {
    const stub = cacheStub(env.latchkey);
    if (kind === 'get') await preloadGrpc(stub, store, false);
    stub.close();
    const client = sdk(env.latchkey, pipeline);
    const cache = client.cache(store);
    const next = counter();
    const op: Op =
      kind === 'get'
        ? async () => {
            if ((await cache.get(getKey(next()))) === undefined) throw new Error('SDK get missed a preloaded key');
          }
        : async () => {
            await cache.set(setKey(next()), VALUE);
          };
    return { op, close: () => client.close() };
  };
}

/** Raw Cache/Pipeline frames of `batch` Gets each; concurrency = frames in flight on one stream. */
function rawStream(target: 'echo' | 'latchkey', batch: number): Scenario['prepare'] {
  return async (env) => {
    const stub = cacheStub(target === 'echo' ? env.echo : env.latchkey);
    await preloadGrpc(stub, 'lru', target === 'echo');
    const pipeline = new RawPipeline(stub);
    const next = counter();
    return {
      op: () => pipeline.get('lru', batch === 1 ? [getKey(next())] : batchKeys(next() * batch, batch)),
      close: () => {
        pipeline.close();
        stub.close();
      },
    };
  };
}

function getMany(target: 'echo' | 'latchkey', batch: number): Scenario['prepare'] {
  return async (env) => {
    const stub = cacheStub(target === 'echo' ? env.echo : env.latchkey);
    await preloadGrpc(stub, 'lru', target === 'echo');
    const next = counter();
    return {
      op: async () => {
        const res = await unary<GetManyResponse__Output>((cb) =>
          stub.GetMany({ store: 'lru', keys: batchKeys(next() * batch, batch) }, cb),
        );
        if (res.results.some((r) => !r.found)) throw new Error('GetMany missed a preloaded key');
        return batch;
      },
      close: () => stub.close(),
    };
  };
}

function memjsDirect(kind: 'get' | 'set'): Scenario['prepare'] {
  return async (env) => {
    const client = memjs.Client.create(env.memcached!, { logger: { log: () => {} } });
    if (kind === 'get') await Promise.all(Array.from({ length: KEYS }, (_, i) => client.set(getKey(i), VALUE, {})));
    const next = counter();
    const op: Op =
      kind === 'get'
        ? async () => {
            if ((await client.get(getKey(next()))).value === null) throw new Error('memjs get missed a preloaded key');
          }
        : async () => {
            await client.set(setKey(next()), VALUE, {});
          };
    return { op, close: () => client.close() };
  };
}

/** Uncontended acquire + release through the SDK: each worker has a lock name of its own. */
function sdkLockCycle(backend: 'memory' | 'file' | 'etcd'): Scenario['prepare'] {
  return async (env) => {
    const client = sdk(env.latchkey, false);
    const op: Op = async (w) => {
      const handle = await client.lock(`bench-cycle-${w}`, { backend, ttlMs: 30_000 });
      const state = await handle.release();
      if (state !== 'released') throw new Error(`release ended ${state}: ${handle.error?.message}`);
    };
    return { op, close: () => client.close() };
  };
}

/** The same cycle as two raw grpc-js calls: the server's share without the SDK's. */
function rawLockCycle(backend: 'memory'): Scenario['prepare'] {
  return async (env) => {
    const stub = locksStub(env.latchkey);
    const op: Op = async (w) => {
      const name = `bench-raw-${w}`;
      const lease = await unary<Lease__Output>((cb) =>
        stub.Acquire({ name, backend, ttl_ms: '30000', wait_ms: '0', owner: 'bench' }, cb),
      );
      await unary((cb) => stub.Release({ name, backend, lease_id: lease.lease_id }, cb));
    };
    return { op, close: () => stub.close() };
  };
}

/**
 * The anchor users compare a lock service against: redlock on one Redis (ioredis), each
 * worker cycling its own lock as the SDK rows do. One client connection, as one service
 * process would have; retries only matter under contention, which this cycle has none of.
 */
function redlockCycle(): Scenario['prepare'] {
  return async (env) => {
    const [host, port] = env.redis!.split(':');
    const redis = new Redis({ host, port: Number(port), enableAutoPipelining: false, lazyConnect: false });
    const redlock = new Redlock([redis], { retryCount: 0 });
    const op: Op = async (w) => {
      const lock = await redlock.lock(`bench-cycle-${w}`, 30_000);
      await lock.unlock();
    };
    return { op, close: () => void redis.disconnect() };
  };
}

function directEtcdCycle(perLockLease: boolean): Scenario['prepare'] {
  return async (env) => {
    const mutex = new DirectEtcdMutex(env.etcd!, {
      prefix: `bench/direct/${perLockLease ? 'lease' : 'session'}/`,
      perLockLease,
    });
    const op: Op = async (w) => mutex.unlock(await mutex.lock(`cycle-${w}`, w));
    return { op, close: () => mutex.close() };
  };
}

/**
 * Contended hand-off: `concurrency` contenders take turns on one lock, each holding it for
 * holdMs. A sample is the time from the holder calling release to the next holder's acquire
 * resolving, counted only when that next holder had asked at least holdMs/2 before the
 * release (so it was queued, not still on its way).
 */
function handoff<H>(
  holdMs: number,
  setup: (
    env: Env,
    name: string,
  ) => Promise<{ acquire(w: number): Promise<H>; release(w: number, held: H): Promise<void>; close(): Promise<void> }>,
): Scenario['prepare'] {
  return async (env) => ({
    run: async (concurrency, load) => {
      const lock = await setup(env, `bench-handoff-${concurrency}-${Date.now()}`);
      const samples = new Samples();
      let releaseStartedAt = -1;
      let measuring = false;
      let stopping = false;
      let windowStart = 0;
      let failure: unknown;
      const worker = async (w: number) => {
        while (!stopping) {
          try {
            const asked = performance.now();
            const held = await lock.acquire(w);
            const got = performance.now();
            if (measuring && releaseStartedAt >= windowStart && asked <= releaseStartedAt - holdMs / 2)
              samples.push(got - releaseStartedAt);
            await new Promise((resolve) => setTimeout(resolve, holdMs));
            releaseStartedAt = performance.now();
            await lock.release(w, held);
          } catch (err) {
            failure ??= err;
            stopping = true;
          }
        }
      };
      const workers = Array.from({ length: concurrency }, (_, w) => worker(w));
      await sleep(load.warmupMs, () => stopping);
      windowStart = performance.now();
      measuring = true;
      await sleep(load.durationMs, () => stopping);
      const seconds = (performance.now() - windowStart) / 1000;
      measuring = false;
      stopping = true;
      await settle(workers);
      await lock.close();
      if (failure !== undefined) throw failure;
      const sorted = samples.sorted();
      return {
        rps: sorted.length / seconds,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        samples: sorted.length,
      };
    },
  });
}

function sdkHandoff(backend: 'memory' | 'etcd', holdMs: number): Scenario['prepare'] {
  return handoff<LockHandle>(holdMs, async (env, name) => {
    const client = sdk(env.latchkey, false);
    return {
      acquire: () => client.lock(name, { backend, ttlMs: 30_000, waitMs: 60_000 }),
      release: async (_, handle) => {
        const state = await handle.release();
        if (state !== 'released') throw new Error(`release ended ${state}: ${handle.error?.message}`);
      },
      close: () => client.close(),
    };
  });
}

/** The memory hand-off through raw grpc-js calls: the same path without the SDK's share. */
function rawHandoff(holdMs: number): Scenario['prepare'] {
  return handoff<Lease__Output>(holdMs, async (env, name) => {
    const stub = locksStub(env.latchkey);
    return {
      acquire: () =>
        unary<Lease__Output>((cb) =>
          stub.Acquire({ name, backend: 'memory', ttl_ms: '30000', wait_ms: '60000', owner: 'bench' }, cb),
        ),
      release: async (_, lease) => {
        await unary((cb) => stub.Release({ name, backend: 'memory', lease_id: lease.lease_id }, cb));
      },
      close: async () => stub.close(),
    };
  });
}

function directEtcdHandoff(holdMs: number): Scenario['prepare'] {
  return handoff(holdMs, async (env, name) => {
    const mutex = new DirectEtcdMutex(env.etcd!, { prefix: 'bench/direct/handoff/' });
    return {
      acquire: (w) => mutex.lock(name, w),
      release: (_, held) => mutex.unlock(held),
      close: () => mutex.close(),
    };
  });
}

// ---- hot key -------------------------------------------------------------------------------

/** The hot key's TTL: it expires, and every client misses it at once, this often. */
const HOT_TTL_MS = 500;
/** The origin behind the cache loads one value at a time, each taking this long (a busy database). */
const HOT_LOAD_MS = 10;
/** Each client's pause between two reads (its own work), so the cache server is not the bottleneck. */
const HOT_THINK_MS = 5;

/**
 * `concurrency` service instances, each an SDK client of its own, read one hot key through
 * getOrSet; the key expires every HOT_TTL_MS and each miss loads it from a one-at-a-time
 * origin. Without a lease every instance that misses loads (a stampede that queues at the
 * origin); with one, one load per expiry, and the others wait for its value. Reports the
 * loader runs per expiry (value) and each read's latency.
 */
function hotKey(leaseMs: number): Scenario['prepare'] {
  return async (env) => ({
    run: async (concurrency, load) => {
      const clients = Array.from({ length: concurrency }, () => sdk(env.latchkey, true));
      const key = `bench:hot:${leaseMs}:${concurrency}:${Date.now()}`;
      const loads: number[] = [];
      let origin = Promise.resolve();
      const loader = () => {
        loads.push(performance.now());
        const loaded = origin.then(() => sleep(HOT_LOAD_MS));
        origin = loaded;
        return loaded.then(() => VALUE);
      };
      const samples = new Samples();
      let measuring = false;
      let stopping = false;
      let failure: unknown;
      const worker = async (w: number) => {
        const cache = clients[w]!.cache('lru');
        while (!stopping) {
          try {
            const start = performance.now();
            await cache.getOrSet(key, loader, { ttlMs: HOT_TTL_MS, leaseMs });
            if (measuring) samples.push(performance.now() - start);
            await sleep(HOT_THINK_MS);
          } catch (err) {
            failure ??= err;
            stopping = true;
          }
        }
      };
      try {
        const workers = Array.from({ length: concurrency }, (_, w) => worker(w));
        await sleep(load.warmupMs, () => stopping);
        const windowStart = performance.now();
        measuring = true;
        // At least a few expiries, however short the cell.
        await sleep(Math.max(load.durationMs, 4 * HOT_TTL_MS), () => stopping);
        const windowEnd = performance.now();
        measuring = false;
        stopping = true;
        await settle(workers);
        if (failure !== undefined) throw failure;
        // The loads of one expiry start within a load or a few of each other; the next
        // expiry's come a TTL later.
        const inWindow = loads.filter((t) => t >= windowStart && t < windowEnd);
        let expiries = 0;
        let first = Number.NEGATIVE_INFINITY;
        for (const t of inWindow) if (t - first > HOT_TTL_MS / 2) [expiries, first] = [expiries + 1, t];
        const sorted = samples.sorted();
        const perExpiry = inWindow.length / Math.max(1, expiries);
        return {
          rps: sorted.length / ((windowEnd - windowStart) / 1000),
          p50Ms: percentile(sorted, 50),
          p99Ms: percentile(sorted, 99),
          samples: sorted.length,
          value: perExpiry,
          note: `c=${concurrency}: ${perExpiry.toFixed(2)} loader runs per expiry (${inWindow.length} in ${expiries} expiries of a ${HOT_TTL_MS} ms TTL; origin ${HOT_LOAD_MS} ms per load, one at a time)`,
        };
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
    },
  });
}

// ---- LRU memory -----------------------------------------------------------------------------

export const RSS_ENTRIES = 1_000_000;
const QUICK_RSS_ENTRIES = 20_000;
const memKey = (i: number) => `mem:${String(i).padStart(7, '0')}`;

/** SetMany batches of 1000 with 4 in flight: keys memKey(from..to-1), 100-byte values. */
async function fill(stub: CacheStub, from: number, to: number): Promise<void> {
  const BATCH = 1000;
  let next = from;
  const loader = async () => {
    while (next < to) {
      const start = next;
      next = Math.min(to, next + BATCH);
      const items: { key: string; value: Buffer; ttl_ms: string }[] = [];
      for (let i = start; i < next; i++) items.push({ key: memKey(i), value: VALUE, ttl_ms: '0' });
      const res = await unary<SetManyResponse__Output>((cb) => stub.SetMany({ store: 'lru', items }, cb));
      const failed = res.results.find((r) => r.error);
      if (failed) throw new Error(`SetMany failed: ${failed.error!.message}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, loader));
}

/**
 * Random Gets (or Sets of the same 100 bytes) over the first `keys` memKeys. The 1 k rows
 * load their keys into the group's twin server, so that they run in the same rounds as the
 * 1 M rows on the group's own server (which the RSS row loaded) and differ only in the size
 * of the store.
 */
function randomOp(kind: 'get' | 'set', keys: (env: Env) => number): Scenario['prepare'] {
  return async (env) => {
    const n = keys(env);
    const twin = n === 1000 ? await env.twin!() : undefined;
    const stub = cacheStub(twin?.address ?? env.latchkey);
    if (twin !== undefined && kind === 'get') await fill(stub, 0, 1000);
    const key = () => memKey(Math.floor(Math.random() * n));
    const op: Op =
      kind === 'get'
        ? () =>
            unary<GetResponse__Output>((cb) => stub.Get({ store: 'lru', key: key() }, cb)).then((res) => {
              if (!res.found) throw new Error('random Get missed a loaded key');
            })
        : () =>
            unary<SetResponse__Output>((cb) => stub.Set({ store: 'lru', key: key(), value: VALUE }, cb)).then(() => {});
    return { op, serverPid: twin?.pid, close: () => stub.close() };
  };
}

/**
 * Stores memKey(0..entries-1) = VALUE in memcached over its text protocol (pipelined sets with
 * noreply), then checks with `stats` that it holds them all and has finished growing its hash
 * table (which it does in a background thread, holding both tables meanwhile).
 */
async function fillMemcached(address: string, entries: number): Promise<void> {
  const at = address.lastIndexOf(':');
  const socket = connectTcp(Number(address.slice(at + 1)), address.slice(0, at));
  await once(socket, 'connect');
  let replies = '';
  socket.setEncoding('latin1').on('data', (chunk: string) => (replies += chunk));
  const ask = async (command: string, end: string) => {
    replies = '';
    socket.write(command);
    const deadline = Date.now() + 30_000;
    while (!replies.endsWith(end)) {
      if (Date.now() > deadline) throw new Error(`memcached did not answer ${command.trim()} within 30 s: ${replies}`);
      await sleep(5);
    }
    return replies;
  };
  const stat = (stats: string, name: string) => Number(new RegExp(`^STAT ${name} (\\d+)\r$`, 'm').exec(stats)?.[1]);
  try {
    const CRLF = Buffer.from('\r\n');
    for (let from = 0; from < entries; from += 1000) {
      const parts: Buffer[] = [];
      for (let i = from; i < Math.min(entries, from + 1000); i++)
        parts.push(Buffer.from(`set ${memKey(i)} 0 0 ${VALUE.length} noreply\r\n`), VALUE, CRLF);
      if (!socket.write(Buffer.concat(parts))) await once(socket, 'drain');
    }
    // mn (meta no-op) answers once every command before it has run; errors would come first.
    const sync = await ask('mn\r\n', 'MN\r\n');
    if (sync !== 'MN\r\n') throw new Error(`memcached refused sets: ${sync.slice(0, 200)}`);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const stats = await ask('stats\r\n', 'END\r\n');
      if (stat(stats, 'curr_items') !== entries || stat(stats, 'evictions') !== 0)
        throw new Error(
          `memcached holds ${stat(stats, 'curr_items')} of ${entries} items (${stat(stats, 'evictions')} evicted)`,
        );
      if (stat(stats, 'hash_is_expanding') === 0) break;
      if (Date.now() > deadline) throw new Error('memcached was still growing its hash table 30 s after loading');
      await sleep(50);
    }
  } finally {
    socket.destroy();
  }
}

// ---- the groups -----------------------------------------------------------------------------

const C = [1, 16, 64] as const;
/** The RSS row needs the server's pid; run.ts provides it. */
export interface MemoryProbe {
  rssMb(): number;
  /** A full garbage collection in the server. */
  gc(): Promise<void>;
}
let memoryProbe: MemoryProbe | undefined;
export const setMemoryProbe = (probe: MemoryProbe) => (memoryProbe = probe);

/** Entries the memory group loads (the Get-over-1M row reads what the RSS row loaded). */
export const rssEntries = (env: Env) => (env.quick ? QUICK_RSS_ENTRIES : RSS_ENTRIES);

export const GROUPS: readonly Group[] = [
  {
    name: 'unary',
    title: 'Unary calls vs a bare grpc-js echo server',
    concurrencies: C,
    order: 'by-concurrency',
    scenarios: [
      {
        id: 'echo.get',
        label: 'echo server: unary Get (raw grpc-js)',
        unit: 'req',
        meter: 'echo',
        latchkey: false,
        prepare: rawUnary('get', 'echo'),
      },
      {
        id: 'lru.get.raw',
        label: 'latchkey LRU: unary Get (raw grpc-js)',
        unit: 'req',
        latchkey: true,
        baseline: 'echo.get',
        // A load generator that is not the bottleneck sees the server's overhead per call; its
        // CPU per op against the echo server's says the same from this one.
        target: { kind: 'cpu', max: 1.1 },
        prepare: rawUnary('get', 'latchkey'),
      },
      {
        id: 'lru.get.sdk',
        label: 'latchkey LRU: SDK get, pipeline off',
        unit: 'req',
        latchkey: true,
        baseline: 'echo.get',
        prepare: sdkCache('get', 'lru', false),
      },
      {
        id: 'echo.set',
        label: 'echo server: unary Set (raw grpc-js)',
        unit: 'req',
        meter: 'echo',
        latchkey: false,
        prepare: rawUnary('set', 'echo'),
      },
      {
        id: 'lru.set.raw',
        label: 'latchkey LRU: unary Set (raw grpc-js)',
        unit: 'req',
        latchkey: true,
        baseline: 'echo.set',
        prepare: rawUnary('set', 'latchkey'),
      },
      {
        id: 'lru.set.sdk',
        label: 'latchkey LRU: SDK set, pipeline off',
        unit: 'req',
        latchkey: true,
        baseline: 'echo.set',
        prepare: sdkCache('set', 'lru', false),
      },
      {
        id: 'lock.memory.sdk',
        label: 'memory lock: acquire+release (SDK)',
        unit: 'cycles',
        latchkey: true,
        baseline: 'echo.get',
        target: { kind: 'ratio', min: 0.45 },
        prepare: sdkLockCycle('memory'),
      },
      {
        id: 'lock.memory.raw',
        label: 'memory lock: acquire+release (raw grpc-js)',
        unit: 'cycles',
        latchkey: true,
        baseline: 'echo.get',
        prepare: rawLockCycle('memory'),
      },
      {
        id: 'lock.file.sdk',
        label: 'file lock: acquire+release (SDK)',
        unit: 'cycles',
        latchkey: true,
        baseline: 'echo.get',
        prepare: sdkLockCycle('file'),
      },
    ],
  },
  {
    name: 'stream',
    title: 'Cache/Pipeline frames vs the echo server over the same bidi stream',
    concurrencies: C,
    order: 'by-concurrency',
    scenarios: [
      {
        id: 'echo.stream.get',
        label: 'echo server: Pipeline, 1 Get per frame',
        unit: 'req',
        meter: 'echo',
        latchkey: false,
        prepare: rawStream('echo', 1),
      },
      {
        id: 'lru.pipeline.get',
        label: 'latchkey LRU: Pipeline, 1 Get per frame',
        unit: 'req',
        latchkey: true,
        baseline: 'echo.stream.get',
        prepare: rawStream('latchkey', 1),
      },
      {
        id: 'echo.stream.get100',
        label: 'echo server: Pipeline, 100 Gets per frame',
        unit: 'keys',
        meter: 'echo',
        latchkey: false,
        prepare: rawStream('echo', 100),
      },
      {
        id: 'lru.pipeline.get100',
        label: 'latchkey LRU: Pipeline, 100 Gets per frame',
        unit: 'keys',
        latchkey: true,
        baseline: 'echo.stream.get100',
        prepare: rawStream('latchkey', 100),
      },
      {
        id: 'echo.getmany100',
        label: 'echo server: GetMany, 100 keys',
        unit: 'keys',
        meter: 'echo',
        latchkey: false,
        prepare: getMany('echo', 100),
      },
      {
        id: 'lru.getmany100',
        label: 'latchkey LRU: GetMany, 100 keys',
        unit: 'keys',
        latchkey: true,
        baseline: 'echo.getmany100',
        prepare: getMany('latchkey', 100),
      },
    ],
  },
  {
    name: 'memcached',
    title: 'SDK cache calls vs a direct memjs client on the same memcached',
    concurrencies: C,
    order: 'by-concurrency',
    scenarios: [
      {
        id: 'memjs.get',
        label: 'memjs direct: get',
        unit: 'req',
        meter: 'memcached',
        needs: ['memcached'],
        latchkey: false,
        prepare: memjsDirect('get'),
      },
      {
        id: 'lru.get.sdk-pipe',
        label: 'latchkey LRU: SDK get, pipeline on',
        unit: 'req',
        needs: ['memcached'],
        latchkey: true,
        baseline: 'memjs.get',
        target: { kind: 'ratio', min: 0.5, at: [64] },
        prepare: sdkCache('get', 'lru', true),
      },
      {
        id: 'mc.get.sdk',
        label: 'latchkey memcached: SDK get, pipeline off',
        unit: 'req',
        needs: ['memcached'],
        latchkey: true,
        baseline: 'memjs.get',
        prepare: sdkCache('get', 'memcached', false),
      },
      {
        id: 'mc.get.sdk-pipe',
        label: 'latchkey memcached: SDK get, pipeline on',
        unit: 'req',
        needs: ['memcached'],
        latchkey: true,
        baseline: 'memjs.get',
        target: { kind: 'ratio', min: 0.4 },
        prepare: sdkCache('get', 'memcached', true),
      },
      {
        id: 'memjs.set',
        label: 'memjs direct: set',
        unit: 'req',
        meter: 'memcached',
        needs: ['memcached'],
        latchkey: false,
        prepare: memjsDirect('set'),
      },
      {
        id: 'lru.set.sdk-pipe',
        label: 'latchkey LRU: SDK set, pipeline on',
        unit: 'req',
        needs: ['memcached'],
        latchkey: true,
        baseline: 'memjs.set',
        prepare: sdkCache('set', 'lru', true),
      },
      {
        id: 'mc.set.sdk',
        label: 'latchkey memcached: SDK set, pipeline off',
        unit: 'req',
        needs: ['memcached'],
        latchkey: true,
        baseline: 'memjs.set',
        prepare: sdkCache('set', 'memcached', false),
      },
      {
        id: 'mc.set.sdk-pipe',
        label: 'latchkey memcached: SDK set, pipeline on',
        unit: 'req',
        needs: ['memcached'],
        latchkey: true,
        baseline: 'memjs.set',
        prepare: sdkCache('set', 'memcached', true),
      },
    ],
  },
  {
    name: 'locks',
    title: 'Lock cycle vs redlock on one Redis (the same load generator drives both)',
    concurrencies: C,
    order: 'by-concurrency',
    scenarios: [
      {
        id: 'redlock.cycle',
        label: 'redlock on one Redis: lock+unlock',
        unit: 'cycles',
        meter: 'redis',
        needs: ['redis'],
        latchkey: false,
        prepare: redlockCycle(),
      },
      {
        id: 'lock.memory.vs-redlock',
        label: 'memory lock: acquire+release (SDK)',
        unit: 'cycles',
        needs: ['redis'],
        latchkey: true,
        baseline: 'redlock.cycle',
        target: [
          { kind: 'ratio', min: 0.6, at: [1] },
          { kind: 'ratio', min: 1.0, at: [16, 64] },
        ],
        prepare: sdkLockCycle('memory'),
      },
    ],
  },
  {
    name: 'etcd',
    title: 'etcd lock cycle vs the same mutex recipe driven directly with etcd3',
    concurrencies: C,
    order: 'by-concurrency',
    scenarios: [
      {
        id: 'etcd3.cycle',
        label: 'etcd3 direct mutex: lock+unlock (session lease)',
        unit: 'cycles',
        meter: 'etcd',
        needs: ['etcd'],
        latchkey: false,
        prepare: directEtcdCycle(false),
      },
      {
        id: 'lock.etcd.sdk',
        label: 'etcd lock: acquire+release (SDK)',
        unit: 'cycles',
        needs: ['etcd'],
        latchkey: true,
        baseline: 'etcd3.cycle',
        target: { kind: 'ratio', min: 0.8 },
        prepare: sdkLockCycle('etcd'),
      },
      {
        id: 'etcd3.cycle.lease',
        label: 'etcd3 direct mutex: grant+lock+unlock+revoke (lease per lock)',
        unit: 'cycles',
        meter: 'etcd',
        needs: ['etcd'],
        latchkey: false,
        baseline: 'etcd3.cycle',
        prepare: directEtcdCycle(true),
      },
    ],
  },
  {
    name: 'handoff',
    title: 'Contended hand-off: release → next waiter granted (concurrency = contenders on one lock)',
    concurrencies: [2, 16, 64],
    order: 'by-concurrency',
    scenarios: [
      {
        id: 'handoff.memory',
        label: 'memory lock hand-off (SDK, 1 ms hold)',
        unit: 'hand-offs',
        latchkey: true,
        target: { kind: 'p50', maxMs: 0.4 },
        prepare: sdkHandoff('memory', 1),
      },
      {
        id: 'handoff.memory.raw',
        label: 'memory lock hand-off (raw grpc-js, 1 ms hold)',
        unit: 'hand-offs',
        latchkey: true,
        prepare: rawHandoff(1),
      },
      {
        id: 'etcd3.handoff',
        label: 'etcd3 direct mutex hand-off (20 ms hold)',
        unit: 'hand-offs',
        meter: 'etcd',
        needs: ['etcd'],
        latchkey: false,
        prepare: directEtcdHandoff(20),
      },
      {
        id: 'handoff.etcd',
        label: 'etcd lock hand-off (SDK, 20 ms hold)',
        unit: 'hand-offs',
        needs: ['etcd'],
        latchkey: true,
        baseline: 'etcd3.handoff',
        ratioOf: 'p50',
        prepare: sdkHandoff('etcd', 20),
      },
    ],
  },
  {
    name: 'hotkey',
    title: `One hot key expiring every ${HOT_TTL_MS} ms, read through getOrSet by c clients (one SDK client each), without and with leases`,
    concurrencies: [16, 64],
    order: 'by-concurrency',
    scenarios: [
      {
        id: 'hotkey.nolease',
        label: 'getOrSet without a lease (leaseMs 0): every client that misses loads',
        unit: 'req',
        latchkey: true,
        prepare: hotKey(0),
      },
      {
        id: 'hotkey.lease',
        label: 'getOrSet with a lease (leaseMs 2000): one load per expiry',
        unit: 'req',
        latchkey: true,
        baseline: 'hotkey.nolease',
        ratioOf: 'p99',
        prepare: hotKey(2_000),
      },
    ],
  },
  {
    name: 'memory',
    title:
      'LRU memory vs memcached, and per-op cost with 1 k vs 1 M entries of 100 bytes (servers of their own; 1 k and 1 M rows in the same rounds)',
    concurrencies: C,
    order: 'by-concurrency',
    serverArgs: ['--lru-max-entries', '1100000', '--lru-max-bytes', String(4 * 1024 ** 3)],
    // NOTE: the 1 M rows run on the group's server and the 1 k rows on its twin: each 1 M row
    // comes right after its 1 k row (the RSS row, which loads the 1 M entries, before both),
    // and its ratio is the median of 7 such pairs of rounds.
    minRounds: 7,
    scenarios: [
      {
        id: 'memcached.rss.1m',
        label: 'memcached: RSS added by 1 M × 100-byte items',
        unit: 'MB',
        needs: ['memcached'],
        latchkey: false,
        concurrencies: [1],
        prepare: async (env) => {
          // A memcached of its own with room for every item (the shared one has 64 MB).
          const memcached = await startMemcachedChild({ memoryMb: 1024 });
          return {
            run: async () => {
              const entries = rssEntries(env);
              const idle = rssMb(memcached.pid);
              const start = performance.now();
              await fillMemcached(memcached.address, entries);
              const loadS = (performance.now() - start) / 1000;
              await sleep(env.quick ? 100 : 1_000);
              const after = rssMb(memcached.pid);
              return {
                rps: entries / loadS,
                p50Ms: NaN,
                p99Ms: NaN,
                samples: 0,
                value: after - idle,
                note: `${entries.toLocaleString('en-US')} items, loaded by pipelined text-protocol sets at the rate shown; RSS ${idle.toFixed(0)} MB idle, ${after.toFixed(0)} MB loaded (${(((after - idle) * 1024 * 1024) / entries).toFixed(0)} B per item)`,
              };
            },
            close: () => memcached.stop(),
          };
        },
      },
      {
        id: 'lru.rss.1m',
        label: 'latchkey LRU: RSS added by 1 M × 100-byte entries (after a full GC)',
        unit: 'MB',
        latchkey: true,
        concurrencies: [1],
        baseline: 'memcached.rss.1m',
        ratioOf: 'value',
        target: { kind: 'value-ratio', max: 1.3 },
        prepare: async (env) => ({
          run: async () => {
            const stub = cacheStub(env.latchkey);
            const entries = rssEntries(env);
            const probe = memoryProbe!;
            await probe.gc();
            const idle = probe.rssMb();
            const start = performance.now();
            await fill(stub, 0, entries);
            const loadS = (performance.now() - start) / 1000;
            stub.close();
            await sleep(env.quick ? 100 : 1_000);
            const loaded = probe.rssMb();
            // What the entries cost once the garbage of loading them is gone.
            await probe.gc();
            const after = probe.rssMb();
            const perEntry = ((after - idle) * 1024 * 1024) / entries;
            return {
              rps: entries / loadS,
              p50Ms: NaN,
              p99Ms: NaN,
              samples: 0,
              value: after - idle,
              note: `${entries.toLocaleString('en-US')} entries, loaded by SetMany at the rate shown; RSS ${idle.toFixed(0)} MB idle, ${loaded.toFixed(0)} MB right after loading, ${after.toFixed(0)} MB after a full GC (${perEntry.toFixed(0)} B per entry)`,
            };
          },
        }),
      },
      {
        id: 'lru.get.1k',
        label: 'latchkey LRU: random Get over 1 k entries (raw grpc-js)',
        unit: 'req',
        latchkey: true,
        prepare: randomOp('get', () => 1000),
      },
      {
        id: 'lru.get.1m',
        label: 'latchkey LRU: random Get over 1 M entries (raw grpc-js)',
        unit: 'req',
        latchkey: true,
        baseline: 'lru.get.1k',
        target: { kind: 'ratio', min: 0.9 },
        prepare: randomOp('get', rssEntries),
      },
      {
        id: 'lru.set.1k',
        label: 'latchkey LRU: random Set over 1 k entries (raw grpc-js)',
        unit: 'req',
        latchkey: true,
        prepare: randomOp('set', () => 1000),
      },
      {
        id: 'lru.set.1m',
        label: 'latchkey LRU: random Set over 1 M entries (raw grpc-js)',
        unit: 'req',
        latchkey: true,
        baseline: 'lru.set.1k',
        target: { kind: 'ratio', min: 0.9 },
        prepare: randomOp('set', rssEntries),
      },
    ],
  },
];

/** Every scenario id, in the order they run. */
export const SCENARIO_IDS: readonly string[] = GROUPS.flatMap((g) => g.scenarios.map((s) => s.id));
