// Campaign on etcd: election.go's Campaign and waitDeletes. The candidate's key goes on its
// session's lease only if it does not exist yet; then the candidate waits, as a plain lock's
// waiter does (mutex.ts's check), until no key created before its own is left. A campaign
// that does not win withdraws its key at once.
import { setMaxListeners } from 'node:events';
import {
  BackendUnavailableError,
  CancelledError,
  FailedPreconditionError,
  type LatchkeyError,
  LeaseExpiredError,
  SessionExpiredError,
} from '../../errors.js';
import type { CampaignOptions, Leadership } from '../election.js';
import { type EtcdConnection, raceStop, RETRY_MS } from './connection.js';
import type { CandidateLease } from './election-session.js';
import type { QueueKey } from './layout.js';
import { mutexRecipe } from './mutex.js';
import type { LockQueue } from './queue.js';

/** Campaigns in `queue` (the election's) on `session`'s lease; resolves once it leads. */
export async function campaign(
  conn: EtcdConnection,
  queue: LockQueue,
  session: CandidateLease,
  sessionId: string,
  { name, value, signal }: CampaignOptions,
): Promise<Leadership> {
  const key = Buffer.from(queue.ownKey(session.leaseId));
  // election.go Campaign: put our key only if it does not exist yet, on the session's lease.
  // NOTE: not raced against the signal: abandoning a write mid-flight could leave a key
  // behind that we do not know about. It is bounded by opTimeoutMs.
  const txn = await conn
    .call(`campaign in election "${name}"`, undefined, (client) =>
      client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value: Buffer.from(value), lease: session.leaseDec } }],
      }),
    )
    .catch((err: unknown) => {
      if (err instanceof LeaseExpiredError)
        throw new SessionExpiredError(
          `campaign in election "${name}" failed: its ${session.ttlMs / 1000} s etcd lease expired before etcd took the candidate; campaign again, or with a longer ttl_ms`,
        );
      throw err;
    });
  if (!txn.succeeded)
    throw new FailedPreconditionError(
      `this session already campaigns for election "${name}"; a session campaigns for an election at most once: resign first, or campaign in another session`,
    );
  const createRevision = BigInt(txn.header.revision);
  const own: QueueKey = {
    key: queue.ownKey(session.leaseId),
    leaseDec: session.leaseDec,
    createRevision,
    owner: value,
    mode: 'EXCLUSIVE',
    limit: 1,
  };
  let won = false;
  try {
    await waitForTurn(conn, session, queue, own, signal);
    won = true;
  } finally {
    if (!won) {
      // Withdrawn (cancelled, lost, closing, failed): our key leaves at once, so nobody
      // waits behind a candidate whose caller is gone (election.go resigns likewise).
      await conn
        .call('withdraw the candidate', undefined, (client) =>
          client.kv.txn({
            compare: [{ key, target: 'Create', result: 'Equal', create_revision: createRevision.toString() }],
            success: [{ request_delete_range: { key } }],
          }),
        )
        .catch(() => {});
    }
  }
  return {
    name,
    value,
    fencingToken: createRevision,
    sessionId,
    ttlMs: session.ttlMs,
    expiresAtMs: session.keptByClient ? await expiryOf(conn, session, name) : session.expiresAtMs,
  };
}

/**
 * The expiry to state with a win in a lock session: the later of this server's view and
 * etcd's (whole seconds left, rounded down: the earliest the lease can expire). Both are
 * lower bounds of the real expiry.
 * NOTE: the session's keepalives renewed it while the campaign waited, and when they go
 * through another server (the client's stream is there) this server's copy never sees
 * them: its expiry is then the one of when the campaign began, long past after a wait.
 * A leadership answered with an expiry already gone tells its holder it may have lost it.
 */
async function expiryOf(conn: EtcdConnection, session: CandidateLease, name: string): Promise<number> {
  const known = session.expiresAtMs;
  try {
    const info = await conn.timeToLive(`read the lease of the leader of election "${name}"`, session.leaseDec);
    return Math.max(known, conn.clock.now() + Math.max(0, Number(info.TTL)) * 1000);
  } catch {
    // Unreadable now: the win stands, with what this server knows; the leader's first
    // KeepAlive states the expiry anew.
    return known;
  }
}

/**
 * election.go waitDeletes: until no candidate key created before ours is left, waiting each
 * time for the one just before ours to go (one deletion wakes one candidate).
 */
async function waitForTurn(
  conn: EtcdConnection,
  session: CandidateLease,
  queue: LockQueue,
  own: QueueKey,
  signal: AbortSignal,
): Promise<void> {
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  const onAbort = () => stop.abort(new CancelledError(`campaign for election "${queue.name}" cancelled`));
  const onClose = () => stop.abort(conn.closing.reason);
  const onLost = () =>
    stop.abort(
      new SessionExpiredError(
        `campaign for election "${queue.name}" ended: the candidate's ${(session.signal.reason as LatchkeyError).message}; campaign again`,
      ),
    );
  signal.addEventListener('abort', onAbort, { once: true });
  conn.closing.addEventListener('abort', onClose, { once: true });
  session.signal.addEventListener('abort', onLost, { once: true });
  if (signal.aborted) onAbort();
  if (conn.closing.aborted) onClose();
  if (session.signal.aborted) onLost();
  try {
    for (;;) {
      if (stop.signal.aborted) throw stop.signal.reason;
      let check: Awaited<ReturnType<typeof mutexRecipe.check>>;
      try {
        check = await raceStop(mutexRecipe.check(queue, own), stop.signal);
      } catch (err) {
        if (stop.signal.aborted) throw stop.signal.reason;
        if (!(err instanceof BackendUnavailableError)) throw err;
        // etcd unreachable: try again soon; hold() keeps the lease alive meanwhile, and its
        // loss (signal) ends the wait.
        await conn.sleep(RETRY_MS, stop.signal);
        continue;
      }
      if (!check.ownKeyExists)
        throw new SessionExpiredError(
          `campaign for election "${queue.name}" ended: the candidate's etcd lease ${session.leaseId} or its key was removed while it waited; campaign again`,
        );
      // The service restarts a campaign session's TTL at the win (one keepalive).
      if (check.holds) return;
      await check.waitForChange(stop.signal);
    }
  } finally {
    if (!stop.signal.aborted) stop.abort(null);
    signal.removeEventListener('abort', onAbort);
    conn.closing.removeEventListener('abort', onClose);
    session.signal.removeEventListener('abort', onLost);
  }
}
