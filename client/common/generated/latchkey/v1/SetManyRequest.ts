// Original file: proto/latchkey/v1/cache.proto

import type { SetItem as _latchkey_v1_SetItem, SetItem__Output as _latchkey_v1_SetItem__Output } from '../../latchkey/v1/SetItem.js';

export interface SetManyRequest {
  'store'?: (string);
  'items'?: (_latchkey_v1_SetItem)[];
}

export interface SetManyRequest__Output {
  'store': (string);
  'items': (_latchkey_v1_SetItem__Output)[];
}
