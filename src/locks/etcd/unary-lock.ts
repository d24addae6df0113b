// A unary lock on etcd: one lock on an etcd lease of its own (Session in mutex.go), for
// Locks/Acquire, Refresh and Release outside a lock session. Acquire is a session of its own
// with one lock: grant, put, (wait), and on Release one delete and one revoke; Refresh is one
// LeaseKeepAlive. No server keeps state about a lease it granted: the lease id and the lock
// name find the key (lease-holder.ts), through any server on the same etcd.
import type { Timer } from '../../clock.js';
import { FailedPreconditionError } from '../../errors.js';
import type { AcquireOptions, Lease, LeaseRef } from '../backend.js';
import { acquireOnSession, releaseOwnKey } from './acquire.js';
import type { EtcdConnection } from './connection.js';
import { claimOf, type QueueKey } from './layout.js';
import { leaseExpired } from './lease-holder.js';
import { LockQueue } from './queue.js';
import { EtcdSession } from './session.js';

/**
 * How long a unary Acquire that was not granted waits for its key to leave the queue and its
 * lease to be revoked before it answers; a healthy etcd takes milliseconds.
 */
const LEAVE_WAIT_MS = 250;

/** Clean-up is best effort: a key or lease left behind goes with its lease's TTL. */
const ignore = () => {};

/** What a unary Acquire needs of the backend. */
export interface UnaryLockHost {
  readonly conn: EtcdConnection;
  /** Prefix of every lock key (EtcdLockBackendOptions.prefix). */
  readonly prefix: string;
  /** Tracks clean-up that outlives the answer until it settles, so close() waits for it. */
  keep(cleanup: Promise<void>): void;
}

/** A unary Acquire: a session of its own, holding one lock. */
export async function acquireUnary(
  host: UnaryLockHost,
  { name, ttlMs, waitMs, owner, mode, limit, signal }: AcquireOptions,
): Promise<Lease> {
  const { conn } = host;
  const waitUntilMs = conn.clock.now() + waitMs;
  const queue = new LockQueue(conn, host.prefix, name);
  const claim = claimOf(owner, mode, limit);
  // A lease of our own (Session in mutex.go): the key, and so our place in the queue, dies
  // with it, which is what makes an abandoned lock free itself after its TTL.
  const session = await EtcdSession.open(conn, { ttlMs, purpose: `acquire lock "${name}"` });
  // Not granted: the key leaves the queue, then the lease, which has no other use, is revoked.
  // NOTE: the answer waits for that LEAVE_WAIT_MS at most: with etcd unreachable each of
  // its calls is held for opTimeoutMs per endpoint, and the answer must not wait for them
  // (the key goes, or its lease runs out, after the answer; close() still waits for it).
  let ending: Promise<void> | undefined;
  const settle = (leaving: Promise<boolean>) =>
    briefly(host, (ending = leaving.then(() => session.revoke()).catch(() => {})));
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
    if (ending === undefined) await briefly(host, session.revoke().catch(ignore));
    throw err;
  } finally {
    session.detach();
  }
}

/** Waits for a refused Acquire's clean-up LEAVE_WAIT_MS at most; the rest goes on, tracked for close(). */
async function briefly(host: UnaryLockHost, cleanup: Promise<void>): Promise<void> {
  host.keep(cleanup);
  let timer: Timer | undefined;
  await Promise.race([
    cleanup,
    new Promise<void>((resolve) => (timer = host.conn.clock.schedule(LEAVE_WAIT_MS, resolve))),
  ]);
  timer?.cancel();
}

/** Refresh of a unary lock whose `holder` key holds it (lease-holder.ts findHolder): one LeaseKeepAlive. */
export async function refreshUnary(
  conn: EtcdConnection,
  { name, leaseId, signal }: LeaseRef,
  holder: QueueKey,
  ttlMs: number,
): Promise<Lease> {
  if (ttlMs > 0) {
    // NOTE: an etcd lease's TTL is fixed when it is granted; a keepalive restarts that TTL
    // and nothing can change it. A shorter TTL than granted is served with the granted one
    // (expires_at_ms says so); a longer one is refused rather than silently cut short.
    const info = await conn.call('read the lease TTL', signal, (client) =>
      client.leaseClient.leaseTimeToLive({ ID: holder.leaseDec }),
    );
    const granted = Number(info.grantedTTL);
    if (Number(info.TTL) < 0) throw leaseExpired(name, leaseId);
    const asked = Math.ceil(ttlMs / 1000);
    if (asked > granted) {
      throw new FailedPreconditionError(
        `lease ${leaseId} on lock "${name}" has a fixed TTL of ${granted} s (etcd leases cannot change TTL); refresh with ttl_ms 0 or at most ${granted * 1000}, or release and acquire again with ttl_ms ${ttlMs}`,
      );
    }
  }
  const { ttlS, sentAtMs } = await conn.keepAliveOnce(holder.leaseDec, { signal });
  if (ttlS <= 0) throw leaseExpired(name, leaseId);
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

/**
 * Release of a unary lock whose `holder` key holds it: one delete of the key (only the grant's:
 * acquire.ts releaseOwnKey), then one revoke of its lease, which was this lock's alone.
 */
export async function releaseUnary(
  queue: LockQueue,
  holder: QueueKey,
  leaseId: string,
  signal: AbortSignal,
): Promise<void> {
  const released = await releaseOwnKey(queue, holder, signal);
  // The lease was this lock's alone; revoking it now spares etcd tracking it until its TTL.
  await queue.conn.revoke(holder.leaseDec).catch(() => {});
  if (!released) throw leaseExpired(queue.name, leaseId);
}
