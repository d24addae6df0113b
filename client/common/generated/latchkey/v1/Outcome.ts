// Original file: proto/latchkey/v1/cache.proto

export const Outcome = {
  OUTCOME_UNSPECIFIED: 'OUTCOME_UNSPECIFIED',
  STORED: 'STORED',
  /**
   * The key exists, with another cas than the one given (or, for Add, at all).
   */
  EXISTS: 'EXISTS',
  NOT_FOUND: 'NOT_FOUND',
  DELETED: 'DELETED',
  TOUCHED: 'TOUCHED',
} as const;

export type Outcome =
  | 'OUTCOME_UNSPECIFIED'
  | 0
  | 'STORED'
  | 1
  /**
   * The key exists, with another cas than the one given (or, for Add, at all).
   */
  | 'EXISTS'
  | 2
  | 'NOT_FOUND'
  | 3
  | 'DELETED'
  | 4
  | 'TOUCHED'
  | 5

export type Outcome__Output = typeof Outcome[keyof typeof Outcome]
