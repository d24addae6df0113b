// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface SetResponse {
  'cas'?: (number | string | Long);
}

export interface SetResponse__Output {
  'cas': (string);
}
