// gRPC handlers of latchkey.v1.Elections: validate the request, pick the backend (it must
// declare `elections`), find or open the candidate's session, call the backend's elections
// (election.ts), and shape the answer. Backend errors are already ours; rpc.ts maps them to
// status codes.
import type {
  CampaignRequest__Output,
  KeepAliveRequest__Output,
  LeaderState as LeaderMessage,
  LeaderRequest__Output,
  Leadership as LeadershipMessage,
  Leadership__Output,
  ObserveRequest__Output,
  ProclaimRequest__Output,
  ResignRequest__Output,
  ResignResponse,
} from '../../client/common/index.js';
import type { CallContext } from '../call-context.js';
import { systemClock } from '../clock.js';
import type { Config } from '../config.js';
import {
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  LatchkeyError,
  NotElectedError,
} from '../errors.js';
import type { Logger } from '../log.js';
import { checkMs, checkName, checkText, quoted } from '../validate.js';
import type { LockBackend } from './backend.js';
import { WaiterLimits } from './waiter-limits.js';
import {
  CAMPAIGN_WAIT_ENDED,
  type CandidateSession,
  type ElectionBackend,
  type LeaderState,
  type Leadership,
  type LeadershipRef,
  waitEnded,
} from './election.js';

/** The largest value a candidate may proclaim, in bytes of UTF-8. */
export const MAX_ELECTION_VALUE_BYTES = 65_536;
const MAX_SESSION_ID_BYTES = 1024;

export interface ElectionService {
  campaign(request: CampaignRequest__Output, ctx: CallContext): Promise<LeadershipMessage>;
  proclaim(request: ProclaimRequest__Output, ctx: CallContext): Promise<LeadershipMessage>;
  resign(request: ResignRequest__Output, ctx: CallContext): Promise<ResignResponse>;
  keepAlive(request: KeepAliveRequest__Output, ctx: CallContext): Promise<LeadershipMessage>;
  leader(request: LeaderRequest__Output, ctx: CallContext): Promise<LeaderMessage>;
  /** The election's leader, then its changes, as Observe sends them; ends when ctx.signal aborts or the backend closes. */
  observe(request: ObserveRequest__Output, ctx: CallContext): AsyncIterable<LeaderMessage>;
}

const leaderText = (state: LeaderState) =>
  state.elected ? `it is led by ${quoted(state.value)} (fencing token ${state.fencingToken})` : 'nobody leads it';

export function createElectionService(
  backends: ReadonlyMap<string, LockBackend>,
  config: Config,
  log: Logger,
): ElectionService {
  /** The backend named (empty: the default), which must declare elections. */
  function pick(name: string): { backend: LockBackend; elections: ElectionBackend } {
    const backend = backends.get(name === '' ? config.backend : name);
    if (backend === undefined) {
      throw new InvalidArgumentError(
        `backend ${quoted(name)} is not enabled on this server; use one of: ${[...backends.keys()].join(', ')} (or leave it empty for ${config.backend})`,
      );
    }
    if (!backend.capabilities.elections || backend.elections === undefined) {
      const able = [...backends.values()].filter((b) => b.capabilities.elections).map((b) => b.kind);
      throw new FailedPreconditionError(
        `backend ${backend.kind} does not support leader election (capability elections)${able.length > 0 ? `; use ${able.join(' or ')}` : ''}`,
      );
    }
    return { backend, elections: backend.elections };
  }

  function electionName(value: string, ctx: CallContext, field = 'name'): string {
    checkName(field, value);
    ctx.authorize('election', value);
    return value;
  }

  const electionValue = (value: string, field = 'value') => checkText(field, value, MAX_ELECTION_VALUE_BYTES);

  /** The leadership a Proclaim, Resign or KeepAlive names, checked field by field. */
  function leadershipRef(
    leadership: Leadership__Output | null,
    ctx: CallContext,
  ): { backend: LockBackend; elections: ElectionBackend; ref: LeadershipRef } {
    if (leadership === null)
      throw new InvalidArgumentError('leadership is required: send the Leadership that Campaign answered, as it came');
    const name = electionName(leadership.name, ctx, 'leadership.name');
    const picked = pick(leadership.backend);
    if (leadership.session_id === '')
      throw new InvalidArgumentError(
        'leadership.session_id is required: send the Leadership that Campaign answered, as it came',
      );
    const sessionId = checkText('leadership.session_id', leadership.session_id, MAX_SESSION_ID_BYTES);
    const fencingToken = BigInt(leadership.fencing_token);
    if (fencingToken === 0n)
      throw new InvalidArgumentError(
        'leadership.fencing_token is required (non-zero): send the Leadership that Campaign answered, as it came',
      );
    return { ...picked, ref: { name, sessionId, fencingToken, signal: ctx.signal } };
  }

  // Campaigns waiting, per election name and in all, bounded by the limits waiting Acquires
  // have (waiter-limits.ts).
  const campaigns = new WaiterLimits({
    perName: config.maxWaitersPerLock,
    total: config.maxWaiters,
    forName: (n, name) => `${n} campaigns already wait for election "${name}"`,
    inAll: (n) => `${n} campaigns already wait`,
  });

  /** The session a Campaign's candidacy lives in: the one it names, or a new one of its own. */
  async function candidateSession(
    request: CampaignRequest__Output,
    backend: LockBackend,
    elections: ElectionBackend,
    ctx: CallContext,
  ): Promise<{ session: CandidateSession; own: boolean }> {
    if (request.session_id === '') {
      const ttlMs =
        request.ttl_ms === '0' ? config.defaultTtlMs : checkMs('ttl_ms', request.ttl_ms, 10, config.maxTtlMs);
      return { session: await elections.openSession({ ttlMs, signal: ctx.signal }), own: true };
    }
    const id = checkText('session_id', request.session_id, MAX_SESSION_ID_BYTES);
    if (request.ttl_ms !== '0')
      throw new InvalidArgumentError(
        `ttl_ms must be 0 with session_id, got ${request.ttl_ms}: the candidacy lives on that session's lease, which its keepalives renew`,
      );
    if (!id.startsWith(`${backend.kind}.`))
      throw new InvalidArgumentError(
        `session_id is not a session of backend ${backend.kind}: send the session_id of a Locks/Session opened on that backend (and its backend, or leave backend empty for ${config.backend})`,
      );
    if (!backend.capabilities.sessions)
      throw new FailedPreconditionError(
        `backend ${backend.kind} does not support lock sessions (capability sessions): campaign without session_id, with ttl_ms`,
      );
    // NOTE: the backend's own session object, not the metered one the Session stream holds:
    // on etcd the candidate's key goes on that session's lease.
    return { session: await elections.findSession(id, ctx.signal), own: false };
  }

  const toMessage = (backend: LockBackend, leadership: Leadership): LeadershipMessage => ({
    name: leadership.name,
    backend: backend.kind,
    value: leadership.value,
    fencing_token: leadership.fencingToken.toString(),
    session_id: leadership.sessionId,
    ttl_ms: leadership.ttlMs.toString(),
    expires_at_ms: leadership.expiresAtMs.toString(),
  });

  const leaderMessage = (backend: LockBackend, state: LeaderState): LeaderMessage => ({
    name: state.name,
    backend: backend.kind,
    elected: state.elected,
    value: state.value,
    fencing_token: state.fencingToken.toString(),
    candidates: state.candidates,
  });

  const debug = (event: string, backend: LockBackend, leadership: Leadership, msg: string) => {
    if (!log.isLevelEnabled('debug')) return;
    log.debug(
      {
        event,
        backend: backend.kind,
        name: leadership.name,
        fencingToken: leadership.fencingToken.toString(),
        ttlMs: leadership.ttlMs,
      },
      msg,
    );
  };

  return {
    async campaign(request, ctx) {
      const name = electionName(request.name, ctx);
      const { backend, elections } = pick(request.backend);
      const value = electionValue(request.value);
      const waitMs =
        request.wait_ms === '0' ? Infinity : checkMs('wait_ms', request.wait_ms, 1, Number.MAX_SAFE_INTEGER);
      // Never wait so long that the answer would miss the caller's deadline: it would get
      // DEADLINE_EXCEEDED instead of the ABORTED that names the leader (see deadlineMarginMs).
      if (ctx.remainingMs() <= 0)
        throw new NotElectedError(`not elected in election "${name}": the call's deadline has already passed`);
      const leave = campaigns.admit(name);
      const { session, own } = await candidateSession(request, backend, elections, ctx).catch((err: unknown) => {
        leave();
        throw err;
      });
      const stop = new AbortController();
      const onCaller = () => stop.abort(ctx.signal.reason);
      ctx.signal.addEventListener('abort', onCaller, { once: true });
      const withinMs = Math.min(waitMs, ctx.answerWithinMs());
      // NOTE: gRPC deadlines are real time; systemClock.schedule chains delays past setTimeout's
      // 24.8-day limit (a longer one would fire at once).
      const deadline =
        withinMs === Infinity
          ? undefined
          : systemClock.schedule(Math.max(1, withinMs), () => stop.abort(CAMPAIGN_WAIT_ENDED));
      let leadership: Leadership;
      try {
        using _alive = own ? elections.hold(session) : undefined;
        leadership = await elections.campaign(session, { name, value, signal: stop.signal });
      } catch (err) {
        // A session made for this campaign has no other use.
        if (own) await session.end().catch(() => {});
        if (waitEnded(stop.signal, err)) {
          const state = await elections.leader(name, new AbortController().signal).catch(() => undefined);
          throw new NotElectedError(
            `not elected in election "${name}" within ${waitMs < Infinity && waitMs === withinMs ? `wait_ms (${waitMs} ms)` : "the call's deadline"}: ${state === undefined ? 'its leader could not be read' : leaderText(state)}; campaign again, and wait longer to lead`,
          );
        }
        throw err;
      } finally {
        deadline?.cancel();
        ctx.signal.removeEventListener('abort', onCaller);
        leave();
      }
      if (own && !ctx.signal.aborted) {
        // Restart the session's TTL at the win, so the new leader gets all of it: while it
        // waited, hold() renewed it only every TTL / 3.
        try {
          const renewed = await session.keepAlive(ctx.signal);
          leadership = { ...leadership, expiresAtMs: renewed.expiresAtMs };
        } catch {
          // Lost as it was won, or the caller went away: the checks below and KeepAlive say so.
        }
      }
      if (ctx.signal.aborted) {
        // NOTE: elected for a caller that is gone (cancelled between the win and the reply).
        // Step down at once, or its successor would wait for the session's TTL.
        const ref = { ...leadership, signal: new AbortController().signal };
        await elections.resign(ref).catch(() => {});
        if (own) await session.end().catch(() => {});
        throw ctx.signal.reason instanceof LatchkeyError
          ? ctx.signal.reason
          : new CancelledError(`campaign for election "${name}" cancelled`);
      }
      debug('election.lead', backend, leadership, 'candidate leads');
      return toMessage(backend, leadership);
    },

    async proclaim(request, ctx) {
      const { backend, elections, ref } = leadershipRef(request.leadership, ctx);
      const value = electionValue(request.value);
      return toMessage(backend, await elections.proclaim(ref, value));
    },

    async resign(request, ctx) {
      const { backend, elections, ref } = leadershipRef(request.leadership, ctx);
      await elections.resign(ref);
      if (log.isLevelEnabled('debug'))
        log.debug(
          {
            event: 'election.resign',
            backend: backend.kind,
            name: ref.name,
            fencingToken: ref.fencingToken.toString(),
          },
          'leader resigned',
        );
      return { resigned: true };
    },

    async keepAlive(request, ctx) {
      const { backend, elections, ref } = leadershipRef(request.leadership, ctx);
      return toMessage(backend, await elections.keepAlive(ref));
    },

    async leader(request, ctx) {
      const name = electionName(request.name, ctx);
      const { backend, elections } = pick(request.backend);
      return leaderMessage(backend, await elections.leader(name, ctx.signal));
    },

    async *observe(request, ctx) {
      const name = electionName(request.name, ctx);
      const { backend, elections } = pick(request.backend);
      for await (const state of elections.observe(name, ctx.signal)) yield leaderMessage(backend, state);
    },
  };
}
