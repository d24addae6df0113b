// Original file: proto/latchkey/v1/elections.proto

import type { Leadership as _latchkey_v1_Leadership, Leadership__Output as _latchkey_v1_Leadership__Output } from '../../latchkey/v1/Leadership.js';

export interface ProclaimRequest {
  /**
   * name, backend, session_id and fencing_token name the leadership; the rest is ignored.
   */
  'leadership'?: (_latchkey_v1_Leadership | null);
  /**
   * The new value: up to 65536 bytes of UTF-8.
   */
  'value'?: (string);
}

export interface ProclaimRequest__Output {
  /**
   * name, backend, session_id and fencing_token name the leadership; the rest is ignored.
   */
  'leadership': (_latchkey_v1_Leadership__Output | null);
  /**
   * The new value: up to 65536 bytes of UTF-8.
   */
  'value': (string);
}
