// Tracing as a decorator of a Cache, beside metering (metered-cache.ts): each operation the
// service asks of a store, be it a unary call, a GetMany/SetMany entry or a Pipeline op, is
// one span ("cache get", a child of the call's or the op's span; see tracing.ts) naming the
// store and the key, with the outcome. A fenced write names its fence's lock, never its token;
// values are never looked at beyond whether a get found one.
import type { Attributes } from '@opentelemetry/api';
import { inSpan } from '../tracing.js';
import type { Cache } from './cache.js';
import type { Fence } from './fencing.js';

/** `cache`, with a span per operation. */
export function tracedCache(cache: Cache): Cache {
  const store = cache.kind;
  const attributes = (key: string, fence?: Fence, ttlMs?: number) => (): Attributes => ({
    'latchkey.cache.store': store,
    'latchkey.cache.key': key,
    ...(ttlMs === undefined ? {} : { 'latchkey.cache.ttl_ms': ttlMs }),
    ...(fence === undefined
      ? {}
      : { 'latchkey.cache.fence.lock': fence.lock, 'latchkey.cache.fence.backend': fence.backend }),
  });
  const failure = () => 'error';
  const stored = () => 'STORED';
  const outcomeOf = (result: { outcome: string }) => result.outcome;
  const same = (outcome: string) => outcome;

  return {
    kind: store,
    inProcess: cache.inProcess,
    get: (key, signal) =>
      inSpan(
        'cache get',
        attributes(key),
        () => cache.get(key, signal),
        (item) => (item === undefined ? 'miss' : 'hit'),
        failure,
      ),
    set: (key, value, ttlMs, fence, signal) =>
      inSpan(
        'cache set',
        attributes(key, fence, ttlMs),
        () => cache.set(key, value, ttlMs, fence, signal),
        stored,
        failure,
      ),
    cas: (key, value, cas, ttlMs, fence, signal) =>
      inSpan(
        'cache cas',
        attributes(key, fence, ttlMs),
        () => cache.cas(key, value, cas, ttlMs, fence, signal),
        outcomeOf,
        failure,
      ),
    add: (key, value, ttlMs, fence, signal) =>
      inSpan(
        'cache add',
        attributes(key, fence, ttlMs),
        () => cache.add(key, value, ttlMs, fence, signal),
        outcomeOf,
        failure,
      ),
    delete: (key, cas, fence, signal) =>
      inSpan('cache delete', attributes(key, fence), () => cache.delete(key, cas, fence, signal), same, failure),
    // Incr stores the new value (or the initial one): STORED when it succeeds.
    incr: (key, delta, initial, ttlMs, signal) =>
      inSpan(
        'cache incr',
        attributes(key, undefined, ttlMs),
        () => cache.incr(key, delta, initial, ttlMs, signal),
        stored,
        failure,
      ),
    touch: (key, ttlMs, signal) =>
      inSpan('cache touch', attributes(key, undefined, ttlMs), () => cache.touch(key, ttlMs, signal), same, failure),
    // A Get or Set with a lease is a get or a set (with lease_ms, or lease: true); a lease or a wait is a miss.
    leaseGet: (key, leaseMs, signal) =>
      inSpan(
        'cache get',
        () => ({ ...attributes(key)(), 'latchkey.cache.lease_ms': leaseMs }),
        () => cache.leaseGet(key, leaseMs, signal),
        (read) => (read.kind === 'value' ? 'hit' : 'miss'),
        failure,
      ),
    leaseSet: (key, value, ttlMs, token, signal) =>
      inSpan(
        'cache set',
        () => ({ ...attributes(key, undefined, ttlMs)(), 'latchkey.cache.lease': true }),
        () => cache.leaseSet(key, value, ttlMs, token, signal),
        outcomeOf,
        failure,
      ),
  };
}
