// Original file: proto/latchkey/v1/cache.proto


export interface GetRequest {
  /**
   * Cache store ("lru", "memcached"); empty = the server's default.
   */
  'store'?: (string);
  /**
   * 1-250 bytes of UTF-8, no whitespace or control characters.
   */
  'key'?: (string);
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
}
