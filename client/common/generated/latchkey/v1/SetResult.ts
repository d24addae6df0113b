// Original file: proto/latchkey/v1/cache.proto

import type { OpError as _latchkey_v1_OpError, OpError__Output as _latchkey_v1_OpError__Output } from '../../latchkey/v1/OpError.js';
import type { Outcome as _latchkey_v1_Outcome, Outcome__Output as _latchkey_v1_Outcome__Output } from '../../latchkey/v1/Outcome.js';
import type { Long } from '@grpc/proto-loader';

export interface SetResult {
  'key'?: (string);
  'cas'?: (number | string | Long);
  'error'?: (_latchkey_v1_OpError | null);
  /**
   * As in SetResponse.
   */
  'outcome'?: (_latchkey_v1_Outcome);
  'detail'?: (string);
}

export interface SetResult__Output {
  'key': (string);
  'cas': (string);
  'error': (_latchkey_v1_OpError__Output | null);
  /**
   * As in SetResponse.
   */
  'outcome': (_latchkey_v1_Outcome__Output);
  'detail': (string);
}
