// Original file: proto/latchkey/v1/cache.proto

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
}
