// Metering as a decorator of a LockBackend: meteredBackend(backend, ...) is a LockBackend
// that counts what passes through it and logs each grant at debug, and server.ts puts one
// around every backend it serves. Whatever calls a backend (the unary RPCs today, a lock
// session's operations next) is counted by the same code, once, from the backend's own
// answers: leases and our error classes, never wire fields.
//
// NOTE: how a new backend method is metered. The counting of each kind of operation lives in
// one private method below (#acquired, #released, #answered) that takes the operation as a
// function; a new method that acquires or releases (a session's acquire and release) calls
// the same one, so it counts as a grant, a wait or a release exactly as Acquire and Release
// do. A method that only reads or renews goes through #answered (failures only).
import type { Logger } from '../log.js';
import { CancelledError, LeaseExpiredError, LockBusyError, NotHolderError, ShuttingDownError } from '../errors.js';
import type { LockMeter, WaitOutcome } from '../metrics.js';
import type { AcquireOptions, ExpiryListener, Lease, LeaseRef, LockBackend, LockEvent, LockState } from './backend.js';

function waitOutcome(err: unknown): WaitOutcome {
  if (err instanceof LockBusyError) return 'timeout';
  if (err instanceof CancelledError || err instanceof ShuttingDownError) return 'cancelled';
  return 'error';
}

/** The fields of a grant or expiry log line. Never the lease id: it is the capability to release. */
function leaseFields(backend: string, lease: Lease) {
  return {
    backend,
    name: lease.name,
    owner: lease.owner,
    fencingToken: lease.fencingToken.toString(),
    ttlMs: lease.ttlMs,
    mode: lease.mode,
    limit: lease.limit,
  };
}

/**
 * `backend`, counting grants, waits (with their duration and how they ended), releases by
 * outcome and backend failures on `meter` (see the README's Metrics section).
 */
export function meteredBackend(backend: LockBackend, meter: LockMeter, log: Logger): LockBackend {
  return new MeteredLockBackend(backend, meter, log);
}

/**
 * What a backend that enforces its own TTLs (memory, file) is given as its `onExpire`: each
 * expiry is counted on `meter` and logged at debug.
 */
export function expiryListener(backend: string, meter: LockMeter, log: Logger): ExpiryListener {
  meter.reportsExpiries();
  return (lease: Lease) => {
    meter.expired();
    if (log.isLevelEnabled('debug'))
      log.debug({ event: 'lock.expire', ...leaseFields(backend, lease) }, 'lease expired');
  };
}

class MeteredLockBackend implements LockBackend {
  readonly kind: string;
  readonly capabilities: LockBackend['capabilities'];
  readonly location?: string;
  /** Present exactly when the backend's is (the service checks the capability, then calls it). */
  readonly watch?: (name: string, signal: AbortSignal) => AsyncIterable<LockEvent>;
  readonly #backend: LockBackend;
  readonly #meter: LockMeter;
  readonly #log: Logger;

  constructor(backend: LockBackend, meter: LockMeter, log: Logger) {
    this.kind = backend.kind;
    this.capabilities = backend.capabilities;
    if (backend.location !== undefined) this.location = backend.location;
    this.#backend = backend;
    this.#meter = meter;
    this.#log = log;
    // A watch is a stream, not an operation: nothing of it is counted here.
    if (backend.watch !== undefined) this.watch = backend.watch.bind(backend);
  }

  acquire(options: AcquireOptions): Promise<Lease> {
    return this.#acquired(options, () => this.#backend.acquire(options));
  }

  refresh(ref: LeaseRef, ttlMs: number): Promise<Lease> {
    return this.#answered(this.#backend.refresh(ref, ttlMs));
  }

  release(ref: LeaseRef): Promise<void> {
    return this.#released(() => this.#backend.release(ref));
  }

  describe(name: string, signal: AbortSignal): Promise<LockState> {
    return this.#answered(this.#backend.describe(name, signal));
  }

  close(): Promise<void> {
    return this.#backend.close();
  }

  /** One acquire: a grant or a failure, and a wait (from start to end) when it may wait. */
  #acquired(options: Pick<AcquireOptions, 'waitMs' | 'signal'>, acquire: () => Promise<Lease>): Promise<Lease> {
    const meter = this.#meter;
    const waits = options.waitMs > 0;
    const startedAt = waits ? performance.now() : 0;
    if (waits) meter.waitStarted();
    return acquire().then(
      (lease) => {
        meter.granted();
        // Granted to a caller that has gone meanwhile (the service releases it at once).
        if (waits)
          meter.waitEnded(options.signal.aborted ? 'cancelled' : 'granted', (performance.now() - startedAt) / 1000);
        if (this.#log.isLevelEnabled('debug'))
          this.#log.debug({ event: 'lock.grant', ...leaseFields(this.kind, lease) }, 'lock granted');
        return lease;
      },
      (err: unknown) => {
        if (waits) meter.waitEnded(waitOutcome(err), (performance.now() - startedAt) / 1000);
        meter.failed(err);
        throw err;
      },
    );
  }

  /** One release, by outcome: released, refused (not_holder), or the lease had expired. */
  #released(release: () => Promise<void>): Promise<void> {
    const meter = this.#meter;
    return release().then(
      () => meter.released('released'),
      (err: unknown) => {
        if (err instanceof NotHolderError) meter.released('not_holder');
        else if (err instanceof LeaseExpiredError) meter.released('expired');
        else meter.failed(err);
        throw err;
      },
    );
  }

  /** Any other operation: only a failure of the backend counts. */
  #answered<T>(operation: Promise<T>): Promise<T> {
    return operation.catch((err: unknown) => {
      this.#meter.failed(err);
      throw err;
    });
  }
}
