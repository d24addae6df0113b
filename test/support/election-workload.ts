// Candidates of an election through the SDK, recorded for the lock checker (checker.ts treats a
// leadership as a hold: a won Campaign is a grant, a Resign its Release): runCandidate()
// campaigns, leads for leadMs making fenced writes with its leadership's token, resigns, and
// campaigns again, until its signal aborts. Used in this process (test/partitions/checker.test.ts)
// and by the election client processes of the partition scenarios (election-client.ts).
import type { CacheClient, LatchkeyClient, Leadership } from '../../client/index.js';
import { FencedOutError, LatchkeyError, NotElectedError } from '../../client/index.js';
import type { LockInput, LockOp, LockOutput } from './checker.js';
import { codeName, monotonicMs, wallToMonotonicMs, type Outcome } from './history.js';

/** Records one finished operation (the caller numbers them). */
export type Record = (op: Omit<LockOp, 'id'>) => void;

/** An SDK error as an outcome: a campaign not won (NotElectedError) is definite, anything else may have happened. */
export function failure(err: unknown): Outcome<never> {
  const code = err instanceof LatchkeyError ? codeName(err.code) : 'THROWN';
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return { status: err instanceof NotElectedError ? 'fail' : 'unknown', code, message };
}

export interface FencedWriteOptions {
  readonly cache: CacheClient;
  readonly client: string;
  readonly key: string;
  readonly value: string;
  /** The leadership whose token fences the write (its token stays the same after it is lost). */
  readonly leadership: Pick<Leadership, 'election' | 'backend' | 'fencingToken'>;
  /** The server whose store takes the write, as the history names it. */
  readonly via: string;
  readonly deadlineMs: number;
  readonly record: Record;
}

/** One fenced write, recorded: stored, refused (FencedOutError), or unknown. */
export async function fencedWrite(options: FencedWriteOptions): Promise<Outcome<LockOutput>> {
  const { leadership } = options;
  const input: LockInput = {
    op: 'fenced-write',
    key: options.key,
    election: leadership.election,
    token: leadership.fencingToken,
    value: options.value,
    via: options.via,
  };
  const invokeMs = monotonicMs();
  let outcome: Outcome<LockOutput>;
  try {
    await options.cache.set(options.key, options.value, { fence: leadership, deadlineMs: options.deadlineMs });
    outcome = { status: 'ok', value: { op: 'fenced-write', stored: true } };
  } catch (err) {
    outcome =
      err instanceof FencedOutError ? { status: 'ok', value: { op: 'fenced-write', stored: false } } : failure(err);
  }
  options.record({ client: options.client, input, invokeMs, returnMs: monotonicMs(), outcome });
  return outcome;
}

/** The campaign of a leadership whose hold is over, with the session's expiry stated until then. */
export function wonCampaign(
  client: string,
  input: Extract<LockInput, { op: 'campaign' }>,
  invokeMs: number,
  returnMs: number,
  leadership: Leadership,
  validUntilMs: number,
): Omit<LockOp, 'id'> {
  return {
    client,
    input,
    invokeMs,
    returnMs,
    outcome: {
      status: 'ok',
      value: { op: 'campaign', sessionId: sessionIdOf(leadership), token: leadership.fencingToken, validUntilMs },
    },
  };
}

/**
 * The session a leadership lives in, for naming it in the history. The SDK keeps it private
 * (it is a secret: whoever has it can resign); the token names the leadership as well, so the
 * history only needs something stable per leadership.
 */
const sessionIdOf = (leadership: Leadership) => `${leadership.election}@${leadership.fencingToken}`;

export interface CandidateOptions {
  readonly client: LatchkeyClient;
  /** Takes the fenced writes: one store for every candidate, so fences compare. */
  readonly cache: CacheClient;
  /** The candidate's name in the history. */
  readonly name: string;
  readonly election: string;
  readonly backend: string;
  readonly ttlMs: number;
  /** How the history names the path of its campaigns and resigns ('session': the SDK's lock session). */
  readonly via: string;
  /** How the history names the server of the fenced writes. */
  readonly fencedVia: string;
  /** The key of the fenced writes. */
  readonly key: string;
  /** How long each term lasts before it resigns. */
  readonly leadMs: number;
  readonly writeEveryMs: number;
  /** Deadline of each fenced write and resign. */
  readonly deadlineMs: number;
  readonly record: Record;
  /** Told of each win, when it was won (monotonic ms). */
  readonly onLeading?: (leadership: Leadership, atMs: number) => void;
  readonly signal: AbortSignal;
}

/** Campaign, lead (fenced writes), resign, again, until `signal` aborts; never rejects. */
export async function runCandidate(options: CandidateOptions): Promise<void> {
  const { signal } = options;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  let written = 0;
  while (!signal.aborted) {
    const input: Extract<LockInput, { op: 'campaign' }> = {
      op: 'campaign',
      election: options.election,
      ttlMs: options.ttlMs,
      via: options.via,
    };
    const invokeMs = monotonicMs();
    let leadership: Leadership;
    try {
      leadership = await options.client.campaign(options.election, options.name, {
        backend: options.backend,
        ttlMs: options.ttlMs,
        signal,
      });
    } catch (err) {
      // Withdrawn at the end, or failed: either way it may have won for a moment (the SDK
      // resigns a win that crossed its cancel), so the outcome is not known.
      options.record({ client: options.name, input, invokeMs, returnMs: monotonicMs(), outcome: failure(err) });
      await sleep(50);
      continue;
    }
    const returnMs = monotonicMs();
    options.onLeading?.(leadership, returnMs);
    const until = returnMs + options.leadMs;
    while (monotonicMs() < until && !leadership.signal.aborted && !signal.aborted) {
      await fencedWrite({
        cache: options.cache,
        client: options.name,
        key: options.key,
        value: `${options.name}.${++written}`,
        leadership,
        via: options.fencedVia,
        deadlineMs: options.deadlineMs,
        record: options.record,
      });
      await sleep(options.writeEveryMs);
    }
    // NOTE: read before the resign: the session goes on after it, and its later expiries are
    // no longer this leadership's.
    const validUntilMs = wallToMonotonicMs(leadership.expiresAt.getTime());
    if (leadership.state === 'leading') {
      const resign: LockInput = {
        op: 'resign',
        election: options.election,
        sessionId: sessionIdOf(leadership),
        token: leadership.fencingToken,
        via: options.via,
      };
      const resignedMs = monotonicMs();
      const state = await leadership.resign({ deadlineMs: options.deadlineMs });
      options.record({
        client: options.name,
        input: resign,
        invokeMs: resignedMs,
        returnMs: monotonicMs(),
        outcome:
          state === 'resigned'
            ? { status: 'ok', value: { op: 'resign' } }
            : state === 'lost'
              ? { status: 'fail', code: 'FAILED_PRECONDITION', message: String(leadership.error) }
              : { status: 'unknown', code: state, message: String(leadership.error) },
      });
    }
    options.record(wonCampaign(options.name, input, invokeMs, returnMs, leadership, validUntilMs));
  }
}
