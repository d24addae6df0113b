// Original file: proto/latchkey/v1/elections.proto

import type { Long } from '@grpc/proto-loader';

/**
 * The answer to a won campaign. Pass it back, as it came, to Proclaim, Resign and KeepAlive.
 */
export interface Leadership {
  'name'?: (string);
  'backend'?: (string);
  'value'?: (string);
  /**
   * Strictly increases per election name with every new leader; fence writes with it (a
   * cache Fence with `election` set).
   */
  'fencing_token'?: (number | string | Long);
  /**
   * The session the leadership lives in: the campaign's session_id, or the one the server
   * opened for it. Secret: whoever has it can proclaim and resign.
   */
  'session_id'?: (string);
  /**
   * The session's TTL (etcd rounds up to whole seconds).
   */
  'ttl_ms'?: (number | string | Long);
  /**
   * When the session, and the leadership with it, expires unless kept alive.
   */
  'expires_at_ms'?: (number | string | Long);
}

/**
 * The answer to a won campaign. Pass it back, as it came, to Proclaim, Resign and KeepAlive.
 */
export interface Leadership__Output {
  'name': (string);
  'backend': (string);
  'value': (string);
  /**
   * Strictly increases per election name with every new leader; fence writes with it (a
   * cache Fence with `election` set).
   */
  'fencing_token': (string);
  /**
   * The session the leadership lives in: the campaign's session_id, or the one the server
   * opened for it. Secret: whoever has it can proclaim and resign.
   */
  'session_id': (string);
  /**
   * The session's TTL (etcd rounds up to whole seconds).
   */
  'ttl_ms': (string);
  /**
   * When the session, and the leadership with it, expires unless kept alive.
   */
  'expires_at_ms': (string);
}
