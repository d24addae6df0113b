// One store as clients see it: a Cache gives every client operation latchkey's semantics
// (fenced writes, tombstones) over a CacheStore, the same way on every store. A store item is
// a value, a fenced value, a tombstone or a claim (fencing.ts has the format). The service
// validates a request, picks the Cache of its store, and calls one method per operation; the
// metering decorator (metered-cache.ts) wraps this interface, so each operation a client asked
// for counts once, however many store round trips it took.
//
// - A key deleted with a fence is absent for every operation, as for memcached itself (a
//   plain memcached client may Add it). Its fence lives on in the tombstone, under its own key
//   (tombstoneKey) placed beside the key (on memcached, on the key's server), for the
//   tombstone retention; while the key is absent, fenced writes are checked against it.
// - A fenced write to a present key is a compare-and-swap on the item it checked. A fenced
//   write to an absent key first claims the key (an item that reads as absent), then checks
//   the tombstone, then swaps the claim for its value: any fenced Delete in between must
//   claim the key too, so a tombstone cannot appear between the check and the write.
// - A fenced Delete claims the key (from that moment the key reads as absent: the delete has
//   happened), publishes the tombstone, and removes the claim.
// - A lease (leases.ts) is an item in the key that reads as absent, like a claim: Get with a
//   lease takes it on a miss, Set with its token swaps it for the value, any write replaces it,
//   and an unconditional Delete removes it, so that its Set is refused.
// - A write without a fence replaces the value and its fence; Delete without a fence also
//   lifts the tombstone. Writes without a fence never wait for a claim: a claim reads as
//   absent, so they write over it, and the claiming operation finds its claim gone and starts
//   again (or, for a fenced Delete, is done).
//
// NOTE: claims serialize fenced operations only while they last (CLAIM_TTL_MS). A fenced
// write whose claim expired finds it gone and starts again. A fenced Delete stalled longer
// than that between its claim and its tombstone (a paused server process: store requests
// time out long before) leaves a gap in which an older fence can write the absent key; the
// Delete still answers as if it came first.
import { type Clock, systemClock } from '../clock.js';
import { AbortedError, FailedPreconditionError, LatchkeyError, throwIfAborted } from '../errors.js';
import { checkFence, decode, encode, FENCED_FLAGS, type Fence, tombstoneKey } from './fencing.js';
import { isLease, type LeaseRead, type LeaseWrite, leaseGet, leaseSet } from './leases.js';
import { addDelta, type CacheStore, type Item, notANumber, parseCounter } from './store.js';
import { RequestNotSentError } from '../errors.js';

export interface Cache {
  /** The store's name (CacheStore.kind). */
  readonly kind: string;
  /**
   * As CacheStore.inProcess: its operations never look at their signal, fenced writes
   * aside (they may pause for a competing claim).
   */
  readonly inProcess: boolean;
  /** undefined = miss: absent (also after a fenced delete) or expired. */
  get(key: string, signal: AbortSignal): Promise<{ value: Buffer; cas: bigint } | undefined>;
  /**
   * ttlMs 0 = no expiry. Returns the new cas. A fenced write a newer holder has overtaken →
   * FencedOutError.
   */
  set(key: string, value: Buffer, ttlMs: number, fence: Fence | undefined, signal: AbortSignal): Promise<bigint>;
  /**
   * STORED (with the new cas), EXISTS (cas differs) or NOT_FOUND (absent, expired or deleted).
   * EXISTS carries cas 0 on every store: the current cas is the Get's to give, with its value.
   */
  cas(
    key: string,
    value: Buffer,
    cas: bigint,
    ttlMs: number,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<{ outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint }>;
  /** STORED only if absent (also after a fenced delete), else EXISTS (cas 0). */
  add(
    key: string,
    value: Buffer,
    ttlMs: number,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<{ outcome: 'STORED' | 'EXISTS'; cas: bigint }>;
  /**
   * cas 0n = unconditional. DELETED, NOT_FOUND, or EXISTS when the cas does not match. With a
   * fence it leaves a tombstone (even where nothing was); without one it lifts the tombstone.
   */
  delete(
    key: string,
    cas: bigint,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<'DELETED' | 'NOT_FOUND' | 'EXISTS'>;
  /**
   * As CacheStore.incr. On a fenced value it keeps the fence and takes `ttlMs` as its new
   * expiry, as a new key would: the value is rewritten, and memcached has no way to tell the
   * expiry an item already has.
   */
  incr(
    key: string,
    delta: bigint,
    initial: bigint,
    ttlMs: number,
    signal: AbortSignal,
  ): Promise<{ value: bigint; cas: bigint }>;
  /** New expiry, same value and cas: TOUCHED or NOT_FOUND. */
  touch(key: string, ttlMs: number, signal: AbortSignal): Promise<'TOUCHED' | 'NOT_FOUND'>;
  /**
   * A Get that, on a miss, takes the key's lease for leaseMs (> 0) or answers a wait while
   * another caller holds it (leases.ts).
   */
  leaseGet(key: string, leaseMs: number, signal: AbortSignal): Promise<LeaseRead>;
  /** A Set with a lease token: stored only while that lease is current, else EXISTS with why. */
  leaseSet(key: string, value: Buffer, ttlMs: number, token: bigint, signal: AbortSignal): Promise<LeaseWrite>;
}

export interface CacheOptions {
  /**
   * How long a fenced Delete's tombstone keeps older fences out, in ms (> 0). See the
   * README's "Tombstones" for why it is at least the longest lease TTL.
   */
  readonly tombstoneRetentionMs: number;
  /** Times the waits for another operation's claim, and leases; default the system clock. */
  readonly clock?: Clock;
}

/**
 * How long a claim lives in the store, in ms. It only has to outlast the round trips of one
 * operation; one that takes longer finds its claim gone and starts again. memcached counts
 * whole seconds and may expire an item up to 1 s early, so this leaves it at least 4 s.
 */
export const CLAIM_TTL_MS = 5_000;
/**
 * How long a fenced operation waits for another's claim to go before it takes the claim over
 * (its owner stalled or died). Past the claim's own TTL, so a live owner has lost it anyway.
 */
const CLAIM_WAIT_MS = CLAIM_TTL_MS + 1_000;
/** How many times an operation starts again after losing a race before giving up. */
const MAX_ATTEMPTS = 64;

type State =
  | { readonly kind: 'absent' }
  | { readonly kind: 'value'; readonly item: Item; readonly value: Buffer; readonly fence: Fence | undefined }
  /** An item in the key that reads as absent: a claim, or a tombstone in the key itself. */
  | { readonly kind: 'hidden'; readonly item: Item; readonly claim: boolean };

type Step<R> = { readonly done: R } | { readonly write: Buffer; readonly result: (cas: bigint) => R };

function stateOf(item: Item | undefined): State {
  if (item === undefined) return { kind: 'absent' };
  const view = decode(item);
  return view.kind === 'value'
    ? { kind: 'value', item, value: view.value, fence: view.fence }
    : { kind: 'hidden', item, claim: view.kind === 'claim' };
}

const sleep = (clock: Clock, ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = clock.schedule(ms, done);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      timer.cancel();
      signal.removeEventListener('abort', done);
      resolve();
    }
  });

const lostRace = (key: string) =>
  new AbortedError(`operation on key "${key}" lost the race ${MAX_ATTEMPTS} times to concurrent writers; retry`);

/**
 * One store's keys with latchkey's semantics. Usage:
 *
 *   const cache = createCache(store, { tombstoneRetentionMs: 86_400_000 });
 *   await cache.set('k', Buffer.from('v'), 0, { lock: 'l', backend: 'memory', token: 7n }, signal);
 *   await cache.delete('k', 0n, { lock: 'l', backend: 'memory', token: 8n }, signal); // 'DELETED'
 *   await cache.touch('k', 1000, signal); // 'NOT_FOUND': deleted is absent, for every operation
 */
export function createCache(store: CacheStore, options: CacheOptions): Cache {
  const retentionMs = options.tombstoneRetentionMs;
  const clock = options.clock ?? systemClock;

  /**
   * Set, Cas and Add with a fence: `decide` says, from the current value (undefined when the
   * key is absent), what to answer without writing, or what to write.
   */
  async function fencedWrite<R>(
    key: string,
    fence: Fence,
    ttlMs: number,
    signal: AbortSignal,
    decide: (current: { value: Buffer; cas: bigint } | undefined) => Step<R>,
  ): Promise<R> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await settle(key, signal);
      if (state.kind === 'value') {
        checkFence(key, state.fence, fence);
        const step = decide({ value: state.value, cas: state.item.cas });
        if ('done' in step) return step.done;
        const bytes = encode(fence, 'value', step.write);
        const written = await store.cas(key, bytes, FENCED_FLAGS, state.item.cas, ttlMs, signal);
        if (written.outcome === 'STORED') return step.result(written.cas);
        continue; // another write landed since the read
      }
      // Absent: the fence to check is the tombstone's.
      const step = decide(undefined);
      if ('done' in step) {
        checkFence(key, (await readTombstone(key, signal)).fence, fence);
        return step.done;
      }
      const claimed = await claim(key, fence, state, signal);
      if (claimed === undefined) continue;
      let written = false;
      try {
        checkFence(key, (await readTombstone(key, signal)).fence, fence);
        const bytes = encode(fence, 'value', step.write);
        const result = await store.cas(key, bytes, FENCED_FLAGS, claimed, ttlMs, signal);
        if (result.outcome === 'STORED') {
          written = true;
          return step.result(result.cas);
        }
        // The claim was written over (a write without a fence) or expired: start again.
      } finally {
        if (!written) await release(key, claimed, signal);
      }
    }
    throw lostRace(key);
  }

  async function fencedDelete(key: string, cas: bigint, fence: Fence, signal: AbortSignal) {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await settle(key, signal);
      if (state.kind === 'value') {
        checkFence(key, state.fence, fence);
        if (cas !== 0n && state.item.cas !== cas) return 'EXISTS' as const;
      }
      const claimed = await claim(key, fence, state, signal);
      if (claimed === undefined) continue;
      // From here the key reads as absent: the delete has happened. What is left is to make
      // it last, with a tombstone even where nothing was (the fence must outlive the value).
      try {
        if (state.kind === 'value') {
          // The value carried the key's fence: a tombstone from before it is out of date.
          await publish(key, fence, signal);
          return 'DELETED' as const;
        }
        const tombstone = await readTombstone(key, signal);
        checkFence(key, tombstone.fence, fence);
        await publish(key, fence, signal, tombstone);
        return 'NOT_FOUND' as const;
      } finally {
        await release(key, claimed, signal);
      }
    }
    throw lostRace(key);
  }

  /**
   * Reads the key for a fenced operation. A claim means another fenced operation is between
   * its read and its write: wait for it to finish (a few round trips), unless the same claim
   * outlives CLAIM_WAIT_MS, when it is taken over as absent.
   */
  async function settle(key: string, signal: AbortSignal): Promise<State> {
    let seen: bigint | undefined;
    let seenSince = 0;
    const started = clock.now();
    for (let pauseMs = 1; ; pauseMs = Math.min(pauseMs * 2, 50)) {
      const state = stateOf(await store.get(key, signal));
      if (state.kind !== 'hidden' || !state.claim) return state;
      const now = clock.now();
      if (state.item.cas !== seen) [seen, seenSince] = [state.item.cas, now];
      else if (now - seenSince >= CLAIM_WAIT_MS) return state;
      if (now - started >= 2 * CLAIM_WAIT_MS)
        throw new AbortedError(`key "${key}" stayed busy with other fenced writes for ${2 * CLAIM_WAIT_MS} ms; retry`);
      await sleep(clock, pauseMs, signal);
      throwIfAborted(signal);
    }
  }

  /** Puts a claim in the key in place of what `state` read; its cas, or undefined if the key changed. */
  async function claim(key: string, fence: Fence, state: State, signal: AbortSignal): Promise<bigint | undefined> {
    const bytes = encode(fence, 'claim');
    const result =
      state.kind === 'absent'
        ? await store.add(key, bytes, FENCED_FLAGS, CLAIM_TTL_MS, signal)
        : await store.cas(key, bytes, FENCED_FLAGS, state.item.cas, CLAIM_TTL_MS, signal);
    return result.outcome === 'STORED' ? result.cas : undefined;
  }

  /**
   * Removes a claim if it is still there. NOTE: a store error here is not the operation's:
   * its outcome does not depend on the claim's removal, and a claim left behind reads as
   * absent and expires after CLAIM_TTL_MS.
   */
  async function release(key: string, claimed: bigint, signal: AbortSignal): Promise<void> {
    try {
      await store.delete(key, claimed, signal);
    } catch (err) {
      if (!(err instanceof LatchkeyError)) throw err;
    }
  }

  // The tombstone's store calls. NOTE: each passes the key as the tombstone's group key, so a
  // memcached pool keeps a key and its tombstone on one server: an operation on the key then
  // never depends on a second server, and the two move together when the pool changes (placed
  // by its own name, a tombstone could move to a new server, and be lost, while its key stays).

  /**
   * Removes the key's tombstone, for a Delete without a fence: reads it, and deletes the item it
   * read (a tombstone published since is a later fenced Delete's, and stays, as it would after
   * an unconditional delete at the read). NOTE: a read first, so that a key without a
   * tombstone costs no second write: memcached then executes one delete per Delete. This is a
   * plain Delete's first request, or comes after reads only, so a request of it that never
   * reached the server means the Delete was not sent, and its error says so.
   */
  async function lift(key: string, signal: AbortSignal): Promise<void> {
    const tombstone = tombstoneKey(key);
    try {
      const item = await store.get(tombstone, signal, key);
      if (item !== undefined) await store.delete(tombstone, item.cas, signal, key);
    } catch (err) {
      if (!(err instanceof RequestNotSentError)) throw err;
      throw RequestNotSentError.of(err.server, err.reason, `the delete of key "${key}"`, { cause: err });
    }
  }

  async function readTombstone(
    key: string,
    signal: AbortSignal,
  ): Promise<{ item: Item | undefined; fence: Fence | undefined }> {
    const item = await store.get(tombstoneKey(key), signal, key);
    const view = item === undefined ? undefined : decode(item);
    return { item, fence: view?.kind === 'tombstone' ? view.fence : undefined };
  }

  /**
   * Writes the key's tombstone with `fence`, for the retention, over whatever tombstone is
   * there (`known`: as just read), except a newer one of the same lock.
   */
  async function publish(
    key: string,
    fence: Fence,
    signal: AbortSignal,
    known?: { item: Item | undefined },
  ): Promise<void> {
    const tombstone = tombstoneKey(key);
    const bytes = encode(fence, 'tombstone');
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const item = attempt === 0 && known !== undefined ? known.item : await store.get(tombstone, signal, key);
      const view = item === undefined ? undefined : decode(item);
      const last = view?.kind === 'tombstone' ? view.fence : undefined;
      if (last?.lock === fence.lock && last.backend === fence.backend && last.token > fence.token) return;
      const written =
        item === undefined
          ? await store.add(tombstone, bytes, FENCED_FLAGS, retentionMs, signal, key)
          : await store.cas(tombstone, bytes, FENCED_FLAGS, item.cas, retentionMs, signal, key);
      if (written.outcome === 'STORED') return;
    }
    throw lostRace(key);
  }

  return {
    kind: store.kind,
    inProcess: store.inProcess === true,

    async get(key, signal) {
      const state = stateOf(await store.get(key, signal));
      return state.kind === 'value' ? { value: state.value, cas: state.item.cas } : undefined;
    },

    set(key, value, ttlMs, fence, signal) {
      if (fence === undefined) return store.set(key, value, 0, ttlMs, signal);
      return fencedWrite(key, fence, ttlMs, signal, () => ({ write: value, result: (cas) => cas }));
    },

    async cas(key, value, cas, ttlMs, fence, signal) {
      if (fence !== undefined) {
        type Result = { outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint };
        return fencedWrite<Result>(key, fence, ttlMs, signal, (current) => {
          if (current === undefined) return { done: { outcome: 'NOT_FOUND', cas: 0n } };
          if (current.cas !== cas) return { done: { outcome: 'EXISTS', cas: 0n } };
          return { write: value, result: (newCas) => ({ outcome: 'STORED', cas: newCas }) };
        });
      }
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const result = await store.cas(key, value, 0, cas, ttlMs, signal);
        if (result.outcome !== 'EXISTS') return result;
        // The store also answers EXISTS for an item that reads as absent.
        const state = stateOf(await store.get(key, signal));
        if (state.kind !== 'value') return { outcome: 'NOT_FOUND', cas: 0n };
        if (state.item.cas !== cas) return { outcome: 'EXISTS', cas: 0n };
      }
      throw lostRace(key);
    },

    async add(key, value, ttlMs, fence, signal) {
      if (fence !== undefined) {
        type Result = { outcome: 'STORED' | 'EXISTS'; cas: bigint };
        return fencedWrite<Result>(key, fence, ttlMs, signal, (current) =>
          current !== undefined
            ? { done: { outcome: 'EXISTS', cas: 0n } }
            : { write: value, result: (cas) => ({ outcome: 'STORED', cas }) },
        );
      }
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const added = await store.add(key, value, 0, ttlMs, signal);
        if (added.outcome === 'STORED') return added;
        const state = stateOf(await store.get(key, signal));
        if (state.kind === 'value') return { outcome: 'EXISTS', cas: 0n };
        if (state.kind === 'hidden') {
          const replaced = await store.cas(key, value, 0, state.item.cas, ttlMs, signal);
          if (replaced.outcome === 'STORED') return { outcome: 'STORED', cas: replaced.cas };
        }
      }
      throw lostRace(key);
    },

    async delete(key, cas, fence, signal) {
      if (fence !== undefined) return fencedDelete(key, cas, fence, signal);
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        // NOTE: the tombstone goes before the key is read. A fenced Delete that claims the key
        // after this publishes its tombstone after it, so a later fenced Delete's tombstone is
        // never lifted by an earlier Delete without a fence.
        if (cas === 0n) await lift(key, signal);
        const state = stateOf(await store.get(key, signal));
        if (state.kind !== 'value') {
          // The key has no value, but a lease in it would still let a value loaded before
          // this Delete be stored after it: end the lease (its Set is then refused). With the
          // lease's token as cas, this is its holder giving it up.
          if (state.kind === 'hidden' && (cas === 0n || cas === state.item.cas) && isLease(state.item))
            await store.delete(key, state.item.cas, signal);
          return 'NOT_FOUND';
        }
        if (cas !== 0n) {
          if (state.item.cas !== cas) return 'EXISTS';
          await lift(key, signal);
        }
        if ((await store.delete(key, state.item.cas, signal)) === 'DELETED') return 'DELETED';
      }
      throw lostRace(key);
    },

    async incr(key, delta, initial, ttlMs, signal) {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        try {
          return await store.incr(key, delta, initial, ttlMs, signal);
        } catch (err) {
          if (!(err instanceof FailedPreconditionError)) throw err;
        }
        // Not a number to the store: a claim or tombstone (absent), a fenced value, or a plain
        // value that is really not a number.
        const state = stateOf(await store.get(key, signal));
        if (state.kind === 'hidden') {
          const created = await store.cas(key, Buffer.from(initial.toString()), 0, state.item.cas, ttlMs, signal);
          if (created.outcome === 'STORED') return { value: initial, cas: created.cas };
          continue;
        }
        if (state.kind === 'absent') continue;
        const current = parseCounter(state.value);
        if (state.fence === undefined) {
          if (current === undefined) throw notANumber(key);
          continue; // it became a number since the store refused it
        }
        if (current === undefined) throw notANumber(key);
        const value = addDelta(current, delta);
        const bytes = encode(state.fence, 'value', Buffer.from(value.toString()));
        const written = await store.cas(key, bytes, FENCED_FLAGS, state.item.cas, ttlMs, signal);
        if (written.outcome === 'STORED') return { value, cas: written.cas };
      }
      throw lostRace(key);
    },

    async touch(key, ttlMs, signal) {
      // NOTE: touching a claim moves the claim's expiry, harmlessly: touch keeps its cas, so the
      // operation that holds it completes as if nothing happened.
      // So does touching a lease: the time it runs out is in the lease itself, not its TTL.
      const touched = await store.touch(key, ttlMs, signal);
      return stateOf(touched).kind === 'value' ? 'TOUCHED' : 'NOT_FOUND';
    },

    leaseGet(key, leaseMs, signal) {
      return leaseGet(store, key, leaseMs, () => clock.now(), signal);
    },

    leaseSet(key, value, ttlMs, token, signal) {
      return leaseSet(store, key, value, ttlMs, token, () => clock.now(), signal);
    },
  };
}
