// One etcd lease, kept alive and watched for loss: etcd's concurrency.Session (session.go),
// which owns the lease every key of its locks hangs on. Each unary Acquire opens one of its
// own for its one lock (grant … revoke on release: unary-lock.ts); a client's session
// (client-session.ts) stands on one, holds many locks on it (lock-session.ts), and renews it
// only when its client asks (a keepalive op).
//
// Time: two estimates are kept, from the answers etcd gives about the lease.
//   expiresAtMs — the earliest etcd can drop the lease: the send time of the last request it
//     answered (grant or keepalive) + TTL. etcd started the TTL no earlier than that send, so
//     this is what a holder may be told (Lease.expires_at_ms).
//   lost        — when, with no newer answer, the session gives the lease up: the arrival of
//     the last answer + TTL. NOTE: the clock starts when the answer returns, not when the
//     request left: a grant that a stalled member or an election held up for seconds is
//     still a fresh lease, and counting from the send made waiters give up on leases they
//     had (etcd's own client also starts its deadline at the answer). etcd3's Lease `lost`
//     event is not used: it fires ~2×TTL after the last good keepalive, while etcd drops
//     the lease at 1×TTL.
// While keepAlive() is held, a keepalive goes out whenever the earliest expiry is 2/3 TTL
// away (every TTL/3, and at once after a slow grant), each attempt bounded by about TTL/3 so
// a stalled member cannot use up the TTL; a failed one is retried every RETRY_MS until the
// lease is confirmed or lost.
import { LeaseExpiredError } from '../../errors.js';
import type { Timer } from '../../clock.js';
import { type EtcdConnection, RETRY_MS } from './connection.js';
import { leaseIdFromDec, leaseIdToDec } from './layout.js';

/**
 * The least time a background keepalive attempt is given before it is retried on another
 * member. NOTE: a keepalive stream that fails while still writable makes etcd3 count its
 * host failed and reset every connection to it (other waiters' watches included), so an
 * attempt is not cut shorter than a busy but healthy member takes to answer.
 */
const KEEPALIVE_ATTEMPT_MIN_MS = 500;

export interface OpenSessionOptions {
  /** The lease TTL asked for, in ms; etcd grants whole seconds (rounded up here) and may raise it to its minimum. */
  readonly ttlMs: number;
  /** What the grant is for, as an UNAVAILABLE message names it. Default 'open a session'. */
  readonly purpose?: string;
}

/**
 * One etcd lease and its keepalive.
 *
 * @example
 * const session = await EtcdSession.open(conn, { ttlMs: 10_000 });
 * {
 *   using _alive = session.keepAlive(); // this server renews the lease while the block runs
 *   await acquireOnSession(session, queue, request); // session.signal aborts if the lease is lost
 * }
 * await session.revoke(); // ends it: etcd deletes every key on the lease
 */
export class EtcdSession {
  /** The lease id as clients hold it and own keys end in: lowercase hex. */
  readonly leaseId: string;
  /** The lease id as etcd3 sends it: decimal. */
  readonly leaseDec: string;
  /** The TTL etcd granted, in ms (whole seconds). */
  readonly ttlMs: number;
  readonly #conn: EtcdConnection;
  readonly #lost = new AbortController();
  #expiresAtMs: number;
  #lostTimer: Timer | undefined;
  /** How many keepAlive() holders want this server to renew the lease. */
  #keepers = 0;
  #nextKeepAlive: Timer | undefined;
  #keepAliveInFlight = false;
  /** detach() or revoke() was called: no more timers. */
  #ended = false;

  private constructor(conn: EtcdConnection, leaseDec: string, ttlMs: number, expiresAtMs: number, lostAtMs: number) {
    this.#conn = conn;
    this.leaseDec = leaseDec;
    this.leaseId = leaseIdFromDec(leaseDec);
    this.ttlMs = ttlMs;
    this.#expiresAtMs = expiresAtMs;
    this.#armLost(lostAtMs);
  }

  /** Grants a new lease (one LeaseGrant). */
  static async open(conn: EtcdConnection, options: OpenSessionOptions): Promise<EtcdSession> {
    const sentAtMs = conn.clock.now();
    const grant = await conn.call(options.purpose ?? 'open a session', undefined, (client) =>
      client.leaseClient.leaseGrant({ TTL: Math.ceil(options.ttlMs / 1000), ID: 0 }),
    );
    const ttlMs = Number(grant.TTL) * 1000;
    return new EtcdSession(conn, grant.ID, ttlMs, sentAtMs + ttlMs, conn.clock.now() + ttlMs);
  }

  /**
   * Takes up a lease granted before, by this or another server (one LeaseTimeToLive). Throws
   * LeaseExpiredError if etcd no longer has it.
   */
  static async resume(conn: EtcdConnection, leaseId: string, signal?: AbortSignal): Promise<EtcdSession> {
    const leaseDec = leaseIdToDec(leaseId);
    const sentAtMs = conn.clock.now();
    const info = await conn.timeToLive('resume the session', leaseDec, signal);
    const leftMs = Number(info.TTL) * 1000;
    if (leftMs < 0)
      throw new LeaseExpiredError(`etcd lease ${leaseId} no longer exists (its TTL ran out, or it was revoked)`);
    // etcd reports whole seconds left, rounded down: both estimates start from that.
    return new EtcdSession(
      conn,
      leaseDec,
      Number(info.grantedTTL) * 1000,
      sentAtMs + leftMs,
      conn.clock.now() + leftMs,
    );
  }

  /**
   * A client session's lease taken up again: the keys attached to it as etcd lists them (one
   * LeaseTimeToLive: what the session holds, wherever it took it), handed to `check`, which
   * throws to refuse the lease (then nothing is sent for it); then one keepalive, whose answer
   * both estimates start from. Throws LeaseExpiredError if etcd no longer has the lease.
   * NOTE: a resume is the client's sign of life. Without the keepalive, the estimates would
   * start from the time left as LeaseTimeToLive reports it (whole seconds, rounded down): a
   * lease with less than a second left would read as lost at once.
   */
  static async resumeWithKeys(
    conn: EtcdConnection,
    leaseId: string,
    check: (keys: readonly Buffer[]) => void,
    signal?: AbortSignal,
  ): Promise<{ session: EtcdSession; keys: readonly Buffer[] }> {
    const leaseDec = leaseIdToDec(leaseId);
    const info = await conn.timeToLive('resume the session', leaseDec, signal, true);
    const gone = () =>
      new LeaseExpiredError(`etcd lease ${leaseId} no longer exists (its TTL ran out, or it was revoked)`);
    if (Number(info.TTL) < 0) throw gone();
    check(info.keys);
    const answer = await conn.keepAliveOnce(leaseDec, { signal });
    if (answer.ttlS <= 0) throw gone();
    const ttlMs = answer.ttlS * 1000;
    const session = new EtcdSession(conn, leaseDec, ttlMs, answer.sentAtMs + ttlMs, answer.answeredAtMs + ttlMs);
    return { session, keys: info.keys };
  }

  /** The earliest etcd can drop the lease, on the backend's clock. */
  get expiresAtMs(): number {
    return this.#expiresAtMs;
  }

  /**
   * Aborts when the lease is lost (not confirmed for a TTL, or etcd says it is gone) or
   * revoked, with a LeaseExpiredError saying which. Never aborts after detach().
   */
  get signal(): AbortSignal {
    return this.#lost.signal;
  }

  /**
   * One keepalive round trip now: restarts the lease's TTL in etcd. Resolves with the new
   * expiresAtMs; rejects with LeaseExpiredError (and aborts signal) if etcd no longer has the
   * lease, or with BackendUnavailableError if etcd could not be reached. NOTE: etcd's answer
   * is the truth: it resolves even after signal aborted on the estimate alone (signal stays
   * aborted; whoever gave the session up on it does not come back to it).
   */
  async renew(options: { signal?: AbortSignal; attemptTimeoutMs?: number } = {}): Promise<number> {
    const answer = await this.#conn.keepAliveOnce(this.leaseDec, options);
    if (answer.ttlS <= 0) {
      this.#lose('was revoked or expired behind its back');
      throw this.#lost.signal.reason;
    }
    this.#expiresAtMs = answer.sentAtMs + answer.ttlS * 1000;
    this.#armLost(answer.answeredAtMs + answer.ttlS * 1000);
    return this.#expiresAtMs;
  }

  /**
   * Keeps the lease alive from this server until the returned handle is disposed (and no
   * other holder remains): the waiter's case, whose caller is present but cannot refresh.
   */
  keepAlive(): Disposable {
    this.#keepers++;
    this.#scheduleKeepAlive();
    let disposed = false;
    return {
      [Symbol.dispose]: () => {
        if (disposed) return;
        disposed = true;
        if (--this.#keepers > 0) return;
        this.#nextKeepAlive?.cancel();
        this.#nextKeepAlive = undefined;
      },
    };
  }

  /**
   * Stops tracking the lease here, without revoking it: its holder keeps it alive from now on
   * (Refresh, possibly through another server), or its TTL ends it. Idempotent.
   */
  detach(): void {
    this.#ended = true;
    this.#lostTimer?.cancel();
    this.#nextKeepAlive?.cancel();
    this.#lostTimer = this.#nextKeepAlive = undefined;
  }

  /**
   * Ends the session (one LeaseRevoke): etcd deletes every key on the lease at once. signal
   * aborts first. A lease already gone is no failure; an unreachable etcd rejects with
   * BackendUnavailableError and leaves the lease to its TTL.
   */
  async revoke(): Promise<void> {
    this.#lose('was revoked (its session ended)');
    await this.#conn.revoke(this.leaseDec);
  }

  #armLost(lostAtMs: number): void {
    if (this.#ended) return;
    this.#lostTimer?.cancel();
    this.#lostTimer = this.#conn.clock.schedule(lostAtMs - this.#conn.clock.now(), () =>
      this.#lose(`expired (etcd did not answer a keepalive for ${this.ttlMs / 1000} s)`),
    );
  }

  #lose(why: string): void {
    if (!this.#lost.signal.aborted) this.#lost.abort(new LeaseExpiredError(`etcd lease ${this.leaseId} ${why}`));
    this.detach();
  }

  /** The next keepalive: when the earliest expiry is 2/3 TTL away, or after retryMs. */
  #scheduleKeepAlive(retryMs?: number): void {
    if (this.#ended || this.#keepers === 0 || this.#keepAliveInFlight) return;
    this.#nextKeepAlive?.cancel();
    const dueMs = retryMs ?? this.#expiresAtMs - (this.ttlMs * 2) / 3 - this.#conn.clock.now();
    this.#nextKeepAlive = this.#conn.clock.schedule(Math.max(0, dueMs), () => {
      this.#nextKeepAlive = undefined;
      void this.#keepAliveNow();
    });
  }

  async #keepAliveNow(): Promise<void> {
    this.#keepAliveInFlight = true;
    let retryMs: number | undefined;
    try {
      const attemptTimeoutMs = Math.min(this.#conn.opTimeoutMs, Math.max(KEEPALIVE_ATTEMPT_MIN_MS, this.ttlMs / 3));
      await this.renew({ attemptTimeoutMs });
    } catch {
      // Unreachable etcd: try again soon; the lost timer decides when the lease is given up.
      retryMs = RETRY_MS;
    } finally {
      this.#keepAliveInFlight = false;
    }
    this.#scheduleKeepAlive(retryMs);
  }
}
