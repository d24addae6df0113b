// The sessions a candidate campaigns in, on etcd: a campaign session of its own (one etcd lease,
// for a unary Campaign) or a client's lock session (lock-session.ts), whose lease carries the
// session's locks and its candidacies alike, as etcd's concurrency.Session carries mutexes and
// elections. election.ts runs the recipe on either through CandidateLease.
import { AbortedError, FailedPreconditionError } from '../../errors.js';
import type { SessionState } from '../backend.js';
import type { CandidateSession } from '../election.js';
import { sessionRef } from '../session-lease.js';
import { campaignSessionId, leaseOfSessionId } from './election-layout.js';
import { leaseIdToDec, parseSessionId } from './layout.js';
import { EtcdLockSession } from './lock-session.js';
import type { EtcdSession } from './session.js';

/** A campaign's own session: one etcd lease, as a CandidateSession. */
export class CampaignSession implements CandidateSession {
  readonly id: string;
  readonly ref: string;
  readonly etcd: EtcdSession;

  constructor(etcd: EtcdSession) {
    this.etcd = etcd;
    this.id = campaignSessionId(etcd.leaseId);
    this.ref = sessionRef(this.id);
  }

  get ttlMs(): number {
    return this.etcd.ttlMs;
  }

  get expiresAtMs(): number {
    return this.etcd.expiresAtMs;
  }

  get state(): SessionState {
    return this.etcd.signal.aborted ? 'expired' : 'live';
  }

  get signal(): AbortSignal {
    return this.etcd.signal;
  }

  async keepAlive(signal: AbortSignal) {
    const expiresAtMs = await this.etcd.renew({ signal });
    return { ttlMs: this.etcd.ttlMs, expiresAtMs };
  }

  async end(): Promise<void> {
    await this.etcd.revoke();
  }
}

/** What a candidacy needs of its session: the etcd lease its key lives on, and the session's end. */
export interface CandidateLease {
  readonly leaseId: string;
  readonly leaseDec: string;
  readonly ttlMs: number;
  /** The session's expiry as this server last saw it stated (read at each use: it moves). */
  readonly expiresAtMs: number;
  /**
   * A lock session: its client renews it with its own keepalives, maybe through another
   * server, so this server's view of its expiry can lag (see election-campaign.ts expiryOf).
   */
  readonly keptByClient: boolean;
  /** Aborted when the session stops being live: a waiting campaign ends with it. */
  readonly signal: AbortSignal;
}

/** Where a leadership's key lives: which session kind, and its lease. */
export interface SessionLeaseOf {
  readonly leaseId: string;
  /** A campaign session is the campaign's alone: resign revokes it. */
  readonly campaignOnly: boolean;
}

/** The lease a session id names: a campaign session's or a lock session's; undefined if neither. */
export function leaseOfSession(sessionId: string): SessionLeaseOf | undefined {
  const campaign = leaseOfSessionId(sessionId);
  if (campaign !== undefined) return { leaseId: campaign, campaignOnly: true };
  const lock = parseSessionId(sessionId);
  return lock === undefined ? undefined : { leaseId: lock.leaseId, campaignOnly: false };
}

/** The lease a session's candidacy lives on, and the signal that ends a campaign waiting in it. */
export function candidateLeaseOf(session: CandidateSession): CandidateLease {
  if (session instanceof CampaignSession) {
    const { etcd } = session;
    return {
      leaseId: etcd.leaseId,
      leaseDec: etcd.leaseDec,
      ttlMs: etcd.ttlMs,
      get expiresAtMs() {
        return etcd.expiresAtMs;
      },
      keptByClient: false,
      signal: etcd.signal,
    };
  }
  if (session instanceof EtcdLockSession) {
    // NOTE: this server's copy of a session served by a stream elsewhere may step aside
    // (AbortedError: another server serves it) while the session lives on: that must not
    // end a campaign still waiting through this server. The session's real end still does:
    // etcd deletes the candidate's key with its lease, which the wait's check finds
    // (ownKeyExists).
    const ended = new AbortController();
    const onEnd = () => {
      if (!(session.signal.reason instanceof AbortedError)) ended.abort(session.signal.reason);
    };
    if (session.signal.aborted) onEnd();
    else session.signal.addEventListener('abort', onEnd, { once: true });
    return {
      leaseId: session.leaseId,
      leaseDec: leaseIdToDec(session.leaseId),
      ttlMs: session.ttlMs,
      // NOTE: a getter, not a copy: a campaign waits while the session's keepalives move it.
      get expiresAtMs() {
        return session.expiresAtMs;
      },
      keptByClient: true,
      signal: ended.signal,
    };
  }
  throw new FailedPreconditionError(
    `session ${session.ref} is not a session of the etcd backend: campaign in a Locks/Session session of it, or without session_id, with ttl_ms`,
  );
}
