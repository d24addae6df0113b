// LockHandle: a held lease that is kept alive, says through an AbortSignal when it can no
// longer be trusted, and releases on dispose the way etcd's Session.Close does. What keeps it
// alive is its LeaseKeeper: its own Refresh calls (RefreshingLease, below) for a lock taken
// with a unary Acquire, or the keepalive of the lock session it was acquired in (session.ts).
import { CancelledError, LeaseLostError, NotHolderError } from './errors.js';
import type { Lease__Output } from './common/index.js';
import type { CallOptions } from './unary-call.js';

/**
 * - held: the lease is being kept alive.
 * - released: Release succeeded; the lock is free for others.
 * - lost: the lease expired or another lease took the lock before it was released (see
 *   `error`, a LeaseLostError).
 * - release-failed: Release did not get through (see `error`); the server frees the lock
 *   when the lease expires, at `expiresAt` at the latest.
 */
export type LockHandleState = 'held' | 'released' | 'lost' | 'release-failed';

/**
 * A held lock (see LatchkeyClient.lock): it is kept alive (its own Refresh every TTL / 3,
 * or its lock session's keepalive), aborts its `signal` when it can no longer vouch for the
 * lock, and releases it when disposed.
 *
 * ```ts
 * await using lock = await client.lock('deploy', { waitMs: 10_000, ttlMs: 15_000 });
 * // Fence what the lock protects: a holder whose lease ran out cannot overwrite this.
 * await client.cache().set('deploy/state', 'running', { fence: lock });
 * await runDeploy({ signal: lock.signal });
 * // Leaving the block releases the lock, even if runDeploy() threw; lock.state then says how that went.
 * ```
 */
export interface LockHandle extends AsyncDisposable {
  readonly name: string;
  /** The backend that granted the lease (the server's default resolved to its name). */
  readonly backend: string;
  readonly leaseId: string;
  /** Strictly increases per lock name with every grant (where the backend declares `fencing`). */
  readonly fencingToken: bigint;
  readonly owner: string;
  /** How the lease holds the lock: 'EXCLUSIVE' (also each holder of a semaphore) or 'SHARED'. */
  readonly mode: 'EXCLUSIVE' | 'SHARED';
  /** The semaphore limit the lease was granted under; 1 for a plain lock and for SHARED. */
  readonly limit: number;
  /** The TTL the lease is kept alive on: the one every Refresh asks for, or its session's. */
  readonly ttlMs: number;
  /**
   * The lease's expiry as the server stated it at the last successful Acquire or Refresh (or
   * session keepalive, for a lock held in a session).
   */
  readonly expiresAt: Date;
  /**
   * Aborted once the lock no longer protects you: lost (`reason` is a LeaseLostError) or
   * released (`reason` is a CancelledError). Pass it to the work the lock protects.
   */
  readonly signal: AbortSignal;
  readonly state: LockHandleState;
  /** Why the handle is `lost` or `release-failed`; undefined otherwise. */
  readonly error: Error | undefined;
  /**
   * Stops keeping the lease alive, then releases it with a deadline capped at the TTL.
   * Idempotent: later calls return the first call's result. Never rejects: the outcome is the
   * result.
   */
  release(options?: CallOptions): Promise<Exclude<LockHandleState, 'held'>>;
}

/**
 * What keeps one lease alive and lets it go. The handle owns the state (held, released, ...);
 * the keeper only reports to it through the KeptLease it is started with.
 */
export interface LeaseKeeper {
  readonly ttlMs: number;
  /** The lease's expiry as the server last stated it. */
  readonly expiresAt: Date;
  /** Starts keeping the lease alive for `lease`, which it tells when that is over. */
  start(lease: KeptLease): void;
  /** Stops keeping it: its release has begun, or it is lost. */
  stop(): void;
  /** Releases the lease. Rejects with NotHolderError when it no longer held the lock. */
  release(options: CallOptions & { readonly deadlineMs: number }): Promise<void>;
}

/** What a keeper tells the handle of its lease. */
export interface KeptLease {
  /** The lease can no longer be trusted (a no-op once its release has begun). */
  lose(reason: LeaseLostError): void;
  /**
   * The lease was released with its whole session (the client was closed), or, with
   * `error`, that end could not be confirmed: the lock is freed at the session's expiry.
   */
  ended(error?: Error): void;
}

/**
 * The two RPCs a unary lease's keeper makes, bound by the client to this lease and its channel
 * (Refresh and Release; for a leadership, KeepAlive and Resign).
 */
export interface LeaseCalls {
  /** Renews the lease; resolves with its new expiry as the server states it. */
  refresh(
    ttlMs: number,
    options: CallOptions & { readonly deadlineMs: number },
  ): Promise<Pick<Lease__Output, 'expires_at_ms'>>;
  release(options: CallOptions & { readonly deadlineMs: number }): Promise<void>;
}

export interface RefreshingKeeperOptions {
  /** What the lease holds, as messages name it: 'lock "x"', 'leadership of election "x"'. */
  readonly label: string;
  readonly ttlMs: number;
  /** The expiry the server stated when it granted the lease (ms since the epoch, as a string). */
  readonly expiresAtMs: string;
  /** performance.now() just before the request that granted the lease was sent. */
  readonly sentAt: number;
  readonly calls: LeaseCalls;
  /** The client's default deadline; each refresh is bounded by it too. */
  readonly deadlineMs: number;
}

/**
 * The keeper of a lease that refreshes itself with its own RPCs (a refresh every TTL / 3),
 * and gives it up when none has been confirmed within about one TTL. confirm() makes one
 * refresh at once (see openLockHandle).
 */
export function refreshingKeeper(options: RefreshingKeeperOptions): LeaseKeeper & {
  confirm(signal: AbortSignal | undefined): Promise<void>;
} {
  return new RefreshingLease(options);
}

export interface OpenLockHandleOptions {
  readonly lease: Lease__Output;
  readonly ttlMs: number;
  /** performance.now() just before the Acquire was sent. */
  readonly sentAt: number;
  readonly calls: LeaseCalls;
  /** The client's default deadline; each Refresh and Release is bounded by it too. */
  readonly deadlineMs: number;
  /** The acquiring caller's signal: cancels the confirming Refresh, if one is needed. */
  readonly signal?: AbortSignal | undefined;
  /** Called once, when the handle leaves `held`. */
  readonly onSettled?: (handle: LockHandle) => void;
}

/**
 * Wraps a lease granted by a unary Acquire in a handle that refreshes it.
 *
 * NOTE: the local expiry estimate is "request sent + TTL", which is never later than the
 * server's real expiry (it starts the TTL when it grants, after we sent). An Acquire that
 * waited may return when that estimate has nearly or already passed although the lease is
 * fresh (granted just now, after a long wait), so such a lease is confirmed with a Refresh
 * before the handle is handed out. If that Refresh finds the lease gone, the lock was lost
 * before it could be used: LeaseLostError.
 */
export async function openLockHandle(options: OpenLockHandleOptions): Promise<LockHandle> {
  const keeper = new RefreshingLease({
    label: `lock "${options.lease.name}"`,
    ttlMs: options.ttlMs,
    expiresAtMs: options.lease.expires_at_ms,
    sentAt: options.sentAt,
    calls: options.calls,
    deadlineMs: options.deadlineMs,
  });
  if (performance.now() - options.sentAt >= options.ttlMs / 2) {
    try {
      await keeper.confirm(options.signal);
    } catch (err) {
      if (err instanceof NotHolderError)
        throw new LeaseLostError(
          `lock "${options.lease.name}" was granted but its lease was gone before it could be confirmed; use a ttlMs well above the time an Acquire takes (${err.message})`,
          { cause: err },
        );
      // Not handed out: nobody else would let it go before its TTL.
      await keeper.release({ deadlineMs: Math.min(options.deadlineMs, options.ttlMs) }).catch(() => {});
      throw err;
    }
  }
  return createLockHandle({ ...options, keeper });
}

export interface CreateLockHandleOptions {
  readonly lease: Lease__Output;
  readonly keeper: LeaseKeeper;
  /** The client's default deadline, for a release() that passes none (capped at the TTL). */
  readonly deadlineMs: number;
  /** Called once, when the handle leaves `held`. */
  readonly onSettled?: ((handle: LockHandle) => void) | undefined;
}

/** A handle for `lease`, kept alive by `keeper` from now on. */
export function createLockHandle(options: CreateLockHandleOptions): LockHandle {
  const handle = new Handle(options);
  options.keeper.start(handle);
  return handle;
}

function after(ms: number, fn: () => void): NodeJS.Timeout {
  const timer = setTimeout(fn, Math.max(0, ms));
  // A held lock must not keep the process alive on its own.
  timer.unref();
  return timer;
}

/**
 * How long before its estimated expiry a lease is given up on.
 * NOTE: timers fire late under load and clocks run at slightly different rates, so a handle
 * (or a session) gives up this much before its estimate rather than exactly at it.
 */
export function expiryMarginMs(ttlMs: number): number {
  return Math.min(ttlMs / 10, 1_000);
}

/** The keeper of a unary lease: a Refresh every TTL / 3, and the verdict when none gets through. */
class RefreshingLease implements LeaseKeeper {
  readonly ttlMs: number;
  readonly #label: string;
  readonly #calls: LeaseCalls;
  readonly #deadlineMs: number;
  readonly #marginMs: number;
  #expiresAt: Date;
  /** performance.now() of the last request (Acquire or Refresh) the server answered with a lease. */
  #lastSentAt: number;
  #refreshTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #inflight: AbortController | undefined;
  #lastRefreshError: Error | undefined;
  #lease: KeptLease | undefined;
  /** Set by stop(): no more refreshes, no more reports. */
  #stopped = false;

  constructor(options: RefreshingKeeperOptions) {
    this.ttlMs = options.ttlMs;
    this.#label = options.label;
    this.#calls = options.calls;
    this.#deadlineMs = options.deadlineMs;
    this.#marginMs = expiryMarginMs(options.ttlMs);
    this.#expiresAt = new Date(Number(options.expiresAtMs));
    this.#lastSentAt = options.sentAt;
  }

  get expiresAt(): Date {
    return this.#expiresAt;
  }

  /** The time (performance.now()) after which the lease may be gone on the server. */
  get #giveUpAt(): number {
    return this.#lastSentAt + this.ttlMs - this.#marginMs;
  }

  start(lease: KeptLease): void {
    this.#lease = lease;
    this.#arm();
  }

  /** Starts the refresh and expiry timers from the last successful request. */
  #arm(): void {
    if (this.#stopped) return;
    const now = performance.now();
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#expiryTimer);
    this.#refreshTimer = after(this.#lastSentAt + this.ttlMs / 3 - now, () => void this.#refresh());
    this.#expiryTimer = after(this.#giveUpAt - now, () => {
      const last = this.#lastRefreshError;
      const why = last === undefined ? 'no Refresh answered in time' : `last Refresh failed: ${last.message}`;
      this.#lose(
        new LeaseLostError(
          `${this.#label} may have expired: its lease was not refreshed within its ${this.ttlMs} ms TTL (${why})`,
          { cause: last },
        ),
      );
    });
  }

  /** One Refresh before the handle is handed out; see openLockHandle. */
  async confirm(signal: AbortSignal | undefined): Promise<void> {
    const sentAt = performance.now();
    this.#extend(await this.#calls.refresh(this.ttlMs, { deadlineMs: this.#deadlineMs, signal }), sentAt);
  }

  #extend(lease: Pick<Lease__Output, 'expires_at_ms'>, sentAt: number): void {
    this.#lastSentAt = sentAt;
    this.#expiresAt = new Date(Number(lease.expires_at_ms));
    this.#lastRefreshError = undefined;
  }

  async #refresh(): Promise<void> {
    if (this.#stopped) return;
    const sentAt = performance.now();
    const inflight = new AbortController();
    this.#inflight = inflight;
    // No answer is useful after the expiry timer has given up on the lease.
    // NOTE: nor is waiting longer than a third of the TTL for it: a Refresh unanswered that
    // long (a server cut off by a partition answers nothing, and its connection does not
    // fail) moves the client to its next server, and the retry below still has time there
    // before the lease could expire. A session's keepalive follows the same rule.
    const deadlineMs = Math.max(1, Math.min(this.#deadlineMs, this.ttlMs / 3, this.#giveUpAt - sentAt));
    try {
      const lease = await this.#calls.refresh(this.ttlMs, { deadlineMs, signal: inflight.signal });
      if (this.#stopped) return;
      this.#extend(lease, sentAt);
      this.#arm();
    } catch (err) {
      if (this.#stopped) return;
      if (err instanceof NotHolderError) {
        this.#lose(new LeaseLostError(`${this.#label} was lost: ${err.message}`, { cause: err }));
        return;
      }
      // Transient (server unreachable, deadline, restart): keep trying; the expiry timer,
      // still armed from the last success, decides when it is too late.
      this.#lastRefreshError = err instanceof Error ? err : new Error(String(err));
      clearTimeout(this.#refreshTimer);
      this.#refreshTimer = after(Math.min(Math.max(this.ttlMs / 10, 10), 1_000), () => void this.#refresh());
    } finally {
      if (this.#inflight === inflight) this.#inflight = undefined;
    }
  }

  #lose(reason: LeaseLostError): void {
    if (this.#stopped) return;
    this.stop();
    this.#lease?.lose(reason);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#expiryTimer);
    this.#inflight?.abort();
  }

  release(options: CallOptions & { readonly deadlineMs: number }): Promise<void> {
    return this.#calls.release(options);
  }
}

class Handle implements LockHandle, KeptLease {
  readonly name: string;
  readonly backend: string;
  readonly leaseId: string;
  readonly fencingToken: bigint;
  readonly owner: string;
  readonly mode: 'EXCLUSIVE' | 'SHARED';
  readonly limit: number;
  readonly #keeper: LeaseKeeper;
  readonly #deadlineMs: number;
  readonly #onSettled: ((handle: LockHandle) => void) | undefined;
  /** Made when `signal` is first read: most handles are released without anyone asking. */
  #controller: AbortController | undefined;
  /**
   * Why the signal aborts, once settled; a function, so that a handle released with nobody
   * watching its signal makes no Error (capturing a stack costs more than the release).
   */
  #abortReason: (() => Error) | undefined;
  #state: LockHandleState = 'held';
  #error: Error | undefined;
  /** Set when release starts or the lease is lost: no more state changes from the keeper. */
  #stopped = false;
  #released: Promise<Exclude<LockHandleState, 'held'>> | undefined;

  constructor({ lease, keeper, deadlineMs, onSettled }: CreateLockHandleOptions) {
    this.name = lease.name;
    this.backend = lease.backend;
    this.leaseId = lease.lease_id;
    this.fencingToken = BigInt(lease.fencing_token);
    this.owner = lease.owner;
    // A server older than semaphores and shared locks sends neither, and granted a plain lock.
    this.mode = lease.mode;
    this.limit = lease.limit || 1;
    this.#keeper = keeper;
    this.#deadlineMs = deadlineMs;
    this.#onSettled = onSettled;
  }

  get ttlMs(): number {
    return this.#keeper.ttlMs;
  }

  get expiresAt(): Date {
    return this.#keeper.expiresAt;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason());
    }
    return this.#controller.signal;
  }

  get state(): LockHandleState {
    return this.#state;
  }

  get error(): Error | undefined {
    return this.#error;
  }

  lose(reason: LeaseLostError): void {
    if (this.#stopped) return;
    this.#stop();
    this.#settle('lost', reason, () => reason);
  }

  ended(error?: Error): void {
    this.#stop();
    if (error === undefined) {
      this.#settle(
        'released',
        undefined,
        () => new CancelledError(`lock "${this.name}" was released with its session`),
      );
      return;
    }
    this.#settle(
      'release-failed',
      error,
      () =>
        new CancelledError(
          `lock "${this.name}" was given up, but the end of its session was not confirmed (${error.message}); the server frees it when the session expires`,
          { cause: error },
        ),
    );
  }

  #stop(): void {
    this.#stopped = true;
    this.#keeper.stop();
  }

  #settle(state: Exclude<LockHandleState, 'held'>, error: Error | undefined, reason: () => Error): void {
    if (this.#state !== 'held') return;
    this.#state = state;
    this.#error = error;
    this.#abortReason = reason;
    this.#controller?.abort(reason());
    this.#onSettled?.(this);
  }

  release(options: CallOptions = {}): Promise<Exclude<LockHandleState, 'held'>> {
    this.#released ??= this.#release(options);
    return this.#released;
  }

  async #release(options: CallOptions): Promise<Exclude<LockHandleState, 'held'>> {
    this.#stop();
    if (this.#state !== 'held') return this.#state;
    // NOTE: capped at the TTL like etcd's Session.Close: past it the lease is gone anyway,
    // and a dispose must not hang on an unreachable server for the whole client deadline.
    const deadlineMs = Math.min(options.deadlineMs ?? this.#deadlineMs, this.ttlMs);
    try {
      await this.#keeper.release({ deadlineMs, signal: options.signal });
      this.#settle('released', undefined, () => new CancelledError(`lock "${this.name}" was released`));
      return 'released';
    } catch (err) {
      if (this.#state !== 'held') return this.#state; // ended with its session meanwhile
      if (err instanceof NotHolderError) {
        const lost =
          err instanceof LeaseLostError
            ? err
            : new LeaseLostError(`lock "${this.name}" was already lost when released: ${err.message}`, {
                cause: err,
              });
        this.#settle('lost', lost, () => lost);
        return 'lost';
      }
      const error = err instanceof Error ? err : new Error(String(err));
      const reason = new CancelledError(
        `lock "${this.name}" was given up, but Release failed (${error.message}); the server frees it when its lease expires`,
        { cause: error },
      );
      this.#settle('release-failed', error, () => reason);
      return 'release-failed';
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}
