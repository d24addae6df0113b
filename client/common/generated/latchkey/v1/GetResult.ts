// Original file: proto/latchkey/v1/cache.proto

import type { OpError as _latchkey_v1_OpError, OpError__Output as _latchkey_v1_OpError__Output } from '../../latchkey/v1/OpError.js';
import type { Long } from '@grpc/proto-loader';

export interface GetResult {
  'key'?: (string);
  'found'?: (boolean);
  'value'?: (Buffer | Uint8Array | string);
  'cas'?: (number | string | Long);
  /**
   * Set when this key could not be read (bad key, server of this key down).
   */
  'error'?: (_latchkey_v1_OpError | null);
  /**
   * As in GetResponse.
   */
  'lease_token'?: (number | string | Long);
  'wait_ms'?: (number | string | Long);
}

export interface GetResult__Output {
  'key': (string);
  'found': (boolean);
  'value': (Buffer);
  'cas': (string);
  /**
   * Set when this key could not be read (bad key, server of this key down).
   */
  'error': (_latchkey_v1_OpError__Output | null);
  /**
   * As in GetResponse.
   */
  'lease_token': (string);
  'wait_ms': (string);
}
