// Metrics and debug logs for the Locks and Cache services, as decorators around their
// handlers. The services stay about validation and dispatch; every way in (unary calls,
// GetMany/SetMany entries, Pipeline operations, lock session operations) passes through
// these wrappers, so each operation is counted exactly once, here. Lease expiries come from the backends themselves
// (an ExpiryListener, see expiryListener below).
import type { Config } from './config.js';
import { CancelledError, LeaseExpiredError, LockBusyError, NotHolderError, ShuttingDownError } from './errors.js';
import type { Logger } from './log.js';
import type { CacheMeter, CacheOp, CacheOutcome, LockMeter, Metrics, SessionMeter, WaitOutcome } from './metrics.js';
import type { ExpiryListener, Lease, LockBackend, SessionExpiryListener } from './locks/backend.js';
import type { LockService, OpenSession } from './locks/service.js';
import type { Lease as LeaseMessage } from '../client/generated/latchkey/v1/Lease.js';
import type { ReleaseResponse } from '../client/generated/latchkey/v1/ReleaseResponse.js';
import type { CacheService } from './cache/service.js';
import type { CallContext } from './call-context.js';

function waitOutcome(err: unknown): WaitOutcome {
  if (err instanceof LockBusyError) return 'timeout';
  if (err instanceof CancelledError || err instanceof ShuttingDownError) return 'cancelled';
  return 'error';
}

/** Meters by name, plus '' for the default; a name the server does not serve has none. */
function metersByName<M>(names: Iterable<string>, defaultName: string, meter: (name: string) => M): Map<string, M> {
  const meters = new Map<string, M>();
  for (const name of names) meters.set(name, meter(name));
  const fallback = meters.get(defaultName);
  if (fallback !== undefined) meters.set('', fallback);
  return meters;
}

/**
 * Counts grants, waits (with their duration and outcome), releases by outcome and backend
 * failures per backend, and logs each grant at debug. Methods it does not know are passed
 * through as they are.
 */
export function instrumentLocks(
  service: LockService,
  backends: ReadonlyMap<string, LockBackend>,
  config: Config,
  metrics: Metrics,
  log: Logger,
): LockService {
  const meters = metersByName(backends.keys(), config.backend, (name) => metrics.lock(name));
  // A request naming a backend this server lacks is refused by the service; nothing to count.
  const meterOf = (backend: string): LockMeter | undefined => meters.get(backend);
  const sessionMeters = new Map<string, SessionMeter>();
  for (const backend of backends.values())
    if (backend.capabilities.sessions) sessionMeters.set(backend.kind, metrics.session(backend.kind));

  function countAcquire(
    meter: LockMeter,
    waits: boolean,
    ctx: CallContext,
    acquire: () => Promise<LeaseMessage>,
  ): Promise<LeaseMessage> {
    const startedAt = waits ? performance.now() : 0;
    if (waits) meter.waitStarted();
    return acquire().then(
      (lease) => {
        meter.granted();
        // Granted to a caller that has gone meanwhile (the service releases it at once).
        if (waits)
          meter.waitEnded(ctx.signal.aborted ? 'cancelled' : 'granted', (performance.now() - startedAt) / 1000);
        if (log.isLevelEnabled('debug')) {
          log.debug(
            {
              event: 'lock.grant',
              backend: lease.backend,
              name: lease.name,
              owner: lease.owner,
              fencingToken: String(lease.fencing_token),
              ttlMs: Number(lease.ttl_ms),
              mode: lease.mode,
              limit: lease.limit,
            },
            'lock granted',
          );
        }
        return lease;
      },
      (err: unknown) => {
        if (waits) meter.waitEnded(waitOutcome(err), (performance.now() - startedAt) / 1000);
        meter.failed(err);
        throw err;
      },
    );
  }

  function countRelease(meter: LockMeter, release: () => Promise<ReleaseResponse>): Promise<ReleaseResponse> {
    return release().then(
      (response) => {
        meter.released('released');
        return response;
      },
      (err: unknown) => {
        if (err instanceof NotHolderError) meter.released('not_holder');
        else if (err instanceof LeaseExpiredError) meter.released('expired');
        else meter.failed(err);
        throw err;
      },
    );
  }

  const sessionLog = (event: string, open: OpenSession, fields: Record<string, unknown>, msg: string) => {
    if (!log.isLevelEnabled('debug')) return;
    log.debug(
      { event, backend: open.backend.kind, session: open.session.ref, ttlMs: open.session.ttlMs, ...fields },
      msg,
    );
  };

  return {
    ...service,

    acquire(request, ctx) {
      const meter = meterOf(request.backend);
      if (meter === undefined) return service.acquire(request, ctx);
      return countAcquire(meter, request.wait_ms !== '0', ctx, () => service.acquire(request, ctx));
    },

    sessionAcquire(open, request, ctx) {
      const meter = meterOf(open.backend.kind);
      if (meter === undefined) return service.sessionAcquire(open, request, ctx);
      return countAcquire(meter, request.wait_ms !== '0', ctx, () => service.sessionAcquire(open, request, ctx));
    },

    refresh(request, ctx) {
      const meter = meterOf(request.backend);
      if (meter === undefined) return service.refresh(request, ctx);
      return service.refresh(request, ctx).catch((err: unknown) => {
        meter.failed(err);
        throw err;
      });
    },

    release(request, ctx) {
      const meter = meterOf(request.backend);
      if (meter === undefined) return service.release(request, ctx);
      return countRelease(meter, () => service.release(request, ctx));
    },

    sessionRelease(open, request, ctx) {
      const meter = meterOf(open.backend.kind);
      if (meter === undefined) return service.sessionRelease(open, request, ctx);
      return countRelease(meter, () => service.sessionRelease(open, request, ctx));
    },

    sessionDescribe(open, request, ctx) {
      const meter = meterOf(open.backend.kind);
      if (meter === undefined) return service.sessionDescribe(open, request, ctx);
      return service.sessionDescribe(open, request, ctx).catch((err: unknown) => {
        meter.failed(err);
        throw err;
      });
    },

    async openSession(request, ctx) {
      const result = await service.openSession(request, ctx);
      const { open } = result;
      const meter = sessionMeters.get(open.backend.kind);
      if (open.resumed) meter?.resumed();
      else meter?.opened();
      sessionLog(
        open.resumed ? 'session.resume' : 'session.open',
        open,
        { owner: open.owner, locks: open.session.lockCount },
        open.resumed ? 'lock session resumed' : 'lock session opened',
      );
      return result;
    },

    async endSession(open) {
      // Only a session this end actually ends counts (not one already expired).
      const ends = open.session.state === 'live' || open.session.state === 'lost';
      const locks = open.session.lockCount;
      await service.endSession(open);
      if (!ends) return;
      sessionMeters.get(open.backend.kind)?.ended();
      sessionLog('session.end', open, { how: 'ended', locks }, 'lock session ended');
    },

    describe(request, ctx) {
      const meter = meterOf(request.backend);
      if (meter === undefined) return service.describe(request, ctx);
      return service.describe(request, ctx).catch((err: unknown) => {
        meter.failed(err);
        throw err;
      });
    },
  };
}

/**
 * What a backend that enforces its own TTLs (memory, file) calls when a lease runs out:
 * counted, and logged at debug. Never the lease id: it is the capability to release.
 */
export function expiryListener(backend: string, metrics: Metrics, log: Logger): ExpiryListener {
  const meter = metrics.lock(backend);
  meter.reportsExpiries();
  return (lease: Lease) => {
    meter.expired();
    if (log.isLevelEnabled('debug')) {
      log.debug(
        {
          event: 'lock.expire',
          backend,
          name: lease.name,
          owner: lease.owner,
          fencingToken: lease.fencingToken.toString(),
          ttlMs: lease.ttlMs,
          mode: lease.mode,
          limit: lease.limit,
        },
        'lease expired',
      );
    }
  };
}

/**
 * What a backend that enforces its own TTLs calls when a session runs out: counted (the
 * session's locks were counted as lease expiries already), and logged at debug as the
 * session's end. Never the session id: it is the capability to resume the session.
 */
export function sessionExpiryListener(backend: string, metrics: Metrics, log: Logger): SessionExpiryListener {
  const meter = metrics.session(backend);
  return (session) => {
    meter.expired();
    if (log.isLevelEnabled('debug'))
      log.debug(
        {
          event: 'session.end',
          backend,
          session: session.ref,
          ttlMs: session.ttlMs,
          how: 'expired',
          locks: session.locks,
        },
        'lock session expired',
      );
  };
}

type Op<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/**
 * Counts every cache operation by store, op and outcome, hits and misses, and store
 * failures. Values are never looked at beyond whether a get found one.
 */
export function instrumentCache(
  service: CacheService,
  stores: Iterable<string>,
  config: Config,
  metrics: Metrics,
): CacheService {
  const meters = metersByName(stores, config.store, (name) => metrics.cache(name));
  const meterOf = (store: string): CacheMeter | undefined => meters.get(store);

  function counted<Req extends { store: string }, Res>(
    op: CacheOp,
    call: Op<Req, Res>,
    outcome: (response: Res) => CacheOutcome,
  ): Op<Req, Res> {
    return (request, ctx) => {
      const meter = meterOf(request.store);
      if (meter === undefined) return call(request, ctx);
      return call(request, ctx).then(
        (response) => {
          meter.done(op, outcome(response));
          return response;
        },
        (err: unknown) => {
          meter.failed(op, err);
          throw err;
        },
      );
    };
  }
  // The service answers with the store's own outcome strings (never the enum's numbers).
  const outcomeOf = (response: { outcome?: unknown }) => response.outcome as CacheOutcome;

  return {
    ...service,
    get: counted('get', service.get, (response) => (response.found ? 'hit' : 'miss')),
    set: counted('set', service.set, () => 'STORED'),
    cas: counted('cas', service.cas, outcomeOf),
    add: counted('add', service.add, outcomeOf),
    delete: counted('delete', service.delete, outcomeOf),
    // Incr stores the new value (or the initial one): always STORED when it succeeds.
    incr: counted('incr', service.incr, () => 'STORED'),
    touch: counted('touch', service.touch, outcomeOf),

    // Batches run their entries through the service's own get/set (not these wrappers), so
    // their entries are counted here, one by one, from the answer.
    getMany(request, ctx) {
      const meter = meterOf(request.store);
      if (meter === undefined) return service.getMany(request, ctx);
      return service.getMany(request, ctx).then(
        (response) => {
          for (const result of response.results ?? []) {
            if (result.error) meter.opFailed('get', result.error.code ?? 0, result.error.reason ?? '');
            else meter.done('get', result.found ? 'hit' : 'miss');
          }
          return response;
        },
        (err: unknown) => {
          meter.refused(err);
          throw err;
        },
      );
    },

    setMany(request, ctx) {
      const meter = meterOf(request.store);
      if (meter === undefined) return service.setMany(request, ctx);
      return service.setMany(request, ctx).then(
        (response) => {
          for (const result of response.results ?? []) {
            if (result.error) meter.opFailed('set', result.error.code ?? 0, result.error.reason ?? '');
            else meter.done('set', 'STORED');
          }
          return response;
        },
        (err: unknown) => {
          meter.refused(err);
          throw err;
        },
      );
    },
  };
}
