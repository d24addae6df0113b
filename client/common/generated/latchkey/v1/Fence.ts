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
   * The lock name the token came from.
   */
  'lock'?: (string);
  /**
   * The lock's backend; empty = the server's default lock backend.
   */
  'backend'?: (string);
  /**
   * The Lease's fencing_token; must be non-zero.
   */
  'token'?: (number | string | Long);
}

/**
 * A fenced write carries the fencing token of the lock its writer holds. Each key remembers
 * the lock and token of its last fenced write; a fenced write with a lower token (a holder
 * whose lease expired while a newer holder wrote) is refused with FAILED_PRECONDITION and
 * changes nothing. A write without a fence replaces the key and forgets its fence.
 */
export interface Fence__Output {
  /**
   * The lock name the token came from.
   */
  'lock': (string);
  /**
   * The lock's backend; empty = the server's default lock backend.
   */
  'backend': (string);
  /**
   * The Lease's fencing_token; must be non-zero.
   */
  'token': (string);
}
