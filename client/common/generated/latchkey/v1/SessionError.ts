// Original file: proto/latchkey/v1/locks.proto


export interface SessionError {
  /**
   * A gRPC status code (10 = ABORTED: not granted in time, 9 = FAILED_PRECONDITION, ...),
   * as the unary RPC would have answered.
   */
  'code'?: (number);
  'message'?: (string);
  /**
   * The server's error reason, as the unary RPCs send it in the `latchkey-error` trailer.
   */
  'reason'?: (string);
}

export interface SessionError__Output {
  /**
   * A gRPC status code (10 = ABORTED: not granted in time, 9 = FAILED_PRECONDITION, ...),
   * as the unary RPC would have answered.
   */
  'code': (number);
  'message': (string);
  /**
   * The server's error reason, as the unary RPCs send it in the `latchkey-error` trailer.
   */
  'reason': (string);
}
