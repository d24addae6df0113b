// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

/**
 * A fenced write carries the fencing token of the lock its writer holds. Each key remembers
 * the lock and token of its last fenced write; a fenced write with a lower token (a holder
 * whose lease expired while a newer holder wrote) is refused with FAILED_PRECONDITION and
 * changes nothing. A write without a fence replaces the key and forgets its fence.
 */
export interface Fence {
  /**
   * The lock name the token came from (a Lease's); or set `election` instead.
   */
  'lock'?: (string);
  /**
   * The lock's (or election's) backend; empty = the server's default lock backend.
   */
  'backend'?: (string);
  /**
   * The Lease's (or Leadership's) fencing_token; must be non-zero.
   */
  'token'?: (number | string | Long);
  /**
   * The election the token came from (a Leadership's), instead of `lock`: a leader fences
   * its writes as a lock holder does, and a deposed leader's are refused once a newer leader
   * has written. Election "x" and lock "x" are different fences.
   */
  'election'?: (string);
}

/**
 * A fenced write carries the fencing token of the lock its writer holds. Each key remembers
 * the lock and token of its last fenced write; a fenced write with a lower token (a holder
 * whose lease expired while a newer holder wrote) is refused with FAILED_PRECONDITION and
 * changes nothing. A write without a fence replaces the key and forgets its fence.
 */
export interface Fence__Output {
  /**
   * The lock name the token came from (a Lease's); or set `election` instead.
   */
  'lock': (string);
  /**
   * The lock's (or election's) backend; empty = the server's default lock backend.
   */
  'backend': (string);
  /**
   * The Lease's (or Leadership's) fencing_token; must be non-zero.
   */
  'token': (string);
  /**
   * The election the token came from (a Leadership's), instead of `lock`: a leader fences
   * its writes as a lock holder does, and a deposed leader's are refused once a newer leader
   * has written. Election "x" and lock "x" are different fences.
   */
  'election': (string);
}
