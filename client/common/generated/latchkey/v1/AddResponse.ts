// Original file: proto/latchkey/v1/cache.proto

import type { Outcome as _latchkey_v1_Outcome, Outcome__Output as _latchkey_v1_Outcome__Output } from '../../latchkey/v1/Outcome.js';
import type { Long } from '@grpc/proto-loader';

export interface AddResponse {
  'outcome'?: (_latchkey_v1_Outcome);
  /**
   * The new cas when STORED; 0 for EXISTS.
   */
  'cas'?: (number | string | Long);
}

export interface AddResponse__Output {
  'outcome': (_latchkey_v1_Outcome__Output);
  /**
   * The new cas when STORED; 0 for EXISTS.
   */
  'cas': (string);
}
