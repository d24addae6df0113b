// Original file: proto/latchkey/v1/locks.proto

import type { LockMode as _latchkey_v1_LockMode, LockMode__Output as _latchkey_v1_LockMode__Output } from '../../latchkey/v1/LockMode.js';
import type { LockState as _latchkey_v1_LockState, LockState__Output as _latchkey_v1_LockState__Output } from '../../latchkey/v1/LockState.js';
import type { Long } from '@grpc/proto-loader';

// Original file: proto/latchkey/v1/locks.proto

export const _latchkey_v1_LockEvent_Type = {
  TYPE_UNSPECIFIED: 'TYPE_UNSPECIFIED',
  /**
   * The state when the watch started (in `state`).
   */
  STATE: 'STATE',
  ACQUIRED: 'ACQUIRED',
  RELEASED: 'RELEASED',
  EXPIRED: 'EXPIRED',
  WAITER_ADDED: 'WAITER_ADDED',
  WAITER_LEFT: 'WAITER_LEFT',
} as const;

export type _latchkey_v1_LockEvent_Type =
  | 'TYPE_UNSPECIFIED'
  | 0
  /**
   * The state when the watch started (in `state`).
   */
  | 'STATE'
  | 1
  | 'ACQUIRED'
  | 2
  | 'RELEASED'
  | 3
  | 'EXPIRED'
  | 4
  | 'WAITER_ADDED'
  | 5
  | 'WAITER_LEFT'
  | 6

export type _latchkey_v1_LockEvent_Type__Output = typeof _latchkey_v1_LockEvent_Type[keyof typeof _latchkey_v1_LockEvent_Type]

export interface LockEvent {
  'type'?: (_latchkey_v1_LockEvent_Type);
  'name'?: (string);
  'owner'?: (string);
  'fencing_token'?: (number | string | Long);
  'mode'?: (_latchkey_v1_LockMode);
  'at_ms'?: (number | string | Long);
  /**
   * Only on STATE.
   */
  'state'?: (_latchkey_v1_LockState | null);
}

export interface LockEvent__Output {
  'type': (_latchkey_v1_LockEvent_Type__Output);
  'name': (string);
  'owner': (string);
  'fencing_token': (string);
  'mode': (_latchkey_v1_LockMode__Output);
  'at_ms': (string);
  /**
   * Only on STATE.
   */
  'state': (_latchkey_v1_LockState__Output | null);
}
