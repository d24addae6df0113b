// Original file: proto/latchkey/v1/cache.proto

import type { Fence as _latchkey_v1_Fence, Fence__Output as _latchkey_v1_Fence__Output } from '../../latchkey/v1/Fence.js';
import type { Long } from '@grpc/proto-loader';

export interface DeleteRequest {
  'store'?: (string);
  'key'?: (string);
  /**
   * 0 = delete whatever is there.
   */
  'cas'?: (number | string | Long);
  /**
   * Optional: a fenced delete leaves a tombstone that remembers the fence for the tombstone
   * retention (see Fence), so an older holder cannot write the key back meanwhile. Deleting
   * an absent key with a fence leaves one too, and answers NOT_FOUND.
   */
  'fence'?: (_latchkey_v1_Fence | null);
}

export interface DeleteRequest__Output {
  'store': (string);
  'key': (string);
  /**
   * 0 = delete whatever is there.
   */
  'cas': (string);
  /**
   * Optional: a fenced delete leaves a tombstone that remembers the fence for the tombstone
   * retention (see Fence), so an older holder cannot write the key back meanwhile. Deleting
   * an absent key with a fence leaves one too, and answers NOT_FOUND.
   */
  'fence': (_latchkey_v1_Fence__Output | null);
}
