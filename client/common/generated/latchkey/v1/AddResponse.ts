// Original file: proto/latchkey/v1/cache.proto

import type { Outcome as _latchkey_v1_Outcome, Outcome__Output as _latchkey_v1_Outcome__Output } from '../../latchkey/v1/Outcome.js';
import type { Long } from '@grpc/proto-loader';

export interface AddResponse {
  'outcome'?: (_latchkey_v1_Outcome);
  'cas'?: (number | string | Long);
}

export interface AddResponse__Output {
  'outcome': (_latchkey_v1_Outcome__Output);
  'cas': (string);
}
