// Original file: proto/latchkey/v1/locks.proto

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
   * How long to wait for the lock; 0 = try once.
   */
  'wait_ms'?: (number | string | Long);
  /**
   * Free text naming the holder for humans; empty = the caller's peer address.
   */
  'owner'?: (string);
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
   * How long to wait for the lock; 0 = try once.
   */
  'wait_ms': (string);
  /**
   * Free text naming the holder for humans; empty = the caller's peer address.
   */
  'owner': (string);
}
