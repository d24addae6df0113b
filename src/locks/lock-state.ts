// The one way a LockState (what Describe and Watch's STATE event show) is put together, and
// the rule for the semaphore limit in force, shared by every backend.
import type { HolderInfo, LockMode, LockState, WaiterInfo } from './backend.js';

/**
 * The limit the EXCLUSIVE holders and waiters of a name agreed on: the first EXCLUSIVE one's,
 * in grant then queue order; 0 when there is none (free, or only SHARED holders). An
 * EXCLUSIVE request with another limit is refused (see limitMismatch), so one is enough.
 */
export function agreedLimit(holdersThenQueue: Iterable<{ readonly mode: LockMode; readonly limit: number }>): number {
  for (const entry of holdersThenQueue) if (entry.mode === 'EXCLUSIVE') return entry.limit;
  return 0;
}

/**
 * A lock's state from its holders (oldest grant first) and its queue (in serving order).
 * `limit` is the agreed limit (see agreedLimit); the state says 1 for a lock that has
 * holders or waiters but no agreed limit (a plain lock, or SHARED holders only), and 0 for
 * a lock nobody holds or waits for.
 */
export function lockState(holders: readonly HolderInfo[], queue: readonly WaiterInfo[], limit: number): LockState {
  const first = holders[0];
  return {
    held: first !== undefined,
    owner: first?.owner ?? '',
    fencingToken: first?.fencingToken ?? 0n,
    expiresAtMs: first?.expiresAtMs ?? 0,
    waiters: queue.length,
    holders,
    queue,
    limit: limit || (holders.length + queue.length > 0 ? 1 : 0),
  };
}

/**
 * The state of a plain (exclusive, limit 1) lock with at most one holder and `waiters`
 * anonymous waiters (a backend that does not track who waits).
 */
export function singleHolderState(holder: Omit<HolderInfo, 'mode'> | undefined, waiters: number): LockState {
  // Only HolderInfo's fields: a Lease passed as the holder carries its lease id too.
  const holders: HolderInfo[] =
    holder === undefined
      ? []
      : [
          {
            owner: holder.owner,
            fencingToken: holder.fencingToken,
            expiresAtMs: holder.expiresAtMs,
            mode: 'EXCLUSIVE',
          },
        ];
  const queue = Array.from({ length: waiters }, (): WaiterInfo => ({ owner: '', mode: 'EXCLUSIVE' }));
  return lockState(holders, queue, 0);
}
