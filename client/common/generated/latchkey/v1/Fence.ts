// Original file: proto/latchkey/v1/cache.proto

import type { Long } from '@grpc/proto-loader';

/**
 * A fenced write carries the fencing token of the lock its writer holds. Each key remembers
 * the lock and token of its last fenced write; a fenced write with a lower token (a holder
 * whose lease expired while a newer holder wrote), or one from another lock, is refused with
 * FAILED_PRECONDITION and changes nothing. A write without a fence replaces the value and
 * forgets its fence, except Incr, which keeps the fence of a fenced value.
 * 
 * Tombstones: a fenced Delete leaves the key absent for every operation (Get misses, Touch
 * and Cas answer NOT_FOUND, Add stores, Incr starts from `initial`, and so do plain memcached
 * clients), and remembers the fence in a tombstone for the server's tombstone retention
 * (--tombstone-retention-ms, at least --max-ttl-ms, the longest lease it grants): while the
 * key is absent, fenced writes are checked against it. The retention covers a stale write
 * delayed by up to one lease between its holder's last look at its lease and its arrival;
 * one delayed longer, or arriving after the store evicted the tombstone, finds the key new.
 */
export interface Fence {
  /**
   * The lock name the token came from (a Lease's); or set `election` instead.
   */
  'lock'?: (string);
  /**
   * The lock's (or election's) backend, one this server serves (else INVALID_ARGUMENT naming
   * them); empty = the server's default lock backend.
   */
  'backend'?: (string);
  /**
   * The Lease's (or Leadership's) fencing_token; must be non-zero.
   */
  'token'?: (number | string | Long);
  /**
   * The election the token came from (a Leadership's), instead of `lock`: a leader fences
   * its writes as a lock holder does, and a deposed leader's are refused once a newer leader
   * has written. Election "x" and lock "x" are different fences.
   */
  'election'?: (string);
}

/**
 * A fenced write carries the fencing token of the lock its writer holds. Each key remembers
 * the lock and token of its last fenced write; a fenced write with a lower token (a holder
 * whose lease expired while a newer holder wrote), or one from another lock, is refused with
 * FAILED_PRECONDITION and changes nothing. A write without a fence replaces the value and
 * forgets its fence, except Incr, which keeps the fence of a fenced value.
 * 
 * Tombstones: a fenced Delete leaves the key absent for every operation (Get misses, Touch
 * and Cas answer NOT_FOUND, Add stores, Incr starts from `initial`, and so do plain memcached
 * clients), and remembers the fence in a tombstone for the server's tombstone retention
 * (--tombstone-retention-ms, at least --max-ttl-ms, the longest lease it grants): while the
 * key is absent, fenced writes are checked against it. The retention covers a stale write
 * delayed by up to one lease between its holder's last look at its lease and its arrival;
 * one delayed longer, or arriving after the store evicted the tombstone, finds the key new.
 */
export interface Fence__Output {
  /**
   * The lock name the token came from (a Lease's); or set `election` instead.
   */
  'lock': (string);
  /**
   * The lock's (or election's) backend, one this server serves (else INVALID_ARGUMENT naming
   * them); empty = the server's default lock backend.
   */
  'backend': (string);
  /**
   * The Lease's (or Leadership's) fencing_token; must be non-zero.
   */
  'token': (string);
  /**
   * The election the token came from (a Leadership's), instead of `lock`: a leader fences
   * its writes as a lock holder does, and a deposed leader's are refused once a newer leader
   * has written. Election "x" and lock "x" are different fences.
   */
  'election': (string);
}
