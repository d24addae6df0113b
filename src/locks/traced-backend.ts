// Tracing as a decorator of a LockBackend, beside metering (metered-backend.ts): each
// operation on a backend, whatever called it, is one span ("lock acquire", a child of the
// call's or the op's span; see tracing.ts) with the lock's name, the backend and the outcome.
// The etcd requests behind it are its children. Never the lease id or the fencing token: the
// one releases the lock, the other is a holder's proof.
//
// NOTE: a new backend method that acquires or releases (a session's) goes through the same
// #acquired / #released below, so its span reads like Acquire's and Release's.
//
// Lock sessions: openSession and resumeSession hand out each session wrapped, one wrapper per
// session object as metered-backend.ts does (a resume through this server returns the object
// it returned before): its acquire and release are spans as Acquire's and Release's are (no
// ttl_ms: the session's lease is the lock's), under the span of the session op that asked
// (session-service.ts); its keepalive and end pass through, their etcd requests under the
// keepalive op's span and the Session call's. Elections: traced-election.ts.
import type { ElectionBackend } from './election.js';
import { tracedElections } from './traced-election.js';
import { ForwardingSession } from './forwarding-session.js';
import type { Attributes } from '@opentelemetry/api';
import { CancelledError, LeaseExpiredError, LockBusyError, NotHolderError, ShuttingDownError } from '../errors.js';
import { inSpan } from '../tracing.js';
import type {
  AcquireOptions,
  Lease,
  LeaseRef,
  LockBackend,
  LockEvent,
  LockSession,
  LockState,
  SessionAcquireOptions,
  SessionOptions,
} from './backend.js';

/** How an acquire ended, as latchkey.outcome says it. */
function acquireFailure(err: unknown): string {
  if (err instanceof LockBusyError) return 'busy';
  if (err instanceof CancelledError || err instanceof ShuttingDownError) return 'cancelled';
  return 'error';
}

/** How a release or refresh of a lease ended, when it did not. */
function leaseFailure(err: unknown): string {
  if (err instanceof NotHolderError) return 'not_holder';
  if (err instanceof LeaseExpiredError) return 'expired';
  return 'error';
}

/** `backend`, with a span per operation. */
export function tracedBackend(backend: LockBackend): LockBackend {
  return new TracedLockBackend(backend);
}

class TracedLockBackend implements LockBackend {
  readonly kind: string;
  readonly capabilities: LockBackend['capabilities'];
  readonly location?: string;
  /** Present exactly when the backend's is. A watch is a stream, not an operation: its call's span covers it. */
  readonly watch?: (name: string, signal: AbortSignal) => AsyncIterable<LockEvent>;
  readonly openSession?: (options: SessionOptions) => Promise<LockSession>;
  readonly resumeSession?: (id: string, signal: AbortSignal) => Promise<LockSession>;
  readonly elections?: ElectionBackend;
  readonly #backend: LockBackend;
  /** The wrapper of each session object handed out, so a resume returns the same one. */
  readonly #wrapped = new WeakMap<LockSession, TracedSession>();

  constructor(backend: LockBackend) {
    this.kind = backend.kind;
    this.capabilities = backend.capabilities;
    if (backend.location !== undefined) this.location = backend.location;
    this.#backend = backend;
    if (backend.watch !== undefined) this.watch = backend.watch.bind(backend);
    // A span per election operation too (traced-election.ts).
    if (backend.elections !== undefined) this.elections = tracedElections(backend.elections, backend.kind);
    if (backend.openSession !== undefined) {
      const open = backend.openSession.bind(backend);
      this.openSession = async (options) => this.#wrap(await open(options));
    }
    if (backend.resumeSession !== undefined) {
      const resume = backend.resumeSession.bind(backend);
      this.resumeSession = async (id, signal) => this.#wrap(await resume(id, signal));
    }
  }

  acquire(options: AcquireOptions): Promise<Lease> {
    return this.#acquired(options, () => this.#backend.acquire(options));
  }

  refresh(ref: LeaseRef, ttlMs: number): Promise<Lease> {
    return inSpan(
      'lock refresh',
      () => ({ ...this.#lock(ref.name), 'latchkey.lock.ttl_ms': ttlMs }),
      () => this.#backend.refresh(ref, ttlMs),
      () => 'refreshed',
      leaseFailure,
    );
  }

  release(ref: LeaseRef): Promise<void> {
    return this.#released(ref.name, () => this.#backend.release(ref));
  }

  describe(name: string, signal: AbortSignal): Promise<LockState> {
    return inSpan(
      'lock describe',
      () => this.#lock(name),
      () => this.#backend.describe(name, signal),
      (state) => (state.held ? 'held' : 'free'),
      () => 'error',
    );
  }

  close(): Promise<void> {
    return this.#backend.close();
  }

  #wrap(session: LockSession): TracedSession {
    let wrapper = this.#wrapped.get(session);
    if (wrapper === undefined) {
      wrapper = new TracedSession(session, {
        acquired: (options, acquire) => this.#acquired(options, acquire),
        released: (name, release) => this.#released(name, release),
      });
      this.#wrapped.set(session, wrapper);
    }
    return wrapper;
  }

  #lock(name: string): Attributes {
    return { 'latchkey.lock.name': name, 'latchkey.lock.backend': this.kind };
  }

  /** One acquire: granted, busy (not granted in time), cancelled, or error. */
  #acquired(
    options: Omit<AcquireOptions, 'signal' | 'ttlMs'> & { readonly ttlMs?: number },
    acquire: () => Promise<Lease>,
  ): Promise<Lease> {
    return inSpan(
      'lock acquire',
      () => ({
        ...this.#lock(options.name),
        'latchkey.lock.owner': options.owner,
        'latchkey.lock.mode': options.mode,
        'latchkey.lock.limit': options.limit,
        ...(options.ttlMs === undefined ? {} : { 'latchkey.lock.ttl_ms': options.ttlMs }),
        'latchkey.lock.wait_ms': options.waitMs,
      }),
      acquire,
      () => 'granted',
      acquireFailure,
    );
  }

  /** One release: released, not_holder, expired, or error. */
  #released(name: string, release: () => Promise<void>): Promise<void> {
    return inSpan(
      'lock release',
      () => this.#lock(name),
      release,
      () => 'released',
      leaseFailure,
    );
  }
}

/** The spans a TracedSession borrows from its backend's decorator. */
interface SessionTracing {
  acquired(options: SessionAcquireOptions, acquire: () => Promise<Lease>): Promise<Lease>;
  released(name: string, release: () => Promise<void>): Promise<void>;
}

/** A LockSession whose acquires and releases are spans as Acquire's and Release's are. */
class TracedSession extends ForwardingSession {
  readonly #trace: SessionTracing;

  constructor(session: LockSession, trace: SessionTracing) {
    super(session);
    this.#trace = trace;
  }

  override acquire(options: SessionAcquireOptions): Promise<Lease> {
    return this.#trace.acquired(options, () => this.inner.acquire(options));
  }

  override release(ref: LeaseRef): Promise<void> {
    return this.#trace.released(ref.name, () => this.inner.release(ref));
  }
}
