// Original file: proto/latchkey/v1/locks.proto

import type { LockMode as _latchkey_v1_LockMode, LockMode__Output as _latchkey_v1_LockMode__Output } from '../../latchkey/v1/LockMode.js';

export interface Waiter {
  'owner'?: (string);
  'mode'?: (_latchkey_v1_LockMode);
}

export interface Waiter__Output {
  'owner': (string);
  'mode': (_latchkey_v1_LockMode__Output);
}
