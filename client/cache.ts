// CacheClient: the Cache RPCs with friendly types (Buffer values, bigint cas), plus
// update(), a compare-and-set loop for read-modify-write without a lock.
import { AbortError, CasConflictError, DeadlineExceededError, InternalError } from './errors.js';
import type {
  AddRequest,
  AddResponse__Output,
  CasRequest,
  CasResponse__Output,
  DeleteRequest,
  DeleteResponse__Output,
  GetRequest,
  GetResponse__Output,
  IncrRequest,
  IncrResponse__Output,
  SetRequest,
  SetResponse__Output,
  TouchRequest,
  TouchResponse__Output,
} from './common/index.js';
import type { Leadership } from './elections.js';
import type { LockHandle } from './lock-handle.js';
import type { CallOptions } from './unary-call.js';
import { int64Field, msField, toBuffer, uint64Field } from './wire.js';

/** A value to store: bytes as they are, or a string as UTF-8. */
export type CacheValue = Uint8Array | string;

export interface CacheItem {
  readonly value: Buffer;
  /** Changes on every write of the key; pass it to cas() or delete({ cas }). */
  readonly cas: bigint;
}

/**
 * The lock or leadership a fenced write is made under: a LockHandle or a Leadership, or the
 * same three fields by hand. The key remembers the lock (or election) and token of its last
 * fenced write, and the server refuses a fenced write with an older token (FencedOutError):
 * a holder whose lease ran out, or a leader that has been deposed, cannot overwrite what the
 * next one wrote. Lock "x" and election "x" are different fences.
 */
export type Fence =
  | Pick<LockHandle, 'name' | 'backend' | 'fencingToken'>
  | Pick<Leadership, 'election' | 'backend' | 'fencingToken'>;

export interface WriteOptions extends CallOptions {
  /**
   * Expiry in ms from now; default 0 = never expires (until evicted). At most 365 days
   * (InvalidArgumentError past it).
   */
  readonly ttlMs?: number;
}

export interface FencedWriteOptions extends WriteOptions {
  /**
   * Refuse the write (FencedOutError) if a newer holder of this lock has written the key. Default
   * none: unfenced.
   */
  readonly fence?: Fence;
}

export interface DeleteOptions extends CallOptions {
  /** Delete only if the key's cas is still this one; default (or 0n): whatever is there. */
  readonly cas?: bigint;
  /**
   * Refuse if a newer holder has written. A fenced delete keeps the fence, for the server's
   * tombstone retention, against later fenced writes; a delete without one lifts it. Default
   * none.
   */
  readonly fence?: Fence;
}

export interface IncrOptions extends CallOptions {
  /** Value stored when the key is absent (delta is not applied to it); default 0; 0 to 2^64 - 1. */
  readonly initial?: bigint | number;
  /**
   * Expiry in ms of a key created from `initial`; an existing key keeps its own, except a
   * value written with a fence (rewritten, it takes this one). Default 0 = never expires; at
   * most 365 days.
   */
  readonly ttlMs?: number;
}

export interface GetOrSetOptions extends WriteOptions {
  /**
   * How long, in ms, a miss's lease lasts (see Leases in cache.proto): across every client
   * of the store, on any number of servers, the first caller to miss a key loads it while the
   * others wait for its value. A loader that takes longer than this, or whose process dies,
   * lets the next caller take a new lease and load. Default 10_000; 1 to 3_600_000; 0 = no
   * lease (every client that misses loads, and the first value stored wins).
   */
  readonly leaseMs?: number;
}

export interface UpdateOptions extends FencedWriteOptions {
  /**
   * Get → fn → Cas rounds before giving up with CasConflictError; default 20; 0 gives up
   * before the first. `deadlineMs` bounds the rounds too: whichever ends first.
   */
  readonly maxAttempts?: number;
}

export type UpdateFn = (current: Buffer | undefined) => CacheValue | Promise<CacheValue>;

/**
 * The cache of one store (see LatchkeyClient.cache), with memcached semantics: values are
 * bytes, every write gives the key a new `cas`, TTLs are in ms.
 *
 * ```ts
 * const cache = client.cache(); // the server's default store; client.cache('memcached')
 * await cache.set('greeting', 'hello', { ttlMs: 60_000 });
 * const item = await cache.get('greeting'); // { value: Buffer, cas } or undefined
 * const { value: hits } = await cache.incr('hits', 1, { initial: 1 }); // 1n on a new key
 * // Read-modify-write under compare-and-set; fn may run more than once.
 * await cache.update('visits', (current) => String(Number(current?.toString() ?? '0') + 1));
 * // Cache-aside: concurrent misses of one key share a single load.
 * const config = await cache.getOrSet('config', () => loadConfig(), { ttlMs: 300_000 });
 * ```
 */
export interface CacheClient {
  /** The store asked for; '' = the server's default. */
  readonly store: string;
  /** undefined when the key is absent or expired. */
  get(key: string, options?: CallOptions): Promise<CacheItem | undefined>;
  /** Stores unconditionally; resolves with the new cas. */
  set(key: string, value: CacheValue, options?: FencedWriteOptions): Promise<bigint>;
  /** Stores only if the key's cas is still `cas`. The cas returned is the new one when STORED, else 0. */
  cas(
    key: string,
    value: CacheValue,
    cas: bigint,
    options?: FencedWriteOptions,
  ): Promise<{ outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint }>;
  /** Stores only if the key is absent (cas 0 when EXISTS). */
  add(
    key: string,
    value: CacheValue,
    options?: FencedWriteOptions,
  ): Promise<{ outcome: 'STORED' | 'EXISTS'; cas: bigint }>;
  /** EXISTS: a `cas` was given and the key has another. */
  delete(key: string, options?: DeleteOptions): Promise<'DELETED' | 'NOT_FOUND' | 'EXISTS'>;
  /**
   * Adds `delta` (negative to decrement) to a decimal counter: unsigned 64-bit, wrapping on
   * overflow, stopping at 0 on decrement. A value that is not a number: FailedPreconditionError.
   * A value written with a fence keeps its fence, and takes `ttlMs` as its expiry.
   */
  incr(key: string, delta: bigint | number, options?: IncrOptions): Promise<{ value: bigint; cas: bigint }>;
  /** Sets a new expiry (ms from now; 0 = never) without changing the value or its cas. */
  touch(key: string, ttlMs: number, options?: CallOptions): Promise<'TOUCHED' | 'NOT_FOUND'>;
  /**
   * Read-modify-write: Get, fn(current value or undefined), then Cas (or Add when the key was
   * absent), until one write wins. fn may run several times, so it must not have side
   * effects. `deadlineMs` covers the whole loop. Resolves with what was stored.
   */
  update(key: string, fn: UpdateFn, options?: UpdateOptions): Promise<CacheItem>;
  /**
   * Cache-aside read: the cached value, or else loader()'s value, stored with `ttlMs` and
   * returned. Concurrent calls for one key through one client share a single Get and a
   * single loader run (single-flight). Across clients, a miss takes the key's lease
   * (`leaseMs`): one caller in the whole fleet runs its loader, and the others wait for the
   * value it stores, polling no faster than the server's wait hint (about 20 ms). The
   * value is stored only while the lease is current: after a Delete or another write of the
   * key since the miss, it is returned to this caller but not stored. A loader that throws
   * stores nothing and gives the lease up: every caller waiting on it in this client sees the
   * error, and the next caller elsewhere loads. `deadlineMs` bounds the
   * whole call, waits included (DeadlineExceededError); the loader is not timed.
   */
  getOrSet(key: string, loader: () => CacheValue | Promise<CacheValue>, options?: GetOrSetOptions): Promise<Buffer>;
}

function expectOutcome<T extends string>(method: string, outcome: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(outcome)) return outcome as T;
  throw new InternalError(`${method}: the server answered outcome ${outcome}; expected one of ${allowed.join(', ')}`, {
    method,
  });
}

function fenceField(fence: Fence | undefined) {
  if (fence === undefined) return null;
  const token = uint64Field('fence.token', fence.fencingToken);
  return 'election' in fence
    ? { election: fence.election, backend: fence.backend, token }
    : { lock: fence.name, backend: fence.backend, token };
}

function jitter(attempt: number): Promise<void> {
  // Spreads contending updaters apart, so one of them wins the next round.
  return new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(2 ** attempt, 16)));
}

const NO_OPTIONS: CallOptions = Object.freeze({});
/** getOrSet's lease, in ms, when the caller names none. */
const DEFAULT_LEASE_MS = 10_000;

/** Sleeps ms, or less if the signal aborts (then throws its AbortError). */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError('getOrSet aborted', { cause: signal.reason }));
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
    };
    const aborted = () => {
      done();
      reject(new AbortError('getOrSet aborted', { cause: signal!.reason }));
    };
    const timer = setTimeout(() => (done(), resolve()), ms);
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

/** The Cache RPCs the cache client makes: request and response of each. */
export interface CacheRpcs {
  Get: [GetRequest, GetResponse__Output];
  Set: [SetRequest, SetResponse__Output];
  Cas: [CasRequest, CasResponse__Output];
  Add: [AddRequest, AddResponse__Output];
  Delete: [DeleteRequest, DeleteResponse__Output];
  Incr: [IncrRequest, IncrResponse__Output];
  Touch: [TouchRequest, TouchResponse__Output];
}

export type CacheMethod = keyof CacheRpcs;

/**
 * How the cache client reaches the server: one call of a Cache RPC with the caller's options;
 * the client decides whether it goes through the pipeline or as a unary RPC (cache-transport.ts).
 */
export type CacheCall = <M extends CacheMethod>(
  method: M,
  request: CacheRpcs[M][0],
  options: CallOptions,
) => Promise<CacheRpcs[M][1]>;

/** getOrSet calls in progress in one client, by store and key. */
export type Flights = Map<string, Promise<Buffer>>;

export function createCacheClient(
  send: CacheCall,
  store: string,
  defaultDeadlineMs: number,
  flights: Flights,
): CacheClient {
  const call = (options: CallOptions) => ({ signal: options.signal, deadlineMs: options.deadlineMs });

  /** getOrSet without a lease: Get, and on a miss load and Add (the first value stored wins). */
  async function getOrAdd(key: string, loader: () => CacheValue | Promise<CacheValue>, options: GetOrSetOptions) {
    const cached = await cache.get(key, options);
    if (cached !== undefined) return cached.value;
    const value = toBuffer(await loader());
    const added = await cache.add(key, value, options);
    if (added.outcome === 'STORED') return value;
    // Another client stored it between our Get and Add: theirs is the cached value.
    return (await cache.get(key, call(options)))?.value ?? value;
  }

  /** getOrSet with a lease: Get with lease_ms until the value, or a lease to load it under, comes back. */
  async function getOrLease(
    key: string,
    loader: () => CacheValue | Promise<CacheValue>,
    leaseMs: number,
    options: GetOrSetOptions,
  ): Promise<Buffer> {
    const lease_ms = msField('leaseMs', leaseMs);
    const deadlineMs = options.deadlineMs ?? defaultDeadlineMs;
    const end = Date.now() + deadlineMs;
    const step = (): CallOptions => ({ signal: options.signal, deadlineMs: Math.max(1, end - Date.now()) });
    for (;;) {
      const res = await send('Get', { store, key, lease_ms }, step());
      if (res.found) return res.value;
      if (res.lease_token !== '0') {
        let value: Buffer;
        try {
          value = toBuffer(await loader());
        } catch (err) {
          // Give the lease up, so that the next caller loads at once instead of waiting for it
          // to run out. NOTE: best effort: if this fails too, it runs out after leaseMs.
          await send('Delete', { store, key, cas: res.lease_token, fence: null }, step()).catch(() => {});
          throw err;
        }
        // EXISTS: a Delete or another write came after the miss, or the lease ran out while the
        // loader ran; what was loaded is not stored, but it is still this caller's answer.
        await send(
          'Set',
          { store, key, value, ttl_ms: msField('ttlMs', options.ttlMs ?? 0), lease_token: res.lease_token },
          step(),
        );
        return value;
      }
      // NOTE: a server from before leases ignores lease_ms and answers a plain miss.
      if (res.wait_ms === '0') return getOrAdd(key, loader, { ...options, ...step() });
      const waitMs = Math.max(1, Number(res.wait_ms));
      if (Date.now() + waitMs >= end)
        throw new DeadlineExceededError(
          `getOrSet of key "${key}": another caller held its lease for the whole ${deadlineMs} ms deadline; raise deadlineMs, or lower leaseMs if loaders die holding it`,
          { method: 'Get' },
        );
      await pause(waitMs, options.signal);
    }
  }

  const cache: CacheClient = {
    store,

    async get(key, options = NO_OPTIONS) {
      const res = await send('Get', { store, key }, options);
      return res.found ? { value: res.value, cas: BigInt(res.cas) } : undefined;
    },

    async set(key, value, options = NO_OPTIONS) {
      const request = {
        store,
        key,
        value: toBuffer(value),
        ttl_ms: msField('ttlMs', options.ttlMs ?? 0),
        fence: fenceField(options.fence),
      };
      const res = await send('Set', request, options);
      return BigInt(res.cas);
    },

    async cas(key, value, cas, options = NO_OPTIONS) {
      const request = {
        store,
        key,
        value: toBuffer(value),
        cas: uint64Field('cas', cas),
        ttl_ms: msField('ttlMs', options.ttlMs ?? 0),
        fence: fenceField(options.fence),
      };
      const res = await send('Cas', request, options);
      return {
        outcome: expectOutcome('Cas', res.outcome, ['STORED', 'EXISTS', 'NOT_FOUND'] as const),
        cas: BigInt(res.cas),
      };
    },

    async add(key, value, options = NO_OPTIONS) {
      const request = {
        store,
        key,
        value: toBuffer(value),
        ttl_ms: msField('ttlMs', options.ttlMs ?? 0),
        fence: fenceField(options.fence),
      };
      const res = await send('Add', request, options);
      return { outcome: expectOutcome('Add', res.outcome, ['STORED', 'EXISTS'] as const), cas: BigInt(res.cas) };
    },

    async delete(key, options = NO_OPTIONS) {
      const request = { store, key, cas: uint64Field('cas', options.cas ?? 0n), fence: fenceField(options.fence) };
      const res = await send('Delete', request, options);
      return expectOutcome('Delete', res.outcome, ['DELETED', 'NOT_FOUND', 'EXISTS'] as const);
    },

    async incr(key, delta, options = NO_OPTIONS) {
      const request = {
        store,
        key,
        delta: int64Field('delta', delta),
        initial: uint64Field('initial', options.initial ?? 0n),
        ttl_ms: msField('ttlMs', options.ttlMs ?? 0),
      };
      const res = await send('Incr', request, options);
      return { value: BigInt(res.value), cas: BigInt(res.cas) };
    },

    async touch(key, ttlMs, options = NO_OPTIONS) {
      const request = { store, key, ttl_ms: msField('ttlMs', ttlMs) };
      const res = await send('Touch', request, options);
      return expectOutcome('Touch', res.outcome, ['TOUCHED', 'NOT_FOUND'] as const);
    },

    getOrSet(key, loader, options = {}) {
      const flight = `${store}\u0000${key}`;
      let pending = flights.get(flight);
      if (pending === undefined) {
        const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
        pending = (leaseMs === 0 ? getOrAdd(key, loader, options) : getOrLease(key, loader, leaseMs, options)).finally(
          () => flights.delete(flight),
        );
        flights.set(flight, pending);
      }
      return pending;
    },

    async update(key, fn, options = {}) {
      const maxAttempts = options.maxAttempts ?? 20;
      const end = Date.now() + (options.deadlineMs ?? defaultDeadlineMs);
      const step = (): CallOptions => ({ signal: options.signal, deadlineMs: Math.max(1, end - Date.now()) });
      const write = { ttlMs: options.ttlMs ?? 0, fence: options.fence };
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        if (attempt > 1) await jitter(attempt);
        const current = await cache.get(key, step());
        const next = toBuffer(await fn(current?.value));
        // EXISTS (another write won) and NOT_FOUND (deleted or expired since the Get) both
        // mean the value fn saw is stale: go round again.
        const res =
          current === undefined
            ? await cache.add(key, next, { ...write, ...step() })
            : await cache.cas(key, next, current.cas, { ...write, ...step() });
        if (res.outcome === 'STORED') return { value: next, cas: res.cas };
      }
      throw new CasConflictError(
        `update of key "${key}" lost the compare-and-set race ${maxAttempts} times in a row; retry later or raise maxAttempts`,
        maxAttempts,
        { method: 'Cas' },
      );
    },
  };
  return cache;
}
