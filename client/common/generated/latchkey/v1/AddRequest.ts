// Original file: proto/latchkey/v1/cache.proto

import type { Fence as _latchkey_v1_Fence, Fence__Output as _latchkey_v1_Fence__Output } from '../../latchkey/v1/Fence.js';
import type { Long } from '@grpc/proto-loader';

export interface AddRequest {
  'store'?: (string);
  'key'?: (string);
  'value'?: (Buffer | Uint8Array | string);
  'ttl_ms'?: (number | string | Long);
  /**
   * Optional: a key left by a fenced delete is absent, but while its tombstone lasts only a
   * fenced write whose token is not older than the tombstone's may create it again.
   */
  'fence'?: (_latchkey_v1_Fence | null);
}

export interface AddRequest__Output {
  'store': (string);
  'key': (string);
  'value': (Buffer);
  'ttl_ms': (string);
  /**
   * Optional: a key left by a fenced delete is absent, but while its tombstone lasts only a
   * fenced write whose token is not older than the tombstone's may create it again.
   */
  'fence': (_latchkey_v1_Fence__Output | null);
}
