// The lock backend interface. Every backend (memory.ts, file.ts, etcd/) implements it and
// passes the same contract suite (test/locks/contract.ts).
import type { ElectionBackend } from './election.js';

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
  /**
   * openSession() / resumeSession(): many locks on one session lease, kept alive at once.
   * A session resumes through any server on the same backend only where `acrossHosts` holds
   * too; otherwise only through the server that opened it.
   * Absent = false: memory, file and etcd declare it; a backend embedded through
   * ServerOptions.lockBackends may leave it out.
   */
  readonly sessions?: boolean;
  /**
   * `elections` (election.ts): leader election on the backend's sessions, FIFO among
   * candidates, fenced like locks. A backend declaring it has `elections`.
   */
  readonly elections: boolean;
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

/** acquire() in a session: every AcquireOptions field but ttlMs (the session's lease is the lock's). */
export type SessionAcquireOptions = Omit<AcquireOptions, 'ttlMs'>;

export interface SessionOptions {
  /** The session lease's time-to-live in ms, already validated (> 0). */
  readonly ttlMs: number;
  /** Aborted when the caller goes away before the session is open. */
  readonly signal: AbortSignal;
}

/**
 * live: can be kept alive. lost: the session can no longer vouch for all its locks (a file
 * lock taken over, or one of its locks released through Locks/Release with its lease id); it
 * can no longer be kept alive, but its other locks stay until its expiry, so that no one gets
 * them before the holder could know. expired: its TTL ran out and its locks were freed. ended:
 * end() released everything.
 */
export type SessionState = 'live' | 'lost' | 'expired' | 'ended';

/** A session's lease as keepAlive() renewed it. */
export interface SessionLeaseInfo {
  readonly ttlMs: number;
  readonly expiresAtMs: number;
}

/**
 * One session lease owning many locks (etcd's concurrency.Session): every lock acquired
 * through it lives exactly as long as the session, one keepAlive() renews them all, end()
 * releases them all at once, and expiry frees them all (each reported as an expiry, as a
 * lease's would be). Fencing, FIFO order, semaphores, shared locks and watch behave as for
 * unary acquires. A session holds a name at most once: asking again for a name it holds or
 * waits for is refused with FailedPreconditionError. The backend owns the object; the server
 * attaches streams to it and detaches them, which changes nothing in the session.
 *
 * @example
 * const session = await backend.openSession!({ ttlMs: 10_000, signal });
 * const lease = await session.acquire({ name: 'jobs/1', waitMs: 0, owner, mode: 'EXCLUSIVE', limit: 1, signal });
 * await session.keepAlive(signal); // renews jobs/1 and every other lock of the session
 * await session.end(); // releases them all
 */
export interface LockSession {
  /** Opaque and secret: `<backend kind>.<...>`; whoever has it can resume the session. */
  readonly id: string;
  /** A public name for logs and records (never the id, which is a capability). */
  readonly ref: string;
  readonly ttlMs: number;
  /** When the session (and every lock of it) expires unless kept alive. */
  readonly expiresAtMs: number;
  readonly state: SessionState;
  /** Aborted when the state leaves `live`; the reason says why (SessionExpiredError; ShuttingDownError at close). */
  readonly signal: AbortSignal;
  /** Locks held plus acquires waiting, across every stream of the session. */
  readonly lockCount: number;
  /** Like LockBackend.acquire, on the session's lease. Rejects with SessionExpiredError unless live. */
  acquire(options: SessionAcquireOptions): Promise<Lease>;
  /**
   * Releases one of the session's locks; NotHolderError for a lease that is not the session's.
   * (LockBackend.release of a session's lease releases it too, and loses the session.)
   */
  release(ref: LeaseRef): Promise<void>;
  /** Renews the session lease, and with it every lock of the session; SessionExpiredError unless live. */
  keepAlive(signal: AbortSignal): Promise<SessionLeaseInfo>;
  /** Fails the session's waiters, releases every lock at once and forgets the session. Idempotent. */
  end(): Promise<void>;
  /** The locks the session holds, oldest grant first, each with the session's expiry. */
  leases(): readonly Lease[];
  /**
   * Told when no stream of this server serves the session any more (a break, a half-close, a
   * stream-level mistake), until a resume here attaches one again; the session and its locks
   * stay. Only for a backend whose servers keep nothing of a session (etcd: the server may
   * forget its copy); memory and file ignore it (the session is theirs).
   */
  detach?(): void;
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
  /** A new session. Only for backends that declare `sessions`. */
  openSession?(options: SessionOptions): Promise<LockSession>;
  /**
   * The live session with this id (one the same backend issued). Rejects with
   * InvalidArgumentError for an id that is not one, and SessionExpiredError for a session
   * that is gone or that this server cannot resume.
   */
  resumeSession?(id: string, signal: AbortSignal): Promise<LockSession>;
  /** Leader election on this backend. Only for backends that declare `elections`. */
  readonly elections?: ElectionBackend;
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

/**
 * Told when a session's lease runs out of TTL (after each of its locks was reported to the
 * ExpiryListener), once per session. Must not throw. Given in the options of the backends
 * that enforce TTLs themselves, as ExpiryListener is.
 */
export type SessionExpiryListener = (session: {
  readonly ref: string;
  readonly ttlMs: number;
  readonly locks: number;
}) => void;
