// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface IncrResponse {
  'value'?: (number | string | Long);
  'cas'?: (number | string | Long);
}

export interface IncrResponse__Output {
  'value': (string);
  'cas': (string);
}
