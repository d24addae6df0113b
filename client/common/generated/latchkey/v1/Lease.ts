// Original file: proto/latchkey/v1/locks.proto

import type { LockMode as _latchkey_v1_LockMode, LockMode__Output as _latchkey_v1_LockMode__Output } from '../../latchkey/v1/LockMode.js';
import type { Long } from '@grpc/proto-loader';

export interface Lease {
  'name'?: (string);
  'backend'?: (string);
  /**
   * Opaque; pass it back to Refresh and Release.
   */
  'lease_id'?: (string);
  /**
   * Strictly increases per lock name with every grant.
   */
  'fencing_token'?: (number | string | Long);
  'expires_at_ms'?: (number | string | Long);
  'owner'?: (string);
  /**
   * The TTL granted (a backend may round it up, e.g. etcd to whole seconds); refresh well
   * within it.
   */
  'ttl_ms'?: (number | string | Long);
  'mode'?: (_latchkey_v1_LockMode);
  /**
   * The semaphore limit the lease was granted under (1 for a plain lock).
   */
  'limit'?: (number);
}

export interface Lease__Output {
  'name': (string);
  'backend': (string);
  /**
   * Opaque; pass it back to Refresh and Release.
   */
  'lease_id': (string);
  /**
   * Strictly increases per lock name with every grant.
   */
  'fencing_token': (string);
  'expires_at_ms': (string);
  'owner': (string);
  /**
   * The TTL granted (a backend may round it up, e.g. etcd to whole seconds); refresh well
   * within it.
   */
  'ttl_ms': (string);
  'mode': (_latchkey_v1_LockMode__Output);
  /**
   * The semaphore limit the lease was granted under (1 for a plain lock).
   */
  'limit': (number);
}
