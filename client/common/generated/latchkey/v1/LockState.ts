// Original file: proto/latchkey/v1/locks.proto

import type { BackendCapabilities as _latchkey_v1_BackendCapabilities, BackendCapabilities__Output as _latchkey_v1_BackendCapabilities__Output } from '../../latchkey/v1/BackendCapabilities.js';
import type { Holder as _latchkey_v1_Holder, Holder__Output as _latchkey_v1_Holder__Output } from '../../latchkey/v1/Holder.js';
import type { Waiter as _latchkey_v1_Waiter, Waiter__Output as _latchkey_v1_Waiter__Output } from '../../latchkey/v1/Waiter.js';
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
  /**
   * Every holder, oldest grant first (owner, fencing_token and expires_at_ms above are the
   * first one's).
   */
  'holders'?: (_latchkey_v1_Holder)[];
  /**
   * The waiters, in the order they will be served.
   */
  'queue'?: (_latchkey_v1_Waiter)[];
  /**
   * The current semaphore limit (1 for a plain lock; 0 when nobody holds or waits).
   */
  'limit'?: (number);
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
  /**
   * Every holder, oldest grant first (owner, fencing_token and expires_at_ms above are the
   * first one's).
   */
  'holders': (_latchkey_v1_Holder__Output)[];
  /**
   * The waiters, in the order they will be served.
   */
  'queue': (_latchkey_v1_Waiter__Output)[];
  /**
   * The current semaphore limit (1 for a plain lock; 0 when nobody holds or waits).
   */
  'limit': (number);
}
