// Original file: proto/latchkey/v1/locks.proto

import type { LockMode as _latchkey_v1_LockMode, LockMode__Output as _latchkey_v1_LockMode__Output } from '../../latchkey/v1/LockMode.js';
import type { Long } from '@grpc/proto-loader';

export interface Holder {
  'owner'?: (string);
  'fencing_token'?: (number | string | Long);
  'expires_at_ms'?: (number | string | Long);
  'mode'?: (_latchkey_v1_LockMode);
}

export interface Holder__Output {
  'owner': (string);
  'fencing_token': (string);
  'expires_at_ms': (string);
  'mode': (_latchkey_v1_LockMode__Output);
}
