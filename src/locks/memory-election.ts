// In-process leader election on the memory backend's sessions: per election name, one FIFO
// queue of candidates, each in a session; the first leads. A candidacy ends when its
// candidate resigns, its campaign is withdrawn, or its session stops being live, and the next
// candidate is promoted with a new fencing token at once. Elections live and die with this
// server process, as the memory backend's locks do.
import type { Clock, Timer } from '../clock.js';
import {
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  type LatchkeyError,
  NotLeaderError,
  SessionExpiredError,
  ShuttingDownError,
  throwIfAborted,
} from '../errors.js';
import { quoted } from '../validate.js';
import type { LockSession, SessionOptions } from './backend.js';
import {
  type CampaignOptions,
  type CandidateSession,
  type ElectionBackend,
  type LeaderState,
  type Leadership,
  type LeadershipRef,
  noLeader,
} from './election.js';

export interface MemoryElectionsOptions {
  readonly clock: Clock;
  /** The lock backend's openSession: a campaign's own session is an ordinary session. */
  readonly openSession: (options: SessionOptions) => Promise<LockSession>;
  /** The lock backend's resumeSession: the live session with this id, or why there is none. */
  readonly findSession: (id: string, signal: AbortSignal) => Promise<LockSession>;
  /** Aborted when the backend closes: waiting campaigns fail, observers end. */
  readonly closing: AbortSignal;
}

interface Candidate {
  readonly name: string;
  readonly session: CandidateSession;
  value: string;
  /** 0n until it leads. */
  token: bigint;
  /** Settles a campaign still waiting: resolve once it leads, reject when it is withdrawn. */
  settle: ((err?: LatchkeyError) => void) | undefined;
  /** Stops following the session's end. */
  unfollow: () => void;
}

/** A leader as error messages name it. */
const leaderText = (c: Candidate | undefined): string =>
  c === undefined ? 'nobody leads it' : `it is led by ${quoted(c.value)} (fencing token ${c.token})`;

export class MemoryElections implements ElectionBackend {
  readonly #clock: Clock;
  readonly #openSession: MemoryElectionsOptions['openSession'];
  readonly #findSession: MemoryElectionsOptions['findSession'];
  readonly #closing: AbortSignal;
  /** Candidates per election name, in campaign order: the first leads. */
  readonly #elections = new Map<string, Set<Candidate>>();
  /** Candidacies per session id, by election name: a session campaigns for a name at most once. */
  readonly #bySession = new Map<string, Map<string, Candidate>>();
  /** Sessions opened for one campaign: resign() ends them. */
  readonly #own = new WeakSet<CandidateSession>();
  readonly #observers = new Map<string, Set<(state: LeaderState) => void>>();
  // NOTE: one counter for every election name, as the memory lock backend's: strictly
  // increasing per name for the life of the process without keeping idle names.
  #lastToken = 0n;

  constructor(options: MemoryElectionsOptions) {
    this.#clock = options.clock;
    this.#openSession = options.openSession;
    this.#findSession = options.findSession;
    this.#closing = options.closing;
  }

  async openSession(options: SessionOptions): Promise<CandidateSession> {
    const session = await this.#openSession(options);
    this.#own.add(session);
    return session;
  }

  findSession(id: string, signal: AbortSignal): Promise<CandidateSession> {
    return this.#findSession(id, signal);
  }

  hold(session: CandidateSession): Disposable {
    // Renewed every TTL/3 from the server while its campaign waits.
    let timer: Timer | undefined;
    let held = true;
    const next = () => {
      timer = this.#clock.schedule(session.ttlMs / 3, () => {
        if (held) session.keepAlive(new AbortController().signal).then(next, () => {});
      });
    };
    next();
    return {
      [Symbol.dispose]() {
        held = false;
        timer?.cancel();
      },
    };
  }

  async campaign(session: CandidateSession, { name, value, signal }: CampaignOptions): Promise<Leadership> {
    throwIfAborted(signal);
    if (this.#closing.aborted) throw new ShuttingDownError('server is shutting down; campaign on another server');
    if (session.state !== 'live' || this.#clock.now() >= session.expiresAtMs)
      throw new SessionExpiredError(
        (session.signal.reason as Error | undefined)?.message ??
          `session ${session.ref} has expired: open a new session`,
      );
    const mine = this.#bySession.get(session.id);
    if (mine?.has(name))
      throw new FailedPreconditionError(
        `this session already campaigns for election "${name}"; a session campaigns for an election at most once: resign first, or campaign in another session`,
      );

    const candidate: Candidate = { name, session, value, token: 0n, settle: undefined, unfollow: () => {} };
    let election = this.#elections.get(name);
    if (election === undefined) this.#elections.set(name, (election = new Set()));
    election.add(candidate);
    if (mine === undefined) this.#bySession.set(session.id, new Map([[name, candidate]]));
    else mine.set(name, candidate);
    candidate.unfollow = this.#follow(candidate);

    if (election.size === 1) {
      this.#promote(candidate);
      return this.#leadership(candidate);
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => this.#remove(candidate, new CancelledError(`campaign for election "${name}" cancelled`));
      const onClose = () =>
        this.#remove(candidate, new ShuttingDownError('server is shutting down; campaign on another server'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.#closing.addEventListener('abort', onClose, { once: true });
      candidate.settle = (err) => {
        candidate.settle = undefined;
        signal.removeEventListener('abort', onAbort);
        this.#closing.removeEventListener('abort', onClose);
        if (err === undefined) resolve();
        else reject(err);
      };
    });
    return this.#leadership(candidate);
  }

  async proclaim(ref: LeadershipRef, value: string): Promise<Leadership> {
    const candidate = await this.#leaderOf(ref, 'proclaim');
    candidate.value = value;
    this.#emit(ref.name);
    return this.#leadership(candidate);
  }

  async keepAlive(ref: LeadershipRef): Promise<Leadership> {
    const candidate = await this.#leaderOf(ref, 'keep alive');
    await candidate.session.keepAlive(ref.signal);
    return this.#leadership(candidate);
  }

  async resign(ref: LeadershipRef): Promise<void> {
    const candidate = await this.#leaderOf(ref, 'resign');
    this.#remove(candidate, undefined);
    if (this.#own.has(candidate.session)) await candidate.session.end();
  }

  async leader(name: string, signal: AbortSignal): Promise<LeaderState> {
    throwIfAborted(signal);
    return this.#state(name);
  }

  async *observe(name: string, signal: AbortSignal): AsyncIterable<LeaderState> {
    const pending: LeaderState[] = [];
    let wake: (() => void) | undefined;
    const listener = (state: LeaderState) => {
      pending.push(state);
      wake?.();
    };
    const stop = () => wake?.();
    let listeners = this.#observers.get(name);
    if (listeners === undefined) this.#observers.set(name, (listeners = new Set()));
    listeners.add(listener);
    signal.addEventListener('abort', stop);
    this.#closing.addEventListener('abort', stop);
    try {
      // Subscribed before the snapshot, and nothing runs in between: no change is missed.
      yield this.#state(name);
      while (!signal.aborted && !this.#closing.aborted) {
        const state = pending.shift();
        if (state !== undefined) {
          yield state;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      listeners.delete(listener);
      if (listeners.size === 0 && this.#observers.get(name) === listeners) this.#observers.delete(name);
      signal.removeEventListener('abort', stop);
      this.#closing.removeEventListener('abort', stop);
    }
  }

  /**
   * Ends the candidacy when its session stops being live. NOTE: a session that is `lost` can
   * no longer be kept alive, but it holds what it holds until its expiry, which its holder
   * can count on: the candidacy ends then, not sooner.
   */
  #follow(candidate: Candidate): () => void {
    const { session } = candidate;
    let timer: Timer | undefined;
    const gone = () => {
      const reason =
        session.signal.reason instanceof SessionExpiredError || session.signal.reason instanceof ShuttingDownError
          ? (session.signal.reason as LatchkeyError)
          : new SessionExpiredError(`session ${session.ref} ended`);
      if (session.state === 'lost') {
        timer = this.#clock.schedule(session.expiresAtMs - this.#clock.now(), () => this.#remove(candidate, reason));
      } else this.#remove(candidate, reason);
    };
    session.signal.addEventListener('abort', gone, { once: true });
    return () => {
      session.signal.removeEventListener('abort', gone);
      timer?.cancel();
    };
  }

  /** The candidacy `ref` names, if it leads now; else NotLeaderError saying who does. */
  async #leaderOf(ref: LeadershipRef, what: string): Promise<Candidate> {
    throwIfAborted(ref.signal);
    try {
      // Finding the session also expires it here if its TTL ran out (its candidacy with it).
      await this.#findSession(ref.sessionId, ref.signal);
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw err;
      if (err instanceof SessionExpiredError)
        throw new NotLeaderError(`cannot ${what}: the leadership of election "${ref.name}" is gone: ${err.message}`);
      throw err;
    }
    const candidate = this.#bySession.get(ref.sessionId)?.get(ref.name);
    const leader = this.#first(ref.name);
    if (candidate === undefined || candidate !== leader || candidate.token !== ref.fencingToken) {
      const mine =
        candidate === undefined
          ? 'this session does not campaign for it'
          : candidate === leader
            ? `this session's leadership has fencing token ${candidate.token}, not ${ref.fencingToken}`
            : 'this session is a candidate waiting its turn';
      throw new NotLeaderError(
        `cannot ${what}: fencing token ${ref.fencingToken} is not the current leadership of election "${ref.name}": ${mine}, and ${leaderText(leader)}`,
      );
    }
    return candidate;
  }

  #first(name: string): Candidate | undefined {
    return this.#elections.get(name)?.values().next().value;
  }

  #promote(candidate: Candidate): void {
    candidate.token = ++this.#lastToken;
    this.#emit(candidate.name);
    candidate.settle?.();
  }

  /** Ends a candidacy (`reason` goes to its waiting campaign); a leader's successor leads. */
  #remove(candidate: Candidate, reason: LatchkeyError | undefined): void {
    const { name } = candidate;
    const election = this.#elections.get(name);
    if (election === undefined || !election.delete(candidate)) return;
    candidate.unfollow();
    const mine = this.#bySession.get(candidate.session.id);
    mine?.delete(name);
    if (mine?.size === 0) this.#bySession.delete(candidate.session.id);
    if (candidate.settle !== undefined)
      candidate.settle(reason ?? new CancelledError(`campaign for election "${name}" withdrawn`));
    if (candidate.token === 0n) {
      if (election.size === 0) this.#elections.delete(name);
      return;
    }
    const next = this.#first(name);
    if (next === undefined) {
      this.#elections.delete(name);
      this.#emit(name);
    } else this.#promote(next);
  }

  #leadership(candidate: Candidate): Leadership {
    return {
      name: candidate.name,
      value: candidate.value,
      fencingToken: candidate.token,
      sessionId: candidate.session.id,
      ttlMs: candidate.session.ttlMs,
      expiresAtMs: candidate.session.expiresAtMs,
    };
  }

  #state(name: string): LeaderState {
    const election = this.#elections.get(name);
    const leader = this.#first(name);
    return leader === undefined
      ? noLeader(name)
      : { name, elected: true, value: leader.value, fencingToken: leader.token, candidates: election!.size };
  }

  #emit(name: string): void {
    const listeners = this.#observers.get(name);
    if (listeners === undefined) return;
    const state = this.#state(name);
    for (const listener of listeners) listener(state);
  }
}
