// Original file: proto/latchkey/v1/locks.proto

import type { Lease as _latchkey_v1_Lease, Lease__Output as _latchkey_v1_Lease__Output } from '../../latchkey/v1/Lease.js';
import type { Long } from '@grpc/proto-loader';

export interface SessionOpened {
  /**
   * Opaque, and secret: whoever has it can resume the session and release its locks. It
   * begins with the backend's name and a dot, and carries what a server needs to resume it.
   */
  'session_id'?: (string);
  'backend'?: (string);
  /**
   * The TTL granted (etcd rounds up to whole seconds).
   */
  'ttl_ms'?: (number | string | Long);
  'expires_at_ms'?: (number | string | Long);
  /**
   * True when `open.resume_id` resumed a live session.
   */
  'resumed'?: (boolean);
  /**
   * On resume: the locks the session still holds.
   */
  'leases'?: (_latchkey_v1_Lease)[];
}

export interface SessionOpened__Output {
  /**
   * Opaque, and secret: whoever has it can resume the session and release its locks. It
   * begins with the backend's name and a dot, and carries what a server needs to resume it.
   */
  'session_id': (string);
  'backend': (string);
  /**
   * The TTL granted (etcd rounds up to whole seconds).
   */
  'ttl_ms': (string);
  'expires_at_ms': (string);
  /**
   * True when `open.resume_id` resumed a live session.
   */
  'resumed': (boolean);
  /**
   * On resume: the locks the session still holds.
   */
  'leases': (_latchkey_v1_Lease__Output)[];
}
