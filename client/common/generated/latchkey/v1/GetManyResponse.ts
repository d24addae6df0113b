// Original file: proto/latchkey/v1/cache.proto

import type { GetResult as _latchkey_v1_GetResult, GetResult__Output as _latchkey_v1_GetResult__Output } from '../../latchkey/v1/GetResult.js';

export interface GetManyResponse {
  'results'?: (_latchkey_v1_GetResult)[];
}

export interface GetManyResponse__Output {
  'results': (_latchkey_v1_GetResult__Output)[];
}
