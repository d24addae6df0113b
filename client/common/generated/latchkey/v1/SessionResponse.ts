// Original file: proto/latchkey/v1/locks.proto

import type { SessionOpened as _latchkey_v1_SessionOpened, SessionOpened__Output as _latchkey_v1_SessionOpened__Output } from '../../latchkey/v1/SessionOpened.js';
import type { SessionResult as _latchkey_v1_SessionResult, SessionResult__Output as _latchkey_v1_SessionResult__Output } from '../../latchkey/v1/SessionResult.js';

export interface SessionResponse {
  /**
   * The answer to `open`, in the first response only.
   */
  'opened'?: (_latchkey_v1_SessionOpened | null);
  'results'?: (_latchkey_v1_SessionResult)[];
}

export interface SessionResponse__Output {
  /**
   * The answer to `open`, in the first response only.
   */
  'opened': (_latchkey_v1_SessionOpened__Output | null);
  'results': (_latchkey_v1_SessionResult__Output)[];
}
