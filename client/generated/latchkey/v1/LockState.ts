// Original file: proto/latchkey/v1/locks.proto

import type { BackendCapabilities as _latchkey_v1_BackendCapabilities, BackendCapabilities__Output as _latchkey_v1_BackendCapabilities__Output } from '../../latchkey/v1/BackendCapabilities.js';
import type { Long } from '@grpc/proto-loader';

export interface LockState {
  'name'?: (string);
  'backend'?: (string);
  'held'?: (boolean);
  'owner'?: (string);
  'fencing_token'?: (number | string | Long);
  'expires_at_ms'?: (number | string | Long);
  /**
   * Callers waiting for the lock right now.
   */
  'waiters'?: (number);
  /**
   * What the backend guarantees, as it declares it.
   */
  'capabilities'?: (_latchkey_v1_BackendCapabilities | null);
}

export interface LockState__Output {
  'name': (string);
  'backend': (string);
  'held': (boolean);
  'owner': (string);
  'fencing_token': (string);
  'expires_at_ms': (string);
  /**
   * Callers waiting for the lock right now.
   */
  'waiters': (number);
  /**
   * What the backend guarantees, as it declares it.
   */
  'capabilities': (_latchkey_v1_BackendCapabilities__Output | null);
}
