// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface TouchRequest {
  'store'?: (string);
  'key'?: (string);
  'ttl_ms'?: (number | string | Long);
}

export interface TouchRequest__Output {
  'store': (string);
  'key': (string);
  'ttl_ms': (string);
}
