// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface SetItem {
  'key'?: (string);
  'value'?: (Buffer | Uint8Array | string);
  'ttl_ms'?: (number | string | Long);
  /**
   * As SetRequest.lease_token.
   */
  'lease_token'?: (number | string | Long);
}

export interface SetItem__Output {
  'key': (string);
  'value': (Buffer);
  'ttl_ms': (string);
  /**
   * As SetRequest.lease_token.
   */
  'lease_token': (string);
}
