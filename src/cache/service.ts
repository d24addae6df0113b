// gRPC handlers of latchkey.v1.Cache: validate, pick the store, call it, shape the answer.
import type { AddRequest__Output } from '../../client/generated/latchkey/v1/AddRequest.js';
import type { AddResponse } from '../../client/generated/latchkey/v1/AddResponse.js';
import type { CasRequest__Output } from '../../client/generated/latchkey/v1/CasRequest.js';
import type { CasResponse } from '../../client/generated/latchkey/v1/CasResponse.js';
import type { DeleteRequest__Output } from '../../client/generated/latchkey/v1/DeleteRequest.js';
import type { DeleteResponse } from '../../client/generated/latchkey/v1/DeleteResponse.js';
import type { GetRequest__Output } from '../../client/generated/latchkey/v1/GetRequest.js';
import type { GetResponse } from '../../client/generated/latchkey/v1/GetResponse.js';
import type { IncrRequest__Output } from '../../client/generated/latchkey/v1/IncrRequest.js';
import type { IncrResponse } from '../../client/generated/latchkey/v1/IncrResponse.js';
import type { SetRequest__Output } from '../../client/generated/latchkey/v1/SetRequest.js';
import type { SetResponse } from '../../client/generated/latchkey/v1/SetResponse.js';
import type { TouchRequest__Output } from '../../client/generated/latchkey/v1/TouchRequest.js';
import type { TouchResponse } from '../../client/generated/latchkey/v1/TouchResponse.js';
import type { Config } from '../config.js';
import { InvalidArgumentError, ResourceExhaustedError, toOpError, type Logger } from '../errors.js';
import type { GetManyRequest__Output } from '../../client/generated/latchkey/v1/GetManyRequest.js';
import type { GetManyResponse } from '../../client/generated/latchkey/v1/GetManyResponse.js';
import type { SetManyRequest__Output } from '../../client/generated/latchkey/v1/SetManyRequest.js';
import type { SetManyResponse } from '../../client/generated/latchkey/v1/SetManyResponse.js';
import type { CallContext } from '../call-context.js';
import { checkMs, checkName, checkText, quoted } from '../validate.js';
import type { Fence__Output } from '../../client/generated/latchkey/v1/Fence.js';
import { decode, electionFence, fencedAdd, fencedCas, fencedDelete, fencedSet, type Fence } from './fencing.js';
import type { CacheStore } from './store.js';

/** The longest cache TTL accepted: 365 days. */
export const MAX_CACHE_TTL_MS = 365 * 86_400_000;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

export interface CacheService {
  get(request: GetRequest__Output, ctx: CallContext): Promise<GetResponse>;
  set(request: SetRequest__Output, ctx: CallContext): Promise<SetResponse>;
  cas(request: CasRequest__Output, ctx: CallContext): Promise<CasResponse>;
  add(request: AddRequest__Output, ctx: CallContext): Promise<AddResponse>;
  delete(request: DeleteRequest__Output, ctx: CallContext): Promise<DeleteResponse>;
  incr(request: IncrRequest__Output, ctx: CallContext): Promise<IncrResponse>;
  touch(request: TouchRequest__Output, ctx: CallContext): Promise<TouchResponse>;
  getMany(request: GetManyRequest__Output, ctx: CallContext): Promise<GetManyResponse>;
  setMany(request: SetManyRequest__Output, ctx: CallContext): Promise<SetManyResponse>;
}

/** Refuses a batch over --max-batch before any of it runs. */
export function checkBatch(what: string, size: number, config: Config): void {
  if (size > config.maxBatch)
    throw new ResourceExhaustedError(
      `${what} has ${size} entries; the limit is ${config.maxBatch} (--max-batch): split it`,
    );
}

export function createCacheService(stores: ReadonlyMap<string, CacheStore>, config: Config, log: Logger): CacheService {
  function pick(name: string): CacheStore {
    const store = stores.get(name === '' ? config.store : name);
    if (store === undefined) {
      throw new InvalidArgumentError(
        `store ${quoted(name)} is not enabled on this server; use one of: ${[...stores.keys()].join(', ')} (or leave it empty for ${config.store})`,
      );
    }
    return store;
  }

  const key = (value: string, ctx: CallContext) => {
    checkName('key', value);
    ctx.authorize('key', value);
    return value;
  };
  const ttl = (value: string) => checkMs('ttl_ms', value, 0, MAX_CACHE_TTL_MS);
  function value(buffer: Buffer): Buffer {
    if (buffer.length > config.maxValueBytes) {
      throw new InvalidArgumentError(
        `value is ${buffer.length} bytes; the limit is ${config.maxValueBytes} (--max-value-bytes)`,
      );
    }
    return buffer;
  }
  function fence(message: Fence__Output | null): Fence | undefined {
    if (message === null) return undefined;
    if (message.token === '0')
      throw new InvalidArgumentError(
        'fence.token is required: send the fencing_token of the lease (or leadership) you hold',
      );
    const backend = checkText('fence.backend', message.backend, 255) || config.backend;
    const token = BigInt(message.token);
    if (message.election !== '') {
      if (message.lock !== '')
        throw new InvalidArgumentError(
          'fence has both lock and election: set lock for a Lease, election for a Leadership',
        );
      return electionFence(backend, checkName('fence.election', message.election), token);
    }
    return { lock: checkName('fence.lock', message.lock), backend, token };
  }
  function bigint(field: string, raw: string, min: bigint, max: bigint): bigint {
    const n = BigInt(raw);
    if (n < min || n > max) throw new InvalidArgumentError(`${field} must be between ${min} and ${max}, got ${raw}`);
    return n;
  }

  const service: CacheService = {
    async get(request, ctx) {
      const store = pick(request.store);
      const item = await store.get(key(request.key, ctx), ctx.signal);
      const value = item === undefined ? undefined : decode(item).value;
      return value === undefined
        ? { found: false, value: Buffer.alloc(0), cas: '0' }
        : { found: true, value, cas: item!.cas.toString() };
    },

    async set(request, ctx) {
      const store = pick(request.store);
      const [k, v, t, f] = [key(request.key, ctx), value(request.value), ttl(request.ttl_ms), fence(request.fence)];
      const cas =
        f === undefined ? await store.set(k, v, 0, t, ctx.signal) : await fencedSet(store, k, v, t, f, ctx.signal);
      return { cas: cas.toString() };
    },

    async cas(request, ctx) {
      const store = pick(request.store);
      const k = key(request.key, ctx);
      const v = value(request.value);
      const t = ttl(request.ttl_ms);
      const f = fence(request.fence);
      if (request.cas === '0')
        throw new InvalidArgumentError(
          'cas is required: send the cas from a Get (use Set or Add to write without one)',
        );
      const cas = BigInt(request.cas);
      const result =
        f === undefined
          ? await store.cas(k, v, 0, cas, t, ctx.signal)
          : await fencedCas(store, k, v, cas, t, f, ctx.signal);
      return { outcome: result.outcome, cas: result.cas.toString() };
    },

    async add(request, ctx) {
      const store = pick(request.store);
      const [k, v, t, f] = [key(request.key, ctx), value(request.value), ttl(request.ttl_ms), fence(request.fence)];
      if (f !== undefined) {
        const result = await fencedAdd(store, k, v, t, f, ctx.signal);
        return { outcome: result.outcome, cas: result.cas.toString() };
      }
      for (;;) {
        const added = await store.add(k, v, 0, t, ctx.signal);
        if (added.outcome === 'STORED') return { outcome: added.outcome, cas: added.cas.toString() };
        // A tombstone of a fenced delete reads as absent, so Add may replace it.
        const current = await store.get(k, ctx.signal);
        if (current === undefined) continue;
        if (decode(current).value !== undefined) return { outcome: 'EXISTS', cas: '0' };
        const replaced = await store.cas(k, v, 0, current.cas, t, ctx.signal);
        if (replaced.outcome === 'STORED') return { outcome: 'STORED', cas: replaced.cas.toString() };
      }
    },

    async delete(request, ctx) {
      const store = pick(request.store);
      const [k, cas, f] = [key(request.key, ctx), BigInt(request.cas), fence(request.fence)];
      return {
        outcome:
          f === undefined ? await store.delete(k, cas, ctx.signal) : await fencedDelete(store, k, cas, f, ctx.signal),
      };
    },

    async incr(request, ctx) {
      const store = pick(request.store);
      const k = key(request.key, ctx);
      const delta = bigint('delta', request.delta, INT64_MIN, UINT64_MAX);
      const initial = bigint('initial', request.initial, 0n, UINT64_MAX);
      const result = await store.incr(k, delta, initial, ttl(request.ttl_ms), ctx.signal);
      return { value: result.value.toString(), cas: result.cas.toString() };
    },

    async touch(request, ctx) {
      const store = pick(request.store);
      return { outcome: await store.touch(key(request.key, ctx), ttl(request.ttl_ms), ctx.signal) };
    },

    // Batches run their items concurrently (memcached pipelines them on its connections) and
    // answer each one, so one bad key or one down server fails only its own entries.
    async getMany(request, ctx) {
      checkBatch('keys', request.keys.length, config);
      pick(request.store);
      const results = await Promise.all(
        request.keys.map((k) =>
          service.get({ store: request.store, key: k }, ctx).then(
            (res) => ({ key: k, ...res }),
            (err: unknown) => ({ key: k, found: false, error: toOpError(err, log) }),
          ),
        ),
      );
      // The reply must fit in --max-message-bytes: values past that budget are not sent, and
      // their keys say so, instead of the whole reply failing after every read was done.
      let budget = config.maxMessageBytes - 64 * 1024;
      const bounded = results.map((result) => {
        const value = 'value' in result ? (result.value as Buffer) : undefined;
        budget -= 64 + Buffer.byteLength(result.key) + (value?.length ?? 0);
        if (value === undefined || budget >= 0) return result;
        const err = new ResourceExhaustedError(
          `the values of this GetMany exceed --max-message-bytes (${config.maxMessageBytes}); get this key in a smaller batch`,
        );
        return { key: result.key, found: false, error: toOpError(err, log) };
      });
      return { results: bounded };
    },

    async setMany(request, ctx) {
      checkBatch('items', request.items.length, config);
      pick(request.store);
      const results = await Promise.all(
        request.items.map((item) =>
          service
            .set({ store: request.store, key: item.key, value: item.value, ttl_ms: item.ttl_ms, fence: null }, ctx)
            .then(
              (res) => ({ key: item.key, cas: res.cas }),
              (err: unknown) => ({ key: item.key, error: toOpError(err, log) }),
            ),
        ),
      );
      return { results };
    },
  };
  return service;
}
