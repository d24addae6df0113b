// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface GetManyRequest {
  'store'?: (string);
  'keys'?: (string)[];
  /**
   * As GetRequest.lease_ms, for each key.
   */
  'lease_ms'?: (number | string | Long);
}

export interface GetManyRequest__Output {
  'store': (string);
  'keys': (string)[];
  /**
   * As GetRequest.lease_ms, for each key.
   */
  'lease_ms': (string);
}
