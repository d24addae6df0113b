// The error contract between server and SDK, beyond the status code: why a call failed.
// The server names one reason for each failure it answers on purpose: in the
// `latchkey-error` trailer of a unary call or stream, and in OpError.reason of one operation
// of a batch or pipeline. The SDK maps each reason to its own error class. Both sides take the
// reasons from this table, so neither can drift from the other.
import { status } from '@grpc/grpc-js';

/** The trailer in which the server names the reason of a failed call. */
export const ERROR_TRAILER = 'latchkey-error';

/**
 * Every reason the server may name, with the status code it travels with.
 * NOTE: the names are wire values, frozen: they began as the server's error class names, and
 * SDKs already deployed match on them. Add a reason here (both sides then fail to compile
 * until they handle it); never rename one, even when the class that sends it is renamed.
 * Several reasons share a code on purpose: FAILED_PRECONDITION alone cannot tell "not the
 * holder" from "fenced out".
 */
export const ERROR_REASONS = {
  /** The request is wrong; the message names the field and how to fix it. */
  InvalidArgumentError: status.INVALID_ARGUMENT,
  /** The lock was not granted in time; the message names its holder. */
  LockBusyError: status.ABORTED,
  /** A concurrency conflict to retry (a fenced write that kept losing its compare-and-set). */
  AbortedError: status.ABORTED,
  /** The lease does not hold the lock (never did, or another lease does now). */
  NotHolderError: status.FAILED_PRECONDITION,
  /** The lease ran out (or was lost) before this call. */
  LeaseExpiredError: status.FAILED_PRECONDITION,
  /** The lock session is gone (expired, ended, or lost) or cannot be resumed here; open a new one. */
  SessionExpiredError: status.FAILED_PRECONDITION,
  /** A fenced write was refused: a newer holder of the fencing lock has written the key. */
  FencedOutError: status.FAILED_PRECONDITION,
  /** The leadership named is not its election's current one (resigned, its session ended, or never led). */
  NotLeaderError: status.FAILED_PRECONDITION,
  /** A Campaign's wait ended before its candidate led; the message names the leader. */
  NotElectedError: status.ABORTED,
  /** Another precondition (a capability the backend lacks, a semaphore limit not in force). */
  FailedPreconditionError: status.FAILED_PRECONDITION,
  /** The backend (etcd, memcached, the lock directory) cannot be reached. */
  BackendUnavailableError: status.UNAVAILABLE,
  /** The server is shutting down; another server, or this one after its restart, can answer. */
  ShuttingDownError: status.UNAVAILABLE,
  /** The call was cancelled: its caller went away, or its deadline passed. */
  CancelledError: status.CANCELLED,
  /** The caller's token may not use this lock name, cache key or election name. */
  PermissionDeniedError: status.PERMISSION_DENIED,
  /** A configured limit was reached; the message names it. */
  ResourceExhaustedError: status.RESOURCE_EXHAUSTED,
  /** A bug on the server (see its log). */
  InternalError: status.INTERNAL,
} as const satisfies Record<string, status>;

export type ErrorReason = keyof typeof ERROR_REASONS;

export function isErrorReason(value: string): value is ErrorReason {
  return Object.hasOwn(ERROR_REASONS, value);
}
