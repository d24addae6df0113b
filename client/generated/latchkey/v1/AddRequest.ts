// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface AddRequest {
  'store'?: (string);
  'key'?: (string);
  'value'?: (Buffer | Uint8Array | string);
  'ttl_ms'?: (number | string | Long);
}

export interface AddRequest__Output {
  'store': (string);
  'key': (string);
  'value': (Buffer);
  'ttl_ms': (string);
}
