// Opening a client session on etcd, and taking it up again through any server: the lease
// grant and the session's mark at open; at resume, the id checked against the mark among the
// keys etcd lists on the lease. What these return is a ClientSessionInit (client-session.ts);
// the recipe that hangs keys on the session reads its own among the listed ones (the lock
// session: lock-session.ts).
//
// The id carries the lease id and the secret (layout.ts sessionIdOf), which is all any server
// on the same etcd and prefix needs to take the session up: one LeaseTimeToLive lists every
// key of the lease, the mark among them. Nothing else about a session is kept by any server.
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, LeaseExpiredError, SessionExpiredError } from '../../errors.js';
import { sessionRef } from '../session-lease.js';
import type { ClientSessionInit } from './client-session.js';
import type { EtcdConnection } from './connection.js';
import { parseSessionId, sessionIdOf, sessionMarkOf } from './layout.js';
import { EtcdSession } from './session.js';

/**
 * A new session: one LeaseGrant, then the session's mark on the lease (one Put), so that a
 * resume through any server can tell the id genuine. A failed mark revokes the lease.
 * `purpose` names the calls in an UNAVAILABLE message ('open a lock session').
 */
export async function openClientSession(
  conn: EtcdConnection,
  prefix: string,
  ttlMs: number,
  purpose: string,
): Promise<ClientSessionInit> {
  const lease = await EtcdSession.open(conn, { ttlMs, purpose });
  const secret = randomBytes(16).toString('hex');
  const id = sessionIdOf(lease.leaseId, secret);
  const ref = sessionRef(id);
  try {
    await conn.call(purpose, undefined, (client) =>
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
  return { id, ref, lease, mark: sessionMarkOf(prefix, lease.leaseId, secret) };
}

/** A session taken up again: as etcd holds it, and every key on its lease (the mark among them). */
export interface ResumedClientSession {
  readonly init: ClientSessionInit;
  readonly keys: readonly Buffer[];
}

/**
 * The session with this id, from etcd: one LeaseTimeToLive (the lease's time left and every
 * key on it), checked for the session's mark, then one LeaseKeepAlive (the resume is the
 * client's sign of life: EtcdSession.resumeWithKeys). An id that is none is refused with
 * InvalidArgumentError; a session etcd no longer has, or whose mark is not on the lease (a
 * wrong secret, another prefix), with SessionExpiredError, and nothing of it is touched.
 */
export async function resumeClientSession(
  conn: EtcdConnection,
  prefix: string,
  id: string,
  signal: AbortSignal,
): Promise<ResumedClientSession> {
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
  try {
    const { session: lease, keys } = await EtcdSession.resumeWithKeys(
      conn,
      parts.leaseId,
      // Not this session (a wrong secret, or a lease no session owns): nothing of it is touched.
      (keys) => {
        if (!keys.some((key) => key.toString() === mark)) throw gone();
      },
      signal,
    );
    return { init: { id, ref, lease, mark }, keys };
  } catch (err) {
    if (err instanceof LeaseExpiredError) throw gone();
    throw err;
  }
}
