// Taking and giving back one lock on a session's lease: mutex.go's Lock / TryLock / Unlock,
// with the recipe (recipe.ts) chosen once per request. The session is a parameter: a unary
// Acquire opens a session of its own for its one lock (unary-lock.ts), and a client session
// can hold many locks on one lease, one own key each (prefix + name + '/' + lease id).
//
// The caller keeps the session alive for as long as this server should (session.keepAlive()):
// NOTE: while a caller waits, its call is open, so this server keeps the waiter's lease
// alive for it, as a Go Session would; once granted, the holder's Refresh does.
import {
  BackendUnavailableError,
  type LatchkeyError,
  LeaseExpiredError,
  LockBusyError,
  throwIfAborted,
} from '../../errors.js';
import { busy, cancelledWhileWaiting, notGrantedInTime } from '../refusals.js';
import { raceStop, RETRY_MS } from './connection.js';
import { type Claim, describeHolders, encodeValue, lockIdConflict, type QueueKey } from './layout.js';
import type { LockQueue } from './queue.js';
import { type LockRecipe, recipeFor } from './recipe.js';
import type { EtcdSession } from './session.js';

export interface LockRequest {
  readonly claim: Claim;
  /** 0 tries once; > 0 waits, until waitUntilMs (the timeout message names it, in ms). */
  readonly waitMs: number;
  /** When the wait ends, on the backend's clock. */
  readonly waitUntilMs: number;
  /** Cancels the request (gRPC deadline, client gone); the key then leaves the queue. */
  readonly signal: AbortSignal;
  /**
   * Not granted: given the key's leaving the queue (true once etcd confirmed the key gone,
   * false if that delete failed), resolves when the answer may go. Default: once the key has
   * left. The unary Acquire waits a bounded time (unary-lock.ts).
   */
  readonly settle?: (leaving: Promise<boolean>) => Promise<void>;
  /**
   * A waiter granted the lock restarts its lease's TTL, so the caller gets all of it (one
   * LeaseKeepAlive). Default true; false for a client session, whose client renews it.
   */
  readonly renewAtGrant?: boolean;
}

/** A lock held: its own key (the fencing token is its create revision) and the lease's earliest expiry. */
export interface HeldLock {
  readonly own: QueueKey;
  readonly expiresAtMs: number;
}

/** Why a wait stopped early: one of our errors, or the wait_ms timer. */
const TIMED_OUT = Symbol('timed out');

/**
 * Puts the session's own key into the lock's queue and waits for its turn as the request
 * allows. Not granted (lost try-once, refused limit, timeout, cancel, lost lease, shutdown,
 * etcd error): the key leaves the queue before this rejects (or as long before as
 * request.settle waits), so nobody waits behind a key whose caller is gone and a Describe
 * right after the answer does not count it. The session's lease is left as it is (the
 * caller revokes it if it was only for this lock).
 */
export async function acquireOnSession(
  session: EtcdSession,
  queue: LockQueue,
  request: LockRequest,
): Promise<HeldLock> {
  const { conn, name } = queue;
  const recipe = recipeFor(request.claim);
  const key = queue.ownKey(session.leaseId);
  let held: HeldLock | undefined;
  try {
    // NOTE: the etcd calls that write (the grant before this, the put) are not raced against
    // the signal: abandoning them mid-flight could leave a key behind that we do not know
    // about. Each is bounded by opTimeoutMs; the signal is checked between steps and ends a
    // wait at once.
    throwIfAborted(request.signal);
    conn.throwIfClosed();
    const { own, page } = await putOwnKey(session, queue, key, request.claim, recipe);
    const holders = await recipe.holdersAfterPut(queue, own, page);
    if (holders.length === 0) return (held = { own, expiresAtMs: session.expiresAtMs });
    // TryLock: lost; our key leaves the queue (the finally below); say who has the lock.
    if (request.waitMs <= 0) throw busy(name, describeHolders(holders));
    return (held = { own, expiresAtMs: await waitForTurn(session, queue, recipe, own, request) });
  } finally {
    if (held === undefined) {
      const leaving = leaveQueue(queue, key);
      await (request.settle?.(leaving) ?? leaving);
    }
  }
}

/**
 * Gives a lock back (Unlock): deletes its own key, only if it is still the key that was
 * granted (mutex.go's IsOwner compare: had it expired and been recreated since, it would no
 * longer be this grant's). False if it was gone.
 */
export async function releaseOwnKey(queue: LockQueue, own: QueueKey, signal: AbortSignal): Promise<boolean> {
  const key = Buffer.from(own.key);
  const txn = await queue.conn.write('release', signal, {
    request: {
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: own.createRevision.toString() }],
      success: [{ request_delete_range: { key } }],
    },
    conflicts: [queue.keyPrefix],
  });
  return txn.succeeded;
}

/**
 * mutex.go tryAcquire: puts our key only if it does not exist yet (create revision 0); else
 * reads it back (a retried call may have put it already). Either way it reads the recipe's
 * part of the queue in the same transaction, so the uncontended path is one round trip.
 */
async function putOwnKey(session: EtcdSession, queue: LockQueue, key: string, claim: Claim, recipe: LockRecipe) {
  const ownKey = Buffer.from(key);
  const page = recipe.putRange(queue);
  const txn = await queue.conn
    .write(`acquire lock "${queue.name}"`, undefined, {
      request: {
        compare: [{ key: ownKey, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [
          { request_put: { key: ownKey, value: encodeValue(claim), lease: session.leaseDec } },
          { request_range: page },
        ],
        failure: [{ request_range: { key: ownKey } }, { request_range: page }],
      },
      // One put per queue in a Txn; two own keys of one lease in a Txn have distinct lock ids.
      conflicts: [queue.keyPrefix, lockIdConflict(session.leaseId, queue.name)],
    })
    .catch((err: unknown) => {
      // The put names a lease that is already gone: etcd took longer than the TTL.
      if (err instanceof LeaseExpiredError)
        throw new LockBusyError(
          `lock "${queue.name}" not acquired: its ${session.ttlMs / 1000} s etcd lease expired before etcd queued it; retry, or use a longer ttl_ms`,
        );
      throw err;
    });
  const createRevision = txn.succeeded
    ? BigInt(txn.header.revision)
    : BigInt(txn.responses[0]!.response_range.kvs[0]!.create_revision);
  const own: QueueKey = { ...claim, key, leaseDec: session.leaseDec, createRevision };
  return { own, page: txn.responses[1]!.response_range };
}

/**
 * Takes a key out of the queue: true once etcd confirmed it gone. Best effort: a failure
 * leaves the key, if a put whose answer was lost made it, to its lease (false).
 */
export async function leaveQueue(queue: LockQueue, key: string): Promise<boolean> {
  // Deleting the key is what frees the successor; revoking the lease would delete it too,
  // but the key goes first so that a failed revoke cannot leave it queued.
  return queue.conn
    .call('leave the queue', undefined, (client) => client.kv.deleteRange({ key: Buffer.from(key) }))
    .then(
      () => true,
      () => false,
    );
}

/**
 * Waits until our key holds the lock, re-reading the queue after each change the recipe
 * watches for. Resolves with the lease's new earliest expiry once the lock is ours.
 */
async function waitForTurn(
  session: EtcdSession,
  queue: LockQueue,
  recipe: LockRecipe,
  own: QueueKey,
  request: LockRequest,
): Promise<number> {
  const { conn, name } = queue;
  const { signal } = request;
  const stop = new AbortController();
  const lost = (why: string) =>
    stop.abort(new LockBusyError(`lock "${name}" not acquired: the waiter's ${why}; acquire again`));
  const onAbort = () => stop.abort(cancelledWhileWaiting(name));
  const onClose = () => stop.abort(conn.closing.reason);
  const onLost = () => lost((session.signal.reason as LatchkeyError).message);
  signal.addEventListener('abort', onAbort, { once: true });
  conn.closing.addEventListener('abort', onClose, { once: true });
  session.signal.addEventListener('abort', onLost, { once: true });
  // A signal that fired before we listened never calls the listener.
  if (signal.aborted) onAbort();
  if (conn.closing.aborted) onClose();
  if (session.signal.aborted) onLost();
  const waitTimer = conn.clock.schedule(Math.max(0, request.waitUntilMs - conn.clock.now()), () =>
    stop.abort(TIMED_OUT),
  );

  let unavailable: unknown;
  try {
    for (;;) {
      if (stop.signal.aborted) break;
      let check: Awaited<ReturnType<LockRecipe['check']>>;
      try {
        check = await raceStop(recipe.check(queue, own), stop.signal);
        unavailable = undefined;
      } catch (err) {
        if (stop.signal.aborted) break;
        if (!(err instanceof BackendUnavailableError)) throw err;
        unavailable = err;
        await conn.sleep(RETRY_MS, stop.signal);
        continue;
      }
      // mutex.go: "make sure the session is not expired, and the owner key still exists";
      // checked on every round, so a waiter whose key vanished stops at once instead of
      // waiting out its predecessors (key.go's TODO).
      if (!check.ownKeyExists) {
        lost(`etcd lease ${session.leaseId} or its key was removed while waiting`);
        break;
      }
      if (check.holds) {
        stop.abort(null);
        if (request.renewAtGrant === false) return session.expiresAtMs;
        // Restart the TTL at the grant, so the caller gets all of it.
        return await session.renew().catch((err: unknown) => {
          if (!(err instanceof LeaseExpiredError)) throw err;
          throw new LockBusyError(
            `lock "${name}" not acquired: the waiter's etcd lease ${session.leaseId} expired as the lock was handed over; acquire again`,
          );
        });
      }
      await check.waitForChange(stop.signal);
    }
    const reason: unknown = stop.signal.reason;
    if (reason !== TIMED_OUT) throw reason;
    if (unavailable !== undefined) throw unavailable;
    const holders = await recipe.holdersNow(queue).catch(() => []);
    throw notGrantedInTime(name, holders.length === 0 ? undefined : describeHolders(holders), request.waitMs);
  } finally {
    if (!stop.signal.aborted) stop.abort(null);
    waitTimer.cancel();
    signal.removeEventListener('abort', onAbort);
    conn.closing.removeEventListener('abort', onClose);
    session.signal.removeEventListener('abort', onLost);
  }
}
