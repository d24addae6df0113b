// Tracing as a decorator of an ElectionBackend, as traced-backend.ts is of a LockBackend:
// each election operation, whatever called it, is one span ("election campaign", a child of
// the call's span) with the election's name, the backend and the outcome; the etcd requests
// behind it are its children. Never the session id (it proclaims and resigns) or the fencing
// token (a leader's proof), as lock spans carry neither.
//
// Sessions pass through untouched: a campaign's own session is kept alive by the backend
// (hold) or by KeepAlive, which is a span; a lock session's keepalives are the Session
// stream's. Observe is a stream: the Observe call's span covers it.
import type { Attributes } from '@opentelemetry/api';
import { NotLeaderError } from '../errors.js';
import { inSpan } from '../tracing.js';
import type { SessionOptions } from './backend.js';
import {
  type CampaignOptions,
  type CandidateSession,
  type ElectionBackend,
  type LeaderState,
  type Leadership,
  type LeadershipRef,
  campaignFailure,
} from './election.js';

/** How an operation on a leadership ended, when it did not. */
const leadershipFailure = (err: unknown): string => (err instanceof NotLeaderError ? 'not_leader' : 'error');

/** `elections` of backend `kind`, with a span per operation. */
export function tracedElections(elections: ElectionBackend, kind: string): ElectionBackend {
  return new TracedElections(elections, kind);
}

class TracedElections implements ElectionBackend {
  readonly #elections: ElectionBackend;
  readonly #kind: string;

  constructor(elections: ElectionBackend, kind: string) {
    this.#elections = elections;
    this.#kind = kind;
  }

  openSession(options: SessionOptions): Promise<CandidateSession> {
    return this.#elections.openSession(options);
  }

  findSession(id: string, signal: AbortSignal): Promise<CandidateSession> {
    return this.#elections.findSession(id, signal);
  }

  hold(session: CandidateSession): Disposable {
    return this.#elections.hold(session);
  }

  campaign(session: CandidateSession, options: CampaignOptions): Promise<Leadership> {
    return inSpan(
      'election campaign',
      () => this.#election(options.name),
      () => this.#elections.campaign(session, options),
      () => 'elected',
      (err) => campaignFailure(options.signal, err),
    );
  }

  proclaim(ref: LeadershipRef, value: string): Promise<Leadership> {
    return inSpan(
      'election proclaim',
      () => this.#election(ref.name),
      () => this.#elections.proclaim(ref, value),
      () => 'proclaimed',
      leadershipFailure,
    );
  }

  keepAlive(ref: LeadershipRef): Promise<Leadership> {
    return inSpan(
      'election keepalive',
      () => this.#election(ref.name),
      () => this.#elections.keepAlive(ref),
      () => 'kept',
      leadershipFailure,
    );
  }

  resign(ref: LeadershipRef): Promise<void> {
    return inSpan(
      'election resign',
      () => this.#election(ref.name),
      () => this.#elections.resign(ref),
      () => 'resigned',
      leadershipFailure,
    );
  }

  leader(name: string, signal: AbortSignal): Promise<LeaderState> {
    return inSpan(
      'election leader',
      () => this.#election(name),
      () => this.#elections.leader(name, signal),
      (state) => (state.elected ? 'elected' : 'vacant'),
      () => 'error',
    );
  }

  observe(name: string, signal: AbortSignal): AsyncIterable<LeaderState> {
    return this.#elections.observe(name, signal);
  }

  #election(name: string): Attributes {
    return { 'latchkey.election.name': name, 'latchkey.election.backend': this.#kind };
  }
}
