// unaryCall: every unary RPC the SDK makes goes through here. It applies the deadline, wires
// the caller's AbortSignal to call.cancel(), maps failures through fromStatus(), and retries
// UNAVAILABLE for idempotent methods only. Cache calls sent through the pipeline
// (pipeline.ts) share the retry loop and the abort error.
import * as grpc from '@grpc/grpc-js';
import { AbortError, fromStatus, UnavailableError } from './errors.js';

/** Options every SDK call accepts. */
export interface CallOptions {
  /** Aborting it cancels the gRPC call; the promise rejects with AbortError. */
  readonly signal?: AbortSignal;
  /** Deadline in ms from now, covering retries too; default the client's `deadlineMs`. Infinity = none. */
  readonly deadlineMs?: number;
}

/** Exponential backoff with full jitter between attempts. */
export interface RetryOptions {
  /** Attempts in all, the first included; 1 = no retry. */
  readonly attempts: number;
  /** Upper bound of the first delay; doubles per attempt. */
  readonly baseDelayMs: number;
  /** Cap on any one delay. */
  readonly maxDelayMs: number;
}

/**
 * NOTE: only these are ever retried. UNAVAILABLE does not prove the server did nothing (it
 * may have applied the call and then failed to answer, or shut down after applying it), so
 * a retried Acquire could take a second lease and a retried Release or Set could act twice.
 * Refresh and KeepAlive are safe: repeating one only moves the expiry to now + ttl again.
 */
const IDEMPOTENT: ReadonlySet<string> = new Set(['Get', 'Describe', 'Refresh', 'Leader', 'KeepAlive']);

export interface UnaryPolicy<Res> {
  /** The RPC name, e.g. "Acquire": picks the error mapping and whether retries are allowed. */
  readonly method: string;
  readonly deadlineMs: number;
  readonly signal?: AbortSignal | undefined;
  readonly retry: RetryOptions | false;
  /**
   * Called with a response that arrived after the caller's signal had already given up on the
   * call (the reply crossed the cancel on the wire), e.g. to release a lease nobody will use.
   */
  readonly onAbandoned?: (response: Res) => void;
}

export type StartCall<Res> = (
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

export function unaryCall<Res>(start: StartCall<Res>, policy: UnaryPolicy<Res>): Promise<Res> {
  const retry = retryPolicy(policy.method, policy.retry);
  if (retry === false) return unaryAttempt(start, policy.deadlineMs, policy);
  return withRetries(
    (deadlineMs) => unaryAttempt(start, deadlineMs, policy),
    policy.deadlineMs,
    retry,
    policy.method,
    policy.signal,
  );
}

/** The retries a call of `method` may make: none unless it is idempotent. */
export function retryPolicy(method: string, retry: RetryOptions | false): RetryOptions | false {
  return IDEMPOTENT.has(method) && retry !== false && retry.attempts > 1 ? retry : false;
}

/**
 * Runs attempt() until it succeeds, fails with anything but UnavailableError, or the attempts
 * or the deadline run out; each attempt gets the ms left before the deadline. The one retry
 * loop, whatever carries the attempts (a unary call, the cache pipeline).
 */
export async function withRetries<Res>(
  attempt: (deadlineMs: number) => Promise<Res>,
  deadlineMs: number,
  retry: RetryOptions,
  method: string,
  signal: AbortSignal | undefined,
): Promise<Res> {
  const deadline = Date.now() + deadlineMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt(n === 1 ? deadlineMs : deadline - Date.now());
    } catch (err) {
      if (!(err instanceof UnavailableError) || n >= retry.attempts) throw err;
      const delay = Math.random() * Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (n - 1));
      if (Date.now() + delay >= deadline) throw err;
      await sleep(delay, signal, method);
    }
  }
}

export function abortError(method: string, signal: AbortSignal): AbortError {
  return new AbortError(`${method} cancelled by the caller's signal`, { cause: signal.reason, method });
}

/** One unary RPC, no retries: deadlineMs from now (Infinity = none), the caller's signal, fromStatus(). */
export function unaryAttempt<Res>(
  start: StartCall<Res>,
  deadlineMs: number,
  policy: Pick<UnaryPolicy<Res>, 'method' | 'signal' | 'onAbandoned'>,
): Promise<Res> {
  const { method, signal } = policy;
  const deadline = Date.now() + deadlineMs;
  return new Promise<Res>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(method, signal));
    let abandoned = false;
    let call: grpc.ClientUnaryCall;
    const onAbort = () => {
      abandoned = true;
      call.cancel();
      reject(abortError(method, signal!));
    };
    try {
      call = start(
        new grpc.Metadata(),
        { deadline: Number.isFinite(deadline) ? new Date(deadline) : Infinity },
        (err, response) => {
          signal?.removeEventListener('abort', onAbort);
          if (abandoned) {
            if (err === null && response !== undefined) policy.onAbandoned?.(response);
            return;
          }
          if (err !== null) reject(fromStatus(err, method));
          else if (response === undefined) reject(fromStatus(new Error('empty response'), method));
          else resolve(response);
        },
      );
    } catch (err) {
      // grpc-js throws synchronously for a closed channel or an unserializable request.
      return reject(fromStatus(err, method));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function sleep(ms: number, signal: AbortSignal | undefined, method: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(method, signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(method, signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
