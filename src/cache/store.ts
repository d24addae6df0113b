// The cache store interface: memcached semantics, whatever the store. Every store (lru.ts,
// memcached.ts) implements it, and cache.ts builds latchkey's semantics (fenced writes,
// tombstones) on it, the same way for every store; the contract suite (test/cache/contract.ts)
// holds them all to the same rules. Keys and values arrive already validated.
//
// `groupKey` (get, add, cas, delete: the operations on a tombstone): the key whose place the
// item takes, instead of its own, where a store has more than one place. memcached puts it on
// groupKey's server, as libmemcached's *_by_key calls do with their group key; the LRU store
// has one place and ignores it.
import { FailedPreconditionError } from '../errors.js';

export type Outcome = 'STORED' | 'EXISTS' | 'NOT_FOUND' | 'DELETED' | 'TOUCHED';

export interface Item {
  readonly value: Buffer;
  /** memcached's 32-bit client flags, stored with the value (see fencing.ts for their use). */
  readonly flags: number;
  /** Changes on every write of the key; never 0. */
  readonly cas: bigint;
}

export interface CacheStore {
  readonly kind: string;
  /**
   * Its operations run in this process without waiting on I/O and never look at their
   * AbortSignal (the LRU store). The service then hands an unfenced operation a signal that
   * never aborts instead of the call's, which it then need not make (see createCallContext).
   * Default false.
   */
  readonly inProcess?: boolean;
  /** undefined = miss (absent or expired). */
  get(key: string, signal: AbortSignal, groupKey?: string): Promise<Item | undefined>;
  /** ttlMs 0 = no expiry. Returns the new cas. */
  set(key: string, value: Buffer, flags: number, ttlMs: number, signal: AbortSignal): Promise<bigint>;
  /** STORED (with the new cas), EXISTS (cas differs; cas 0) or NOT_FOUND (cas 0). */
  cas(
    key: string,
    value: Buffer,
    flags: number,
    cas: bigint,
    ttlMs: number,
    signal: AbortSignal,
    groupKey?: string,
  ): Promise<{ outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint }>;
  /** STORED only if absent, else EXISTS (cas 0). */
  add(
    key: string,
    value: Buffer,
    flags: number,
    ttlMs: number,
    signal: AbortSignal,
    groupKey?: string,
  ): Promise<{ outcome: 'STORED' | 'EXISTS'; cas: bigint }>;
  /** cas 0n = unconditional. DELETED, NOT_FOUND, or EXISTS when the cas does not match. */
  delete(key: string, cas: bigint, signal: AbortSignal, groupKey?: string): Promise<'DELETED' | 'NOT_FOUND' | 'EXISTS'>;
  /**
   * Adds delta to the decimal value: unsigned 64-bit, wrapping on overflow; a negative delta
   * stops at 0 (memcached decr). Absent key: stored as `initial` (delta not applied) with
   * ttlMs. A value that is not a decimal number fits in 64 bits → FailedPreconditionError.
   */
  incr(
    key: string,
    delta: bigint,
    initial: bigint,
    ttlMs: number,
    signal: AbortSignal,
  ): Promise<{ value: bigint; cas: bigint }>;
  /** New expiry, same value and cas. Returns the item touched; undefined = NOT_FOUND. */
  touch(key: string, ttlMs: number, signal: AbortSignal): Promise<Item | undefined>;
  close(): Promise<void>;
}

const UINT64 = 2n ** 64n;
const DECIMAL = /^\d{1,20}$/;

/** A counter's value: decimal digits below 2^64, else undefined. */
export function parseCounter(value: Buffer): bigint | undefined {
  const text = value.toString('latin1');
  if (!DECIMAL.test(text)) return undefined;
  const n = BigInt(text);
  return n < UINT64 ? n : undefined;
}

/** memcached's arithmetic: incr wraps at 2^64, decr stops at 0. */
export function addDelta(value: bigint, delta: bigint): bigint {
  const sum = value + delta;
  return delta >= 0n ? sum % UINT64 : sum < 0n ? 0n : sum;
}

export function notANumber(key: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `key "${key}" holds a value that is not a decimal number below 2^64; incr needs one (reset it with set)`,
  );
}
