// The keys of one store as callers see them. A store item is a value, a fenced value, a
// tombstone or a claim (fencing.ts has the format); Keyspace turns them into memcached's
// semantics for every operation, with and without a fence, the same way on every store:
//
// - A key deleted with a fence is absent for every operation, as for memcached itself (a
//   plain memcached client may Add it). Its fence lives on in the tombstone, under its own key
//   (tombstoneKey), for the tombstone retention; while the key is absent, fenced writes are
//   checked against it.
// - A fenced write to a present key is a compare-and-swap on the item it checked. A fenced
//   write to an absent key first claims the key (an item that reads as absent), then checks
//   the tombstone, then swaps the claim for its value: any fenced Delete in between must
//   claim the key too, so a tombstone cannot appear between the check and the write.
// - A fenced Delete claims the key (from that moment the key reads as absent: the delete has
//   happened), publishes the tombstone, and removes the claim.
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
import {
  AbortedError,
  BackendUnavailableError,
  FailedPreconditionError,
  LatchkeyError,
  throwIfAborted,
} from '../errors.js';
import { type Clock, systemClock } from '../clock.js';
import { checkFence, decode, encode, FENCED_FLAGS, type Fence, tombstoneKey } from './fencing.js';
import { addDelta, type CacheStore, type Item, notANumber, parseCounter } from './store.js';

export interface KeyspaceOptions {
  /**
   * How long a fenced Delete's tombstone keeps older fences out, in ms (> 0). See the
   * README's "Tombstones" for why it is at least the longest lease TTL.
   */
  readonly tombstoneRetentionMs: number;
  /** Times the waits for another operation's claim; default the system clock. */
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
 *   const keys = new Keyspace(store, { tombstoneRetentionMs: 86_400_000 });
 *   await keys.set('k', Buffer.from('v'), 0, { lock: 'l', backend: 'memory', token: 7n }, signal);
 *   await keys.delete('k', 0n, { lock: 'l', backend: 'memory', token: 8n }, signal); // 'DELETED'
 *   await keys.touch('k', 1000, signal); // 'NOT_FOUND': deleted is absent, for every operation
 */
export class Keyspace {
  readonly store: CacheStore;
  readonly #retentionMs: number;
  readonly #clock: Clock;

  constructor(store: CacheStore, options: KeyspaceOptions) {
    this.store = store;
    this.#retentionMs = options.tombstoneRetentionMs;
    this.#clock = options.clock ?? systemClock;
  }

  async get(key: string, signal: AbortSignal): Promise<{ value: Buffer; cas: bigint } | undefined> {
    const state = stateOf(await this.store.get(key, signal));
    return state.kind === 'value' ? { value: state.value, cas: state.item.cas } : undefined;
  }

  set(key: string, value: Buffer, ttlMs: number, fence: Fence | undefined, signal: AbortSignal): Promise<bigint> {
    if (fence === undefined) return this.store.set(key, value, 0, ttlMs, signal);
    return this.#fencedWrite(key, fence, ttlMs, signal, () => ({ write: value, result: (cas) => cas }));
  }

  /** EXISTS carries cas 0 on every store: the current cas is the Get's to give, with its value. */
  async cas(
    key: string,
    value: Buffer,
    cas: bigint,
    ttlMs: number,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<{ outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint }> {
    if (fence !== undefined) {
      type Result = { outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint };
      return this.#fencedWrite<Result>(key, fence, ttlMs, signal, (current) => {
        if (current === undefined) return { done: { outcome: 'NOT_FOUND', cas: 0n } };
        if (current.cas !== cas) return { done: { outcome: 'EXISTS', cas: 0n } };
        return { write: value, result: (newCas) => ({ outcome: 'STORED', cas: newCas }) };
      });
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const result = await this.store.cas(key, value, 0, cas, ttlMs, signal);
      if (result.outcome !== 'EXISTS') return result;
      // The store also answers EXISTS for an item that reads as absent.
      const state = stateOf(await this.store.get(key, signal));
      if (state.kind !== 'value') return { outcome: 'NOT_FOUND', cas: 0n };
      if (state.item.cas !== cas) return { outcome: 'EXISTS', cas: 0n };
    }
    throw lostRace(key);
  }

  async add(
    key: string,
    value: Buffer,
    ttlMs: number,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<{ outcome: 'STORED' | 'EXISTS'; cas: bigint }> {
    if (fence !== undefined) {
      type Result = { outcome: 'STORED' | 'EXISTS'; cas: bigint };
      return this.#fencedWrite<Result>(key, fence, ttlMs, signal, (current) =>
        current !== undefined
          ? { done: { outcome: 'EXISTS', cas: 0n } }
          : { write: value, result: (cas) => ({ outcome: 'STORED', cas }) },
      );
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const added = await this.store.add(key, value, 0, ttlMs, signal);
      if (added.outcome === 'STORED') return added;
      const state = stateOf(await this.store.get(key, signal));
      if (state.kind === 'value') return { outcome: 'EXISTS', cas: 0n };
      if (state.kind === 'hidden') {
        const replaced = await this.store.cas(key, value, 0, state.item.cas, ttlMs, signal);
        if (replaced.outcome === 'STORED') return { outcome: 'STORED', cas: replaced.cas };
      }
    }
    throw lostRace(key);
  }

  async delete(
    key: string,
    cas: bigint,
    fence: Fence | undefined,
    signal: AbortSignal,
  ): Promise<'DELETED' | 'NOT_FOUND' | 'EXISTS'> {
    if (fence !== undefined) return this.#fencedDelete(key, cas, fence, signal);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // NOTE: the tombstone goes before the key is read. A fenced Delete that claims the key
      // after this publishes its tombstone after it, so a later fenced Delete's tombstone is
      // never lifted by an earlier Delete without a fence.
      if (cas === 0n) await this.#lift(key, signal);
      const state = stateOf(await this.store.get(key, signal));
      if (state.kind !== 'value') return 'NOT_FOUND';
      if (cas !== 0n) {
        if (state.item.cas !== cas) return 'EXISTS';
        await this.#lift(key, signal);
      }
      if ((await this.store.delete(key, state.item.cas, signal)) === 'DELETED') return 'DELETED';
    }
    throw lostRace(key);
  }

  /**
   * Incr without a fence. On a fenced value it keeps the fence and takes `ttlMs` as its new
   * expiry, as a new key would: the value is rewritten, and memcached has no way to tell the
   * expiry an item already has.
   */
  async incr(
    key: string,
    delta: bigint,
    initial: bigint,
    ttlMs: number,
    signal: AbortSignal,
  ): Promise<{ value: bigint; cas: bigint }> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        return await this.store.incr(key, delta, initial, ttlMs, signal);
      } catch (err) {
        if (!(err instanceof FailedPreconditionError)) throw err;
      }
      // Not a number to the store: a claim or tombstone (absent), a fenced value, or a plain
      // value that is really not a number.
      const state = stateOf(await this.store.get(key, signal));
      if (state.kind === 'hidden') {
        const created = await this.store.cas(key, Buffer.from(initial.toString()), 0, state.item.cas, ttlMs, signal);
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
      const written = await this.store.cas(key, bytes, FENCED_FLAGS, state.item.cas, ttlMs, signal);
      if (written.outcome === 'STORED') return { value, cas: written.cas };
    }
    throw lostRace(key);
  }

  async touch(key: string, ttlMs: number, signal: AbortSignal): Promise<'TOUCHED' | 'NOT_FOUND'> {
    // NOTE: touching a claim moves the claim's expiry, harmlessly: touch keeps its cas, so the
    // operation that holds it completes as if nothing happened.
    const touched = await this.store.touch(key, ttlMs, signal);
    return stateOf(touched).kind === 'value' ? 'TOUCHED' : 'NOT_FOUND';
  }

  /**
   * Set, Cas and Add with a fence: `decide` says, from the current value (undefined when the
   * key is absent), what to answer without writing, or what to write.
   */
  async #fencedWrite<R>(
    key: string,
    fence: Fence,
    ttlMs: number,
    signal: AbortSignal,
    decide: (current: { value: Buffer; cas: bigint } | undefined) => Step<R>,
  ): Promise<R> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await this.#settle(key, signal);
      if (state.kind === 'value') {
        checkFence(key, state.fence, fence);
        const step = decide({ value: state.value, cas: state.item.cas });
        if ('done' in step) return step.done;
        const bytes = encode(fence, 'value', step.write);
        const written = await this.store.cas(key, bytes, FENCED_FLAGS, state.item.cas, ttlMs, signal);
        if (written.outcome === 'STORED') return step.result(written.cas);
        continue; // another write landed since the read
      }
      // Absent: the fence to check is the tombstone's.
      const step = decide(undefined);
      if ('done' in step) {
        checkFence(key, (await this.#tombstone(key, signal)).fence, fence);
        return step.done;
      }
      const claim = await this.#claim(key, fence, state, signal);
      if (claim === undefined) continue;
      let written = false;
      try {
        checkFence(key, (await this.#tombstone(key, signal)).fence, fence);
        const bytes = encode(fence, 'value', step.write);
        const result = await this.store.cas(key, bytes, FENCED_FLAGS, claim, ttlMs, signal);
        if (result.outcome === 'STORED') {
          written = true;
          return step.result(result.cas);
        }
        // The claim was written over (a write without a fence) or expired: start again.
      } finally {
        if (!written) await this.#release(key, claim, signal);
      }
    }
    throw lostRace(key);
  }

  async #fencedDelete(key: string, cas: bigint, fence: Fence, signal: AbortSignal) {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await this.#settle(key, signal);
      if (state.kind === 'value') {
        checkFence(key, state.fence, fence);
        if (cas !== 0n && state.item.cas !== cas) return 'EXISTS' as const;
      }
      const claim = await this.#claim(key, fence, state, signal);
      if (claim === undefined) continue;
      // From here the key reads as absent: the delete has happened. What is left is to make
      // it last, with a tombstone even where nothing was (the fence must outlive the value).
      try {
        if (state.kind === 'value') {
          // The value carried the key's fence: a tombstone from before it is out of date.
          await this.#publish(key, fence, signal);
          return 'DELETED' as const;
        }
        const tombstone = await this.#tombstone(key, signal);
        checkFence(key, tombstone.fence, fence);
        await this.#publish(key, fence, signal, tombstone);
        return 'NOT_FOUND' as const;
      } finally {
        await this.#release(key, claim, signal);
      }
    }
    throw lostRace(key);
  }

  /**
   * Reads the key for a fenced operation. A claim means another fenced operation is between
   * its read and its write: wait for it to finish (a few round trips), unless the same claim
   * outlives CLAIM_WAIT_MS, when it is taken over as absent.
   */
  async #settle(key: string, signal: AbortSignal): Promise<State> {
    let seen: bigint | undefined;
    let seenSince = 0;
    const started = this.#clock.now();
    for (let pauseMs = 1; ; pauseMs = Math.min(pauseMs * 2, 50)) {
      const state = stateOf(await this.store.get(key, signal));
      if (state.kind !== 'hidden' || !state.claim) return state;
      const now = this.#clock.now();
      if (state.item.cas !== seen) [seen, seenSince] = [state.item.cas, now];
      else if (now - seenSince >= CLAIM_WAIT_MS) return state;
      if (now - started >= 2 * CLAIM_WAIT_MS)
        throw new AbortedError(`key "${key}" stayed busy with other fenced writes for ${2 * CLAIM_WAIT_MS} ms; retry`);
      await sleep(this.#clock, pauseMs, signal);
      throwIfAborted(signal);
    }
  }

  /** Puts a claim in the key in place of what `state` read; its cas, or undefined if the key changed. */
  async #claim(key: string, fence: Fence, state: State, signal: AbortSignal): Promise<bigint | undefined> {
    const bytes = encode(fence, 'claim');
    const result =
      state.kind === 'absent'
        ? await this.store.add(key, bytes, FENCED_FLAGS, CLAIM_TTL_MS, signal)
        : await this.store.cas(key, bytes, FENCED_FLAGS, state.item.cas, CLAIM_TTL_MS, signal);
    return result.outcome === 'STORED' ? result.cas : undefined;
  }

  /**
   * Removes a claim if it is still there. NOTE: a store error here is not the operation's:
   * its outcome does not depend on the claim's removal, and a claim left behind reads as
   * absent and expires after CLAIM_TTL_MS.
   */
  async #release(key: string, claim: bigint, signal: AbortSignal): Promise<void> {
    try {
      await this.store.delete(key, claim, signal);
    } catch (err) {
      if (!(err instanceof LatchkeyError)) throw err;
    }
  }

  /**
   * Removes the key's tombstone for a Delete without a fence. NOTE: the tombstone may live on
   * another memcached server than the key. If that server is down, the delete goes on: a
   * tombstone left in place only refuses some fenced writes until it expires, and a fenced
   * write to the absent key could not be checked against it anyway while its server is down.
   */
  async #lift(key: string, signal: AbortSignal): Promise<void> {
    try {
      await this.store.delete(tombstoneKey(key), 0n, signal);
    } catch (err) {
      if (!(err instanceof BackendUnavailableError)) throw err;
    }
  }

  async #tombstone(key: string, signal: AbortSignal): Promise<{ item: Item | undefined; fence: Fence | undefined }> {
    const item = await this.store.get(tombstoneKey(key), signal);
    const view = item === undefined ? undefined : decode(item);
    return { item, fence: view?.kind === 'tombstone' ? view.fence : undefined };
  }

  /**
   * Writes the key's tombstone with `fence`, for the retention, over whatever tombstone is
   * there (`known`: as just read), except a newer one of the same lock.
   */
  async #publish(key: string, fence: Fence, signal: AbortSignal, known?: { item: Item | undefined }): Promise<void> {
    const tombstone = tombstoneKey(key);
    const bytes = encode(fence, 'tombstone');
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const item = attempt === 0 && known !== undefined ? known.item : await this.store.get(tombstone, signal);
      const view = item === undefined ? undefined : decode(item);
      const last = view?.kind === 'tombstone' ? view.fence : undefined;
      if (last?.lock === fence.lock && last.backend === fence.backend && last.token > fence.token) return;
      const written =
        item === undefined
          ? await this.store.add(tombstone, bytes, FENCED_FLAGS, this.#retentionMs, signal)
          : await this.store.cas(tombstone, bytes, FENCED_FLAGS, item.cas, this.#retentionMs, signal);
      if (written.outcome === 'STORED') return;
    }
    throw lostRace(key);
  }
}
