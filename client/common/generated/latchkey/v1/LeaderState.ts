// Original file: proto/latchkey/v1/elections.proto

import type { Long } from '@grpc/proto-loader';

/**
 * Who leads an election. As an Observe message, the change it reports is told by comparing
 * with the one before: another fencing_token is a new leader, the same token with a value is
 * a proclamation, `elected` false is nobody leading.
 */
export interface LeaderState {
  'name'?: (string);
  'backend'?: (string);
  /**
   * False: nobody leads; value and fencing_token are empty.
   */
  'elected'?: (boolean);
  'value'?: (string);
  'fencing_token'?: (number | string | Long);
  /**
   * Candidates campaigning, the leader among them: now for Leader, as of the change for an
   * Observe message (a candidate joining or leaving the queue is not a change of its own).
   */
  'candidates'?: (number);
}

/**
 * Who leads an election. As an Observe message, the change it reports is told by comparing
 * with the one before: another fencing_token is a new leader, the same token with a value is
 * a proclamation, `elected` false is nobody leading.
 */
export interface LeaderState__Output {
  'name': (string);
  'backend': (string);
  /**
   * False: nobody leads; value and fencing_token are empty.
   */
  'elected': (boolean);
  'value': (string);
  'fencing_token': (string);
  /**
   * Candidates campaigning, the leader among them: now for Leader, as of the change for an
   * Observe message (a candidate joining or leaving the queue is not a change of its own).
   */
  'candidates': (number);
}
