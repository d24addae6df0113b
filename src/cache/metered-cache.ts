// Metering as a decorator of a Cache (one store with fencing, see cache.ts): server.ts puts
// one around each store it serves, and the service calls nothing else, so a unary call, a
// GetMany/SetMany entry and a Pipeline operation are counted by this one code path, once,
// from the operation's own answer or error. Values are never looked at beyond whether a get
// found one.
//
// NOTE: why a Cache and not the CacheStore below it: a fenced write is a get and a cas on
// the store, and an Add over an existing key an add and a get; counted there, fenced Sets
// would show as gets and cas, and gets no client made would move the hit ratio.
import type { CacheMeter, CacheOp, CacheOutcome } from '../metrics.js';
import type { Cache } from './cache.js';

/** `cache`, counting every operation by op and outcome, hits and misses, and store failures on `meter`. */
export function meteredCache(cache: Cache, meter: CacheMeter): Cache {
  function counted<A extends unknown[], R>(
    op: CacheOp,
    call: (...args: A) => Promise<R>,
    outcome: (result: R) => CacheOutcome,
  ): (...args: A) => Promise<R> {
    return (...args) =>
      call(...args).then(
        (result) => {
          meter.done(op, outcome(result));
          return result;
        },
        (err: unknown) => {
          meter.failed(op, err);
          throw err;
        },
      );
  }
  const stored = (): CacheOutcome => 'STORED';
  const outcomeOf = <O extends CacheOutcome>(result: { outcome: O }) => result.outcome;
  const same = <O extends CacheOutcome>(outcome: O) => outcome;

  return {
    kind: cache.kind,
    inProcess: cache.inProcess,
    get: counted('get', cache.get.bind(cache), (item) => (item === undefined ? 'miss' : 'hit')),
    set: counted('set', cache.set.bind(cache), stored),
    cas: counted('cas', cache.cas.bind(cache), outcomeOf),
    add: counted('add', cache.add.bind(cache), outcomeOf),
    delete: counted('delete', cache.delete.bind(cache), same),
    // Incr stores the new value (or the initial one): always STORED when it succeeds.
    incr: counted('incr', cache.incr.bind(cache), stored),
    touch: counted('touch', cache.touch.bind(cache), same),
    // A Get or Set with a lease is a get or a set: a lease or a wait is a miss.
    leaseGet: counted('get', cache.leaseGet.bind(cache), (read) => (read.kind === 'value' ? 'hit' : 'miss')),
    leaseSet: counted('set', cache.leaseSet.bind(cache), outcomeOf),
  };
}
