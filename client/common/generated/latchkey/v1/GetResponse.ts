// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface GetResponse {
  'found'?: (boolean);
  'value'?: (Buffer | Uint8Array | string);
  'cas'?: (number | string | Long);
  /**
   * With lease_ms, on a miss: non-zero when this caller now holds the key's lease. Load the
   * value and Set it with this token.
   */
  'lease_token'?: (number | string | Long);
  /**
   * With lease_ms, on a miss while another caller holds the lease: Get again after about this
   * many ms (at most the lease's time left). The value may be there by then, or the lease
   * may have run out and the next one be yours.
   */
  'wait_ms'?: (number | string | Long);
}

export interface GetResponse__Output {
  'found': (boolean);
  'value': (Buffer);
  'cas': (string);
  /**
   * With lease_ms, on a miss: non-zero when this caller now holds the key's lease. Load the
   * value and Set it with this token.
   */
  'lease_token': (string);
  /**
   * With lease_ms, on a miss while another caller holds the lease: Get again after about this
   * many ms (at most the lease's time left). The value may be there by then, or the lease
   * may have run out and the next one be yours.
   */
  'wait_ms': (string);
}
