// Leader election in the SDK: campaign() waits on one Elections/Campaign call until this
// candidate leads, and hands out a Leadership that says through an AbortSignal when it can no
// longer be trusted, and resigns on dispose. With lock sessions on (the client's default) the
// candidacy lives in the client's lock session of its backend and TTL (session.ts), kept
// alive with the session's locks by its keepalives; else (sessions: false, or a server without
// them) in a session of its own that the leadership keeps alive, a KeepAlive every TTL / 3
// through the same keeper as a unary lock handle. observe() follows Elections/Observe;
// leader() is one Elections/Leader call.
import * as grpc from '@grpc/grpc-js';
import {
  CancelledError,
  fromStatus,
  InternalError,
  InvalidArgumentError,
  LeaseLostError,
  NotHolderError,
} from './errors.js';
import type { LeaderState__Output, Leadership__Output, ResignResponse__Output } from './common/index.js';
import { type KeptLease, type LeaseKeeper, refreshingKeeper } from './lock-handle.js';
import type { Server, ServerList } from './servers.js';
import type { LockSession, SessionTenant } from './session.js';
import { serverGone } from './streams.js';
import type { CallOptions } from './unary-call.js';
import { msField } from './wire.js';

/**
 * - leading: the leadership's session is being kept alive.
 * - resigned: Resign succeeded; the next candidate leads.
 * - lost: the session expired, or the leadership ended some other way, before it resigned
 *   (see `error`, a LeaseLostError).
 * - resign-failed: Resign did not get through (see `error`); the next candidate leads when
 *   the session expires, at `expiresAt` at the latest.
 */
export type LeadershipState = 'leading' | 'resigned' | 'lost' | 'resign-failed';

/**
 * A won campaign. Dispose it (`await using`) or resign() to step down.
 *
 * @example
 * await using leadership = await client.campaign('scheduler', '10.0.0.7:8080', { ttlMs: 10_000 });
 * await runScheduler({ signal: leadership.signal, fence: leadership }); // stop when it aborts
 */
export interface Leadership extends AsyncDisposable {
  /** The election's name. */
  readonly election: string;
  /** The backend that holds the election (the server's default resolved to its name). */
  readonly backend: string;
  /** The value as last proclaimed (at first, the campaign's). */
  readonly value: string;
  /**
   * Strictly increases per election name with every new leader: pass the leadership as a
   * cache write's `fence`, so writes of a leader that has been deposed are refused.
   */
  readonly fencingToken: bigint;
  /** The TTL of the session the leadership lives in, as granted. */
  readonly ttlMs: number;
  /** The session's expiry as the server stated it at the last campaign answer or KeepAlive. */
  readonly expiresAt: Date;
  /**
   * Aborted once this candidate may no longer lead: lost (`reason` is a LeaseLostError) or
   * resigned (`reason` is a CancelledError). Pass it to the work only the leader may do.
   */
  readonly signal: AbortSignal;
  readonly state: LeadershipState;
  /** Why it is `lost` or `resign-failed`; undefined otherwise. */
  readonly error: Error | undefined;
  /**
   * Makes `value` the leader's value, keeping the leadership and its token; observers see it.
   * Rejects with NotLeaderError (and the leadership is then lost) if it is no longer the
   * current one.
   */
  proclaim(value: string, options?: CallOptions): Promise<void>;
  /**
   * Stops keeping the session alive, then resigns with a deadline capped at the TTL (the
   * next candidate leads). Idempotent; never rejects: the outcome is the result.
   */
  resign(options?: CallOptions): Promise<Exclude<LeadershipState, 'leading'>>;
}

/** Who leads an election, as leader() and observe() report it. */
export interface Leader {
  readonly election: string;
  readonly backend: string;
  /** False: nobody leads (value '' and fencingToken 0n). */
  readonly elected: boolean;
  readonly value: string;
  readonly fencingToken: bigint;
  /** Candidates campaigning, the leader among them (for observe(): as of the change). */
  readonly candidates: number;
}

export interface CampaignOptions extends CallOptions {
  /**
   * TTL in ms of the session the candidacy lives in; default the server's (--default-ttl-ms,
   * 15 s unless changed); must be > 0. While the campaign waits the server keeps it alive;
   * once leading, the leadership renews it every TTL / 3 and gives up (aborting its signal)
   * when no renewal has been confirmed for about one TTL. A crashed leader's successor leads
   * at most one TTL later.
   */
  readonly ttlMs?: number;
  /** Lock backend ("memory", "etcd"); default the server's. It must declare `elections`. */
  readonly backend?: string;
  /**
   * How long to wait for the leadership, in ms: NotElectedError (naming the leader) if it
   * has not come by then. Default: as long as it takes (until `signal` aborts). Aborting
   * `signal` withdraws the candidacy.
   */
  readonly waitMs?: number;
  // `deadlineMs` defaults to waitMs + the client's deadlineMs (no deadline without waitMs).
}

export interface LeaderOptions extends CallOptions {
  readonly backend?: string;
}

export interface ObserveOptions {
  /** Lock backend; default the server's. */
  readonly backend?: string;
  /** Aborting it ends the iteration quietly (no error); so does breaking out of the loop. */
  readonly signal?: AbortSignal;
}

/** How the elections part of the client reaches its servers (the client binds these). */
export interface ElectionsHost {
  readonly servers: ServerList;
  readonly deadlineMs: number;
  /** One unary call on the current server, with the client's failover and error mapping. */
  invoke<Res>(
    method: string,
    call: (
      server: Server,
      md: grpc.Metadata,
      o: grpc.CallOptions,
      cb: grpc.requestCallback<Res>,
    ) => grpc.ClientUnaryCall,
    options: CallOptions & { readonly retry?: false; readonly onAbandoned?: (response: Res) => void },
  ): Promise<Res>;
  /** Throws CancelledError once the client is closing. */
  checkOpen(method: string): void;
  /** The lock session a campaign goes through (undefined: a unary Campaign, in a session of its own). */
  forCampaign?(backend: string, ttlMs: number, election: string): LockSession | undefined;
}

/**
 * A candidacy in a lock session: while its campaign waits, the session's loss aborts the
 * campaign; once it leads, the session's loss or end is its leadership's.
 */
class SessionCandidacy implements SessionTenant {
  readonly election: string;
  readonly #lost = new AbortController();
  #held: KeptLease | undefined;

  constructor(election: string) {
    this.election = election;
  }

  /** Aborted, with a LeaseLostError, if the session is lost or ends before the campaign is won. */
  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  /** The leadership the campaign won: from now on, it hears of the session. */
  hold(held: KeptLease): void {
    this.#held = held;
    if (this.#lost.signal.aborted) held.lose(this.#lost.signal.reason as LeaseLostError);
  }

  lose(reason: LeaseLostError): void {
    if (this.#held !== undefined) this.#held.lose(reason);
    else this.#lost.abort(reason);
  }

  ended(error?: Error): void {
    if (this.#held !== undefined) this.#held.ended(error);
    else
      this.#lost.abort(
        new LeaseLostError(`campaign for election "${this.election}" ended with its lock session`, { cause: error }),
      );
  }
}

/** The leadership as the wire names it in Proclaim, Resign and KeepAlive. */
const refOf = (l: Leadership__Output) => ({
  name: l.name,
  backend: l.backend,
  session_id: l.session_id,
  fencing_token: l.fencing_token,
});

export function toLeader(message: LeaderState__Output): Leader {
  return {
    election: message.name,
    backend: message.backend,
    elected: message.elected,
    value: message.value,
    fencingToken: BigInt(message.fencing_token),
    candidates: message.candidates,
  };
}

export class Elections {
  readonly #host: ElectionsHost;
  readonly #leaderships = new Set<LeadershipHandle>();
  readonly #observes = new Set<grpc.ClientReadableStream<LeaderState__Output>>();

  constructor(host: ElectionsHost) {
    this.#host = host;
  }

  async campaign(name: string, value: string, options: CampaignOptions = {}): Promise<Leadership> {
    const requestedTtlMs = options.ttlMs ?? 0;
    if (options.ttlMs !== undefined && !(requestedTtlMs > 0))
      throw new InvalidArgumentError(`ttlMs must be > 0, got ${requestedTtlMs}`);
    if (options.waitMs !== undefined && !(options.waitMs > 0))
      throw new InvalidArgumentError(
        `waitMs must be > 0 (leave it out to wait as long as it takes), got ${options.waitMs}`,
      );
    this.#host.checkOpen('Campaign');
    const request = {
      name,
      backend: options.backend ?? '',
      value,
      session_id: '',
      ttl_ms: msField('ttlMs', requestedTtlMs),
      wait_ms: msField('waitMs', options.waitMs ?? 0),
    };
    // The server answers NotElected once waitMs is up, before this deadline.
    const deadlineMs =
      options.deadlineMs ?? (options.waitMs === undefined ? Infinity : options.waitMs + this.#host.deadlineMs);
    const session = this.#host.forCampaign?.(request.backend, requestedTtlMs, name);
    if (session !== undefined) {
      const candidacy = new SessionCandidacy(name);
      const joined = await session.join(candidacy);
      // Not joined: the session could not be opened (a server or backend without sessions).
      if (joined !== undefined)
        return this.#campaignInSession(session, candidacy, joined.id, request, deadlineMs, options);
    }
    const sentAt = performance.now();
    const message = await this.#host.invoke<Leadership__Output>(
      'Campaign',
      ({ elections }, md, o, cb) => elections.Campaign(request, md, o, cb),
      {
        signal: options.signal,
        deadlineMs,
        // NOTE: the win crossed our cancel on the wire; the server saw no cancellation and
        // would keep this candidate leading, for nobody, until its session expired.
        onAbandoned: (won) => void this.#resign(won, Number(won.ttl_ms) || this.#host.deadlineMs).catch(() => {}),
      },
    );
    const ttlMs = Number(message.ttl_ms) || requestedTtlMs || this.#host.deadlineMs;
    const leadership = new LeadershipHandle(message, this.#host.deadlineMs, this, (h) => this.#leaderships.delete(h));
    const keeper = refreshingKeeper({
      label: `leadership of election "${name}"`,
      ttlMs,
      expiresAtMs: message.expires_at_ms,
      sentAt,
      deadlineMs: this.#host.deadlineMs,
      calls: {
        refresh: (_ttlMs, o) =>
          this.#host.invoke<Leadership__Output>(
            'KeepAlive',
            ({ elections }, md, co, cb) => elections.KeepAlive({ leadership: refOf(message) }, md, co, cb),
            { ...o, retry: false },
          ),
        release: async (o) => void (await this.#resign(message, o.deadlineMs, o.signal)),
      },
    });
    // NOTE: the session was kept alive by the server while the campaign waited, so its
    // expiry is not "sent + TTL" from our side: a campaign that waited long is confirmed
    // with a KeepAlive before the leadership is handed out (see openLockHandle).
    if (performance.now() - sentAt >= ttlMs / 2) {
      try {
        await keeper.confirm(options.signal);
      } catch (err) {
        if (err instanceof NotHolderError)
          throw new LeaseLostError(
            `election "${name}" was won but the leadership was gone before it could be confirmed: ${err.message}`,
            { cause: err },
          );
        await this.#resign(message, Math.min(this.#host.deadlineMs, ttlMs)).catch(() => {});
        throw err;
      }
    }
    leadership.start(keeper);
    try {
      this.#host.checkOpen('Campaign');
    } catch (err) {
      await leadership.resign();
      throw err;
    }
    this.#leaderships.add(leadership);
    return leadership;
  }

  /**
   * A Campaign that names the session's id: the candidacy lives on the session's lease, and
   * its keepalives keep it alive; resign is one Resign, and the session goes on.
   */
  async #campaignInSession(
    session: LockSession,
    candidacy: SessionCandidacy,
    sessionId: string,
    request: { readonly name: string } & Record<string, unknown>,
    deadlineMs: number,
    options: CampaignOptions,
  ): Promise<Leadership> {
    const signal = options.signal === undefined ? candidacy.lost : AbortSignal.any([options.signal, candidacy.lost]);
    let message: Leadership__Output;
    try {
      message = await this.#host.invoke<Leadership__Output>(
        'Campaign',
        ({ elections }, md, o, cb) => elections.Campaign({ ...request, session_id: sessionId, ttl_ms: '0' }, md, o, cb),
        {
          signal,
          deadlineMs,
          // NOTE: as for a unary campaign: a win that crossed our cancel is resigned at once.
          onAbandoned: (won) => void this.#resign(won, this.#host.deadlineMs).catch(() => {}),
        },
      );
    } catch (err) {
      session.leave(candidacy);
      if (candidacy.lost.aborted && !options.signal?.aborted) throw candidacy.lost.reason;
      throw err;
    }
    // However it ends (resigned, lost, refused a proclaim), the candidacy leaves the session.
    const leadership = new LeadershipHandle(message, this.#host.deadlineMs, this, (h) => {
      this.#leaderships.delete(h);
      session.leave(candidacy);
    });
    // NOTE: the session's keepalives keep the candidacy's lease alive, but they cannot tell a
    // leadership resigned from elsewhere (a Resign with its id) or ended by the backend: the
    // leadership also checks itself with a KeepAlive every TTL / 3 (one call per leadership,
    // not per lock), which names it and renews the same session.
    const keeper = refreshingKeeper({
      label: `leadership of election "${message.name}"`,
      ttlMs: session.ttlMs || Number(message.ttl_ms),
      expiresAtMs: message.expires_at_ms,
      sentAt: performance.now(),
      deadlineMs: this.#host.deadlineMs,
      calls: {
        refresh: (_ttlMs, o) =>
          this.#host.invoke<Leadership__Output>(
            'KeepAlive',
            ({ elections }, md, co, cb) => elections.KeepAlive({ leadership: refOf(message) }, md, co, cb),
            { ...o, retry: false },
          ),
        release: async (o) => void (await this.#resign(message, o.deadlineMs, o.signal)),
      },
    });
    candidacy.hold(leadership);
    leadership.start(keeper);
    try {
      this.#host.checkOpen('Campaign');
    } catch (err) {
      await leadership.resign();
      throw err;
    }
    if (leadership.state === 'leading') this.#leaderships.add(leadership);
    return leadership;
  }

  /** Proclaim for a leadership (the handle's proclaim()). */
  proclaim(message: Leadership__Output, value: string, options: CallOptions): Promise<Leadership__Output> {
    return this.#host.invoke<Leadership__Output>(
      'Proclaim',
      ({ elections }, md, o, cb) => elections.Proclaim({ leadership: refOf(message), value }, md, o, cb),
      options,
    );
  }

  async #resign(message: Leadership__Output, deadlineMs: number, signal?: AbortSignal): Promise<void> {
    await this.#host.invoke<ResignResponse__Output>(
      'Resign',
      ({ elections }, md, o, cb) => elections.Resign({ leadership: refOf(message) }, md, o, cb),
      { deadlineMs, signal },
    );
  }

  async leader(name: string, options: LeaderOptions = {}): Promise<Leader> {
    this.#host.checkOpen('Leader');
    const request = { name, backend: options.backend ?? '' };
    return toLeader(
      await this.#host.invoke<LeaderState__Output>(
        'Leader',
        ({ elections }, md, o, cb) => elections.Leader(request, md, o, cb),
        {
          deadlineMs: options.deadlineMs,
          signal: options.signal,
        },
      ),
    );
  }

  async *observe(name: string, options: ObserveOptions = {}): AsyncGenerator<Leader, void, undefined> {
    const { signal } = options;
    this.#host.checkOpen('Observe');
    if (signal?.aborted) return;
    const server = this.#host.servers.current;
    // No deadline: an observe runs until it is stopped.
    const call = server.elections.Observe({ name, backend: options.backend ?? '' });
    // NOTE: grpc-js emits a failed stream's 'error' itself; once the loop below is gone (a
    // break, an abort) nothing else listens, and an unheard 'error' would crash the process.
    call.on('error', () => {});
    const stop = () => call.cancel();
    signal?.addEventListener('abort', stop, { once: true });
    this.#observes.add(call);
    try {
      for await (const message of call as AsyncIterable<LeaderState__Output>) {
        if (signal?.aborted || !this.#observes.has(call)) return;
        yield toLeader(message);
      }
    } catch (err) {
      const cancelled = (err as { code?: unknown }).code === grpc.status.CANCELLED;
      if (cancelled && (signal?.aborted || !this.#observes.has(call))) return;
      if (serverGone(err as grpc.StatusObject)) this.#host.servers.failed(server);
      throw fromStatus(err, 'Observe');
    } finally {
      signal?.removeEventListener('abort', stop);
      this.#observes.delete(call);
      call.cancel();
    }
  }

  /** Resigns every leadership still held and ends every observe. */
  async close(): Promise<void> {
    for (const call of [...this.#observes]) {
      this.#observes.delete(call);
      call.cancel();
    }
    await Promise.all([...this.#leaderships].map((l) => l.resign()));
  }
}

class LeadershipHandle implements Leadership, KeptLease {
  readonly election: string;
  readonly backend: string;
  readonly fencingToken: bigint;
  readonly #message: Leadership__Output;
  readonly #deadlineMs: number;
  readonly #elections: Elections;
  readonly #onSettled: (handle: LeadershipHandle) => void;
  readonly #controller = new AbortController();
  #keeper: LeaseKeeper | undefined;
  #value: string;
  #state: LeadershipState = 'leading';
  #error: Error | undefined;
  /** Set when the resign starts or the leadership is lost: no more state changes from the keeper. */
  #stopped = false;
  #resigned: Promise<Exclude<LeadershipState, 'leading'>> | undefined;

  constructor(
    message: Leadership__Output,
    deadlineMs: number,
    elections: Elections,
    onSettled: (handle: LeadershipHandle) => void,
  ) {
    this.election = message.name;
    this.backend = message.backend;
    this.fencingToken = BigInt(message.fencing_token);
    this.#value = message.value;
    this.#message = message;
    this.#deadlineMs = deadlineMs;
    this.#elections = elections;
    this.#onSettled = onSettled;
  }

  start(keeper: LeaseKeeper): void {
    this.#keeper = keeper;
    keeper.start(this);
  }

  get value(): string {
    return this.#value;
  }

  get ttlMs(): number {
    return this.#keeper?.ttlMs ?? Number(this.#message.ttl_ms);
  }

  get expiresAt(): Date {
    return this.#keeper?.expiresAt ?? new Date(Number(this.#message.expires_at_ms));
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get state(): LeadershipState {
    return this.#state;
  }

  get error(): Error | undefined {
    return this.#error;
  }

  lose(reason: LeaseLostError): void {
    if (this.#stopped) return;
    this.#stop();
    this.#settle('lost', reason, reason);
  }

  ended(error?: Error): void {
    // Only a lock session ends under a leadership (the client is closing): its end resigns it,
    // or, with `error`, could not be confirmed, and the next candidate leads at its expiry.
    if (this.#stopped) return;
    this.#stop();
    if (error === undefined)
      this.#settle(
        'resigned',
        undefined,
        new CancelledError(`leadership of election "${this.election}" was resigned with its lock session`),
      );
    else
      this.#settle(
        'resign-failed',
        error,
        new CancelledError(
          `leadership of election "${this.election}" was given up with its lock session, whose end was not confirmed (${error.message}); the next candidate leads when the session expires`,
          { cause: error },
        ),
      );
  }

  async proclaim(value: string, options: CallOptions = {}): Promise<void> {
    if (this.#state !== 'leading')
      throw new InvalidArgumentError(
        `leadership of election "${this.election}" is ${this.#state}: only the leader proclaims; campaign again`,
      );
    try {
      const answer = await this.#elections.proclaim(this.#message, value, {
        deadlineMs: options.deadlineMs ?? this.#deadlineMs,
        signal: options.signal,
      });
      this.#value = answer.value;
    } catch (err) {
      if (err instanceof NotHolderError)
        this.lose(
          new LeaseLostError(`leadership of election "${this.election}" was lost: ${err.message}`, { cause: err }),
        );
      throw err;
    }
  }

  resign(options: CallOptions = {}): Promise<Exclude<LeadershipState, 'leading'>> {
    this.#resigned ??= this.#resign(options);
    return this.#resigned;
  }

  async #resign(options: CallOptions): Promise<Exclude<LeadershipState, 'leading'>> {
    this.#stop();
    if (this.#state !== 'leading') return this.#state;
    // NOTE: capped at the TTL like etcd's Session.Close: past it the session is gone anyway.
    const deadlineMs = Math.min(options.deadlineMs ?? this.#deadlineMs, this.ttlMs);
    try {
      if (this.#keeper === undefined) throw new InternalError('leadership handed out before it was kept alive');
      await this.#keeper.release({ deadlineMs, signal: options.signal });
      this.#settle('resigned', undefined, new CancelledError(`leadership of election "${this.election}" was resigned`));
      return 'resigned';
    } catch (err) {
      if (this.#state !== 'leading') return this.#state;
      if (err instanceof NotHolderError) {
        const lost = new LeaseLostError(
          `leadership of election "${this.election}" was already lost when resigned: ${err.message}`,
          { cause: err },
        );
        this.#settle('lost', lost, lost);
        return 'lost';
      }
      const error = err instanceof Error ? err : new Error(String(err));
      this.#settle(
        'resign-failed',
        error,
        new CancelledError(
          `leadership of election "${this.election}" was given up, but Resign failed (${error.message}); the next candidate leads when its session expires`,
          { cause: error },
        ),
      );
      return 'resign-failed';
    }
  }

  #stop(): void {
    this.#stopped = true;
    this.#keeper?.stop();
  }

  #settle(state: Exclude<LeadershipState, 'leading'>, error: Error | undefined, reason: Error): void {
    if (this.#state !== 'leading') return;
    this.#state = state;
    this.#error = error;
    this.#controller.abort(reason);
    this.#onSettled(this);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.resign();
  }
}
