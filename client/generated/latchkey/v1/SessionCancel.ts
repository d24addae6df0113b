// Original file: proto/latchkey/v1/locks.proto

import type { Long } from '@grpc/proto-loader';

export interface SessionCancel {
  /**
   * The tag of the acquire to withdraw.
   */
  'tag'?: (number | string | Long);
}

export interface SessionCancel__Output {
  /**
   * The tag of the acquire to withdraw.
   */
  'tag': (string);
}
