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
//   watch.ts       Watch: a snapshot, then the queue's changes as events
//   election.ts    leader election (election.go) in election-layout.ts's layout, followed
//                  by Observe through prefix-watch.ts
// This file maps the LockBackend interface onto them. Unary Acquire is a session of its own
// with one lock: grant, put, (wait), and on Release one delete and one revoke. No server
// keeps state about a lease it granted: the lease id and the lock name find the key.
import { systemClock, type Clock } from '../../clock.js';
import { FailedPreconditionError, LeaseExpiredError, NotHolderError, throwIfAborted } from '../../errors.js';
import type { AcquireOptions, Capabilities, Lease, LeaseRef, LockBackend, LockEvent, LockState } from '../backend.js';
import { acquireOnSession, releaseOwnKey } from './acquire.js';
import { EtcdConnection } from './connection.js';
import { claimOf, describeHolders, isLeaseId, leaseIdToDec, type QueueKey } from './layout.js';
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
}

export class EtcdLockBackend implements LockBackend {
  readonly kind = 'etcd';
  readonly capabilities = etcdCapabilities;
  readonly #conn: EtcdConnection;
  readonly #prefix: string;
  /** Acquires in progress, so close() can let them clean up their keys before it closes the client. */
  readonly #inflight = new Set<Promise<unknown>>();
  readonly elections: EtcdElections;

  constructor(options: EtcdLockBackendOptions) {
    this.#conn = new EtcdConnection({
      endpoints: options.endpoints,
      opTimeoutMs: options.opTimeoutMs ?? 3_000,
      clock: options.clock ?? systemClock,
    });
    this.#prefix = options.prefix ?? 'latchkey/locks/';
    this.elections = new EtcdElections(this.#conn, options.electionPrefix ?? 'latchkey/elections/', (work) =>
      this.#tracked(work),
    );
  }

  async acquire(options: AcquireOptions): Promise<Lease> {
    throwIfAborted(options.signal);
    this.#conn.throwIfClosed();
    return this.#tracked(this.#acquire(options));
  }

  /** Work close() lets finish (bounded) before it closes the client: waiters leaving their keys. */
  #tracked<T>(work: Promise<T>): Promise<T> {
    const tracked = work.then(
      () => {},
      () => {},
    );
    this.#inflight.add(tracked);
    void tracked.then(() => this.#inflight.delete(tracked));
    return work;
  }

  async refresh({ name, leaseId, signal }: LeaseRef, ttlMs: number): Promise<Lease> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const holder = await this.#holder(name, leaseId, 'refresh', signal);
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
    const holder = await this.#holder(name, leaseId, 'release', signal);
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
    // Waiters stop at once and revoke their leases; give them (bounded) time to do so.
    let timer: ReturnType<Clock['schedule']> | undefined;
    const bound = new Promise<void>(
      (resolve) => (timer = this.#conn.clock.schedule(this.#conn.opTimeoutMs * 2, resolve)),
    );
    await Promise.race([Promise.all(this.#inflight), bound]);
    timer?.cancel();
    this.#conn.close();
  }

  /** A unary Acquire: a session of its own, holding one lock. */
  async #acquire({ name, ttlMs, waitMs, owner, mode, limit, signal }: AcquireOptions): Promise<Lease> {
    const waitUntilMs = this.#conn.clock.now() + waitMs;
    const queue = new LockQueue(this.#conn, this.#prefix, name);
    const claim = claimOf(owner, mode, limit);
    // A lease of our own (Session in mutex.go): the key, and so our place in the queue, dies
    // with it, which is what makes an abandoned lock free itself after its TTL.
    const session = await EtcdSession.open(this.#conn, { ttlMs, purpose: `acquire lock "${name}"` });
    try {
      // Kept alive from the grant on, while this call runs; once granted, the holder's
      // Refresh keeps it alive (possibly through another server).
      using _alive = session.keepAlive();
      const held = await acquireOnSession(session, queue, { claim, waitMs, waitUntilMs, signal });
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
      // Its key has left the queue; the lease has no other use.
      await session.revoke().catch(() => {});
      throw err;
    } finally {
      session.detach();
    }
  }

  /** The queue key of `leaseId` on lock `name` if it holds the lock; else the precise refusal. */
  async #holder(name: string, leaseId: string, what: 'refresh' | 'release', signal: AbortSignal): Promise<QueueKey> {
    if (!isLeaseId(leaseId)) {
      throw new NotHolderError(
        `lease ${leaseId} does not hold lock "${name}": etcd lease ids are lowercase hex; send the lease_id that Acquire returned`,
      );
    }
    const queue = new LockQueue(this.#conn, this.#prefix, name);
    const { pages } = await queue.readTogether(
      what,
      [{ key: Buffer.from(queue.ownKey(leaseId)) }, queue.range('Ascend')],
      signal,
    );
    const own = queue.keysOf(pages[0]!)[0];
    let holders: readonly QueueKey[];
    if (own === undefined) {
      const head = await queue.first('Ascend', {}, pages[1]!);
      holders = head === undefined ? [] : [head];
    } else {
      const check = await recipeFor(own).holdCheck(queue, own, pages[1]!, what, signal);
      if (check.holds) return own;
      holders = check.holders;
    }
    const current = holders.length === 0 ? 'it is not held' : `it is held by ${describeHolders(holders)}`;
    if (own !== undefined) {
      // A waiter's lease (e.g. a latchkey or etcdctl waiter): it is queued, not holding.
      throw new NotHolderError(`lease ${leaseId} is waiting for lock "${name}", not holding it: ${current}`);
    }
    const info = await this.#conn.timeToLive(what, leaseIdToDec(leaseId), signal);
    if (Number(info.TTL) < 0) throw expired(name, leaseId, current);
    throw new NotHolderError(`lease ${leaseId} does not hold lock "${name}": ${current}`);
  }
}

function expired(name: string, leaseId: string, current?: string): LeaseExpiredError {
  return new LeaseExpiredError(
    `lease ${leaseId} on lock "${name}" no longer exists in etcd (its TTL ran out, or it was released or revoked)${current ? `; ${current}` : ''}; acquire the lock again`,
  );
}
