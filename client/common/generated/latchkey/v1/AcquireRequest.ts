// Original file: proto/latchkey/v1/locks.proto

import type { LockMode as _latchkey_v1_LockMode, LockMode__Output as _latchkey_v1_LockMode__Output } from '../../latchkey/v1/LockMode.js';
import type { Long } from '@grpc/proto-loader';

export interface AcquireRequest {
  /**
   * 1-250 bytes of UTF-8, no whitespace or control characters.
   */
  'name'?: (string);
  /**
   * Lock backend ("memory", "file", "etcd"); empty = the server's default.
   */
  'backend'?: (string);
  /**
   * Lease time-to-live; 0 = the server's default (--default-ttl-ms).
   */
  'ttl_ms'?: (number | string | Long);
  /**
   * How long to wait for the lock; 0 = try once. Bounded by the call's deadline less a
   * margin (see Acquire).
   */
  'wait_ms'?: (number | string | Long);
  /**
   * Free text naming the holder for humans; empty = the caller's peer address.
   */
  'owner'?: (string);
  /**
   * Exclusive holders allowed at once; 0 or 1 = a plain lock, N > 1 = a semaphore. Every
   * holder and waiter of a name must agree on it (else FAILED_PRECONDITION).
   */
  'limit'?: (number);
  /**
   * EXCLUSIVE (default) or SHARED. Waiters of both modes are served in one FIFO queue, so a
   * waiting EXCLUSIVE request is not starved by SHARED ones that came after it.
   */
  'mode'?: (_latchkey_v1_LockMode);
}

export interface AcquireRequest__Output {
  /**
   * 1-250 bytes of UTF-8, no whitespace or control characters.
   */
  'name': (string);
  /**
   * Lock backend ("memory", "file", "etcd"); empty = the server's default.
   */
  'backend': (string);
  /**
   * Lease time-to-live; 0 = the server's default (--default-ttl-ms).
   */
  'ttl_ms': (string);
  /**
   * How long to wait for the lock; 0 = try once. Bounded by the call's deadline less a
   * margin (see Acquire).
   */
  'wait_ms': (string);
  /**
   * Free text naming the holder for humans; empty = the caller's peer address.
   */
  'owner': (string);
  /**
   * Exclusive holders allowed at once; 0 or 1 = a plain lock, N > 1 = a semaphore. Every
   * holder and waiter of a name must agree on it (else FAILED_PRECONDITION).
   */
  'limit': (number);
  /**
   * EXCLUSIVE (default) or SHARED. Waiters of both modes are served in one FIFO queue, so a
   * waiting EXCLUSIVE request is not starved by SHARED ones that came after it.
   */
  'mode': (_latchkey_v1_LockMode__Output);
}
