// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface DeleteRequest {
  'store'?: (string);
  'key'?: (string);
  /**
   * 0 = delete whatever is there.
   */
  'cas'?: (number | string | Long);
}

export interface DeleteRequest__Output {
  'store': (string);
  'key': (string);
  /**
   * 0 = delete whatever is there.
   */
  'cas': (string);
}
