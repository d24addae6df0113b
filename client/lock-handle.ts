// LockHandle: a held lease that refreshes itself, says through an AbortSignal when it can no
// longer be trusted, and releases on dispose the way etcd's Session.Close does.
import { CancelledError, LeaseLostError, NotHolderError } from './errors.js';
import type { Lease__Output } from './common/index.js';
import type { CallOptions } from './unary-call.js';

/**
 * - held: the handle is refreshing the lease.
 * - released: Release succeeded; the lock is free for others.
 * - lost: the lease expired or another lease took the lock before it was released (see
 *   `error`, a LeaseLostError).
 * - release-failed: Release did not get through (see `error`); the server frees the lock
 *   when the lease expires, at `expiresAt` at the latest.
 */
export type LockHandleState = 'held' | 'released' | 'lost' | 'release-failed';

/**
 * A held lock (see LatchkeyClient.lock): it refreshes its lease every TTL / 3, aborts its
 * `signal` when it can no longer vouch for the lock, and releases it when disposed.
 *
 * ```ts
 * await using lock = await client.lock('deploy', { waitMs: 10_000, ttlMs: 15_000 });
 * // Fence what the lock protects: a holder whose lease ran out cannot overwrite this.
 * await client.cache().set('deploy/state', 'running', { fence: lock });
 * await runDeploy({ signal: lock.signal });
 * // Leaving the block releases the lock; lock.state then says how that went.
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
  /** The TTL the handle asks for on every Refresh. */
  readonly ttlMs: number;
  /** The lease's expiry as the server stated it at the last successful Acquire or Refresh. */
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
   * Stops refreshing, then releases with a deadline capped at the TTL. Idempotent: later
   * calls return the first call's result. Never rejects: the outcome is the result.
   */
  release(options?: CallOptions): Promise<Exclude<LockHandleState, 'held'>>;
}

/** The two RPCs a handle makes, bound by the client to this lease and its channel. */
export interface LeaseCalls {
  refresh(ttlMs: number, options: CallOptions & { readonly deadlineMs: number }): Promise<Lease__Output>;
  release(options: CallOptions & { readonly deadlineMs: number }): Promise<void>;
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
 * Wraps a granted lease in a refreshing handle.
 *
 * NOTE: the local expiry estimate is "request sent + TTL", which is never later than the
 * server's real expiry (it starts the TTL when it grants, after we sent). An Acquire that
 * waited may return when that estimate has nearly or already passed although the lease is
 * fresh (granted just now, after a long wait), so such a lease is confirmed with a Refresh
 * before the handle is handed out. If that Refresh finds the lease gone, the lock was lost
 * before it could be used: LeaseLostError.
 */
export async function openLockHandle(options: OpenLockHandleOptions): Promise<LockHandle> {
  const handle = new Handle(options);
  if (performance.now() - options.sentAt >= options.ttlMs / 2) await handle.confirm(options.signal);
  else handle.arm();
  return handle;
}

function after(ms: number, fn: () => void): NodeJS.Timeout {
  const timer = setTimeout(fn, Math.max(0, ms));
  // A held lock must not keep the process alive on its own.
  timer.unref();
  return timer;
}

class Handle implements LockHandle {
  readonly name: string;
  readonly backend: string;
  readonly leaseId: string;
  readonly fencingToken: bigint;
  readonly owner: string;
  readonly mode: 'EXCLUSIVE' | 'SHARED';
  readonly limit: number;
  readonly ttlMs: number;
  readonly #calls: LeaseCalls;
  readonly #deadlineMs: number;
  readonly #onSettled: ((handle: LockHandle) => void) | undefined;
  readonly #controller = new AbortController();
  /**
   * NOTE: timers fire late under load and clocks run at slightly different rates, so the
   * handle gives up this much before its estimate rather than exactly at it.
   */
  readonly #marginMs: number;
  #expiresAt: Date;
  #state: LockHandleState = 'held';
  #error: Error | undefined;
  /** performance.now() of the last request (Acquire or Refresh) the server answered with a lease. */
  #lastSentAt: number;
  #refreshTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #inflight: AbortController | undefined;
  #lastRefreshError: Error | undefined;
  /** Set when release starts or the lease is lost: no more refreshes, no more state changes from them. */
  #stopped = false;
  #released: Promise<Exclude<LockHandleState, 'held'>> | undefined;

  constructor(options: OpenLockHandleOptions) {
    const { lease } = options;
    this.name = lease.name;
    this.backend = lease.backend;
    this.leaseId = lease.lease_id;
    this.fencingToken = BigInt(lease.fencing_token);
    this.owner = lease.owner;
    // A server older than semaphores and shared locks sends neither, and granted a plain lock.
    this.mode = lease.mode;
    this.limit = lease.limit || 1;
    this.ttlMs = options.ttlMs;
    this.#calls = options.calls;
    this.#deadlineMs = options.deadlineMs;
    this.#onSettled = options.onSettled;
    this.#marginMs = Math.min(options.ttlMs / 10, 1_000);
    this.#expiresAt = new Date(Number(lease.expires_at_ms));
    this.#lastSentAt = options.sentAt;
  }

  get expiresAt(): Date {
    return this.#expiresAt;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get state(): LockHandleState {
    return this.#state;
  }

  get error(): Error | undefined {
    return this.#error;
  }

  /** The time (performance.now()) after which the lease may be gone on the server. */
  get #giveUpAt(): number {
    return this.#lastSentAt + this.ttlMs - this.#marginMs;
  }

  /** Starts the refresh and expiry timers from the last successful request. */
  arm(): void {
    const now = performance.now();
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#expiryTimer);
    this.#refreshTimer = after(this.#lastSentAt + this.ttlMs / 3 - now, () => void this.#refresh());
    this.#expiryTimer = after(this.#giveUpAt - now, () => {
      const last = this.#lastRefreshError;
      const why = last === undefined ? 'no Refresh answered in time' : `last Refresh failed: ${last.message}`;
      this.#lose(
        new LeaseLostError(
          `lock "${this.name}" may have expired: its lease was not refreshed within its ${this.ttlMs} ms TTL (${why})`,
          { cause: last },
        ),
      );
    });
  }

  /** One Refresh before the handle is handed out; see openLockHandle. */
  async confirm(signal: AbortSignal | undefined): Promise<void> {
    const sentAt = performance.now();
    try {
      this.#extend(await this.#calls.refresh(this.ttlMs, { deadlineMs: this.#deadlineMs, signal }), sentAt);
      this.arm();
    } catch (err) {
      if (err instanceof NotHolderError) {
        const lost = new LeaseLostError(
          `lock "${this.name}" was granted but its lease was gone before it could be confirmed; use a ttlMs well above the time an Acquire takes (${err.message})`,
          { cause: err },
        );
        this.#lose(lost);
        throw lost;
      }
      await this.release();
      throw err;
    }
  }

  #extend(lease: Lease__Output, sentAt: number): void {
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
    const deadlineMs = Math.max(1, Math.min(this.#deadlineMs, this.#giveUpAt - sentAt));
    try {
      const lease = await this.#calls.refresh(this.ttlMs, { deadlineMs, signal: inflight.signal });
      if (this.#stopped) return;
      this.#extend(lease, sentAt);
      this.arm();
    } catch (err) {
      if (this.#stopped) return;
      if (err instanceof NotHolderError) {
        this.#lose(new LeaseLostError(`lock "${this.name}" was lost: ${err.message}`, { cause: err }));
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

  #stop(): void {
    this.#stopped = true;
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#expiryTimer);
    this.#inflight?.abort();
  }

  #lose(reason: LeaseLostError): void {
    if (this.#stopped) return;
    this.#stop();
    this.#settle('lost', reason, reason);
  }

  #settle(state: Exclude<LockHandleState, 'held'>, error: Error | undefined, reason: Error): void {
    if (this.#state !== 'held') return;
    this.#state = state;
    this.#error = error;
    this.#controller.abort(reason);
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
      await this.#calls.release({ deadlineMs, signal: options.signal });
      this.#settle('released', undefined, new CancelledError(`lock "${this.name}" was released`));
      return 'released';
    } catch (err) {
      if (err instanceof NotHolderError) {
        const lost = new LeaseLostError(`lock "${this.name}" was already lost when released: ${err.message}`, {
          cause: err,
        });
        this.#settle('lost', lost, lost);
        return 'lost';
      }
      const error = err instanceof Error ? err : new Error(String(err));
      const reason = new CancelledError(
        `lock "${this.name}" was given up, but Release failed (${error.message}); the server frees it when its lease expires`,
        { cause: error },
      );
      this.#settle('release-failed', error, reason);
      return 'release-failed';
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}
