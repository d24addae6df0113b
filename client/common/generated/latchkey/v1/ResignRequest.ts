// Original file: proto/latchkey/v1/elections.proto

import type { Leadership as _latchkey_v1_Leadership, Leadership__Output as _latchkey_v1_Leadership__Output } from '../../latchkey/v1/Leadership.js';

export interface ResignRequest {
  /**
   * name, backend, session_id and fencing_token name the leadership; the rest is ignored.
   */
  'leadership'?: (_latchkey_v1_Leadership | null);
}

export interface ResignRequest__Output {
  /**
   * name, backend, session_id and fencing_token name the leadership; the rest is ignored.
   */
  'leadership': (_latchkey_v1_Leadership__Output | null);
}
