// Original file: proto/latchkey/v1/locks.proto


export interface BackendCapabilities {
  /**
   * Mutual exclusion holds across latchkey servers on different hosts.
   */
  'across_hosts'?: (boolean);
  /**
   * Fencing tokens strictly increase per lock name.
   */
  'fencing'?: (boolean);
  /**
   * Waiters are granted in arrival order.
   */
  'fifo'?: (boolean);
  /**
   * A lease that is not refreshed is released when its TTL runs out.
   */
  'auto_release'?: (boolean);
  /**
   * Acquire with limit > 1.
   */
  'semaphore'?: (boolean);
  /**
   * Acquire with mode SHARED.
   */
  'shared'?: (boolean);
  /**
   * The Watch RPC.
   */
  'watch'?: (boolean);
  /**
   * The Session RPC: many locks on one session lease.
   */
  'sessions'?: (boolean);
  /**
   * The Elections service (elections.proto): leader election on the backend's sessions.
   */
  'elections'?: (boolean);
}

export interface BackendCapabilities__Output {
  /**
   * Mutual exclusion holds across latchkey servers on different hosts.
   */
  'across_hosts': (boolean);
  /**
   * Fencing tokens strictly increase per lock name.
   */
  'fencing': (boolean);
  /**
   * Waiters are granted in arrival order.
   */
  'fifo': (boolean);
  /**
   * A lease that is not refreshed is released when its TTL runs out.
   */
  'auto_release': (boolean);
  /**
   * Acquire with limit > 1.
   */
  'semaphore': (boolean);
  /**
   * Acquire with mode SHARED.
   */
  'shared': (boolean);
  /**
   * The Watch RPC.
   */
  'watch': (boolean);
  /**
   * The Session RPC: many locks on one session lease.
   */
  'sessions': (boolean);
  /**
   * The Elections service (elections.proto): leader election on the backend's sessions.
   */
  'elections': (boolean);
}
