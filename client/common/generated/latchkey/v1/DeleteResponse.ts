// Original file: proto/latchkey/v1/cache.proto

import type { Outcome as _latchkey_v1_Outcome, Outcome__Output as _latchkey_v1_Outcome__Output } from '../../latchkey/v1/Outcome.js';

export interface DeleteResponse {
  'outcome'?: (_latchkey_v1_Outcome);
}

export interface DeleteResponse__Output {
  'outcome': (_latchkey_v1_Outcome__Output);
}
