// CacheClient: the Cache RPCs with friendly types (Buffer values, bigint cas), plus
// update(), a compare-and-set loop for read-modify-write without a lock.
import { CasConflictError, InternalError } from './errors.js';
import type { AddRequest } from './generated/latchkey/v1/AddRequest.js';
import type { AddResponse__Output } from './generated/latchkey/v1/AddResponse.js';
import type { CasRequest } from './generated/latchkey/v1/CasRequest.js';
import type { CasResponse__Output } from './generated/latchkey/v1/CasResponse.js';
import type { DeleteRequest } from './generated/latchkey/v1/DeleteRequest.js';
import type { DeleteResponse__Output } from './generated/latchkey/v1/DeleteResponse.js';
import type { GetRequest } from './generated/latchkey/v1/GetRequest.js';
import type { GetResponse__Output } from './generated/latchkey/v1/GetResponse.js';
import type { IncrRequest } from './generated/latchkey/v1/IncrRequest.js';
import type { IncrResponse__Output } from './generated/latchkey/v1/IncrResponse.js';
import type { SetRequest } from './generated/latchkey/v1/SetRequest.js';
import type { SetResponse__Output } from './generated/latchkey/v1/SetResponse.js';
import type { TouchRequest } from './generated/latchkey/v1/TouchRequest.js';
import type { TouchResponse__Output } from './generated/latchkey/v1/TouchResponse.js';
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
  /** Expiry in ms from now; default 0 = never expires (until evicted). */
  readonly ttlMs?: number;
}

export interface FencedWriteOptions extends WriteOptions {
  /** Refuse the write if a newer holder of this lock has written the key. */
  readonly fence?: Fence;
}

export interface DeleteOptions extends CallOptions {
  /** Delete only if the key's cas is still this one; default: whatever is there. */
  readonly cas?: bigint;
  /** Refuse if a newer holder has written; a fenced delete keeps the fence for later writes. */
  readonly fence?: Fence;
}

export interface IncrOptions extends CallOptions {
  /** Value stored when the key is absent (delta is not applied to it); default 0. */
  readonly initial?: bigint | number;
  /** Expiry of a key created from `initial`; an existing key keeps its own. Default 0 = none. */
  readonly ttlMs?: number;
}

export interface UpdateOptions extends FencedWriteOptions {
  /** Get → fn → Cas rounds before giving up with CasConflictError; default 20. */
  readonly maxAttempts?: number;
}

export type UpdateFn = (current: Buffer | undefined) => CacheValue | Promise<CacheValue>;

export interface CacheClient {
  /** The store asked for; '' = the server's default. */
  readonly store: string;
  /** undefined when the key is absent or expired. */
  get(key: string, options?: CallOptions): Promise<CacheItem | undefined>;
  /** Stores unconditionally; resolves with the new cas. */
  set(key: string, value: CacheValue, options?: FencedWriteOptions): Promise<bigint>;
  /** Stores only if the key's cas is still `cas`. The cas returned is the new one when STORED. */
  cas(
    key: string,
    value: CacheValue,
    cas: bigint,
    options?: FencedWriteOptions,
  ): Promise<{ outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint }>;
  /** Stores only if the key is absent. */
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
   * single loader run (single-flight), so a cold key does not stampede the loader. The
   * value is stored with Add: if another client filled the key first, its value wins and
   * is returned. A loader that throws stores nothing; every caller waiting on it sees the
   * error.
   */
  getOrSet(key: string, loader: () => CacheValue | Promise<CacheValue>, options?: WriteOptions): Promise<Buffer>;
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
        pending = (async () => {
          const cached = await cache.get(key, options);
          if (cached !== undefined) return cached.value;
          const value = toBuffer(await loader());
          const added = await cache.add(key, value, options);
          if (added.outcome === 'STORED') return value;
          // Another client stored it between our Get and Add: theirs is the cached value.
          return (await cache.get(key, call(options)))?.value ?? value;
        })().finally(() => flights.delete(flight));
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
