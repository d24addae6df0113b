// Original file: proto/latchkey/v1/cache.proto

import type { Fence as _latchkey_v1_Fence, Fence__Output as _latchkey_v1_Fence__Output } from '../../latchkey/v1/Fence.js';
import type { Long } from '@grpc/proto-loader';

export interface CasRequest {
  'store'?: (string);
  'key'?: (string);
  'value'?: (Buffer | Uint8Array | string);
  /**
   * The cas from a Get; must be non-zero.
   */
  'cas'?: (number | string | Long);
  'ttl_ms'?: (number | string | Long);
  'fence'?: (_latchkey_v1_Fence | null);
}

export interface CasRequest__Output {
  'store': (string);
  'key': (string);
  'value': (Buffer);
  /**
   * The cas from a Get; must be non-zero.
   */
  'cas': (string);
  'ttl_ms': (string);
  'fence': (_latchkey_v1_Fence__Output | null);
}
