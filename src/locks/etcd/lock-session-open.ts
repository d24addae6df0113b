// Opening a lock session, and taking it up again through any server on the same etcd and
// prefix: the client session (client-session-open.ts: the grant and the mark, or the id
// checked against the mark), and on resume the session's locks read back from etcd. A server
// that never served the session finds everything it needs there: the lease lists its keys,
// and each own key says what it claims (layout.ts).
import { openClientSession, resumeClientSession } from './client-session-open.js';
import { releaseOwnKey } from './acquire.js';
import type { EtcdConnection } from './connection.js';
import { lockNamesOnLease, type QueueKey } from './layout.js';
import { EtcdLockSession, type SessionHost } from './lock-session.js';
import { LockQueue } from './queue.js';
import { recipeFor } from './recipe.js';

/** Own keys (two reads each: the key and its queue's first page) per transaction on resume, within etcd's default --max-txn-ops of 128. */
const RESUME_BATCH = 64;

/** A new lock session: one LeaseGrant and one Put (the mark); see openClientSession. */
export async function openLockSession(host: SessionHost, ttlMs: number): Promise<EtcdLockSession> {
  return new EtcdLockSession(host, await openClientSession(host.conn, host.prefix, ttlMs, 'open a lock session'));
}

/**
 * The session with this id, from etcd: one LeaseTimeToLive (the lease's time left and every
 * key on it: the mark and the own keys), one LeaseKeepAlive (resumeClientSession), then the
 * own keys read back (fencing tokens, owners) and checked: a key that holds its lock is one
 * of the session's locks; one that does not is a wait whose stream is gone (a broken stream
 * withdraws its waits; a server that died could not), and is taken out of its queue.
 * `existing` is this server's copy, if it has one: it is brought up to date and returned (its
 * own waits are left alone).
 */
export async function resumeLockSession(
  host: SessionHost,
  id: string,
  existing: EtcdLockSession | undefined,
  signal: AbortSignal,
): Promise<EtcdLockSession> {
  const { conn, prefix } = host;
  const { init, keys } = await resumeClientSession(conn, prefix, id, signal);
  const { lease } = init;
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
  return new EtcdLockSession(host, init, held);
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
