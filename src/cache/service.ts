// gRPC handlers of latchkey.v1.Cache: validate, pick the store's Cache (cache.ts: the store
// with fencing and tombstones, metered), call it, shape the answer.
import type {
  AddRequest__Output,
  AddResponse,
  CasRequest__Output,
  CasResponse,
  DeleteRequest__Output,
  DeleteResponse,
  GetRequest__Output,
  GetResponse,
  IncrRequest__Output,
  IncrResponse,
  SetRequest__Output,
  SetResponse,
  TouchRequest__Output,
  TouchResponse,
  GetManyRequest__Output,
  GetManyResponse,
  SetManyRequest__Output,
  SetManyResponse,
  Fence__Output,
} from '../../client/common/index.js';
import type { Config } from '../config.js';
import { InvalidArgumentError, ResourceExhaustedError, toOpError, type Logger } from '../errors.js';
import type { CallContext } from '../call-context.js';
import { checkMs, checkName, checkText, quoted } from '../validate.js';
import type { Cache } from './cache.js';
import { electionFence, type Fence } from './fencing.js';
import { MAX_LEASE_MS } from './leases.js';

/** What an unfenced operation of an in-process store gets instead of the call's signal: it never aborts. */
const NEVER_ABORTED = new AbortController().signal;

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

/**
 * `caches`: each store's Cache (metered), by store name. `lockBackends`: the names of the lock
 * backends this server serves, the only ones a fence may name (a token from anywhere else
 * cannot be checked against anything).
 */
export function createCacheService(
  caches: ReadonlyMap<string, Cache>,
  lockBackends: readonly string[],
  config: Config,
  log: Logger,
): CacheService {
  function pick(name: string): Cache {
    const cache = caches.get(name === '' ? config.store : name);
    if (cache === undefined) {
      throw new InvalidArgumentError(
        `store ${quoted(name)} is not enabled on this server; use one of: ${[...caches.keys()].join(', ')} (or leave it empty for ${config.store})`,
      );
    }
    return cache;
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
    if (!lockBackends.includes(backend)) {
      throw new InvalidArgumentError(
        `fence.backend ${quoted(backend)} is not enabled on this server; use one of: ${lockBackends.join(', ')} (or leave it empty for ${config.backend}), the backend of the lock or election whose token this is`,
      );
    }
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

  /**
   * The signal an operation runs on: for an unfenced one on an in-process store (see
   * CacheStore.inProcess), one that never aborts, so the call's own is never made.
   */
  const signalOf = (cache: Cache, ctx: CallContext, fence?: Fence): AbortSignal =>
    cache.inProcess && fence === undefined ? NEVER_ABORTED : ctx.signal;

  const service: CacheService = {
    async get(request, ctx) {
      const cache = pick(request.store);
      const k = key(request.key, ctx);
      const leaseMs = checkMs('lease_ms', request.lease_ms, 0, MAX_LEASE_MS);
      const miss = { found: false, value: Buffer.alloc(0), cas: '0', lease_token: '0', wait_ms: '0' };
      if (leaseMs === 0) {
        const item = await cache.get(k, signalOf(cache, ctx));
        return item === undefined ? miss : { ...miss, found: true, value: item.value, cas: item.cas.toString() };
      }
      const read = await cache.leaseGet(k, leaseMs, signalOf(cache, ctx));
      if (read.kind === 'value') return { ...miss, found: true, value: read.value, cas: read.cas.toString() };
      return read.kind === 'lease'
        ? { ...miss, lease_token: read.token.toString() }
        : { ...miss, wait_ms: String(read.waitMs) };
    },

    async set(request, ctx) {
      const cache = pick(request.store);
      const [k, v, t, f] = [key(request.key, ctx), value(request.value), ttl(request.ttl_ms), fence(request.fence)];
      if (request.lease_token === '0')
        return {
          cas: (await cache.set(k, v, t, f, signalOf(cache, ctx, f))).toString(),
          outcome: 'STORED',
          detail: '',
        };
      if (f !== undefined)
        throw new InvalidArgumentError(
          'a Set takes a fence or a lease_token, not both: a lease already keeps out every write after it',
        );
      const result = await cache.leaseSet(k, v, t, BigInt(request.lease_token), signalOf(cache, ctx));
      return {
        cas: result.cas.toString(),
        outcome: result.outcome,
        detail: result.outcome === 'EXISTS' ? result.detail : '',
      };
    },

    async cas(request, ctx) {
      const cache = pick(request.store);
      const k = key(request.key, ctx);
      const v = value(request.value);
      const t = ttl(request.ttl_ms);
      const f = fence(request.fence);
      if (request.cas === '0')
        throw new InvalidArgumentError(
          'cas is required: send the cas from a Get (use Set or Add to write without one)',
        );
      const result = await cache.cas(k, v, BigInt(request.cas), t, f, signalOf(cache, ctx, f));
      return { outcome: result.outcome, cas: result.cas.toString() };
    },

    async add(request, ctx) {
      const cache = pick(request.store);
      const [k, v, t, f] = [key(request.key, ctx), value(request.value), ttl(request.ttl_ms), fence(request.fence)];
      const result = await cache.add(k, v, t, f, signalOf(cache, ctx, f));
      return { outcome: result.outcome, cas: result.cas.toString() };
    },

    async delete(request, ctx) {
      const cache = pick(request.store);
      const [k, cas, f] = [key(request.key, ctx), BigInt(request.cas), fence(request.fence)];
      return { outcome: await cache.delete(k, cas, f, signalOf(cache, ctx, f)) };
    },

    async incr(request, ctx) {
      const cache = pick(request.store);
      const k = key(request.key, ctx);
      const delta = bigint('delta', request.delta, INT64_MIN, UINT64_MAX);
      const initial = bigint('initial', request.initial, 0n, UINT64_MAX);
      const result = await cache.incr(k, delta, initial, ttl(request.ttl_ms), signalOf(cache, ctx));
      return { value: result.value.toString(), cas: result.cas.toString() };
    },

    async touch(request, ctx) {
      const cache = pick(request.store);
      return { outcome: await cache.touch(key(request.key, ctx), ttl(request.ttl_ms), signalOf(cache, ctx)) };
    },

    // Batches run their items concurrently (memcached pipelines them on its connections) and
    // answer each one, so one bad key or one down server fails only its own entries.
    async getMany(request, ctx) {
      checkBatch('keys', request.keys.length, config);
      pick(request.store);
      const results = await Promise.all(
        request.keys.map((k) =>
          service.get({ store: request.store, key: k, lease_ms: request.lease_ms }, ctx).then(
            (res) => ({ key: k, ...res }),
            (err: unknown) => ({ key: k, found: false, error: toOpError(err, log) }),
          ),
        ),
      );
      // The reply must fit in --max-message-bytes: values past that budget are not sent, and
      // their keys say so, instead of the whole reply failing after every read was done.
      let budget = config.maxMessageBytes - 64 * 1024;
      const bounded = results.map((result) => {
        const value = result.found && 'value' in result ? (result.value as Buffer) : undefined;
        budget -= 64 + Buffer.byteLength(result.key) + (value?.length ?? 0);
        // NOTE: only a found value is refused: a miss may carry a lease, which must reach its holder.
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
            .set(
              {
                store: request.store,
                key: item.key,
                value: item.value,
                ttl_ms: item.ttl_ms,
                fence: null,
                lease_token: item.lease_token,
              },
              ctx,
            )
            .then(
              (res) => ({ key: item.key, ...res }),
              (err: unknown) => ({ key: item.key, error: toOpError(err, log) }),
            ),
        ),
      );
      return { results };
    },
  };
  return service;
}
