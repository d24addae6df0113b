// Original file: proto/latchkey/v1/cache.proto


/**
 * The status one operation of a batch or pipeline failed with.
 */
export interface OpError {
  /**
   * A gRPC status code (3 = INVALID_ARGUMENT, 9 = FAILED_PRECONDITION, 14 = UNAVAILABLE, ...).
   */
  'code'?: (number);
  'message'?: (string);
  /**
   * The server's error class, e.g. "FencedOutError" (the unary RPCs send it in the
   * `latchkey-error` trailer).
   */
  'reason'?: (string);
}

/**
 * The status one operation of a batch or pipeline failed with.
 */
export interface OpError__Output {
  /**
   * A gRPC status code (3 = INVALID_ARGUMENT, 9 = FAILED_PRECONDITION, 14 = UNAVAILABLE, ...).
   */
  'code': (number);
  'message': (string);
  /**
   * The server's error class, e.g. "FencedOutError" (the unary RPCs send it in the
   * `latchkey-error` trailer).
   */
  'reason': (string);
}
