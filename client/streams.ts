// What the SDK's multiplexed streams (the cache's Pipeline in pipeline.ts, the lock Session in
// session.ts) share: how to read the status a stream ended with, the backoff before opening
// one again, and the budget of one frame.
import * as grpc from '@grpc/grpc-js';
import { ERROR_TRAILER } from './common/index.js';
import { DeadlineExceededError } from './errors.js';

/**
 * Frames are cut at about FRAME_BYTES (by each stream's own estimate of an operation's size),
 * which stays well below the smallest message a server can be configured to take
 * (--max-message-bytes is at least 64 KiB).
 */
export const FRAME_BYTES = 32 * 1024;

/** Backoff before opening a broken stream again: doubles per break, up to the max. */
const REOPEN_BASE_MS = 100;
const REOPEN_MAX_MS = 5_000;
/** After the server refused a stream (see refused()): stay away longer. */
export const REOPEN_REFUSED_MS = 30_000;

/** The delay before the next stream after `breaks` breaks in a row, jittered to 50-100 %. */
export function reopenDelayMs(breaks: number): number {
  const backoffMs = Math.min(REOPEN_MAX_MS, REOPEN_BASE_MS * 2 ** Math.max(0, breaks - 1));
  return backoffMs * (0.5 + Math.random() / 2);
}

/** The server's error class for a status, from the `latchkey-error` trailer; '' when none. */
export function errorReason(status: Pick<grpc.StatusObject, 'metadata'>): string {
  const value = status.metadata?.get(ERROR_TRAILER)[0];
  return typeof value === 'string' ? value : '';
}

/**
 * Whether the server refused the stream as a whole, before running any of it: an older
 * server without the method (UNIMPLEMENTED), credentials refused at the door, or the
 * handler itself refusing the stream (a status with the server's error class in the
 * trailer, e.g. ResourceExhaustedError at its --max-streams limit).
 * NOTE: for the Pipeline this relies on the server answering every operation it runs with a
 * result or an OpError, never with a status that ends the stream: its per-stream errors are
 * refusals. grpc-js's own failures (a reset, a message over a size limit) carry no trailer.
 */
export function refused(status: grpc.StatusObject): boolean {
  switch (status.code) {
    case grpc.status.OK:
      return false;
    case grpc.status.UNIMPLEMENTED:
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return true;
    default:
      return errorReason(status) !== '';
  }
}

/**
 * Whether the call failed before it was sent anywhere: grpc-js's picker fails a call that
 * is not wait-for-ready with "No connection established" when the channel has no working
 * connection (server down, TLS handshake refused). Nothing of it can have run.
 * NOTE: this reads grpc-js's message; should it change, such a call counts as broken (its
 * operations "may or may not have been applied"), which is wrong only in being vague.
 */
export function neverSent(status: Pick<grpc.StatusObject, 'code' | 'details'>): boolean {
  return status.code === grpc.status.UNAVAILABLE && /^(\w+: )?No connection established/.test(status.details);
}

/**
 * Whether a call's status says its server went away (unreachable, connection lost, shutting
 * down), so that the client's next calls should go to its next address. Not for UNAVAILABLE
 * from the server's backend (etcd or memcached down): every server shares that backend.
 */
export function serverGone(status: Pick<grpc.StatusObject, 'code' | 'metadata'>): boolean {
  if (status.code !== grpc.status.UNAVAILABLE) return false;
  const reason = errorReason(status);
  return reason === '' || reason === 'ShuttingDownError';
}

/**
 * Whether a unary call ran out of time with no answer from the server: DEADLINE_EXCEEDED from
 * grpc-js itself (a latchkey server's own errors carry its error class in the trailer). The
 * server may be cut off by a partition, which drops packets silently: its connection stays
 * open, nothing fails, and every later call on it would wait out its deadline too. So the
 * client's next calls go to its next address, as after serverGone().
 * NOTE: a deadline too short for a healthy server moves the client on as well; that costs a
 * connection, never a lock or a write (every server shares the backend).
 */
export function unanswered(status: Pick<grpc.StatusObject, 'code' | 'metadata'>): boolean {
  return status.code === grpc.status.DEADLINE_EXCEEDED && errorReason(status) === '';
}

/** A status as an Error, to be the `cause` of the SDK error that reports it. */
export function statusCause(status: grpc.StatusObject): Error & grpc.StatusObject {
  return Object.assign(new Error(`${status.code} ${grpc.status[status.code]}: ${status.details}`), status);
}

export function deadlineError(method: string, deadlineMs: number): DeadlineExceededError {
  return new DeadlineExceededError(`${method}: no answer within its deadline of ${deadlineMs} ms`, { method });
}
