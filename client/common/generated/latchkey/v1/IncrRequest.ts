// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

export interface IncrRequest {
  'store'?: (string);
  'key'?: (string);
  /**
   * Negative to decrement.
   */
  'delta'?: (number | string | Long);
  /**
   * Value given to an absent key (delta is not applied to it).
   */
  'initial'?: (number | string | Long);
  /**
   * Expiry of a key created from `initial`; an existing key keeps its own, except a value
   * written with a fence: Incr rewrites it (keeping its fence) and it takes this expiry.
   */
  'ttl_ms'?: (number | string | Long);
}

export interface IncrRequest__Output {
  'store': (string);
  'key': (string);
  /**
   * Negative to decrement.
   */
  'delta': (string);
  /**
   * Value given to an absent key (delta is not applied to it).
   */
  'initial': (string);
  /**
   * Expiry of a key created from `initial`; an existing key keeps its own, except a value
   * written with a fence: Incr rewrites it (keeping its fence) and it takes this expiry.
   */
  'ttl_ms': (string);
}
