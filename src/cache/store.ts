// The cache store interface: memcached semantics, whatever the store. Every store (lru.ts,
// memcached.ts) implements it and passes the same contract suite
// (test/cache/contract.ts). Keys and values arrive already validated.

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
  /** undefined = miss (absent or expired). */
  get(key: string, signal: AbortSignal): Promise<Item | undefined>;
  /** ttlMs 0 = no expiry. Returns the new cas. */
  set(key: string, value: Buffer, flags: number, ttlMs: number, signal: AbortSignal): Promise<bigint>;
  /** STORED (with the new cas), EXISTS (cas differs) or NOT_FOUND. */
  cas(
    key: string,
    value: Buffer,
    flags: number,
    cas: bigint,
    ttlMs: number,
    signal: AbortSignal,
  ): Promise<{ outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint }>;
  /** STORED only if absent, else EXISTS. */
  add(
    key: string,
    value: Buffer,
    flags: number,
    ttlMs: number,
    signal: AbortSignal,
  ): Promise<{ outcome: 'STORED' | 'EXISTS'; cas: bigint }>;
  /** cas 0n = unconditional. DELETED, NOT_FOUND, or EXISTS when the cas does not match. */
  delete(key: string, cas: bigint, signal: AbortSignal): Promise<'DELETED' | 'NOT_FOUND' | 'EXISTS'>;
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
  /** New expiry, same value and cas: TOUCHED or NOT_FOUND. */
  touch(key: string, ttlMs: number, signal: AbortSignal): Promise<'TOUCHED' | 'NOT_FOUND'>;
  close(): Promise<void>;
}
