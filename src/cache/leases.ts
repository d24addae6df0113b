// Leases, as memcache has them (Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013):
// on a miss, one caller is handed a lease token and loads the value; the others are told to
// wait; a Set carrying the token is stored only if nothing wrote or deleted the key since the
// token was issued. That stops both the thundering herd on a hot key that expired and the
// stale set (a slow loader putting back a value older than a Delete that came after its read).
//
// The lease is an item in the key itself, in place of the value (fencing.ts's envelope, kind
// lease, holding the time it runs out), so it needs no second key and works the same on every
// store: every other operation reads it as absent, and any write replaces it. Its token is the
// cas of that item, so "nothing touched the key since" is exactly "the key's cas is still the
// token": the Set is one compare-and-swap of the lease for the value (on memcached, one CAS).
//
// The item's TTL is the lease's, so a lease whose holder died disappears by itself; the time
// in it is what counts, though, since memcached rounds TTLs up to whole seconds: a lease past
// its time is taken over by the next Get, and its Set refused, even if the item is still there.
import { AbortedError } from '../errors.js';
import { decode, encodeLease, FENCED_FLAGS } from './fencing.js';
import type { CacheStore, Item } from './store.js';

/** The longest lease_ms accepted: an hour. */
/** How much longer than the lease its item lives (see leaseGet's NOTE). */
const LEASE_ITEM_SLACK_MS = 1_000;

export const MAX_LEASE_MS = 3_600_000;
/**
 * The wait a Get answers while another caller holds the lease (or the lease's time left, if
 * less): short enough that a waiter sees the value soon after it is stored, long enough that
 * a hundred waiters cost a few thousand Gets a second at most.
 */
export const LEASE_WAIT_MS = 20;
/** How many times a Get starts again after losing a race for the lease before giving up. */
const MAX_ATTEMPTS = 64;

/** What a Get with a lease found: the value, a lease of its own, or someone else's lease. */
export type LeaseRead =
  | { readonly kind: 'value'; readonly value: Buffer; readonly cas: bigint }
  | { readonly kind: 'lease'; readonly token: bigint }
  | { readonly kind: 'wait'; readonly waitMs: number };

/** A Set with a lease token: stored, or refused (EXISTS) with the reason. */
export type LeaseWrite =
  | { readonly outcome: 'STORED'; readonly cas: bigint }
  | { readonly outcome: 'EXISTS'; readonly cas: 0n; readonly detail: string };

/** Whether an item is a lease (it reads as absent). */
export function isLease(item: Item | undefined): boolean {
  return item !== undefined && decode(item).kind === 'lease';
}

/**
 * A Get that takes the key's lease on a miss. `now` is the clock the store's TTLs run on.
 *
 *   const read = await leaseGet(store, 'k', 10_000, Date.now, signal);
 *   if (read.kind === 'lease') await leaseSet(store, 'k', await load(), 0, read.token, Date.now, signal);
 */
export async function leaseGet(
  store: CacheStore,
  key: string,
  leaseMs: number,
  now: () => number,
  signal: AbortSignal,
): Promise<LeaseRead> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const item = await store.get(key, signal);
    const view = item === undefined ? undefined : decode(item);
    if (view?.kind === 'value') return { kind: 'value', value: view.value, cas: item!.cas };
    const time = now();
    if (view?.kind === 'lease' && time < view.untilMs)
      return { kind: 'wait', waitMs: Math.max(1, Math.min(LEASE_WAIT_MS, view.untilMs - time)) };
    // Absent, a lease that ran out, or another item that reads as absent (a fenced
    // operation's claim, which then starts again): the lease is this caller's if the key is
    // still what was read.
    const lease = encodeLease(time + leaseMs);
    // NOTE: the lease ends at the time inside it; the item must outlive that. memcached counts
    // expiry in whole seconds from a clock it advances once a second, so an item given N
    // seconds may be gone after N - 1: a second more keeps the lease from ending early.
    const itemTtlMs = leaseMs + LEASE_ITEM_SLACK_MS;
    const taken =
      item === undefined
        ? await store.add(key, lease, FENCED_FLAGS, itemTtlMs, signal)
        : await store.cas(key, lease, FENCED_FLAGS, item.cas, itemTtlMs, signal);
    if (taken.outcome === 'STORED') return { kind: 'lease', token: taken.cas };
  }
  throw new AbortedError(`Get of key "${key}" lost the race for its lease ${MAX_ATTEMPTS} times; retry`);
}

/**
 * Stores `value` (plain, flags 0) in place of the lease `token`, if that lease is still in
 * the key and has not run out; else EXISTS, storing nothing, with what happened.
 */
export async function leaseSet(
  store: CacheStore,
  key: string,
  value: Buffer,
  ttlMs: number,
  token: bigint,
  now: () => number,
  signal: AbortSignal,
): Promise<LeaseWrite> {
  const refused = (why: string): LeaseWrite => ({
    outcome: 'EXISTS',
    cas: 0n,
    detail: `lease ${token} on key "${key}" is no longer current: ${why}; the value was not stored`,
  });
  // NOTE: the read is only for the reason and the lease's time: the compare-and-swap below is
  // what makes the check and the write one step, whatever happens in between.
  const item = await store.get(key, signal);
  const view = item === undefined ? undefined : decode(item);
  if (item === undefined || view === undefined)
    return refused('the key was deleted, or the lease ran out, since it was issued');
  if (item.cas !== token) {
    if (view.kind === 'lease') return refused("it ran out and another caller holds the key's lease now");
    return refused(
      view.kind === 'value' ? 'the key was written since the lease was issued' : 'another write is replacing it',
    );
  }
  if (view.kind !== 'lease') return refused('the token is the cas of a value, not a lease');
  if (now() >= view.untilMs) return refused('it ran out (lease_ms) before this Set');
  const written = await store.cas(key, value, 0, token, ttlMs, signal);
  if (written.outcome === 'STORED') return { outcome: 'STORED', cas: written.cas };
  return refused(
    written.outcome === 'NOT_FOUND'
      ? 'the key was deleted, or the lease ran out, as this Set arrived'
      : 'the key was written as this Set arrived',
  );
}
