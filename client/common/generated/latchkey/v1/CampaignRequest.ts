// Original file: proto/latchkey/v1/elections.proto

import type { Long } from '@grpc/proto-loader';

export interface CampaignRequest {
  /**
   * 1-250 bytes of UTF-8, no whitespace or control characters.
   */
  'name'?: (string);
  /**
   * Lock backend ("memory", "etcd"); empty = the server's default. It must declare `elections`.
   */
  'backend'?: (string);
  /**
   * What the leader makes known (an address, a JSON document, ...): up to 65536 bytes of UTF-8.
   */
  'value'?: (string);
  /**
   * Campaign in this lock session (the `session_id` of a Locks/Session `opened`): the
   * candidacy lives and dies with the session, which its own keepalives keep alive; ending
   * the session resigns. Empty: the server opens a session for this campaign alone, with
   * `ttl_ms`, and keeps it alive while the campaign waits; once this candidate leads, keep
   * it alive with KeepAlive.
   */
  'session_id'?: (string);
  /**
   * Without session_id: the TTL of the campaign's own session; 0 = the server's default
   * (--default-ttl-ms). With session_id: must be 0.
   */
  'ttl_ms'?: (number | string | Long);
  /**
   * How long to wait for the leadership, at most; then ABORTED, naming the leader. 0 = as
   * long as it takes (bounded only by the call's deadline): unlike Acquire's wait_ms, a
   * campaign is a wait, and 0 does not mean "try once".
   */
  'wait_ms'?: (number | string | Long);
}

export interface CampaignRequest__Output {
  /**
   * 1-250 bytes of UTF-8, no whitespace or control characters.
   */
  'name': (string);
  /**
   * Lock backend ("memory", "etcd"); empty = the server's default. It must declare `elections`.
   */
  'backend': (string);
  /**
   * What the leader makes known (an address, a JSON document, ...): up to 65536 bytes of UTF-8.
   */
  'value': (string);
  /**
   * Campaign in this lock session (the `session_id` of a Locks/Session `opened`): the
   * candidacy lives and dies with the session, which its own keepalives keep alive; ending
   * the session resigns. Empty: the server opens a session for this campaign alone, with
   * `ttl_ms`, and keeps it alive while the campaign waits; once this candidate leads, keep
   * it alive with KeepAlive.
   */
  'session_id': (string);
  /**
   * Without session_id: the TTL of the campaign's own session; 0 = the server's default
   * (--default-ttl-ms). With session_id: must be 0.
   */
  'ttl_ms': (string);
  /**
   * How long to wait for the leadership, at most; then ABORTED, naming the leader. 0 = as
   * long as it takes (bounded only by the call's deadline): unlike Acquire's wait_ms, a
   * campaign is a wait, and 0 does not mean "try once".
   */
  'wait_ms': (string);
}
