// The errors the SDK throws: one root, LatchkeyError, with subclasses named after what the
// caller can do. fromStatus() is the one mapping from a gRPC status to those subclasses:
// by the server's error reason (the wire module's table) where it names one, else by code.
import { status } from '@grpc/grpc-js';
import { ERROR_TRAILER, type ErrorReason, isErrorReason } from './common/index.js';

export interface LatchkeyErrorOptions extends ErrorOptions {
  /** The gRPC status code; subclasses fix their own. */
  readonly code?: status;
  /** The server's status details; defaults to the message. */
  readonly details?: string;
  /** The RPC that failed, e.g. "Acquire". */
  readonly method?: string;
}

/**
 * The root of every error the SDK throws. Branch on the subclass, which names what the
 * caller can do, rather than on `code`: several share one gRPC status.
 *
 * ```ts
 * import { LockBusyError, UnavailableError } from 'latchkey/client';
 *
 * try {
 *   await using lock = await client.lock('deploy'); // try once
 *   await runDeploy({ signal: lock.signal });
 * } catch (err) {
 *   if (err instanceof LockBusyError) console.log(err.message); // names the holder
 *   else if (err instanceof UnavailableError) scheduleRetry();
 *   else throw err;
 * }
 * ```
 */
export class LatchkeyError extends Error {
  /** The gRPC status code the server answered (or the SDK chose for a local failure). */
  readonly code: status;
  /** The status details as the server sent them. */
  readonly details: string;
  /** The RPC that failed, e.g. "Acquire"; undefined when no RPC was involved. */
  readonly method: string | undefined;

  constructor(message: string, options: LatchkeyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? status.UNKNOWN;
    this.details = options.details ?? message;
    this.method = options.method;
  }
}

/** The request is wrong (bad name, TTL out of range, unknown backend); fix it, do not retry. */
export class InvalidArgumentError extends LatchkeyError {
  override readonly code = status.INVALID_ARGUMENT;
}

/** The lock was not granted in time; the message names its holder. Retry later or wait longer. */
export class LockBusyError extends LatchkeyError {
  override readonly code = status.ABORTED;
}

/** A state precondition failed (e.g. Incr on a value that is not a number). */
export class FailedPreconditionError extends LatchkeyError {
  override readonly code = status.FAILED_PRECONDITION;
}

/**
 * The lease does not hold the lock: it never did, it expired, or another lease holds it now.
 * The server uses one status for all three; the message says which. Acquire again.
 */
export class NotHolderError extends FailedPreconditionError {}

/**
 * A lock handle lost its lock, or can no longer be sure it holds it: the server answered a
 * Refresh with "not holder", or no Refresh succeeded before the lease's expiry. `cause` is
 * the last error seen. Stop touching the protected resource and acquire again.
 */
export class LeaseLostError extends NotHolderError {}

/**
 * The leadership is not the current one of its election any more: it resigned, its session
 * expired or ended, or a newer leader took over. Stop acting as leader; campaign again.
 */
export class NotLeaderError extends NotHolderError {}

/** A campaign's wait (`waitMs`) ended before its candidate led; the message names the leader. */
export class NotElectedError extends LatchkeyError {
  override readonly code = status.ABORTED;
}

/**
 * A fenced cache write was refused: a newer holder of the fencing lock (higher token) has
 * written the key, or another lock fences it. This holder's lock is stale: stop writing.
 */
export class FencedOutError extends FailedPreconditionError {}

/** `cache.update()` lost every compare-and-set race it was allowed; retry later. */
export class CasConflictError extends LatchkeyError {
  override readonly code = status.ABORTED;
  constructor(
    message: string,
    readonly attempts: number,
    options: LatchkeyErrorOptions = {},
  ) {
    super(message, options);
  }
}

/** The server (or its backend) cannot be reached; retry when it is back, or elsewhere. */
export class UnavailableError extends LatchkeyError {
  override readonly code = status.UNAVAILABLE;
}

/** The call's deadline passed before an answer came; its effect on the server is unknown. */
export class DeadlineExceededError extends LatchkeyError {
  override readonly code = status.DEADLINE_EXCEEDED;
}

/** The call was cancelled: by the server, or because the client was closed. */
export class CancelledError extends LatchkeyError {
  override readonly code = status.CANCELLED;
}

/**
 * The caller's AbortSignal cancelled the call. `name` is "AbortError", as code that checks
 * `err.name === 'AbortError'` expects; `cause` is the signal's reason.
 */
export class AbortError extends CancelledError {}

/**
 * The server knows the caller's token, and it may not use this lock name or cache key (a
 * token limited to name prefixes). Use a token allowed that name.
 */
export class PermissionDeniedError extends LatchkeyError {
  override readonly code = status.PERMISSION_DENIED;
}

/**
 * The server requires a bearer token and got none, or one it does not know (or the token
 * provider failed: the message says so). Pass a valid `token` to connect().
 */
export class UnauthenticatedError extends LatchkeyError {
  override readonly code = status.UNAUTHENTICATED;
}

/** A server limit was reached; the message names it. */
export class ResourceExhaustedError extends LatchkeyError {
  override readonly code = status.RESOURCE_EXHAUSTED;
}

/** A bug on the server (see its log) or in the SDK; not worth retrying as is. */
export class InternalError extends LatchkeyError {
  override readonly code = status.INTERNAL;
}

const LOCK_METHODS: ReadonlySet<string> = new Set(['Acquire', 'Refresh', 'Release', 'Describe']);
/** Elections RPCs whose only precondition is naming the current leadership. */
const LEADERSHIP_METHODS: ReadonlySet<string> = new Set(['Proclaim', 'Resign', 'KeepAlive']);
/** Cache writes whose only precondition is their fence. */
const FENCED_METHODS: ReadonlySet<string> = new Set(['Set', 'Cas', 'Delete']);

function serverReason(err: Error): string | undefined {
  const metadata = (err as { metadata?: { get(key: string): unknown[] } }).metadata;
  const value = metadata?.get(ERROR_TRAILER)[0];
  return typeof value === 'string' ? value : undefined;
}

function isStatusError(err: unknown): err is Error & { code: status; details?: string } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number';
}

/**
 * Maps what a grpc-js call failed with to the SDK's error for it. Anything that is not a
 * status error is a bug: InternalError.
 */
export function fromStatus(err: unknown, method: string): LatchkeyError {
  if (err instanceof LatchkeyError) return err;
  if (!isStatusError(err)) {
    const text = err instanceof Error ? err.message : String(err);
    return new InternalError(`${method}: ${text}`, { cause: err, method });
  }
  return fromCode(err.code, err.details ?? err.message, serverReason(err), method, err);
}

/** What one pipelined (or batched) operation failed with, as the server's OpError carries it. */
export interface OpError {
  readonly code: number;
  readonly message: string;
  /** The server's error reason (see client/common/reasons.ts), as the `latchkey-error` trailer carries it for unary calls. */
  readonly reason: string;
}

/** Maps a failed operation of Cache/Pipeline to the error its unary RPC would have thrown. */
export function fromOpError(error: OpError, method: string): LatchkeyError {
  return fromCode(error.code, error.message, error.reason || undefined, method, undefined);
}

type ErrorOf = (message: string, options: LatchkeyErrorOptions) => LatchkeyError;

/**
 * The SDK's error for each reason the server names: one entry per reason of the wire
 * module's table (the type requires it), so a reason the server adds fails to compile here
 * until it is given a class. A reason travels with its own code (ERROR_REASONS), kept in
 * `code` of the error made.
 */
const FROM_REASON: Record<ErrorReason, ErrorOf> = {
  InvalidArgumentError: (m, o) => new InvalidArgumentError(m, o),
  LockBusyError: (m, o) => new LockBusyError(m, o),
  // A fenced write that kept losing its compare-and-set: nothing names it in the SDK.
  AbortedError: (m, o) => new LatchkeyError(m, o),
  NotHolderError: (m, o) => new NotHolderError(m, o),
  LeaseExpiredError: (m, o) => new NotHolderError(m, o),
  // Its locks are, or will be at its expiry, released: to the caller, not the holder any more.
  SessionExpiredError: (m, o) => new NotHolderError(m, o),
  FencedOutError: (m, o) => new FencedOutError(m, o),
  NotLeaderError: (m, o) => new NotLeaderError(m, o),
  NotElectedError: (m, o) => new NotElectedError(m, o),
  // A precondition other than holding the lease (a backend without the capability asked
  // for, a semaphore limit other than the one in force): not "you are not the holder".
  FailedPreconditionError: (m, o) => new FailedPreconditionError(m, o),
  BackendUnavailableError: (m, o) => new UnavailableError(m, o),
  ShuttingDownError: (m, o) => new UnavailableError(m, o),
  CancelledError: (m, o) => new CancelledError(m, o),
  PermissionDeniedError: (m, o) => new PermissionDeniedError(m, o),
  ResourceExhaustedError: (m, o) => new ResourceExhaustedError(m, o),
  InternalError: (m, o) => new InternalError(m, o),
};

/**
 * The one mapping from a status to the SDK's errors, for unary calls and pipelined operations
 * alike. `reason`, the server's error reason, is more precise than the code and wins when it
 * is one the SDK knows. Without one (grpc-js's own failures, a proxy, a server that names
 * none), by code: ABORTED means "lock busy" only from Acquire, "not elected" from Campaign. FAILED_PRECONDITION means "not
 * the holder" from the Locks RPCs, "not the leader" from Proclaim, Resign and KeepAlive, "fenced out" from Set, Cas and Delete (their only
 * precondition is the fence), and stays generic otherwise (Incr on a non-number).
 */
function fromCode(
  code: status,
  details: string,
  reason: string | undefined,
  method: string,
  cause: unknown,
): LatchkeyError {
  const message = details || `${method} failed with status ${status[code] ?? code}`;
  const options: LatchkeyErrorOptions = { cause, details, method, code };
  if (reason !== undefined && isErrorReason(reason)) return FROM_REASON[reason](message, options);
  switch (code) {
    case status.INVALID_ARGUMENT:
      return new InvalidArgumentError(message, options);
    case status.ABORTED:
      if (method === 'Acquire') return new LockBusyError(message, options);
      return method === 'Campaign' ? new NotElectedError(message, options) : new LatchkeyError(message, options);
    case status.FAILED_PRECONDITION:
      if (LOCK_METHODS.has(method)) return new NotHolderError(message, options);
      if (LEADERSHIP_METHODS.has(method)) return new NotLeaderError(message, options);
      if (FENCED_METHODS.has(method)) return new FencedOutError(message, options);
      return new FailedPreconditionError(message, options);
    case status.UNAVAILABLE:
      return new UnavailableError(message, options);
    case status.DEADLINE_EXCEEDED:
      return new DeadlineExceededError(message, options);
    case status.CANCELLED:
      return new CancelledError(message, options);
    case status.PERMISSION_DENIED:
      return new PermissionDeniedError(message, options);
    case status.UNAUTHENTICATED:
      return new UnauthenticatedError(message, options);
    case status.RESOURCE_EXHAUSTED:
      return new ResourceExhaustedError(message, options);
    case status.INTERNAL:
      return new InternalError(message, options);
    default:
      // UNKNOWN, NOT_FOUND, UNIMPLEMENTED, ...: nothing this server sends on purpose.
      return new LatchkeyError(message, options);
  }
}
