// Original file: proto/latchkey/v1/locks.proto

import type { Long } from '@grpc/proto-loader';

export interface RefreshRequest {
  'name'?: (string);
  'backend'?: (string);
  'lease_id'?: (string);
  /**
   * New time-to-live from now; 0 = the lease's current TTL.
   */
  'ttl_ms'?: (number | string | Long);
}

export interface RefreshRequest__Output {
  'name': (string);
  'backend': (string);
  'lease_id': (string);
  /**
   * New time-to-live from now; 0 = the lease's current TTL.
   */
  'ttl_ms': (string);
}
