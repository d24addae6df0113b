// Original file: proto/latchkey/v1/locks.proto

/**
 * How a lease holds its lock.
 */
export const LockMode = {
  /**
   * With `limit` N (default 1): at most N exclusive holders at once (N > 1: a semaphore).
   */
  EXCLUSIVE: 'EXCLUSIVE',
  /**
   * Any number of shared holders, and no exclusive holder while any is there (read lock).
   */
  SHARED: 'SHARED',
} as const;

/**
 * How a lease holds its lock.
 */
export type LockMode =
  /**
   * With `limit` N (default 1): at most N exclusive holders at once (N > 1: a semaphore).
   */
  | 'EXCLUSIVE'
  | 0
  /**
   * Any number of shared holders, and no exclusive holder while any is there (read lock).
   */
  | 'SHARED'
  | 1

/**
 * How a lease holds its lock.
 */
export type LockMode__Output = typeof LockMode[keyof typeof LockMode]
