// Metering as a decorator of an ElectionBackend, as metered-backend.ts is of a LockBackend:
// every campaign that reaches the backend counts once by how it ended, every resign by its
// outcome, and every backend failure (unreachable, internal) under latchkey_backend_errors_total,
// whichever RPC asked (a unary Campaign, or one in a lock session).
// Sessions, observe and the reads pass through: KeepAlive, Proclaim and Leader are counted
// per method and code by the call context (latchkey_rpc_handled_total), Observe is a stream.
import { NotLeaderError } from '../errors.js';
import type { ElectionMeter } from '../metrics.js';
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

/** `elections`, counting campaigns, resigns and failures on `meter`. */
export function meteredElections(elections: ElectionBackend, meter: ElectionMeter): ElectionBackend {
  return new MeteredElections(elections, meter);
}

class MeteredElections implements ElectionBackend {
  readonly #elections: ElectionBackend;
  readonly #meter: ElectionMeter;

  constructor(elections: ElectionBackend, meter: ElectionMeter) {
    this.#elections = elections;
    this.#meter = meter;
  }

  openSession(options: SessionOptions): Promise<CandidateSession> {
    return this.#counted(this.#elections.openSession(options));
  }

  findSession(id: string, signal: AbortSignal): Promise<CandidateSession> {
    return this.#counted(this.#elections.findSession(id, signal));
  }

  hold(session: CandidateSession): Disposable {
    return this.#elections.hold(session);
  }

  async campaign(session: CandidateSession, options: CampaignOptions): Promise<Leadership> {
    try {
      const leadership = await this.#elections.campaign(session, options);
      this.#meter.campaigned('elected');
      return leadership;
    } catch (err) {
      this.#meter.campaigned(campaignFailure(options.signal, err));
      this.#meter.failed(err);
      throw err;
    }
  }

  proclaim(ref: LeadershipRef, value: string): Promise<Leadership> {
    return this.#counted(this.#elections.proclaim(ref, value));
  }

  keepAlive(ref: LeadershipRef): Promise<Leadership> {
    return this.#counted(this.#elections.keepAlive(ref));
  }

  async resign(ref: LeadershipRef): Promise<void> {
    try {
      await this.#elections.resign(ref);
      this.#meter.resigned('resigned');
    } catch (err) {
      if (err instanceof NotLeaderError) this.#meter.resigned('not_leader');
      else this.#meter.failed(err);
      throw err;
    }
  }

  leader(name: string, signal: AbortSignal): Promise<LeaderState> {
    return this.#counted(this.#elections.leader(name, signal));
  }

  observe(name: string, signal: AbortSignal): AsyncIterable<LeaderState> {
    return this.#elections.observe(name, signal);
  }

  /** Counts a failure of `work` (an answer such as not_leader is none: see failureClass). */
  async #counted<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (err) {
      this.#meter.failed(err);
      throw err;
    }
  }
}
