// Original file: proto/latchkey/v1/cache.proto

import type { SetResult as _latchkey_v1_SetResult, SetResult__Output as _latchkey_v1_SetResult__Output } from '../../latchkey/v1/SetResult.js';

export interface SetManyResponse {
  'results'?: (_latchkey_v1_SetResult)[];
}

export interface SetManyResponse__Output {
  'results': (_latchkey_v1_SetResult__Output)[];
}
