// A client's lock session on etcd: many locks on one client session (client-session.ts: one
// etcd lease, session.ts), as etcd's concurrency.Session carries many mutexes (session.go,
// mutex.go). Acquire is the mutex transaction on the session's lease (no grant), release one
// delete of the own key (no revoke), keepalive a read of the session's mark and one
// LeaseKeepAlive for every lock at once, and the clean end one LeaseRevoke: etcd deletes every
// key of the lease together. The keys are the unary path's (layout.ts), so `etcdctl lock`
// contends with session locks as with any other. A lock released from outside (Locks/Release
// of its lease id, through any server: lease-holder.ts) takes the mark with it: the session is
// lost, and no server renews or resumes it. Opening and resuming: lock-session-open.ts.
//
// This file keeps the locks' side of a server's copy of the session: the names it holds and
// waits for, which is how it refuses a name asked for twice (etcd cannot tell: a retried put
// whose first attempt was applied finds the key as a second request of the same name would).
// Everything else about the session (its lease, state, signal, expiry) is ClientSession's.
import {
  FailedPreconditionError,
  type LatchkeyError,
  LeaseExpiredError,
  NotHolderError,
  throwIfAborted,
} from '../../errors.js';
import type {
  Lease,
  LeaseRef,
  LockSession,
  SessionAcquireOptions,
  SessionLeaseInfo,
  SessionState,
} from '../backend.js';
import { acquireOnSession, leaveQueue, releaseOwnKey } from './acquire.js';
import { ClientSession, type ClientSessionInit } from './client-session.js';
import type { EtcdConnection } from './connection.js';
import {
  claimOf,
  describeHolders,
  grantedCount,
  parseSessionLockId,
  type QueueKey,
  sessionLockIdMatches,
  sessionLockIdOf,
} from './layout.js';
import { LockQueue } from './queue.js';
import type { EtcdSession } from './session.js';

/** What a session tells the backend that keeps its copy (lock-backend.ts). */
export interface SessionHost {
  readonly conn: EtcdConnection;
  /** Prefix of every lock key (EtcdLockBackendOptions.prefix). */
  readonly prefix: string;
  /** The session expired: etcd confirmed its lease gone while this server served it. */
  expired(session: EtcdLockSession, locks: number): void;
  /** This server no longer follows the session (ended, expired, or stepped aside). */
  forget(session: EtcdLockSession): void;
}

/**
 * A LockSession on one etcd lease (see the top of this file).
 *
 * @example
 * const session = await openLockSession(host, 10_000); // one LeaseGrant, one Put (the mark)
 * const lock = await session.acquire({ name: 'jobs/1', waitMs: 0, owner, mode: 'EXCLUSIVE', limit: 1, signal });
 * await session.keepAlive(signal); // one LeaseKeepAlive renews jobs/1 and every other lock
 * await session.release({ name: 'jobs/1', leaseId: lock.leaseId, signal }); // one Txn: delete the own key
 * // (the own-key writes of one turn go to etcd as one Txn: txn-batch.ts)
 * await session.end(); // one LeaseRevoke: every other lock at once
 */
export class EtcdLockSession implements LockSession {
  readonly id: string;
  readonly ref: string;
  readonly #host: SessionHost;
  readonly #session: ClientSession;
  /** The locks held, by name, in grant order: the server's own record (see the top of this file). */
  #held: Map<string, QueueKey>;
  /** The names of acquires in flight. */
  readonly #waiting = new Set<string>();
  /**
   * Names whose own key may exist unknown to this copy: an acquire that failed could not
   * confirm its key gone (etcd unreachable: a put whose answer was lost may still be applied).
   * NOTE: such a key is a lock nobody knows the session holds, and the session's keepalives
   * would keep it for as long as the session lives. Each keepalive that etcd answers deletes
   * these keys (#sweep); an acquire of the name meanwhile finds its key and takes it.
   */
  readonly #doubtful = new Set<string>();
  /** The deletes #sweep has in flight, by name: an acquire of the name waits for its own. */
  readonly #sweeping = new Map<string, Promise<void>>();

  /** `held`: the locks it holds already (a resume), by name, oldest grant first. */
  constructor(host: SessionHost, init: ClientSessionInit, held?: ReadonlyMap<string, QueueKey>) {
    this.#host = host;
    this.id = init.id;
    this.ref = init.ref;
    this.#held = new Map(held);
    this.#session = new ClientSession(host.conn, init, {
      expired: () => {
        const locks = this.#held.size;
        this.#held.clear();
        this.#doubtful.clear();
        host.expired(this, locks);
      },
      ended: () => {
        this.#held.clear();
        this.#doubtful.clear();
        host.forget(this);
      },
      steppedAside: () => host.forget(this),
    });
  }

  /** The session's etcd lease id (hex), the own keys' last segment. */
  get leaseId(): string {
    return this.#session.leaseId;
  }

  get ttlMs(): number {
    return this.#session.ttlMs;
  }

  get expiresAtMs(): number {
    return this.#session.expiresAtMs;
  }

  get state(): SessionState {
    return this.#session.state;
  }

  get signal(): AbortSignal {
    return this.#session.signal;
  }

  get lockCount(): number {
    return this.#held.size + this.#waiting.size;
  }

  /** Whether an acquire of this copy is in flight for `name` (a resume leaves its key alone). */
  waitsFor(name: string): boolean {
    return this.#waiting.has(name);
  }

  async acquire({ name, waitMs, owner, mode, limit, signal }: SessionAcquireOptions): Promise<Lease> {
    throwIfAborted(signal);
    const { conn, prefix } = this.#host;
    conn.throwIfClosed();
    const lease = await this.#session.liveLease();
    if (this.#held.has(name) || this.#waiting.has(name))
      throw new FailedPreconditionError(
        `this session already ${this.#held.has(name) ? 'holds' : 'waits for'} lock "${name}"; a session holds a name at most once: release it first, or take it in another session`,
      );
    this.#waiting.add(name);
    // The acquire leaves when its caller goes away or when the session stops being live.
    const both = new AbortController();
    const onCaller = () => both.abort(signal.reason);
    const onSession = () => both.abort(this.signal.reason);
    signal.addEventListener('abort', onCaller, { once: true });
    this.signal.addEventListener('abort', onSession, { once: true });
    try {
      // A delete of a doubtful key of this name (#sweep) must not pass the put.
      await this.#sweeping.get(name);
      const queue = new LockQueue(conn, prefix, name);
      const held = await acquireOnSession(lease, queue, {
        claim: claimOf(owner, mode, limit),
        waitMs,
        waitUntilMs: conn.clock.now() + waitMs,
        signal: both.signal,
        // The client's keepalives renew the session; a grant needs no renewal of its own.
        renewAtGrant: false,
        settle: async (leaving) => {
          if (!(await leaving)) this.#doubtful.add(name);
        },
      });
      this.#doubtful.delete(name);
      // Ended or expired while the put was in flight: its key went with the lease. Stepped
      // aside: whoever serves the session now finds the key on resume (and the client, not
      // knowing it, releases it there).
      if (this.state !== 'live') throw this.signal.reason;
      this.#held.set(name, held.own);
      return this.#leaseOf(name, held.own, held.expiresAtMs);
    } catch (err) {
      // Stopped by the session's own end or expiry: say that, not how the wait noticed it.
      if (this.signal.aborted && both.signal.reason === this.signal.reason) throw this.signal.reason;
      if (lease.signal.aborted) {
        await this.#session.checking;
        if (this.state !== 'live') throw this.signal.reason;
      }
      throw err;
    } finally {
      this.#waiting.delete(name);
      signal.removeEventListener('abort', onCaller);
      this.signal.removeEventListener('abort', onSession);
    }
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    const { conn, prefix } = this.#host;
    conn.throwIfClosed();
    if (this.state === 'expired' || this.state === 'ended') throw this.signal.reason;
    const own = this.#held.get(name);
    const lock = parseSessionLockId(leaseId);
    const queue = new LockQueue(conn, prefix, name);
    if (own === undefined || lock?.leaseId !== this.leaseId || !sessionLockIdMatches(lock, name, own))
      throw new NotHolderError(
        `lease ${leaseId || '(empty)'} is not a lock of this session on lock "${name}": ${await this.#holdersNow(queue, signal)}`,
      );
    // NOTE: only the own key goes. A unary Release revokes its lease too, which here would
    // drop every other lock of the session.
    const released = await releaseOwnKey(queue, own, signal);
    if (this.#held.get(name) === own) this.#held.delete(name);
    if (!released)
      throw new LeaseExpiredError(
        `lease ${leaseId} on lock "${name}" no longer exists in etcd (its key was deleted, or the session's lease ${this.leaseId} ran out); acquire the lock again`,
      );
  }

  /** Renews the session, and with it every lock of it (ClientSession.keepAlive). */
  async keepAlive(signal: AbortSignal): Promise<SessionLeaseInfo> {
    const renewed = await this.#session.keepAlive(signal);
    this.#sweep();
    return renewed;
  }

  /** Deletes the own keys of the doubtful names no acquire is using (see #doubtful). */
  #sweep(): void {
    for (const name of this.#doubtful) {
      if (this.#held.has(name) || this.#waiting.has(name) || this.#sweeping.has(name)) continue;
      const queue = new LockQueue(this.#host.conn, this.#host.prefix, name);
      const sweeping = leaveQueue(queue, queue.ownKey(this.leaseId)).then((gone) => {
        if (gone) this.#doubtful.delete(name);
        this.#sweeping.delete(name);
      });
      this.#sweeping.set(name, sweeping);
    }
  }

  /** Fails the acquires in flight, then releases every lock in one LeaseRevoke (ClientSession.end). */
  end(): Promise<void> {
    return this.#session.end();
  }

  leases(): readonly Lease[] {
    return [...this.#held].map(([name, own]) => this.#leaseOf(name, own, this.expiresAtMs));
  }

  /** No stream of this server serves the session any more (ClientSession.detach). */
  detach(): void {
    this.#session.detach();
  }

  /**
   * A resume through this server: the lease as etcd just confirmed it (ClientSession.adopt),
   * and the locks etcd lists.
   */
  adopt(lease: EtcdSession, held: ReadonlyMap<string, QueueKey>): void {
    this.#session.adopt(lease);
    this.#held = new Map(held);
  }

  /** One of its locks was released from outside: see ClientSession.lose. */
  lose(cause: string): void {
    this.#session.lose(cause);
  }

  /** This server stops following the session (it is closing): nothing changes in etcd. */
  stepAside(reason: LatchkeyError): void {
    this.#session.stepAside(reason);
  }

  #leaseOf(name: string, own: QueueKey, expiresAtMs: number): Lease {
    return {
      name,
      leaseId: sessionLockIdOf(this.leaseId, own.createRevision, name),
      fencingToken: own.createRevision,
      expiresAtMs,
      ttlMs: this.ttlMs,
      owner: own.owner,
      mode: own.mode,
      limit: own.limit,
    };
  }

  /** For a refusal: who holds lock `name` now (one read), or that nobody does. */
  async #holdersNow(queue: LockQueue, signal: AbortSignal): Promise<string> {
    const { keys } = await queue.readAll('read the lock queue', signal);
    const holders = keys.slice(0, grantedCount(keys));
    return holders.length === 0 ? 'it is not held' : `it is held by ${describeHolders(holders)}`;
  }
}
