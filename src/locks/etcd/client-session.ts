// A client's session on etcd as one server follows it: its id and mark, the etcd lease it
// stands on (session.ts), its state and a signal when it leaves `live`. It knows nothing of
// locks: the lock session (lock-session.ts) hangs its locks on it, and any other recipe can
// hang its keys on the same lease (liveLease(), ClientSessionOwner) the same way.
// Opening one and taking it up through any server is client-session-open.ts.
//
// The session lives in etcd, not in a server: its lease, the keys on it and its mark (a key
// on the lease named by a digest of the id's secret; layout.ts). A server keeps this copy
// while it serves the session, with its expiry as its keepalives renewed it.
//
// NOTE: a broken stream releases nothing; nor does a copy this server stops following. The
// client renews the session (its keepalive ops), never the server on its own: a session whose
// client is gone must expire. When the lease is not confirmed for a TTL (session.ts's lost
// estimate) the copy asks etcd once: gone means the session expired (its signal aborts with
// SessionExpiredError and the owner is told); still there means another server (or etcd
// itself, at a leader change) kept it alive, and this copy steps aside (ABORTED), as a stream
// a resume took over does. A copy no stream serves is forgotten at that point without asking;
// a lost one is known to expire then, and is reported so.
import { setMaxListeners } from 'node:events';
import {
  AbortedError,
  type LatchkeyError,
  LeaseExpiredError,
  SessionExpiredError,
  throwIfAborted,
} from '../../errors.js';
import type { SessionLeaseInfo, SessionState } from '../backend.js';
import { type EtcdConnection, RETRY_MS } from './connection.js';
import type { EtcdSession } from './session.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** How long after a lease reads 0 s left etcd has surely revoked it (its expiry check runs every 500 ms). */
const EXPIRY_CHECK_MS = 1_000;

/** A session as etcd holds it, opened or resumed (client-session-open.ts). */
export interface ClientSessionInit {
  /** `etcd.<lease id>.<secret>` (layout.ts sessionIdOf). */
  readonly id: string;
  /** The id's public digest (session-lease.ts sessionRef), for logs and messages. */
  readonly ref: string;
  readonly lease: EtcdSession;
  /** Its mark key (layout.ts sessionMarkOf): a keepalive renews the session only while it exists. */
  readonly mark: string;
}

/**
 * Whoever keeps the record of the keys on the session (the lock session), told as the
 * session leaves `live` for good, each time after its signal aborted.
 */
export interface ClientSessionOwner {
  /** etcd confirmed the lease gone while this server served it: every key on it went with it. */
  expired(): void;
  /** The session ends through this server; its lease is revoked next, and every key on it goes. */
  ended(): void;
  /** This server stops following the session; etcd still has it, and its keys. */
  steppedAside(): void;
}

/**
 * The state of one client session on this server (see the top of this file).
 *
 * @example
 * const session = new ClientSession(conn, await openClientSession(conn, prefix, 10_000), owner);
 * const lease = await session.liveLease(); // put keys with lease: lease.leaseDec
 * await session.keepAlive(signal); // one Range (the mark), one LeaseKeepAlive for every key
 * await session.end(); // one LeaseRevoke: etcd deletes every key of the lease together
 */
export class ClientSession {
  readonly id: string;
  readonly ref: string;
  readonly #conn: EtcdConnection;
  readonly #owner: ClientSessionOwner;
  readonly #mark: Buffer;
  #lease: EtcdSession;
  #state: SessionState = 'live';
  readonly #controller = new AbortController();
  /** A stream of this server serves the session (see detach()). */
  #attached = true;
  /** What etcd says after the lease went unconfirmed for a TTL, while it is asked. */
  #checking: Promise<void> | undefined;

  constructor(conn: EtcdConnection, init: ClientSessionInit, owner: ClientSessionOwner) {
    this.#conn = conn;
    this.#owner = owner;
    this.id = init.id;
    this.ref = init.ref;
    this.#mark = Buffer.from(init.mark);
    this.#lease = init.lease;
    // Every acquire of the session listens to its signal while it runs: many are normal.
    setMaxListeners(0, this.#controller.signal);
    this.#follow(init.lease);
  }

  /** The session's etcd lease id (hex), the own keys' last segment. */
  get leaseId(): string {
    return this.#lease.leaseId;
  }

  get ttlMs(): number {
    return this.#lease.ttlMs;
  }

  get expiresAtMs(): number {
    return this.#lease.expiresAtMs;
  }

  get state(): SessionState {
    return this.#state;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Settles once etcd has said whether a lease the estimate gave up on is gone (see #check). */
  get checking(): Promise<void> | undefined {
    return this.#checking;
  }

  /** The lease, once it is known to be live: a lease the estimate gave up on waits for etcd's word. */
  async liveLease(): Promise<EtcdSession> {
    if (this.#lease.signal.aborted && this.#state === 'live') await this.#checking;
    if (this.#state !== 'live') throw this.signal.reason;
    return this.#lease;
  }

  async keepAlive(signal: AbortSignal): Promise<SessionLeaseInfo> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const lease = await this.liveLease();
    // NOTE: a session one of whose locks was released from outside (Locks/Release of its
    // lease: lease-holder.ts) has lost its mark, through whichever server: it can no longer
    // vouch for its locks, and is not renewed. Read first, so a lost session gains no time.
    const marked = await this.#conn.call('keep the session alive', signal, (client) =>
      client.kv.range({ key: this.#mark, count_only: true }),
    );
    if (Number(marked.count) === 0) {
      // Or the lease ran out, and etcd deleted the mark with every other key of it.
      const info = await this.#conn.timeToLive('keep the session alive', lease.leaseDec, signal);
      if (Number(info.TTL) < 0) this.#expire();
      else this.lose('one of its locks was released from outside the session (Locks/Release of its lease)');
      throw this.signal.reason;
    }
    let expiresAtMs: number;
    try {
      expiresAtMs = await lease.renew({ signal });
    } catch (err) {
      // etcd answered: the lease is gone. The session expired (in etcd; this server saw it).
      if (err instanceof LeaseExpiredError && lease === this.#lease) this.#expire();
      if (this.#state !== 'live') throw this.signal.reason;
      throw err;
    }
    if (this.#state !== 'live') throw this.signal.reason;
    return { ttlMs: lease.ttlMs, expiresAtMs };
  }

  async end(): Promise<void> {
    if (this.#state === 'expired' || this.#state === 'ended') return;
    this.#state = 'ended';
    // Acquires in flight leave as the signal aborts; then every key in one LeaseRevoke.
    this.#controller.abort(
      new SessionExpiredError(
        `session ${this.ref} ended at ${iso(this.#conn.clock.now())}; its locks were released: open a new session`,
      ),
    );
    this.#owner.ended();
    // An unreachable etcd rejects (BackendUnavailableError): the keys go at the lease's TTL.
    await this.#lease.revoke();
  }

  /**
   * No stream of this server serves the session any more: when its lease goes unconfirmed for
   * a TTL, the copy is forgotten without asking etcd (the client resumes it somewhere, or it
   * expires inside etcd, which tells no one).
   */
  detach(): void {
    this.#attached = false;
  }

  /**
   * A resume through this server: the lease as etcd just confirmed it (a new EtcdSession
   * object: the old one's signal may have aborted on the estimate). A stream serves it again.
   */
  adopt(lease: EtcdSession): void {
    if (lease !== this.#lease) {
      this.#lease.detach();
      this.#lease = lease;
      this.#follow(lease);
    }
    this.#attached = true;
  }

  /**
   * The session can no longer vouch for all its keys (a lock was released from outside it):
   * no more keepalives; its other keys stay until its lease expires, so that nobody gets what
   * they hold before its holder could know.
   */
  lose(cause: string): void {
    if (this.#state !== 'live') return;
    this.#state = 'lost';
    this.#controller.abort(
      new SessionExpiredError(
        `session ${this.ref} was lost at ${iso(this.#conn.clock.now())}: ${cause}; it can no longer be kept alive, and its other locks stay held until it expires at ${iso(this.expiresAtMs)}: open a new session`,
      ),
    );
  }

  /** This server stops following the session (it is closing, or another serves it): nothing changes in etcd. */
  stepAside(reason: LatchkeyError): void {
    if (this.#state !== 'live' && this.#state !== 'lost') return;
    this.#state = 'ended';
    this.#controller.abort(reason);
    this.#lease.detach();
    this.#owner.steppedAside();
  }

  #follow(lease: EtcdSession): void {
    const onLost = () => {
      if (lease !== this.#lease) return;
      // Lost, so not renewed since: it has run out.
      if (this.#state === 'lost') return this.#expire();
      if (this.#state !== 'live') return;
      if (!this.#attached) {
        this.stepAside(
          new AbortedError(`session ${this.ref} is no longer served through this server: resume it to go on`),
        );
        return;
      }
      this.#checking = this.#check(lease);
    };
    if (lease.signal.aborted) onLost();
    else lease.signal.addEventListener('abort', onLost, { once: true });
  }

  /** The lease went unconfirmed for a TTL: is it gone (expired), or kept alive elsewhere? */
  async #check(lease: EtcdSession): Promise<void> {
    const conn = this.#conn;
    for (;;) {
      if (lease !== this.#lease || this.#state !== 'live' || conn.closing.aborted) return;
      try {
        const info = await conn.timeToLive('check the session lease', lease.leaseDec, conn.closing);
        if (lease !== this.#lease || this.#state !== 'live') return;
        const leftS = Number(info.TTL);
        if (leftS < 0) return this.#expire();
        if (leftS === 0) {
          // NOTE: run out, but not dropped yet: etcd revokes expired leases on a 500 ms
          // check (whole seconds left, rounded down, read 0 until then). A renewal elsewhere
          // would have restarted the whole TTL; ask again once etcd must have dropped it.
          await conn.sleep(EXPIRY_CHECK_MS, conn.closing);
          continue;
        }
        return this.stepAside(
          new AbortedError(
            `session ${this.ref} was not kept alive through this server for its TTL of ${this.ttlMs} ms, yet etcd still has its lease: another stream serves it; this one no longer does`,
          ),
        );
      } catch {
        // etcd unreachable (or closing: the loop ends above): ask again, while a stream here
        // still serves the session.
        if (conn.closing.aborted) return;
        if (!this.#attached)
          return this.stepAside(new AbortedError(`session ${this.ref} is no longer served through this server`));
        await conn.sleep(RETRY_MS, conn.closing);
      }
    }
  }

  #expire(): void {
    if (this.#state !== 'live' && this.#state !== 'lost') return;
    this.#state = 'expired';
    this.#controller.abort(
      new SessionExpiredError(
        `session ${this.ref} expired at ${iso(this.expiresAtMs)} (no keepalive within its TTL of ${this.ttlMs} ms): etcd dropped its lease ${this.leaseId} and with it its locks: open a new session`,
      ),
    );
    this.#lease.detach();
    this.#owner.expired();
  }
}
