// A lock recipe: how a request's key, once in its lock's queue, is judged and how it waits
// for its turn. Two recipes share the key layout and the queue (layout.ts): mutex.ts for a
// plain lock (EXCLUSIVE, limit 1: etcd's mutex, exactly as `etcdctl lock` runs it) and
// semaphore.ts for every other request (a semaphore's limit N > 1, and SHARED). recipeFor
// chooses one per request, from the request's claim (or, for Refresh and Release, from the
// claim its key stores); nothing else asks which kind of lock it is.
import type { IRangeRequest, IRangeResponse } from 'etcd3';
import { type Claim, isPlain, type QueueKey } from './layout.js';
import { mutexRecipe } from './mutex.js';
import type { LockQueue } from './queue.js';
import { semaphoreRecipe } from './semaphore.js';

/** What one consistent read of the queue says about a waiter's key. */
export interface QueueCheck {
  /** mutex.go: "the owner key still exists" (its lease or someone may have removed it). */
  readonly ownKeyExists: boolean;
  /** The key holds the lock now. */
  readonly holds: boolean;
  /** Resolves when a re-read may find that the key holds (or stop fires); the caller re-reads. */
  waitForChange(stop: AbortSignal): Promise<void>;
}

/** Whether a key holds the lock, and if not, who does (for the refusal). */
export type HoldCheck = { readonly holds: true } | { readonly holds: false; readonly holders: readonly QueueKey[] };

export interface LockRecipe {
  /** The part of the queue read in the same transaction as the put of the own key. */
  putRange(queue: LockQueue): IRangeRequest;
  /**
   * Right after the put, from what that transaction read: the keys holding the lock ahead of
   * `own` (none: `own` holds). Refuses with limitMismatch a limit that differs from the one in force.
   */
  holdersAfterPut(queue: LockQueue, own: QueueKey, page: IRangeResponse): Promise<readonly QueueKey[]>;
  /** Refresh and Release: whether `own` holds, given the queue's first page read with it. */
  holdCheck(
    queue: LockQueue,
    own: QueueKey,
    firstPage: IRangeResponse,
    what: string,
    signal: AbortSignal,
  ): Promise<HoldCheck>;
  /** A waiter's turn, in one consistent read. */
  check(queue: LockQueue, own: QueueKey): Promise<QueueCheck>;
  /** Who holds the lock now, for a message. */
  holdersNow(queue: LockQueue): Promise<readonly QueueKey[]>;
}

export const recipeFor = (claim: Claim): LockRecipe => (isPlain(claim) ? mutexRecipe : semaphoreRecipe);
