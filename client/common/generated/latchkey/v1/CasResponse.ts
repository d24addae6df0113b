// Original file: proto/latchkey/v1/cache.proto

import type { Outcome as _latchkey_v1_Outcome, Outcome__Output as _latchkey_v1_Outcome__Output } from '../../latchkey/v1/Outcome.js';
import type { Long } from '@grpc/proto-loader';

export interface CasResponse {
  'outcome'?: (_latchkey_v1_Outcome);
  /**
   * The new cas when STORED; 0 otherwise, on every store. EXISTS does not tell the current
   * cas: a retry needs the current value too, so Get both.
   */
  'cas'?: (number | string | Long);
}

export interface CasResponse__Output {
  'outcome': (_latchkey_v1_Outcome__Output);
  /**
   * The new cas when STORED; 0 otherwise, on every store. EXISTS does not tell the current
   * cas: a retry needs the current value too, so Get both.
   */
  'cas': (string);
}
