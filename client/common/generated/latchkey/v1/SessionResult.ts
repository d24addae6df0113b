// Original file: proto/latchkey/v1/locks.proto

import type { Lease as _latchkey_v1_Lease, Lease__Output as _latchkey_v1_Lease__Output } from '../../latchkey/v1/Lease.js';
import type { ReleaseResponse as _latchkey_v1_ReleaseResponse, ReleaseResponse__Output as _latchkey_v1_ReleaseResponse__Output } from '../../latchkey/v1/ReleaseResponse.js';
import type { LockState as _latchkey_v1_LockState, LockState__Output as _latchkey_v1_LockState__Output } from '../../latchkey/v1/LockState.js';
import type { SessionKeptAlive as _latchkey_v1_SessionKeptAlive, SessionKeptAlive__Output as _latchkey_v1_SessionKeptAlive__Output } from '../../latchkey/v1/SessionKeptAlive.js';
import type { SessionError as _latchkey_v1_SessionError, SessionError__Output as _latchkey_v1_SessionError__Output } from '../../latchkey/v1/SessionError.js';
import type { Long } from '@grpc/proto-loader';

export interface SessionResult {
  'tag'?: (number | string | Long);
  /**
   * For acquire: the lock's lease, on the session's lease (expires_at_ms is the
   * session's).
   */
  'lease'?: (_latchkey_v1_Lease | null);
  'released'?: (_latchkey_v1_ReleaseResponse | null);
  'state'?: (_latchkey_v1_LockState | null);
  /**
   * For keepalive.
   */
  'kept_alive'?: (_latchkey_v1_SessionKeptAlive | null);
  /**
   * The op failed; the stream and the session go on.
   */
  'error'?: (_latchkey_v1_SessionError | null);
  'result'?: "lease"|"released"|"state"|"kept_alive"|"error";
}

export interface SessionResult__Output {
  'tag': (string);
  /**
   * For acquire: the lock's lease, on the session's lease (expires_at_ms is the
   * session's).
   */
  'lease'?: (_latchkey_v1_Lease__Output | null);
  'released'?: (_latchkey_v1_ReleaseResponse__Output | null);
  'state'?: (_latchkey_v1_LockState__Output | null);
  /**
   * For keepalive.
   */
  'kept_alive'?: (_latchkey_v1_SessionKeptAlive__Output | null);
  /**
   * The op failed; the stream and the session go on.
   */
  'error'?: (_latchkey_v1_SessionError__Output | null);
  'result'?: "lease"|"released"|"state"|"kept_alive"|"error";
}
