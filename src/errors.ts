// One error root for the server. Backends translate their libraries' errors into these at
// their own edge; toStatus() is the one mapping from these to gRPC status codes, and
// REASONS the one mapping to the error reasons of the wire contract (client/common).
import { status, type ServiceError } from '@grpc/grpc-js';
import { Metadata } from '@grpc/grpc-js';
import { ERROR_TRAILER, type ErrorReason } from '../client/common/index.js';
import type { Logger } from './log.js';

export class LatchkeyError extends Error {
  readonly code: status = status.INTERNAL;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The request itself is wrong; the message says which field and how to fix it. */
export class InvalidArgumentError extends LatchkeyError {
  override readonly code = status.INVALID_ARGUMENT;
}

/** The lock was not granted in time; retry later or wait longer. */
export class LockBusyError extends LatchkeyError {
  override readonly code = status.ABORTED;
}

/** The lease does not hold the lock (never did, or another lease does now). */
export class NotHolderError extends LatchkeyError {
  override readonly code = status.FAILED_PRECONDITION;
}

/**
 * The leadership named is not the current one of its election: the candidate resigned, its
 * session expired or ended, or it never led. Campaign again.
 */
export class NotLeaderError extends NotHolderError {}

/** The lease ran out of time (or was lost) before this call; acquire the lock again. */
export class LeaseExpiredError extends LatchkeyError {
  override readonly code = status.FAILED_PRECONDITION;
}

/**
 * The lock session is gone (expired, ended, or its lease lost) or cannot be resumed here;
 * its locks are, or will be at its expiry, released. Open a new session.
 */
export class SessionExpiredError extends LeaseExpiredError {}

/** A Campaign's deadline came before its candidate led; the message names the leader. Campaign again. */
export class NotElectedError extends LatchkeyError {
  override readonly code = status.ABORTED;
}

/** A concurrency conflict the caller should simply retry (e.g. a CAS loop that kept losing). */
export class AbortedError extends LatchkeyError {
  override readonly code = status.ABORTED;
}

/** A state precondition failed that is neither of the above (e.g. a non-numeric Incr). */
export class FailedPreconditionError extends LatchkeyError {
  override readonly code = status.FAILED_PRECONDITION;
}

/** A fenced cache write was refused: a newer holder of the lock has written the key. */
export class FencedOutError extends FailedPreconditionError {}

/** The backend (etcd, memcached, the lock dir) cannot be reached; retry when it is back. */
export class BackendUnavailableError extends LatchkeyError {
  override readonly code = status.UNAVAILABLE;
}

/** The server is shutting down; retry against another server or after restart. */
export class ShuttingDownError extends LatchkeyError {
  override readonly code = status.UNAVAILABLE;
  /** The message defaults to the one wording every part of the server uses. */
  constructor(message = 'server is shutting down; retry on another server', options?: ErrorOptions) {
    super(message, options);
  }
}

/** The caller went away or its deadline passed; nobody is listening for the answer. */
export class CancelledError extends LatchkeyError {
  override readonly code = status.CANCELLED;
}

/** The caller's token may not touch this name. */
export class PermissionDeniedError extends LatchkeyError {
  override readonly code = status.PERMISSION_DENIED;
}

/** A configured limit was reached; the message names it. */
export class ResourceExhaustedError extends LatchkeyError {
  override readonly code = status.RESOURCE_EXHAUSTED;
}

/** Where toStatus reports internal errors (backends import it from here with their errors). */
export type { Logger };

type ErrorClass = abstract new (message: string, options?: ErrorOptions) => LatchkeyError;

/**
 * A store request that provably never reached its server (the connection was refused or never
 * came up): nothing of it was applied. `server` names the server (e.g. "memcached host:port"),
 * `request` the request (e.g. `the set of key "k"`), for the message.
 */
export class RequestNotSentError extends BackendUnavailableError {
  /** "memcached host:port" */
  server = '';
  /** Why it could not be sent (the connection's error). */
  reason = '';

  /** `request` names the request (e.g. `the set of key "k"`) for the message. */
  static of(server: string, reason: string, request: string, options?: ErrorOptions): RequestNotSentError {
    const err = new RequestNotSentError(`${server} is unavailable: ${reason}; ${request} was not sent`, options);
    err.server = server;
    err.reason = reason;
    return err;
  }
}

/**
 * The reason each error class names on the wire (the `latchkey-error` trailer, OpError.reason):
 * the SDK picks its error class by it. Explicit, not the class's name, so renaming a class
 * cannot change what clients see. A class without an entry sends its nearest listed
 * ancestor's reason; test/sdk/error-reasons.test.ts requires an entry for every class here.
 */
export const REASONS: ReadonlyMap<ErrorClass, ErrorReason> = new Map<ErrorClass, ErrorReason>([
  [LatchkeyError, 'InternalError'],
  [InvalidArgumentError, 'InvalidArgumentError'],
  [LockBusyError, 'LockBusyError'],
  [NotHolderError, 'NotHolderError'],
  [LeaseExpiredError, 'LeaseExpiredError'],
  [SessionExpiredError, 'SessionExpiredError'],
  [NotLeaderError, 'NotLeaderError'],
  [NotElectedError, 'NotElectedError'],
  [AbortedError, 'AbortedError'],
  [FailedPreconditionError, 'FailedPreconditionError'],
  [FencedOutError, 'FencedOutError'],
  [BackendUnavailableError, 'BackendUnavailableError'],
  // Unavailable as its parent is; the message says nothing of it was applied.
  [RequestNotSentError, 'BackendUnavailableError'],
  [ShuttingDownError, 'ShuttingDownError'],
  [CancelledError, 'CancelledError'],
  [PermissionDeniedError, 'PermissionDeniedError'],
  [ResourceExhaustedError, 'ResourceExhaustedError'],
]);

/** The reason `err` names on the wire: its class's entry in REASONS, or its nearest ancestor's. */
export function reasonOf(err: LatchkeyError): ErrorReason {
  for (let c: unknown = err.constructor; c !== null && c !== Object; c = Object.getPrototypeOf(c)) {
    const reason = REASONS.get(c as ErrorClass);
    if (reason !== undefined) return reason;
  }
  return 'InternalError';
}

/**
 * Maps any thrown value to the status a client sees. Unknown errors become INTERNAL with a
 * generic message and are logged in full: a bug must be visible in the server log, and
 * must not leak internals to callers.
 */
export function toStatus(err: unknown, log: Logger): Partial<ServiceError> {
  if (err instanceof LatchkeyError) {
    // The reason travels in a trailer, so clients can tell apart the failures that share a
    // status code (FAILED_PRECONDITION: not holder, lease expired, fenced out, ...).
    const metadata = new Metadata();
    metadata.set(ERROR_TRAILER, reasonOf(err));
    return { code: err.code, details: err.message, metadata };
  }
  log.error({ event: 'internal_error', err }, 'internal error');
  return { code: status.INTERNAL, details: 'internal server error (see the server log)', metadata: new Metadata() };
}

/** One failed operation of a batch or pipeline, as the OpError message carries it. */
export function toOpError(err: unknown, log: Logger): { code: number; message: string; reason: ErrorReason } {
  const { code, details } = toStatus(err, log);
  return {
    code: code ?? status.INTERNAL,
    message: details ?? '',
    reason: err instanceof LatchkeyError ? reasonOf(err) : 'InternalError',
  };
}

/** Throws CancelledError if the signal is aborted. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted)
    throw signal.reason instanceof LatchkeyError ? signal.reason : new CancelledError('call cancelled');
}
