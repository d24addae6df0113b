// The etcd lock backend: etcd's concurrency mutex recipe (client/v3/concurrency), generalised
// to semaphores and read/write locks, on etcd3's raw KV / Lease / Watch clients. Locks live in
// etcd, so any number of latchkey servers share them, and `etcdctl lock <prefix><name>`
// contends for the same locks. One file per idea, as etcd's concurrency package has them:
//   layout.ts          key and value format, lease-id and session-id codecs, grant rule
//                      (pure; key.go's layout)
//   connection.ts      the etcd3 client, fault policy, error translation at this edge, the clock
//   session.ts         one etcd lease, its keepalive and a signal when it is lost (session.go)
//   queue.ts           reading one lock's queue and waiting for a change to it (key.go)
//   recipe.ts          which recipe serves a request: mutex.ts (mutex.go) or semaphore.ts
//   acquire.ts         take and give back one lock on a session's lease (Lock / Unlock)
//   unary-lock.ts      Acquire / Refresh / Release of a lock on a lease of its own
//   lease-holder.ts    what a client's lease id holds; a session's lock released from outside
//   client-session.ts  a client's session as this server follows it: lease, mark, state, expiry
//   client-session-open.ts  opening one, and taking it up through any server
//   lock-session.ts    a lock session: many locks on one client session
//   lock-session-open.ts    opening one, and resuming it with its locks read back
//   watch.ts           Watch: a snapshot, then the queue's changes as events
//   election.ts        leader election (election.go) in election-layout.ts's layout, followed
//                      by Observe through prefix-watch.ts
//   election-session.ts  the sessions a candidate campaigns in (its own, or a lock session)
//   election-campaign.ts Campaign: the candidate's key, then the wait for its turn
// This file maps the LockBackend interface onto them: it routes each request (a unary lock's,
// or a session lock's, as lease-holder.ts tells them apart), keeps the sessions this server
// serves, and closes. A lock session is one grant (and its mark) at open, one transaction per
// acquire, one delete per release and one revoke at its end. No server keeps state about a
// lease it granted: the lease id and the lock name find the key, and a session's id finds the
// session (see client-session-open.ts).
import { systemClock, type Clock } from '../../clock.js';
import { FailedPreconditionError, ShuttingDownError, throwIfAborted } from '../../errors.js';
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
import { EtcdConnection } from './connection.js';
import { parseSessionId } from './layout.js';
import { findHolder, releaseSessionLock } from './lease-holder.js';
import type { EtcdLockSession, SessionHost } from './lock-session.js';
import { openLockSession, resumeLockSession } from './lock-session-open.js';
import { LockQueue } from './queue.js';
import { acquireUnary, refreshUnary, releaseUnary, type UnaryLockHost } from './unary-lock.js';
import { EtcdElections } from './election.js';
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
  readonly #unaryHost: UnaryLockHost;
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
    this.#unaryHost = {
      conn: this.#conn,
      prefix: this.#prefix,
      keep: (cleanup) => {
        this.#inflight.add(cleanup);
        void cleanup.then(() => this.#inflight.delete(cleanup));
      },
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
      return acquireUnary(this.#unaryHost, options);
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

  async refresh(ref: LeaseRef, ttlMs: number): Promise<Lease> {
    const { name, leaseId, signal } = ref;
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const queue = new LockQueue(this.#conn, this.#prefix, name);
    const { own: holder, session } = await findHolder(queue, this.#prefix, leaseId, 'refresh', signal);
    if (session)
      throw new FailedPreconditionError(
        `lease ${leaseId} of lock "${name}" belongs to a lock session: its session's keepalive renews it (Locks/Session)`,
      );
    return refreshUnary(this.#conn, ref, holder, ttlMs);
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const queue = new LockQueue(this.#conn, this.#prefix, name);
    const { own: holder, session } = await findHolder(queue, this.#prefix, leaseId, 'release', signal);
    if (!session) return releaseUnary(queue, holder, leaseId, signal);
    // A session's lock released from outside it: the session is lost (lease-holder.ts).
    const hex = await releaseSessionLock(queue, this.#prefix, holder, leaseId, signal);
    this.#sessions
      .get(hex)
      ?.lose(`its lock "${name}" was released from outside the session (Locks/Release of its lease)`);
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
}
