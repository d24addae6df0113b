// Leader election on a lock backend's sessions (etcd's concurrency.Election, election.go): the
// interface the Elections service (election-service.ts) calls, implemented by the backends
// that declare `elections` (memory-election.ts, etcd/election.ts). A candidacy lives in a
// session, as a lock does: when the session ends or expires, the candidacy ends with it, and
// only then does the next candidate lead.
import { CancelledError, NotElectedError, SessionExpiredError, ShuttingDownError } from '../errors.js';
import type { SessionLeaseInfo, SessionOptions, SessionState } from './backend.js';

/**
 * What an election needs of a session: LockSession (backend.ts) is one, and so is the session
 * a backend opens for one campaign made outside any session (openSession below).
 */
export interface CandidateSession {
  /** Opaque and secret, `<backend kind>.<...>`: whoever has it can proclaim and resign. */
  readonly id: string;
  /** A public name for logs (never the id). */
  readonly ref: string;
  readonly ttlMs: number;
  /** When the session (and every candidacy in it) expires unless kept alive. */
  readonly expiresAtMs: number;
  readonly state: SessionState;
  /** Aborted when the state leaves `live`. */
  readonly signal: AbortSignal;
  keepAlive(signal: AbortSignal): Promise<SessionLeaseInfo>;
  /** Ends the session: its candidacies end (a leader's successor leads). Idempotent. */
  end(): Promise<void>;
}

/** A won campaign. */
export interface Leadership {
  readonly name: string;
  readonly value: string;
  /** Strictly increases per election name with every new leader. */
  readonly fencingToken: bigint;
  /** The session the leadership lives in. */
  readonly sessionId: string;
  readonly ttlMs: number;
  /** The session's expiry as the backend last confirmed it. */
  readonly expiresAtMs: number;
}

/** Who leads an election; `elected` false: nobody (value '' and token 0). */
export interface LeaderState {
  readonly name: string;
  readonly elected: boolean;
  readonly value: string;
  readonly fencingToken: bigint;
  /** Candidates campaigning, the leader among them. */
  readonly candidates: number;
}

export interface CampaignOptions {
  readonly name: string;
  readonly value: string;
  /** Aborted when the caller goes away: the candidacy is withdrawn. */
  readonly signal: AbortSignal;
}

/** Names one leadership: the election, the session it lives in, and its token. */
export interface LeadershipRef {
  readonly name: string;
  readonly sessionId: string;
  readonly fencingToken: bigint;
  readonly signal: AbortSignal;
}

/**
 * Leader election on one backend.
 *
 * @example
 * const session = await elections.openSession({ ttlMs: 10_000, signal });
 * let leadership;
 * {
 *   using _alive = elections.hold(session); // while the campaign waits
 *   leadership = await elections.campaign(session, { name: 'scheduler', value: '10.0.0.7:8080', signal });
 * }
 * const ref = { ...leadership, signal };
 * await elections.keepAlive(ref); // well within leadership.ttlMs, and again
 * await elections.proclaim(ref, '10.0.0.7:9090');
 * await elections.resign(ref); // the next candidate leads; the session ends
 */
export interface ElectionBackend {
  /** A session for one campaign made outside any session (a unary Campaign); resign() ends it. */
  openSession(options: SessionOptions): Promise<CandidateSession>;
  /**
   * The live lock session with this id (a Locks/Session `session_id`), as the backend itself
   * holds it: the candidacy lives on it (on etcd, on its lease), and ends when it does.
   * SessionExpiredError when it is gone or cannot be resumed here.
   */
  findSession(id: string, signal: AbortSignal): Promise<CandidateSession>;
  /**
   * Keeps a session that openSession() made alive from this server until disposed: while its
   * campaign waits, its caller is present but cannot keep it alive. Once the candidate leads,
   * its holder does (KeepAlive).
   */
  hold(session: CandidateSession): Disposable;
  /**
   * Waits until this session's candidate leads `name` (FIFO among the candidates), or rejects:
   * the signal aborted (the candidacy is withdrawn first: CancelledError), the session ended
   * or expired (SessionExpiredError), the backend closed (ShuttingDownError). A session that
   * already campaigns for `name`: FailedPreconditionError.
   */
  campaign(session: CandidateSession, options: CampaignOptions): Promise<Leadership>;
  /** Sets the leader's value; NotLeaderError unless `ref` is the current leadership. */
  proclaim(ref: LeadershipRef, value: string): Promise<Leadership>;
  /** Renews the leadership's session; NotLeaderError unless `ref` is the current leadership. */
  keepAlive(ref: LeadershipRef): Promise<Leadership>;
  /**
   * Steps down (the next candidate leads) and ends the session if openSession() made it;
   * NotLeaderError unless `ref` is the current leadership.
   */
  resign(ref: LeadershipRef): Promise<void>;
  leader(name: string, signal: AbortSignal): Promise<LeaderState>;
  /**
   * The current leader, then every change (new leader, value proclaimed, nobody leading), in
   * order, until `signal` aborts or the backend closes (the iteration then ends).
   */
  observe(name: string, signal: AbortSignal): AsyncIterable<LeaderState>;
}

/**
 * The reason a campaign's signal aborts with when its wait (wait_ms, or the call's deadline)
 * runs out: the candidate was not elected in time, rather than withdrawn by its caller.
 */
export const CAMPAIGN_WAIT_ENDED = 'campaign wait ended';

/** Whether a campaign that rejected with `err` under `signal` ran out of wait (see CAMPAIGN_WAIT_ENDED). */
export const waitEnded = (signal: AbortSignal, err: unknown): boolean =>
  signal.reason === CAMPAIGN_WAIT_ENDED && err instanceof CancelledError;

/** How a campaign that did not win ended, as its metric and its span name it. */
export type CampaignFailure = 'not_elected' | 'expired' | 'cancelled' | 'error';

/** How a campaign that rejected with `err` under `signal` ended. */
export function campaignFailure(signal: AbortSignal, err: unknown): CampaignFailure {
  if (waitEnded(signal, err) || err instanceof NotElectedError) return 'not_elected';
  if (err instanceof SessionExpiredError) return 'expired';
  if (err instanceof CancelledError || err instanceof ShuttingDownError) return 'cancelled';
  return 'error';
}

export const noLeader = (name: string, candidates = 0): LeaderState => ({
  name,
  elected: false,
  value: '',
  fencingToken: 0n,
  candidates,
});
