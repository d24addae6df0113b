// Original file: proto/latchkey/v1/locks.proto

import type { SessionOpen as _latchkey_v1_SessionOpen, SessionOpen__Output as _latchkey_v1_SessionOpen__Output } from '../../latchkey/v1/SessionOpen.js';
import type { SessionOp as _latchkey_v1_SessionOp, SessionOp__Output as _latchkey_v1_SessionOp__Output } from '../../latchkey/v1/SessionOp.js';

export interface SessionRequest {
  /**
   * The first request only.
   */
  'open'?: (_latchkey_v1_SessionOpen | null);
  /**
   * Operations, each with a tag the client chose; results carry it back.
   */
  'ops'?: (_latchkey_v1_SessionOp)[];
  /**
   * End the session cleanly once this request's ops are taken: waiting acquires are
   * answered CANCELLED, the others are answered, every lock is released at once, and the
   * stream ends OK. Ops sent after it are refused (answered CANCELLED) until the stream ends.
   */
  'end'?: (boolean);
}

export interface SessionRequest__Output {
  /**
   * The first request only.
   */
  'open': (_latchkey_v1_SessionOpen__Output | null);
  /**
   * Operations, each with a tag the client chose; results carry it back.
   */
  'ops': (_latchkey_v1_SessionOp__Output)[];
  /**
   * End the session cleanly once this request's ops are taken: waiting acquires are
   * answered CANCELLED, the others are answered, every lock is released at once, and the
   * stream ends OK. Ops sent after it are refused (answered CANCELLED) until the stream ends.
   */
  'end': (boolean);
}
