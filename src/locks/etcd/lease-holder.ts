// What a lease id a client sends names on the etcd backend, for Locks/Refresh and
// Locks/Release: the own key it holds, and whether that key is on a lock session's lease;
// else the precise refusal (waiting, not holding; gone; never held). And a session's lock
// released by its lease id from outside the session, which loses the session.
//
// NOTE: a session's lease must not be handled as a unary one: Release revokes the lease of
// the key it deletes, which for a session's would release every lock of the session. A
// session lock's lease_id says so by its form (layout.ts sessionLockIdOf); a bare lease id of
// a session's lease, by the session's mark on it, read in the same transaction as the key.
import { LeaseExpiredError, NotHolderError } from '../../errors.js';
import {
  describeHolders,
  isLeaseId,
  leaseIdFromDec,
  leaseIdToDec,
  parseSessionLockId,
  prefixEnd,
  type QueueKey,
  sessionLockIdMatches,
  sessionMarkPrefixOf,
} from './layout.js';
import type { LockQueue } from './queue.js';
import { recipeFor } from './recipe.js';

/** The own key a lease id holds, and whether its lease is a lock session's. */
export interface LeaseHolder {
  readonly own: QueueKey;
  readonly session: boolean;
}

/** The refusal for a lease etcd no longer has; `current` says who holds the lock now. */
export function leaseExpired(name: string, leaseId: string, current?: string): LeaseExpiredError {
  return new LeaseExpiredError(
    `lease ${leaseId} on lock "${name}" no longer exists in etcd (its TTL ran out, or it was released or revoked)${current ? `; ${current}` : ''}; acquire the lock again`,
  );
}

/**
 * The queue key of `leaseId` in `queue` if it holds the lock, and whether its lease is a
 * lock session's (see the NOTE on top); else the precise refusal. One transaction reads the
 * key, the queue's first page and the session's mark; a key that is not first is judged by
 * its recipe (recipe.ts holdCheck).
 */
export async function findHolder(
  queue: LockQueue,
  prefix: string,
  leaseId: string,
  what: 'refresh' | 'release',
  signal: AbortSignal,
): Promise<LeaseHolder> {
  const { conn, name } = queue;
  const sessionLock = parseSessionLockId(leaseId);
  const hex = sessionLock?.leaseId ?? leaseId;
  if (!isLeaseId(hex)) {
    throw new NotHolderError(
      `lease ${leaseId} does not hold lock "${name}": etcd lease ids are lowercase hex; send the lease_id that Acquire returned`,
    );
  }
  const mark = Buffer.from(sessionMarkPrefixOf(prefix, hex));
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
  const own =
    sessionLock === undefined || (found !== undefined && sessionLockIdMatches(sessionLock, name, found))
      ? found
      : undefined;
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
  const info = await conn.timeToLive(what, leaseIdToDec(hex), signal);
  if (Number(info.TTL) < 0) throw leaseExpired(name, leaseId, current);
  throw new NotHolderError(`lease ${leaseId} does not hold lock "${name}": ${current}`);
}

/**
 * Locks/Release of a session's lock (an operator with its lease id): the lock is released,
 * and the session lost: its mark goes in the same transaction, so that no server renews or
 * resumes it any more (the keepalive and the resume look for the mark). Its other locks stay
 * until its lease expires, so that nobody gets them before its holder could know. Resolves
 * with the session's lease id (hex): the caller tells its copy of the session, if it has one.
 * NOTE: never a revoke: that would release every lock of the session at once.
 */
export async function releaseSessionLock(
  queue: LockQueue,
  prefix: string,
  own: QueueKey,
  leaseId: string,
  signal: AbortSignal,
): Promise<string> {
  const key = Buffer.from(own.key);
  const hex = leaseIdFromDec(own.leaseDec);
  const mark = Buffer.from(sessionMarkPrefixOf(prefix, hex));
  const txn = await queue.conn.call('release', signal, (client) =>
    client.kv.txn({
      compare: [{ key, target: 'Create', result: 'Equal', create_revision: own.createRevision.toString() }],
      success: [{ request_delete_range: { key } }, { request_delete_range: { key: mark, range_end: prefixEnd(mark) } }],
    }),
  );
  if (!txn.succeeded) throw leaseExpired(queue.name, leaseId);
  return hex;
}
