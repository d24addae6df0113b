// Original file: proto/latchkey/v1/cache.proto

import type { Fence as _latchkey_v1_Fence, Fence__Output as _latchkey_v1_Fence__Output } from '../../latchkey/v1/Fence.js';
import type { Long } from '@grpc/proto-loader';

export interface SetRequest {
  'store'?: (string);
  'key'?: (string);
  'value'?: (Buffer | Uint8Array | string);
  'ttl_ms'?: (number | string | Long);
  /**
   * Optional: refuse the write if a newer holder of the lock has written this key.
   */
  'fence'?: (_latchkey_v1_Fence | null);
  /**
   * Optional: the lease_token of a Get with lease_ms; store only while that lease is current
   * (else EXISTS, see Leases). Not together with a fence.
   */
  'lease_token'?: (number | string | Long);
}

export interface SetRequest__Output {
  'store': (string);
  'key': (string);
  'value': (Buffer);
  'ttl_ms': (string);
  /**
   * Optional: refuse the write if a newer holder of the lock has written this key.
   */
  'fence': (_latchkey_v1_Fence__Output | null);
  /**
   * Optional: the lease_token of a Get with lease_ms; store only while that lease is current
   * (else EXISTS, see Leases). Not together with a fence.
   */
  'lease_token': (string);
}
