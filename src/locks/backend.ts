// The lock backend interface. Every backend (memory.ts, file.ts, etcd/) implements it and
// passes the same contract suite (test/locks/contract.ts).

/**
 * What a backend guarantees, declared rather than inferred. Describe returns it, the
 * README's capability matrix is generated from it, and the contract suite skips (loudly)
 * the checks of a guarantee a backend does not declare.
 */
export interface Capabilities {
  /** Mutual exclusion holds across latchkey servers on different hosts. */
  readonly acrossHosts: boolean;
  /** Fencing tokens strictly increase per lock name. */
  readonly fencing: boolean;
  /** Waiters are granted in arrival order. */
  readonly fifo: boolean;
  /** A lease that is not refreshed is released when its TTL runs out. */
  readonly autoRelease: boolean;
  /** Acquire with limit > 1: up to `limit` exclusive holders at once. */
  readonly semaphore: boolean;
  /** Acquire in SHARED mode (read locks). */
  readonly shared: boolean;
  /** watch(): a stream of the lock's events. */
  readonly watch: boolean;
}

export type LockMode = 'EXCLUSIVE' | 'SHARED';

export interface HolderInfo {
  readonly owner: string;
  readonly fencingToken: bigint;
  readonly expiresAtMs: number;
  readonly mode: LockMode;
}

export interface WaiterInfo {
  readonly owner: string;
  readonly mode: LockMode;
}

export type LockEventType = 'STATE' | 'ACQUIRED' | 'RELEASED' | 'EXPIRED' | 'WAITER_ADDED' | 'WAITER_LEFT';

export interface LockEvent {
  readonly type: LockEventType;
  readonly name: string;
  /** The holder or waiter the event is about ('' for STATE). */
  readonly owner: string;
  readonly fencingToken: bigint;
  readonly mode: LockMode;
  readonly atMs: number;
  /** Only on STATE. */
  readonly state?: LockState;
}

export interface Lease {
  readonly name: string;
  /** Opaque to clients; carries whatever the backend needs to find the lease again. */
  readonly leaseId: string;
  readonly fencingToken: bigint;
  readonly expiresAtMs: number;
  readonly ttlMs: number;
  readonly owner: string;
  readonly mode: LockMode;
  /** 1 for a plain lock. */
  readonly limit: number;
}

export interface LockState {
  readonly held: boolean;
  /** The first holder's (oldest grant); '' / 0 when free. */
  readonly owner: string;
  readonly fencingToken: bigint;
  readonly expiresAtMs: number;
  readonly waiters: number;
  /** Every holder, oldest grant first. */
  readonly holders: readonly HolderInfo[];
  /** Waiters in the order they will be served. */
  readonly queue: readonly WaiterInfo[];
  /** The semaphore limit in force (1 for a plain lock; 0 when nobody holds or waits). */
  readonly limit: number;
}

/** One acquire, validated by the service (locks/service.ts) before a backend sees it. */
export interface AcquireOptions {
  readonly name: string;
  /**
   * Lease time-to-live in ms, > 0 (the service resolves 0 to --default-ttl-ms). A backend may round
   * it up (etcd: whole seconds).
   */
  readonly ttlMs: number;
  /** In ms: 0 = try once (LockBusyError if not free at once); > 0 = wait up to this long. */
  readonly waitMs: number;
  /** '' when the caller gave none and the service had no peer address either. */
  readonly owner: string;
  /** EXCLUSIVE unless the backend declares `shared`. */
  readonly mode: LockMode;
  /** 1 for a plain lock (and always with SHARED); > 1 only if the backend declares `semaphore`. */
  readonly limit: number;
  /** Aborted when the caller goes away or its deadline passes; the waiter must leave. */
  readonly signal: AbortSignal;
}

export interface LeaseRef {
  readonly name: string;
  readonly leaseId: string;
  readonly signal: AbortSignal;
}

export interface LockBackend {
  readonly kind: string;
  readonly capabilities: Capabilities;
  /**
   * Where its locks live, for messages that must say what cannot be reached: "etcd at
   * 10.0.0.1:2379,10.0.0.2:2379", "lock dir /var/lock/latchkey". Absent: in this process.
   */
  readonly location?: string;
  /** Resolves with a lease, or rejects with LockBusyError (not granted in time). */
  acquire(options: AcquireOptions): Promise<Lease>;
  /** Extends the lease to now + ttlMs (in ms; 0 = its current TTL). */
  refresh(ref: LeaseRef, ttlMs: number): Promise<Lease>;
  /** Rejects with NotHolderError / LeaseExpiredError, leaving the holder untouched. */
  release(ref: LeaseRef): Promise<void>;
  describe(name: string, signal: AbortSignal): Promise<LockState>;
  /**
   * The lock's events, starting with one STATE event, until `signal` aborts or the backend
   * closes (the iteration then ends). Only for backends that declare `watch`.
   */
  watch?(name: string, signal: AbortSignal): AsyncIterable<LockEvent>;
  /** Fails every waiter with ShuttingDownError and frees the backend's resources. */
  close(): Promise<void>;
}

/**
 * Told when a lease runs out of TTL without a release, once per lease, as its lock is freed
 * (before the next holder is granted it). Given in the options of the backends that enforce
 * TTLs themselves (memory, file: `onExpire`); the server counts and logs expiries with it.
 * Must not throw. Not part of LockBackend: etcd expires leases inside etcd, and nobody is
 * told of a lease that is never refreshed or released again.
 */
export type ExpiryListener = (lease: Lease) => void;
