// A client's lock session on etcd: one etcd lease (session.ts) for every lock the session
// takes, as etcd's concurrency.Session carries many mutexes (session.go, mutex.go). Acquire is
// the mutex transaction on the session's lease (no grant), release one delete of the own key
// (no revoke), keepalive a read of the session's mark and one LeaseKeepAlive for every lock
// at once, and the clean end one LeaseRevoke: etcd deletes every key of the lease together.
// The keys are the unary path's (layout.ts), so `etcdctl lock` contends with session locks as
// with any other. A lock released from outside (Locks/Release of its lease id, through any
// server) takes the mark with it: the session is lost, and no server renews or resumes it.
//
// The session lives in etcd, not in a server: its lease, its locks' own keys and its mark (a
// key on the lease named by a digest of the id's secret). The id carries the lease id and the
// secret, which is all any server on the same etcd and prefix needs to take the session up
// (resumeLockSession below: one LeaseTimeToLive lists every key of the lease). A server
// keeps a copy of a session while it serves it: the names it holds and waits for, which is
// how it refuses a name asked for twice (etcd cannot tell: a retried put whose first attempt
// was applied finds the key as a second request of the same name would), and its expiry as
// its keepalives renewed it.
//
// NOTE: a broken stream releases nothing; nor does a copy this server stops following. The
// client renews the session (its keepalive ops), never the server on its own: a session whose
// client is gone must expire. When the lease is not confirmed for a TTL (session.ts's lost
// estimate) the copy asks etcd once: gone means the session expired (its signal aborts with
// SessionExpiredError and the expiry is reported); still there means another server (or etcd
// itself, at a leader change) kept it alive, and this copy steps aside (ABORTED), as a stream
// a resume took over does. A copy no stream serves is forgotten at that point without asking;
// a lost one is known to expire then, and is reported so.
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import {
  AbortedError,
  FailedPreconditionError,
  InvalidArgumentError,
  type LatchkeyError,
  LeaseExpiredError,
  NotHolderError,
  SessionExpiredError,
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
import { acquireOnSession, releaseOwnKey } from './acquire.js';
import { type EtcdConnection, RETRY_MS } from './connection.js';
import { sessionRef } from '../session-lease.js';
import {
  claimOf,
  describeHolders,
  grantedCount,
  lockNamesOnLease,
  parseSessionId,
  parseSessionLockId,
  type QueueKey,
  sessionIdOf,
  sessionLockIdOf,
  sessionMarkOf,
} from './layout.js';
import { LockQueue } from './queue.js';
import { recipeFor } from './recipe.js';
import { EtcdSession } from './session.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** How long after a lease reads 0 s left etcd has surely revoked it (its expiry check runs every 500 ms). */
const EXPIRY_CHECK_MS = 1_000;

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

export interface EtcdLockSessionInit {
  /** `etcd.<lease id>.<secret>` (layout.ts sessionIdOf). */
  readonly id: string;
  /** The id's public digest (session-lease.ts sessionRef), for logs and messages. */
  readonly ref: string;
  readonly lease: EtcdSession;
  /** Its mark key (layout.ts sessionMarkOf): a keepalive renews the session only while it exists. */
  readonly mark: string;
  /** The locks it holds already (a resume), by name, oldest grant first. */
  readonly held?: ReadonlyMap<string, QueueKey>;
}

/**
 * A LockSession on one etcd lease (see the top of this file).
 *
 * @example
 * const session = await openLockSession(host, 10_000); // one LeaseGrant, one Put (the mark)
 * const lock = await session.acquire({ name: 'jobs/1', waitMs: 0, owner, mode: 'EXCLUSIVE', limit: 1, signal });
 * await session.keepAlive(signal); // one LeaseKeepAlive renews jobs/1 and every other lock
 * await session.release({ name: 'jobs/1', leaseId: lock.leaseId, signal }); // one Txn: delete the own key
 * await session.end(); // one LeaseRevoke: every other lock at once
 */
export class EtcdLockSession implements LockSession {
  readonly id: string;
  readonly ref: string;
  readonly #host: SessionHost;
  readonly #mark: Buffer;
  #lease: EtcdSession;
  /** The locks held, by name, in grant order: the server's own record (see the NOTE on top). */
  #held: Map<string, QueueKey>;
  /** The names of acquires in flight. */
  readonly #waiting = new Set<string>();
  #state: SessionState = 'live';
  readonly #controller = new AbortController();
  /** A stream of this server serves the session (see detach()). */
  #attached = true;
  /** What etcd says after the lease went unconfirmed for a TTL, while it is asked. */
  #checking: Promise<void> | undefined;

  constructor(host: SessionHost, init: EtcdLockSessionInit) {
    this.#host = host;
    this.id = init.id;
    this.ref = init.ref;
    this.#mark = Buffer.from(init.mark);
    this.#lease = init.lease;
    this.#held = new Map(init.held);
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
    const lease = await this.#liveLease();
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
      const queue = new LockQueue(conn, prefix, name);
      const held = await acquireOnSession(lease, queue, {
        claim: claimOf(owner, mode, limit),
        waitMs,
        waitUntilMs: conn.clock.now() + waitMs,
        signal: both.signal,
        // The client's keepalives renew the session; a grant needs no renewal of its own.
        renewAtGrant: false,
      });
      // Ended or expired while the put was in flight: its key went with the lease. Stepped
      // aside: whoever serves the session now finds the key on resume (and the client, not
      // knowing it, releases it there).
      if (this.#state !== 'live') throw this.signal.reason;
      this.#held.set(name, held.own);
      return this.#leaseOf(name, held.own, held.expiresAtMs);
    } catch (err) {
      // Stopped by the session's own end or expiry: say that, not how the wait noticed it.
      if (this.signal.aborted && both.signal.reason === this.signal.reason) throw this.signal.reason;
      if (lease.signal.aborted) {
        await this.#checking;
        if (this.#state !== 'live') throw this.signal.reason;
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
    if (this.#state === 'expired' || this.#state === 'ended') throw this.signal.reason;
    const own = this.#held.get(name);
    const lock = parseSessionLockId(leaseId);
    const queue = new LockQueue(conn, prefix, name);
    if (own === undefined || lock?.leaseId !== this.leaseId || lock.createRevision !== own.createRevision)
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

  async keepAlive(signal: AbortSignal): Promise<SessionLeaseInfo> {
    throwIfAborted(signal);
    this.#host.conn.throwIfClosed();
    const lease = await this.#liveLease();
    // NOTE: a session one of whose locks was released from outside (Locks/Release of its
    // lease: lock-backend.ts) has lost its mark, through whichever server: it can no longer
    // vouch for its locks, and is not renewed. Read first, so a lost session gains no time.
    const marked = await this.#host.conn.call('keep the session alive', signal, (client) =>
      client.kv.range({ key: this.#mark, count_only: true }),
    );
    if (Number(marked.count) === 0) {
      // Or the lease ran out, and etcd deleted the mark with every other key of it.
      const info = await this.#host.conn.timeToLive('keep the session alive', lease.leaseDec, signal);
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
    // Acquires in flight leave as the signal aborts; then every lock in one LeaseRevoke.
    this.#controller.abort(
      new SessionExpiredError(
        `session ${this.ref} ended at ${iso(this.#host.conn.clock.now())}; its locks were released: open a new session`,
      ),
    );
    this.#held.clear();
    this.#host.forget(this);
    // An unreachable etcd rejects (BackendUnavailableError): the locks go at the lease's TTL.
    await this.#lease.revoke();
  }

  leases(): readonly Lease[] {
    return [...this.#held].map(([name, own]) => this.#leaseOf(name, own, this.expiresAtMs));
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
   * object: the old one's signal may have aborted on the estimate), and the locks etcd lists.
   */
  adopt(lease: EtcdSession, held: ReadonlyMap<string, QueueKey>): void {
    if (lease !== this.#lease) {
      this.#lease.detach();
      this.#lease = lease;
      this.#follow(lease);
    }
    this.#held = new Map(held);
    this.#attached = true;
  }

  /**
   * The session can no longer vouch for all its locks (one was released from outside it): no
   * more keepalives; its other locks stay until its lease expires, so that nobody gets them
   * before its holder could know.
   */
  lose(cause: string): void {
    if (this.#state !== 'live') return;
    this.#state = 'lost';
    this.#controller.abort(
      new SessionExpiredError(
        `session ${this.ref} was lost at ${iso(this.#host.conn.clock.now())}: ${cause}; it can no longer be kept alive, and its other locks stay held until it expires at ${iso(this.expiresAtMs)}: open a new session`,
      ),
    );
  }

  /** This server stops following the session (it is closing): nothing changes in etcd. */
  stepAside(reason: LatchkeyError): void {
    if (this.#state !== 'live' && this.#state !== 'lost') return;
    this.#state = 'ended';
    this.#controller.abort(reason);
    this.#lease.detach();
    this.#host.forget(this);
  }

  #leaseOf(name: string, own: QueueKey, expiresAtMs: number): Lease {
    return {
      name,
      leaseId: sessionLockIdOf(this.leaseId, own.createRevision),
      fencingToken: own.createRevision,
      expiresAtMs,
      ttlMs: this.ttlMs,
      owner: own.owner,
      mode: own.mode,
      limit: own.limit,
    };
  }

  /** The lease, once it is known to be live: a lease the estimate gave up on waits for etcd's word. */
  async #liveLease(): Promise<EtcdSession> {
    if (this.#lease.signal.aborted && this.#state === 'live') await this.#checking;
    if (this.#state !== 'live') throw this.signal.reason;
    return this.#lease;
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
    const { conn } = this.#host;
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
    const locks = this.#held.size;
    this.#state = 'expired';
    this.#controller.abort(
      new SessionExpiredError(
        `session ${this.ref} expired at ${iso(this.expiresAtMs)} (no keepalive within its TTL of ${this.ttlMs} ms): etcd dropped its lease ${this.leaseId} and with it its locks: open a new session`,
      ),
    );
    this.#held.clear();
    this.#lease.detach();
    this.#host.expired(this, locks);
  }

  /** For a refusal: who holds lock `name` now (one read), or that nobody does. */
  async #holdersNow(queue: LockQueue, signal: AbortSignal): Promise<string> {
    const { keys } = await queue.readAll('read the lock queue', signal);
    const holders = keys.slice(0, grantedCount(keys));
    return holders.length === 0 ? 'it is not held' : `it is held by ${describeHolders(holders)}`;
  }
}

/** Own keys (two reads each: the key and its queue's first page) per transaction on resume, within etcd's default --max-txn-ops of 128. */
const RESUME_BATCH = 64;

/**
 * A new session: one LeaseGrant, then the session's mark on the lease (one Put), so that a
 * resume through any server can tell the id genuine. A failed mark revokes the lease.
 */
export async function openLockSession(host: SessionHost, ttlMs: number): Promise<EtcdLockSession> {
  const { conn, prefix } = host;
  const lease = await EtcdSession.open(conn, { ttlMs, purpose: 'open a lock session' });
  const secret = randomBytes(16).toString('hex');
  const id = sessionIdOf(lease.leaseId, secret);
  const ref = sessionRef(id);
  try {
    await conn.call('open a lock session', undefined, (client) =>
      client.kv.put({
        key: Buffer.from(sessionMarkOf(prefix, lease.leaseId, secret)),
        value: Buffer.from(JSON.stringify({ session: ref })),
        lease: lease.leaseDec,
      }),
    );
  } catch (err) {
    await lease.revoke().catch(() => {});
    throw err;
  }
  return new EtcdLockSession(host, { id, ref, lease, mark: sessionMarkOf(prefix, lease.leaseId, secret) });
}

/**
 * The session with this id, from etcd: one LeaseTimeToLive (the lease's time left and every
 * key on it: the mark and the own keys), one LeaseKeepAlive, then the own keys read back
 * (fencing tokens, owners) and checked: a key that holds its lock is one of the session's locks; one that does not is
 * a wait whose stream is gone (a broken stream withdraws its waits; a server that died could
 * not), and is taken out of its queue. `existing` is this server's copy, if it has one: it is
 * brought up to date and returned (its own waits are left alone).
 */
export async function resumeLockSession(
  host: SessionHost,
  id: string,
  existing: EtcdLockSession | undefined,
  signal: AbortSignal,
): Promise<EtcdLockSession> {
  const { conn, prefix } = host;
  const parts = parseSessionId(id);
  if (parts === undefined)
    throw new InvalidArgumentError(
      'resume_id is not an etcd session id: send the session_id of an opened message as it came',
    );
  const ref = sessionRef(id);
  const gone = () =>
    new SessionExpiredError(
      `session ${ref} is gone: etcd at ${conn.endpoints} has no such session under prefix ${JSON.stringify(prefix)} (it ended, or expired with its TTL, or servers with another --etcd-prefix opened it): open a new session`,
    );
  const mark = sessionMarkOf(prefix, parts.leaseId, parts.secret);
  let resumed: { session: EtcdSession; keys: readonly Buffer[] };
  try {
    resumed = await EtcdSession.resumeWithKeys(
      conn,
      parts.leaseId,
      // Not this session (a wrong secret, or a lease no session owns): nothing of it is touched.
      (keys) => {
        if (!keys.some((key) => key.toString() === mark)) throw gone();
      },
      signal,
    );
  } catch (err) {
    if (err instanceof LeaseExpiredError) throw gone();
    throw err;
  }
  const { session: lease, keys } = resumed;
  let held: Map<string, QueueKey>;
  try {
    held = await heldLocks(
      conn,
      prefix,
      lease.leaseId,
      lockNamesOnLease(prefix, lease.leaseId, keys),
      existing,
      signal,
    );
  } catch (err) {
    lease.detach();
    throw err;
  }
  if (existing !== undefined && existing.state === 'live') {
    existing.adopt(lease, held);
    return existing;
  }
  return new EtcdLockSession(host, { id, ref, lease, mark, held });
}

/** The locks a session holds among its own keys, oldest grant first; see resumeLockSession. */
async function heldLocks(
  conn: EtcdConnection,
  prefix: string,
  leaseId: string,
  names: readonly string[],
  existing: EtcdLockSession | undefined,
  signal: AbortSignal,
): Promise<Map<string, QueueKey>> {
  const held: QueueKey[] = [];
  const orphans: { queue: LockQueue; own: QueueKey }[] = [];
  for (let at = 0; at < names.length; at += RESUME_BATCH) {
    const queues = names.slice(at, at + RESUME_BATCH).map((name) => new LockQueue(conn, prefix, name));
    const txn = await conn.call('resume the session', signal, (client) =>
      client.kv.txn({
        compare: [],
        success: queues.flatMap((queue) => [
          { request_range: { key: Buffer.from(queue.ownKey(leaseId)) } },
          { request_range: queue.range('Ascend') },
        ]),
      }),
    );
    for (const [i, queue] of queues.entries()) {
      const own = queue.keysOf(txn.responses[2 * i]!.response_range)[0];
      if (own === undefined) continue; // released or gone since etcd listed it
      const check = await recipeFor(own).holdCheck(
        queue,
        own,
        txn.responses[2 * i + 1]!.response_range,
        'resume the session',
        signal,
      );
      if (check.holds) held.push(own);
      else if (existing?.waitsFor(queue.name) !== true) orphans.push({ queue, own });
    }
  }
  // Best effort: a key left queued goes with the session's lease at the latest.
  await Promise.all(orphans.map(({ queue, own }) => releaseOwnKey(queue, own, signal).catch(() => false)));
  held.sort((a, b) => (a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0));
  return new Map(held.map((own) => [queueNameOf(prefix, own, leaseId), own]));
}

/** The lock name of an own key: prefix + name + '/' + lease id. */
const queueNameOf = (prefix: string, own: QueueKey, leaseId: string): string =>
  own.key.slice(prefix.length, own.key.length - leaseId.length - 1);
