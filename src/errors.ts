// One error root for the server. Backends translate their libraries' errors into these at
// their own edge; toStatus() is the one mapping from these to gRPC status codes.
import { status, type ServiceError } from '@grpc/grpc-js';
import { Metadata } from '@grpc/grpc-js';
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

/** Trailer carrying the server error's class name, e.g. "NotHolderError". */
export const ERROR_TRAILER = 'latchkey-error';

/**
 * Maps any thrown value to the status a client sees. Unknown errors become INTERNAL with a
 * generic message and are logged in full: a bug must be visible in the server log, and
 * must not leak internals to callers.
 */
export function toStatus(err: unknown, log: Logger): Partial<ServiceError> {
  if (err instanceof LatchkeyError) {
    // The error's class travels in a trailer, so clients can tell apart the reasons that
    // share a status code (FAILED_PRECONDITION: not holder, lease expired, fenced out, ...).
    const metadata = new Metadata();
    metadata.set(ERROR_TRAILER, err.name);
    return { code: err.code, details: err.message, metadata };
  }
  log.error({ event: 'internal_error', err }, 'internal error');
  return { code: status.INTERNAL, details: 'internal server error (see the server log)', metadata: new Metadata() };
}

/** One failed operation of a batch or pipeline, as the OpError message carries it. */
export function toOpError(err: unknown, log: Logger): { code: number; message: string; reason: string } {
  const { code, details } = toStatus(err, log);
  return {
    code: code ?? status.INTERNAL,
    message: details ?? '',
    reason: err instanceof LatchkeyError ? err.name : 'InternalError',
  };
}

/** Throws CancelledError if the signal is aborted. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted)
    throw signal.reason instanceof LatchkeyError ? signal.reason : new CancelledError('call cancelled');
}
