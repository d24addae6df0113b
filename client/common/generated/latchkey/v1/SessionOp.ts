// Original file: proto/latchkey/v1/locks.proto

import type { AcquireRequest as _latchkey_v1_AcquireRequest, AcquireRequest__Output as _latchkey_v1_AcquireRequest__Output } from '../../latchkey/v1/AcquireRequest.js';
import type { ReleaseRequest as _latchkey_v1_ReleaseRequest, ReleaseRequest__Output as _latchkey_v1_ReleaseRequest__Output } from '../../latchkey/v1/ReleaseRequest.js';
import type { DescribeRequest as _latchkey_v1_DescribeRequest, DescribeRequest__Output as _latchkey_v1_DescribeRequest__Output } from '../../latchkey/v1/DescribeRequest.js';
import type { SessionKeepAlive as _latchkey_v1_SessionKeepAlive, SessionKeepAlive__Output as _latchkey_v1_SessionKeepAlive__Output } from '../../latchkey/v1/SessionKeepAlive.js';
import type { SessionCancel as _latchkey_v1_SessionCancel, SessionCancel__Output as _latchkey_v1_SessionCancel__Output } from '../../latchkey/v1/SessionCancel.js';
import type { Long } from '@grpc/proto-loader';

export interface SessionOp {
  /**
   * Chosen by the client, unique among its unanswered ops of this stream.
   */
  'tag'?: (number | string | Long);
  /**
   * Every option of Locks/Acquire. `backend` must be empty or the session's, and `ttl_ms`
   * 0: a lock in a session lives on the session's lease (else INVALID_ARGUMENT). A name
   * this session already holds or waits for: FAILED_PRECONDITION. A session holds at most
   * as many locks as one `opened` message can list (RESOURCE_EXHAUSTED past that; the
   * message says how many). Locks/Refresh refuses the lease it answers (FAILED_PRECONDITION:
   * the keepalive renews it); Locks/Release of it releases the lock and loses the session,
   * which can no longer vouch for its locks (its stream ends FAILED_PRECONDITION, and its
   * other locks stay held until it expires).
   */
  'acquire'?: (_latchkey_v1_AcquireRequest | null);
  /**
   * `lease_id` is the one the acquire answered; `backend` empty or the session's.
   */
  'release'?: (_latchkey_v1_ReleaseRequest | null);
  /**
   * `backend` empty or the session's.
   */
  'describe'?: (_latchkey_v1_DescribeRequest | null);
  /**
   * Renew the session's lease (and with it every lock of the session).
   */
  'keepalive'?: (_latchkey_v1_SessionKeepAlive | null);
  /**
   * Withdraw a waiting acquire of this stream: it is answered CANCELLED, unless it was
   * answered already. The cancel itself gets no answer, and its own `tag` is not used: a
   * cancel for a tag that does not wait on this stream does nothing.
   */
  'cancel'?: (_latchkey_v1_SessionCancel | null);
  /**
   * Optional: the trace context of the caller of this operation, as a propagator writes it
   * into gRPC metadata (W3C: `traceparent`, `tracestate`); empty = no caller's trace. One
   * stream carries the operations of many callers, so the stream's own metadata speaks for
   * the one that opened it only; with this the server traces each operation in its caller's
   * trace. Not read on `cancel`.
   */
  'trace_context'?: ({[key: string]: string});
  'op'?: "acquire"|"release"|"describe"|"keepalive"|"cancel";
}

export interface SessionOp__Output {
  /**
   * Chosen by the client, unique among its unanswered ops of this stream.
   */
  'tag': (string);
  /**
   * Every option of Locks/Acquire. `backend` must be empty or the session's, and `ttl_ms`
   * 0: a lock in a session lives on the session's lease (else INVALID_ARGUMENT). A name
   * this session already holds or waits for: FAILED_PRECONDITION. A session holds at most
   * as many locks as one `opened` message can list (RESOURCE_EXHAUSTED past that; the
   * message says how many). Locks/Refresh refuses the lease it answers (FAILED_PRECONDITION:
   * the keepalive renews it); Locks/Release of it releases the lock and loses the session,
   * which can no longer vouch for its locks (its stream ends FAILED_PRECONDITION, and its
   * other locks stay held until it expires).
   */
  'acquire'?: (_latchkey_v1_AcquireRequest__Output | null);
  /**
   * `lease_id` is the one the acquire answered; `backend` empty or the session's.
   */
  'release'?: (_latchkey_v1_ReleaseRequest__Output | null);
  /**
   * `backend` empty or the session's.
   */
  'describe'?: (_latchkey_v1_DescribeRequest__Output | null);
  /**
   * Renew the session's lease (and with it every lock of the session).
   */
  'keepalive'?: (_latchkey_v1_SessionKeepAlive__Output | null);
  /**
   * Withdraw a waiting acquire of this stream: it is answered CANCELLED, unless it was
   * answered already. The cancel itself gets no answer, and its own `tag` is not used: a
   * cancel for a tag that does not wait on this stream does nothing.
   */
  'cancel'?: (_latchkey_v1_SessionCancel__Output | null);
  /**
   * Optional: the trace context of the caller of this operation, as a propagator writes it
   * into gRPC metadata (W3C: `traceparent`, `tracestate`); empty = no caller's trace. One
   * stream carries the operations of many callers, so the stream's own metadata speaks for
   * the one that opened it only; with this the server traces each operation in its caller's
   * trace. Not read on `cancel`.
   */
  'trace_context': ({[key: string]: string});
  'op'?: "acquire"|"release"|"describe"|"keepalive"|"cancel";
}
