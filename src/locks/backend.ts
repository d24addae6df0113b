// The lock backend interface. Every backend (memory.ts, file.ts, etcd.ts) implements it and
// passes the same contract suite (test/contract/lock-backend.ts).

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
}

export interface Lease {
  readonly name: string;
  /** Opaque to clients; carries whatever the backend needs to find the lease again. */
  readonly leaseId: string;
  readonly fencingToken: bigint;
  readonly expiresAtMs: number;
  readonly ttlMs: number;
  readonly owner: string;
}

export interface LockState {
  readonly held: boolean;
  readonly owner: string;
  readonly fencingToken: bigint;
  readonly expiresAtMs: number;
  readonly waiters: number;
}

export interface AcquireOptions {
  readonly name: string;
  /** Lease time-to-live, already validated (> 0). */
  readonly ttlMs: number;
  /** 0 = try once; > 0 = wait up to this long. */
  readonly waitMs: number;
  readonly owner: string;
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
  /** Resolves with a lease, or rejects with LockBusyError (not granted in time). */
  acquire(options: AcquireOptions): Promise<Lease>;
  /** Extends the lease to now + ttlMs (ttlMs 0 = its current TTL). */
  refresh(ref: LeaseRef, ttlMs: number): Promise<Lease>;
  /** Rejects with NotHolderError / LeaseExpiredError, leaving the holder untouched. */
  release(ref: LeaseRef): Promise<void>;
  describe(name: string, signal: AbortSignal): Promise<LockState>;
  /** Fails every waiter with ShuttingDownError and frees the backend's resources. */
  close(): Promise<void>;
}
