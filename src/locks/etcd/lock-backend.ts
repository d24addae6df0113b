// The etcd lock backend: etcd's concurrency mutex recipe (client/v3/concurrency), generalised
// to semaphores and read/write locks, on etcd3's raw KV / Lease / Watch clients. Locks live in
// etcd, so any number of latchkey servers share them, and `etcdctl lock <prefix><name>`
// contends for the same locks. One file per idea, as etcd's concurrency package has them:
//   layout.ts      key and value format, lease-id codec, grant rule (pure; key.go's layout)
//   connection.ts  the etcd3 client, fault policy, error translation at this edge, the clock
//   session.ts     one etcd lease, its keepalive and a signal when it is lost (session.go)
//   queue.ts       reading one lock's queue and waiting for a change to it (key.go)
//   recipe.ts      which recipe serves a request: mutex.ts (mutex.go) or semaphore.ts
//   acquire.ts     take and give back one lock on a session's lease (Lock / Unlock)
//   lock-session.ts  a client's lock session: many locks on one lease, its id and resume
//   watch.ts       Watch: a snapshot, then the queue's changes as events
//   election.ts    leader election (election.go) in election-layout.ts's layout, followed
//                  by Observe through prefix-watch.ts
// This file maps the LockBackend interface onto them. Unary Acquire is a session of its own
// with one lock: grant, put, (wait), and on Release one delete and one revoke. A lock session
// is one grant (and its mark) at open, one transaction per acquire, one delete per release and
// one revoke at its end. No server keeps state about a lease it granted: the lease id and the
// lock name find the key, and a session's id finds the session (see lock-session.ts).
import { systemClock, type Clock, type Timer } from '../../clock.js';
import {
  FailedPreconditionError,
  LeaseExpiredError,
  NotHolderError,
  ShuttingDownError,
  throwIfAborted,
} from '../../errors.js';
import type {
  AcquireOptions,
  Capabilities,
  Lease,
  LeaseRef,
  LockBackend,
  LockEvent,
  LockSession,
  LockState,
  SessionExpiryListener,
  SessionOptions,
} from '../backend.js';
import { acquireOnSession, releaseOwnKey } from './acquire.js';
import { EtcdConnection } from './connection.js';
import {
  claimOf,
  describeHolders,
  isLeaseId,
  leaseIdFromDec,
  leaseIdToDec,
  parseSessionId,
  parseSessionLockId,
  prefixEnd,
  type QueueKey,
  sessionMarkPrefixOf,
} from './layout.js';
import { type EtcdLockSession, openLockSession, resumeLockSession, type SessionHost } from './lock-session.js';
import { LockQueue } from './queue.js';
import { recipeFor } from './recipe.js';
import { EtcdElections } from './election.js';
import { EtcdSession } from './session.js';
import { watchQueue } from './watch.js';

export const etcdCapabilities: Capabilities = {
  acrossHosts: true,
  fencing: true,
  fifo: true,
  autoRelease: true,
  semaphore: true,
  shared: true,
  watch: true,
  sessions: true,
  elections: true,
};

/**
 * How long a unary Acquire that was not granted waits for its key to leave the queue and its
 * lease to be revoked before it answers; a healthy etcd takes milliseconds.
 */
const LEAVE_WAIT_MS = 250;

export interface EtcdLockBackendOptions {
  /** etcd client endpoints, `host:port` or `http(s)://host:port`: a list or a comma-separated string. */
  readonly endpoints: string | readonly string[];
  /** Prefix of every lock key; lock `name` lives under prefix + name + '/'. Default `latchkey/locks/`. */
  readonly prefix?: string;
  /**
   * Bound on each etcd request, in ms (default 3000). A request that neither succeeds nor
   * fails in this time (partitioned etcd, no leader) fails with UNAVAILABLE instead of
   * hanging the caller; waits for a lock are bounded by wait_ms, not by this.
   */
  readonly opTimeoutMs?: number;
  /**
   * Prefix of every election key: election `name` lives under prefix + name + '/', and is
   * the election `etcdctl elect <prefix><name>` takes part in. Default `latchkey/elections/`.
   */
  readonly electionPrefix?: string;
  /**
   * Time source for wait_ms, lease expiry estimates and every timer of the backend; default
   * the system clock. etcd counts its TTLs in real time, so a clock given here must keep
   * pace with it (a manual clock suits tests shorter than a TTL).
   */
  readonly clock?: Clock;
  /**
   * Told of every lock session that expires while this server serves it: etcd confirmed its
   * lease gone (see SessionExpiryListener; a session whose client left with its stream expires
   * inside etcd, which tells no one). Default none.
   */
  readonly onSessionExpire?: SessionExpiryListener;
}

export class EtcdLockBackend implements LockBackend {
  readonly kind = 'etcd';
  readonly capabilities = etcdCapabilities;
  get location(): string {
    return `etcd at ${this.#conn.endpoints}`;
  }
  readonly #conn: EtcdConnection;
  readonly #prefix: string;
  /** Acquires in progress, so close() can let them clean up their keys before it closes the client. */
  readonly #inflight = new Set<Promise<unknown>>();
  /**
   * The lock sessions this server serves, by lease id (hex): copies of what etcd holds (see
   * lock-session.ts), so a resume through this server finds the object it served before.
   */
  readonly #sessions = new Map<string, EtcdLockSession>();
  readonly #sessionHost: SessionHost;
  readonly elections: EtcdElections;

  constructor(options: EtcdLockBackendOptions) {
    this.#conn = new EtcdConnection({
      endpoints: options.endpoints,
      opTimeoutMs: options.opTimeoutMs ?? 3_000,
      clock: options.clock ?? systemClock,
    });
    this.#prefix = options.prefix ?? 'latchkey/locks/';
    const onSessionExpire = options.onSessionExpire;
    this.#sessionHost = {
      conn: this.#conn,
      prefix: this.#prefix,
      expired: (session, locks) => {
        this.#forget(session);
        onSessionExpire?.({ ref: session.ref, ttlMs: session.ttlMs, locks });
      },
      forget: (session) => this.#forget(session),
    };
    this.elections = new EtcdElections({
      conn: this.#conn,
      prefix: options.electionPrefix ?? 'latchkey/elections/',
      track: (work) => this.#track(() => work),
      findSession: (id, signal) => this.resumeSession(id, signal),
    });
  }

  acquire(options: AcquireOptions): Promise<Lease> {
    return this.#track(async () => {
      throwIfAborted(options.signal);
      this.#conn.throwIfClosed();
      return this.#acquire(options);
    });
  }

  openSession({ ttlMs, signal }: SessionOptions): Promise<LockSession> {
    return this.#track(async () => {
      throwIfAborted(signal);
      this.#conn.throwIfClosed();
      const session = await openLockSession(this.#sessionHost, ttlMs);
      this.#sessions.set(session.leaseId, session);
      return session;
    });
  }

  resumeSession(id: string, signal: AbortSignal): Promise<LockSession> {
    return this.#track(async () => {
      throwIfAborted(signal);
      this.#conn.throwIfClosed();
      const existing = this.#sessions.get(parseSessionId(id)?.leaseId ?? '');
      const session = await resumeLockSession(
        this.#sessionHost,
        id,
        existing?.id === id ? existing : undefined,
        signal,
      );
      this.#sessions.set(session.leaseId, session);
      return session;
    });
  }

  async refresh({ name, leaseId, signal }: LeaseRef, ttlMs: number): Promise<Lease> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const { own: holder, session } = await this.#holder(name, leaseId, 'refresh', signal);
    if (session)
      throw new FailedPreconditionError(
        `lease ${leaseId} of lock "${name}" belongs to a lock session: its session's keepalive renews it (Locks/Session)`,
      );
    if (ttlMs > 0) {
      // NOTE: an etcd lease's TTL is fixed when it is granted; a keepalive restarts that TTL
      // and nothing can change it. A shorter TTL than granted is served with the granted one
      // (expires_at_ms says so); a longer one is refused rather than silently cut short.
      const info = await this.#conn.call('read the lease TTL', signal, (client) =>
        client.leaseClient.leaseTimeToLive({ ID: holder.leaseDec }),
      );
      const granted = Number(info.grantedTTL);
      if (Number(info.TTL) < 0) throw expired(name, leaseId);
      const asked = Math.ceil(ttlMs / 1000);
      if (asked > granted) {
        throw new FailedPreconditionError(
          `lease ${leaseId} on lock "${name}" has a fixed TTL of ${granted} s (etcd leases cannot change TTL); refresh with ttl_ms 0 or at most ${granted * 1000}, or release and acquire again with ttl_ms ${ttlMs}`,
        );
      }
    }
    const { ttlS, sentAtMs } = await this.#conn.keepAliveOnce(holder.leaseDec, { signal });
    if (ttlS <= 0) throw expired(name, leaseId);
    return {
      name,
      leaseId,
      fencingToken: holder.createRevision,
      expiresAtMs: sentAtMs + ttlS * 1000,
      ttlMs: ttlS * 1000,
      owner: holder.owner,
      mode: holder.mode,
      limit: holder.limit,
    };
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const queue = new LockQueue(this.#conn, this.#prefix, name);
    const { own: holder, session } = await this.#holder(name, leaseId, 'release', signal);
    if (session) return this.#releaseFromOutside(queue, holder, leaseId, signal);
    const released = await releaseOwnKey(queue, holder, signal);
    // The lease was this lock's alone; revoking it now spares etcd tracking it until its TTL.
    await this.#conn.revoke(holder.leaseDec).catch(() => {});
    if (!released) throw expired(name, leaseId);
  }

  async describe(name: string, signal: AbortSignal): Promise<LockState> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const queue = new LockQueue(this.#conn, this.#prefix, name);
    const { keys } = await queue.readAll('describe', signal);
    return queue.stateOf(keys, signal);
  }

  async *watch(name: string, signal: AbortSignal): AsyncIterable<LockEvent> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    yield* watchQueue(new LockQueue(this.#conn, this.#prefix, name), signal);
  }

  async close(): Promise<void> {
    if (this.#conn.closing.aborted) return;
    this.#conn.beginClose();
    // The sessions live on in etcd: their clients resume them through another server.
    for (const session of [...this.#sessions.values()])
      session.stepAside(
        new ShuttingDownError('server is shutting down; resume the session through another server on the same etcd'),
      );
    // Waiters stop at once and revoke their leases; give them (bounded) time to do so.
    let timer: ReturnType<Clock['schedule']> | undefined;
    const bound = new Promise<void>(
      (resolve) => (timer = this.#conn.clock.schedule(this.#conn.opTimeoutMs * 2, resolve)),
    );
    await Promise.race([Promise.all(this.#inflight), bound]);
    timer?.cancel();
    this.#conn.close();
  }

  /** Runs `work`, tracked until it settles, so close() can let it clean up before the client closes. */
  #track<T>(work: () => Promise<T>): Promise<T> {
    const attempt = work();
    const tracked = attempt.catch(() => {});
    this.#inflight.add(tracked);
    void tracked.then(() => this.#inflight.delete(tracked));
    return attempt;
  }

  #forget(session: EtcdLockSession): void {
    if (this.#sessions.get(session.leaseId) === session) this.#sessions.delete(session.leaseId);
  }

  /**
   * Locks/Release of a session's lock (an operator with its lease id): the lock is released,
   * and the session lost: its mark goes in the same transaction, so that no server renews or
   * resumes it any more (the keepalive and the resume look for the mark). Its other locks stay
   * until its lease expires, so that nobody gets them before its holder could know.
   * NOTE: never a revoke: that would release every lock of the session at once.
   */
  async #releaseFromOutside(queue: LockQueue, own: QueueKey, leaseId: string, signal: AbortSignal): Promise<void> {
    const key = Buffer.from(own.key);
    const hex = leaseIdFromDec(own.leaseDec);
    const mark = Buffer.from(sessionMarkPrefixOf(this.#prefix, hex));
    const txn = await this.#conn.call('release', signal, (client) =>
      client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: own.createRevision.toString() }],
        success: [
          { request_delete_range: { key } },
          { request_delete_range: { key: mark, range_end: prefixEnd(mark) } },
        ],
      }),
    );
    if (!txn.succeeded) throw expired(queue.name, leaseId);
    this.#sessions
      .get(hex)
      ?.lose(`its lock "${queue.name}" was released from outside the session (Locks/Release of its lease)`);
  }

  /** A unary Acquire: a session of its own, holding one lock. */
  async #acquire({ name, ttlMs, waitMs, owner, mode, limit, signal }: AcquireOptions): Promise<Lease> {
    const waitUntilMs = this.#conn.clock.now() + waitMs;
    const queue = new LockQueue(this.#conn, this.#prefix, name);
    const claim = claimOf(owner, mode, limit);
    // A lease of our own (Session in mutex.go): the key, and so our place in the queue, dies
    // with it, which is what makes an abandoned lock free itself after its TTL.
    const session = await EtcdSession.open(this.#conn, { ttlMs, purpose: `acquire lock "${name}"` });
    // Not granted: the key leaves the queue, then the lease, which has no other use, is revoked.
    // NOTE: the answer waits for that LEAVE_WAIT_MS at most: with etcd unreachable each of
    // its calls is held for opTimeoutMs per endpoint, and the answer must not wait for them
    // (the key goes, or its lease runs out, after the answer; close() still waits for it).
    let ending: Promise<void> | undefined;
    const settle = (leaving: Promise<void>) =>
      this.#briefly((ending = leaving.then(() => session.revoke()).catch(() => {})));
    try {
      // Kept alive from the grant on, while this call runs; once granted, the holder's
      // Refresh keeps it alive (possibly through another server).
      using _alive = session.keepAlive();
      const held = await acquireOnSession(session, queue, { claim, waitMs, waitUntilMs, signal, settle });
      return {
        name,
        leaseId: session.leaseId,
        fencingToken: held.own.createRevision,
        expiresAtMs: held.expiresAtMs,
        ttlMs: session.ttlMs,
        owner,
        mode: claim.mode,
        limit: claim.limit,
      };
    } catch (err) {
      // Failed before it reached the queue (settle was not called): the lease has no other use.
      if (ending === undefined) await this.#briefly(session.revoke().catch(() => {}));
      throw err;
    } finally {
      session.detach();
    }
  }

  /** Waits for a refused Acquire's clean-up LEAVE_WAIT_MS at most; the rest goes on, tracked for close(). */
  async #briefly(cleanup: Promise<void>): Promise<void> {
    this.#inflight.add(cleanup);
    void cleanup.then(() => this.#inflight.delete(cleanup));
    let timer: Timer | undefined;
    await Promise.race([
      cleanup,
      new Promise<void>((resolve) => (timer = this.#conn.clock.schedule(LEAVE_WAIT_MS, resolve))),
    ]);
    timer?.cancel();
  }

  /**
   * The queue key of `leaseId` on lock `name` if it holds the lock, and whether its lease is a
   * lock session's; else the precise refusal.
   * NOTE: a session's lease must not be handled as a unary one: Release revokes the lease of
   * the key it deletes, which for a session's would release every lock of the session. A
   * session lock's lease_id says so by its form; a bare lease id of a session's lease, by the
   * session's mark on it, read in the same transaction.
   */
  async #holder(
    name: string,
    leaseId: string,
    what: 'refresh' | 'release',
    signal: AbortSignal,
  ): Promise<{ own: QueueKey; session: boolean }> {
    const sessionLock = parseSessionLockId(leaseId);
    const hex = sessionLock?.leaseId ?? leaseId;
    if (!isLeaseId(hex)) {
      throw new NotHolderError(
        `lease ${leaseId} does not hold lock "${name}": etcd lease ids are lowercase hex; send the lease_id that Acquire returned`,
      );
    }
    const queue = new LockQueue(this.#conn, this.#prefix, name);
    const mark = Buffer.from(sessionMarkPrefixOf(this.#prefix, hex));
    const { pages } = await queue.readTogether(
      what,
      [
        { key: Buffer.from(queue.ownKey(hex)) },
        queue.range('Ascend'),
        { key: mark, range_end: prefixEnd(mark), count_only: true },
      ],
      signal,
    );
    const found = queue.keysOf(pages[0]!)[0];
    const session = sessionLock !== undefined || Number(pages[2]!.count) > 0;
    // A session lock's lease_id names its key's create revision: a key made since is another grant's.
    const own = sessionLock === undefined || found?.createRevision === sessionLock.createRevision ? found : undefined;
    let holders: readonly QueueKey[];
    if (own === undefined) {
      const head = await queue.first('Ascend', {}, pages[1]!);
      holders = head === undefined ? [] : [head];
    } else {
      const check = await recipeFor(own).holdCheck(queue, own, pages[1]!, what, signal);
      if (check.holds) return { own, session };
      holders = check.holders;
    }
    const current = holders.length === 0 ? 'it is not held' : `it is held by ${describeHolders(holders)}`;
    if (own !== undefined) {
      // A waiter's lease (e.g. a latchkey or etcdctl waiter): it is queued, not holding.
      throw new NotHolderError(`lease ${leaseId} is waiting for lock "${name}", not holding it: ${current}`);
    }
    const info = await this.#conn.timeToLive(what, leaseIdToDec(hex), signal);
    if (Number(info.TTL) < 0) throw expired(name, leaseId, current);
    throw new NotHolderError(`lease ${leaseId} does not hold lock "${name}": ${current}`);
  }
}

function expired(name: string, leaseId: string, current?: string): LeaseExpiredError {
  return new LeaseExpiredError(
    `lease ${leaseId} on lock "${name}" no longer exists in etcd (its TTL ran out, or it was released or revoked)${current ? `; ${current}` : ''}; acquire the lock again`,
  );
}
