// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface GetRequest {
  /**
   * Cache store ("lru", "memcached"); empty = the server's default.
   */
  'store'?: (string);
  /**
   * 1-250 bytes of UTF-8, no whitespace or control characters.
   */
  'key'?: (string);
  /**
   * Optional: on a miss, take the key's lease for this many ms (1 to 3600000), or be told to
   * wait while another caller holds it. 0 = a plain Get.
   */
  'lease_ms'?: (number | string | Long);
}

export interface GetRequest__Output {
  /**
   * Cache store ("lru", "memcached"); empty = the server's default.
   */
  'store': (string);
  /**
   * 1-250 bytes of UTF-8, no whitespace or control characters.
   */
  'key': (string);
  /**
   * Optional: on a miss, take the key's lease for this many ms (1 to 3600000), or be told to
   * wait while another caller holds it. 0 = a plain Get.
   */
  'lease_ms': (string);
}
