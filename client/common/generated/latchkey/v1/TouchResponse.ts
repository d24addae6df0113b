// Original file: proto/latchkey/v1/cache.proto

import type { Outcome as _latchkey_v1_Outcome, Outcome__Output as _latchkey_v1_Outcome__Output } from '../../latchkey/v1/Outcome.js';

export interface TouchResponse {
  'outcome'?: (_latchkey_v1_Outcome);
}

export interface TouchResponse__Output {
  'outcome': (_latchkey_v1_Outcome__Output);
}
