// Original file: proto/latchkey/v1/cache.proto

import type { Outcome as _latchkey_v1_Outcome, Outcome__Output as _latchkey_v1_Outcome__Output } from '../../latchkey/v1/Outcome.js';
import type { Long } from '@grpc/proto-loader';

export interface SetResponse {
  /**
   * The new cas when STORED; 0 otherwise.
   */
  'cas'?: (number | string | Long);
  /**
   * STORED; EXISTS only for a Set with a lease_token that is no longer current.
   */
  'outcome'?: (_latchkey_v1_Outcome);
  /**
   * Why a Set with a lease_token was not stored; empty when STORED.
   */
  'detail'?: (string);
}

export interface SetResponse__Output {
  /**
   * The new cas when STORED; 0 otherwise.
   */
  'cas': (string);
  /**
   * STORED; EXISTS only for a Set with a lease_token that is no longer current.
   */
  'outcome': (_latchkey_v1_Outcome__Output);
  /**
   * Why a Set with a lease_token was not stored; empty when STORED.
   */
  'detail': (string);
}
