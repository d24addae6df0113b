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
//
// Lock sessions: openSession and resumeSession hand out each session wrapped (one wrapper per
// session object, so a resume through this server returns the object it returned before):
// its acquire and release count as Acquire and Release do, its keepalive as a renewal. The
// session series (open, opened, resumed, expired) are counted here too: opened and resumed
// from the answers, ended when a session's state becomes `ended` (its clean end, shutdown,
// or, on etcd, another server serving it now), expired from the backend's own report
// (sessionExpiryListener), since a session can expire with nobody calling it.
import type { ElectionBackend } from './election.js';
import type { Logger } from '../log.js';
import { CancelledError, LeaseExpiredError, LockBusyError, NotHolderError, ShuttingDownError } from '../errors.js';
import type { ElectionMeter, LockMeter, SessionMeter, WaitOutcome } from '../metrics.js';
import { ForwardingSession } from './forwarding-session.js';
import { meteredElections } from './metered-election.js';
import type {
  AcquireOptions,
  ExpiryListener,
  Lease,
  LeaseRef,
  LockBackend,
  LockEvent,
  LockSession,
  LockState,
  SessionAcquireOptions,
  SessionExpiryListener,
  SessionLeaseInfo,
  SessionOptions,
} from './backend.js';

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
 * outcome and backend failures on `meter`, for a backend that declares sessions, its
 * sessions on `sessions`, and for one that declares elections, its campaigns and resigns on
 * `elections` (see the README's Metrics section).
 */
export function meteredBackend(
  backend: LockBackend,
  meter: LockMeter,
  log: Logger,
  sessions?: SessionMeter,
  elections?: ElectionMeter,
): LockBackend {
  return new MeteredLockBackend(backend, meter, log, sessions, elections);
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

/**
 * What a backend that reports its sessions' expiries (memory, file, etcd) is given as its
 * `onSessionExpire`: each is counted on `meter` (the session's locks were counted as lease
 * expiries already, where the backend reports those) and logged at debug as the session's
 * end. Never the session id: it is the capability to resume the session.
 */
export function sessionExpiryListener(backend: string, meter: SessionMeter, log: Logger): SessionExpiryListener {
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

class MeteredLockBackend implements LockBackend {
  readonly kind: string;
  readonly capabilities: LockBackend['capabilities'];
  readonly location?: string;
  /** Present exactly when the backend's is (the service checks the capability, then calls it). */
  readonly watch?: (name: string, signal: AbortSignal) => AsyncIterable<LockEvent>;
  readonly openSession?: (options: SessionOptions) => Promise<LockSession>;
  readonly resumeSession?: (id: string, signal: AbortSignal) => Promise<LockSession>;
  readonly elections?: ElectionBackend;
  readonly #backend: LockBackend;
  readonly #meter: LockMeter;
  readonly #log: Logger;
  readonly #sessionMeter: SessionMeter | undefined;
  /** The wrapper of each session object handed out, so a resume returns the same one. */
  readonly #wrapped = new WeakMap<LockSession, MeteredSession>();

  constructor(
    backend: LockBackend,
    meter: LockMeter,
    log: Logger,
    sessions: SessionMeter | undefined,
    elections: ElectionMeter | undefined,
  ) {
    this.kind = backend.kind;
    this.capabilities = backend.capabilities;
    if (backend.location !== undefined) this.location = backend.location;
    this.#backend = backend;
    this.#meter = meter;
    this.#log = log;
    this.#sessionMeter = sessions;
    // A watch is a stream, not an operation: nothing of it is counted here.
    if (backend.watch !== undefined) this.watch = backend.watch.bind(backend);
    // Elections are metered by their own decorator (metered-election.ts). NOTE: a candidacy's
    // session is the backend's own object (etcd finds its lease by it), never a metered
    // session wrapper: the decorator passes sessions through.
    if (backend.elections !== undefined)
      this.elections = elections === undefined ? backend.elections : meteredElections(backend.elections, elections);
    if (backend.openSession !== undefined) this.openSession = (options) => this.#openSession(options);
    if (backend.resumeSession !== undefined) this.resumeSession = (id, signal) => this.#resumeSession(id, signal);
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

  async #openSession(options: SessionOptions): Promise<LockSession> {
    const session = await this.#answered(this.#backend.openSession!(options));
    this.#sessionMeter?.opened();
    this.#sessionLog('session.open', session, 'lock session opened');
    return this.#wrap(session);
  }

  async #resumeSession(id: string, signal: AbortSignal): Promise<LockSession> {
    const session = await this.#answered(this.#backend.resumeSession!(id, signal));
    const adopted = !this.#wrapped.has(session);
    this.#sessionMeter?.resumed(adopted);
    this.#sessionLog('session.resume', session, 'lock session resumed');
    return this.#wrap(session);
  }

  #wrap(session: LockSession): MeteredSession {
    let wrapper = this.#wrapped.get(session);
    if (wrapper !== undefined) return wrapper;
    // Counted open until it ends or expires (which the backend reports: see
    // sessionExpiryListener). NOTE: the signal aborts once, as the state leaves `live`: at
    // `ended` (counted then), or at `lost` or `expired`. A lost session then expires (reported)
    // or is ended (counted by the end() that ends it), never both.
    let counted = false;
    const ended = () => {
      if (counted || session.state !== 'ended') return;
      counted = true;
      this.#sessionMeter?.ended();
    };
    wrapper = new MeteredSession(session, {
      acquired: (options, acquire) => this.#acquired(options, acquire),
      released: (release) => this.#released(release),
      answered: (operation) => this.#answered(operation),
      ended: () => this.#ended(session).finally(ended),
    });
    this.#wrapped.set(session, wrapper);
    if (session.signal.aborted) ended();
    else session.signal.addEventListener('abort', ended, { once: true });
    return wrapper;
  }

  /** One line per session open, resume and end. Never the session id: it is the capability to resume it. */
  #sessionLog(
    event: string,
    session: LockSession,
    msg: string,
    fields: Record<string, unknown> = { locks: session.lockCount },
  ): void {
    if (!this.#log.isLevelEnabled('debug')) return;
    this.#log.debug({ event, backend: this.kind, session: session.ref, ttlMs: session.ttlMs, ...fields }, msg);
  }

  /** A session's end(): logged when it ends a session that was live (not one already gone). */
  #ended(session: LockSession): Promise<void> {
    const ends = session.state === 'live' || session.state === 'lost';
    const locks = session.lockCount;
    return this.#answered(session.end()).then(() => {
      if (ends) this.#sessionLog('session.end', session, 'lock session ended', { how: 'ended', locks });
    });
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

/** The counting a MeteredSession borrows from its backend's decorator. */
interface SessionCounting {
  acquired(options: Pick<AcquireOptions, 'waitMs' | 'signal'>, acquire: () => Promise<Lease>): Promise<Lease>;
  released(release: () => Promise<void>): Promise<void>;
  answered<T>(operation: Promise<T>): Promise<T>;
  ended(): Promise<void>;
}

/** A LockSession whose acquires and releases count as Acquire and Release do. */
class MeteredSession extends ForwardingSession {
  readonly #count: SessionCounting;

  constructor(session: LockSession, count: SessionCounting) {
    super(session);
    this.#count = count;
  }

  override acquire(options: SessionAcquireOptions): Promise<Lease> {
    return this.#count.acquired(options, () => this.inner.acquire(options));
  }

  override release(ref: LeaseRef): Promise<void> {
    return this.#count.released(() => this.inner.release(ref));
  }

  override keepAlive(signal: AbortSignal): Promise<SessionLeaseInfo> {
    return this.#count.answered(this.inner.keepAlive(signal));
  }

  override end(): Promise<void> {
    return this.#count.ended();
  }
}
