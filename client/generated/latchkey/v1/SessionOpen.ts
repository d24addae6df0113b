// Original file: proto/latchkey/v1/locks.proto

import type { Long } from '@grpc/proto-loader';

export interface SessionOpen {
  /**
   * Lock backend ("memory", "file", "etcd"); empty = the server's default. One session holds
   * locks of one backend.
   */
  'backend'?: (string);
  /**
   * The session lease's time-to-live; 0 = the server's default (--default-ttl-ms). Keep the
   * session alive with a keepalive op well within it.
   */
  'ttl_ms'?: (number | string | Long);
  /**
   * Non-empty: resume this session (its `session_id`) instead of opening a new one; `ttl_ms`
   * is then ignored (a session keeps its TTL) and `backend` may stay empty. A session that
   * has expired, ended or been lost, or one this server cannot resume: FAILED_PRECONDITION.
   */
  'resume_id'?: (string);
  /**
   * The default owner of the session's locks (an acquire's own `owner` wins); empty = the
   * caller's peer address.
   */
  'owner'?: (string);
}

export interface SessionOpen__Output {
  /**
   * Lock backend ("memory", "file", "etcd"); empty = the server's default. One session holds
   * locks of one backend.
   */
  'backend': (string);
  /**
   * The session lease's time-to-live; 0 = the server's default (--default-ttl-ms). Keep the
   * session alive with a keepalive op well within it.
   */
  'ttl_ms': (string);
  /**
   * Non-empty: resume this session (its `session_id`) instead of opening a new one; `ttl_ms`
   * is then ignored (a session keeps its TTL) and `backend` may stay empty. A session that
   * has expired, ended or been lost, or one this server cannot resume: FAILED_PRECONDITION.
   */
  'resume_id': (string);
  /**
   * The default owner of the session's locks (an acquire's own `owner` wins); empty = the
   * caller's peer address.
   */
  'owner': (string);
}
