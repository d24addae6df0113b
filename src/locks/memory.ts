// In-process lock backend: exact FIFO hand-off, TTL leases, fencing tokens from one
// process-wide counter, semaphores (limit > 1), shared (read) locks, and watch streams.
// Lock sessions: one lease record and one timer per session, however many locks it holds.
// Leader election on those sessions (memory-election.ts).
// Locks and sessions live and die with this server process.
import { systemClock, type Clock, type Timer } from '../clock.js';
import {
  FailedPreconditionError,
  type LatchkeyError,
  NotHolderError,
  SessionExpiredError,
  ShuttingDownError,
  throwIfAborted,
} from '../errors.js';
import type {
  AcquireOptions,
  Capabilities,
  ExpiryListener,
  Lease,
  LeaseRef,
  LockBackend,
  LockEvent,
  LockEventType,
  LockMode,
  LockSession,
  LockState,
  SessionAcquireOptions,
  SessionExpiryListener,
  SessionOptions,
} from './backend.js';
import { EndedLeases, hasRunOut, newLeaseId } from './leases.js';
import { agreedLimit, lockState } from './lock-state.js';
import {
  busy,
  cancelledWhileWaiting,
  describeHolder,
  describeHolders,
  limitMismatch,
  notGrantedInTime,
  notHolder,
} from './refusals.js';
import { MemoryElections } from './memory-election.js';
import { SessionLease, SessionRegistry } from './session-lease.js';

export const memoryCapabilities: Capabilities = {
  acrossHosts: false,
  fencing: true,
  fifo: true,
  autoRelease: true,
  semaphore: true,
  shared: true,
  watch: true,
  sessions: true,
  elections: true,
};

interface Holder {
  /** For a session's lock, expiresAtMs is the grant's: the session's own is the one that counts. */
  lease: Lease;
  /** The lease's expiry timer; undefined for a session's lock (the session's timer covers it). */
  timer: Timer | undefined;
  session: MemorySession | undefined;
}

interface MemorySession extends LockSession {
  readonly lease: SessionLease;
  /** Its locks by lease id, in grant order. */
  readonly holders: Map<string, { readonly name: string; readonly entry: Entry; readonly holder: Holder }>;
  /** The names it holds or waits for: a session asks for a name at most once. */
  readonly names: Map<string, 'held' | 'waiting'>;
}

interface Waiter {
  owner: string;
  ttlMs: number;
  mode: LockMode;
  limit: number;
  session: MemorySession | undefined;
  grant(lease: Lease): void;
  fail(err: Error): void;
}

interface Entry {
  /** By lease id; insertion order is grant order. */
  holders: Map<string, Holder>;
  /** Insertion-ordered, so iteration is FIFO and a cancelled waiter leaves in O(1). */
  waiters: Set<Waiter>;
  exclusive: number;
  shared: number;
}

export interface MemoryLockBackendOptions {
  /** Time source for leases and wait timers; default the system clock. */
  readonly clock?: Clock;
  /** Told of every lease that runs out of TTL (see ExpiryListener), a session's locks included. Default none. */
  readonly onExpire?: ExpiryListener;
  /** Told of every session that runs out of TTL (see SessionExpiryListener). Default none. */
  readonly onSessionExpire?: SessionExpiryListener;
}

export class MemoryLockBackend implements LockBackend {
  readonly kind = 'memory';
  readonly capabilities = memoryCapabilities;
  readonly #clock: Clock;
  readonly #locks = new Map<string, Entry>();
  readonly #ended: EndedLeases;
  readonly #onSessionExpire: SessionExpiryListener | undefined;
  readonly #sessions = new SessionRegistry<MemorySession>('memory');
  readonly #watchers = new Map<string, Set<(event: LockEvent) => void>>();
  readonly #closing = new AbortController();
  readonly elections: MemoryElections;
  // NOTE: one counter for every name. Per-name counters would restart at 1 when an idle
  // name's entry is dropped, reusing tokens; a process-wide counter is strictly increasing
  // per name for the life of the process without keeping idle entries.
  #lastToken = 0n;

  constructor(options: MemoryLockBackendOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#ended = new EndedLeases(options.onExpire);
    this.#onSessionExpire = options.onSessionExpire;
    this.elections = new MemoryElections({
      clock: this.#clock,
      openSession: (o) => this.openSession(o),
      findSession: (id, signal) => this.resumeSession(id, signal),
      closing: this.#closing.signal,
    });
  }

  acquire(options: AcquireOptions): Promise<Lease> {
    return this.#acquire(options, undefined);
  }

  async #acquire(options: AcquireOptions, session: MemorySession | undefined): Promise<Lease> {
    return this.#tryAcquire(options, session) ?? this.#wait(options, session);
  }

  /**
   * The part of an acquire that needs no waiting: the lease if the lock is granted at once,
   * undefined if the caller is to wait; throws if it may not (aborted, closing, a limit
   * mismatch, or busy with waitMs 0).
   */
  #tryAcquire(
    { name, ttlMs, waitMs, owner, mode, limit, signal }: AcquireOptions,
    session: MemorySession | undefined,
  ): Lease | undefined {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const entry = this.#entry(name);
    const current = this.#limitOf(entry);
    if (mode === 'EXCLUSIVE' && current !== 0 && current !== limit) {
      this.#forgetIfIdle(name, entry);
      throw limitMismatch(name, current, limit);
    }
    // NOTE: a request may not pass a waiter even when it could be granted (a reader behind a
    // waiting writer): that is what keeps the queue FIFO across modes and writers unstarved.
    if (entry.waiters.size === 0 && this.#grantable(entry, mode, limit)) {
      return this.#grant(name, entry, owner, ttlMs, mode, limit, session);
    }
    if (waitMs <= 0) throw busy(name, this.#holdersText(entry));
    return undefined;
  }

  /** Queues the caller (after #tryAcquire said to wait) until granted, timed out or aborted. */
  #wait(
    { name, ttlMs, waitMs, owner, mode, limit, signal }: AcquireOptions,
    session: MemorySession | undefined,
  ): Promise<Lease> {
    const entry = this.#entry(name);
    return new Promise<Lease>((resolve, reject) => {
      let timer: Timer | undefined;
      const leave = () => {
        entry.waiters.delete(waiter);
        timer?.cancel();
        signal.removeEventListener('abort', onAbort);
      };
      const giveUp = (err: Error) => {
        leave();
        this.#emit(name, 'WAITER_LEFT', owner, 0n, mode);
        reject(err);
        // The waiter may have blocked others (a writer at the head in front of readers).
        this.#pump(name, entry);
      };
      // A session that expires or is lost says so; any other abort is the caller going away.
      const onAbort = () =>
        giveUp(
          signal.reason instanceof SessionExpiredError || signal.reason instanceof ShuttingDownError
            ? (signal.reason as LatchkeyError)
            : cancelledWhileWaiting(name),
        );
      const waiter: Waiter = {
        owner,
        ttlMs,
        mode,
        limit,
        session,
        grant: (lease) => {
          leave();
          resolve(lease);
        },
        fail: (err) => {
          leave();
          reject(err);
        },
      };
      entry.waiters.add(waiter);
      this.#emit(name, 'WAITER_ADDED', owner, 0n, mode);
      signal.addEventListener('abort', onAbort, { once: true });
      timer = this.#clock.schedule(waitMs, () =>
        giveUp(notGrantedInTime(name, entry.holders.size > 0 ? this.#holdersText(entry) : undefined, waitMs)),
      );
    });
  }

  async refresh({ name, leaseId, signal }: LeaseRef, ttlMs: number): Promise<Lease> {
    throwIfAborted(signal);
    const { entry, holder } = this.#holderOf(name, leaseId);
    holder.timer?.cancel();
    const ttl = ttlMs > 0 ? ttlMs : holder.lease.ttlMs;
    const lease: Lease = { ...holder.lease, ttlMs: ttl, expiresAtMs: this.#clock.now() + ttl };
    entry.holders.set(leaseId, { lease, timer: this.#expiryTimer(name, entry, lease), session: undefined });
    return lease;
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    const session = this.#locks.get(name)?.holders.get(leaseId)?.session;
    if (session !== undefined && !(session.state === 'live' && session.lease.due)) {
      // NOTE: released behind the session's back (an operator with the lease id): the session
      // can no longer vouch for its locks, so it is lost. Its holder hears it at once on an
      // attached stream, or when it next resumes; its other locks stay until it expires.
      this.#freeSessionLock(session, leaseId, 'RELEASED');
      session.lease.lose(`its lock "${name}" was released from outside the session (Locks/Release of its lease)`);
      return;
    }
    const { entry, holder } = this.#holderOf(name, leaseId);
    holder.timer?.cancel();
    this.#handOff(name, entry, holder.lease, 'RELEASED');
  }

  async openSession({ ttlMs, signal }: SessionOptions): Promise<LockSession> {
    throwIfAborted(signal);
    if (this.#closing.signal.aborted)
      throw new ShuttingDownError('server is shutting down; open a session on another server');
    const { id, ref } = this.#sessions.newId();
    const session = this.#newSession(new SessionLease(this.#clock, id, ref, ttlMs, () => this.#expireSession(session)));
    this.#sessions.add(session);
    return session;
  }

  async resumeSession(id: string, signal: AbortSignal): Promise<LockSession> {
    throwIfAborted(signal);
    const session = this.#sessions.find(id);
    session.lease.checkLive();
    return session;
  }

  async describe(name: string, signal: AbortSignal): Promise<LockState> {
    throwIfAborted(signal);
    return this.#state(this.#locks.get(name));
  }

  async *watch(name: string, signal: AbortSignal): AsyncIterable<LockEvent> {
    const pending: LockEvent[] = [];
    let wake: (() => void) | undefined;
    const listener = (event: LockEvent) => {
      pending.push(event);
      wake?.();
    };
    const stop = () => wake?.();
    let listeners = this.#watchers.get(name);
    if (listeners === undefined) this.#watchers.set(name, (listeners = new Set()));
    listeners.add(listener);
    signal.addEventListener('abort', stop);
    this.#closing.signal.addEventListener('abort', stop);
    try {
      // Subscribed before the snapshot, and nothing runs in between: no event is missed.
      yield {
        type: 'STATE',
        name,
        owner: '',
        fencingToken: 0n,
        mode: 'EXCLUSIVE',
        atMs: this.#clock.now(),
        state: this.#state(this.#locks.get(name)),
      };
      while (!signal.aborted && !this.#closing.signal.aborted) {
        const event = pending.shift();
        if (event !== undefined) {
          yield event;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      listeners.delete(listener);
      if (listeners.size === 0 && this.#watchers.get(name) === listeners) this.#watchers.delete(name);
      signal.removeEventListener('abort', stop);
      this.#closing.signal.removeEventListener('abort', stop);
    }
  }

  async close(): Promise<void> {
    this.#closing.abort();
    for (const entry of this.#locks.values()) {
      for (const holder of entry.holders.values()) holder.timer?.cancel();
      for (const waiter of [...entry.waiters]) waiter.fail(new ShuttingDownError());
    }
    for (const session of this.#sessions.values())
      session.lease.close(new ShuttingDownError('server is shutting down; its lock sessions ended with it'));
    this.#sessions.clear();
    this.#locks.clear();
  }

  #throwIfClosed(): void {
    if (this.#closing.signal.aborted) throw new ShuttingDownError();
  }

  /** The session object: its state is the lease's, its locks live in the entries. */
  #newSession(lease: SessionLease): MemorySession {
    const holders: MemorySession['holders'] = new Map();
    const names: MemorySession['names'] = new Map();
    const session: MemorySession = {
      lease,
      holders,
      names,
      id: lease.id,
      ref: lease.ref,
      ttlMs: lease.ttlMs,
      get expiresAtMs() {
        return lease.expiresAtMs;
      },
      get state() {
        return lease.state;
      },
      signal: lease.signal,
      get lockCount() {
        return names.size;
      },
      acquire: (options) => this.#sessionAcquire(session, options),
      release: (ref) => this.#sessionRelease(session, ref),
      keepAlive: async (signal) => {
        throwIfAborted(signal);
        return lease.renew();
      },
      end: async () => this.#endSession(session),
      leases: () => [...holders.values()].map(({ holder }) => this.#current(holder)),
    };
    return session;
  }

  async #sessionAcquire(session: MemorySession, options: SessionAcquireOptions): Promise<Lease> {
    const { name, signal } = options;
    throwIfAborted(signal);
    session.lease.checkLive();
    const had = session.names.get(name);
    if (had !== undefined)
      throw new FailedPreconditionError(
        `this session already ${had === 'held' ? 'holds' : 'waits for'} lock "${name}"; a session holds a name at most once: release it first, or take it in another session`,
      );
    const acquire: AcquireOptions = {
      name,
      ttlMs: session.ttlMs,
      waitMs: options.waitMs,
      owner: options.owner,
      mode: options.mode,
      limit: options.limit,
      signal,
    };
    // A lock free at once is granted here, without the combined signal below: the session is
    // live (checked above, and nothing runs in between), and a grant does not wait. NOTE: the
    // session's signal is shared by every acquire of the session, and an AbortSignal's add
    // and remove walk its list of listeners: listening on it for each grant cost
    // O(acquires in flight).
    const granted = this.#tryAcquire(acquire, session);
    if (granted !== undefined) return granted;
    session.names.set(name, 'waiting');
    // The waiter leaves when its caller goes away or when the session stops being live.
    const both = new AbortController();
    const onCaller = () => both.abort(signal.reason);
    const onSession = () => both.abort(session.signal.reason);
    signal.addEventListener('abort', onCaller, { once: true });
    session.signal.addEventListener('abort', onSession, { once: true });
    try {
      return await this.#wait({ ...acquire, signal: both.signal }, session);
    } catch (err) {
      if (session.names.get(name) === 'waiting') session.names.delete(name);
      throw err;
    } finally {
      signal.removeEventListener('abort', onCaller);
      session.signal.removeEventListener('abort', onSession);
    }
  }

  async #sessionRelease(session: MemorySession, { name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    // A due session has expired, whether or not its timer has fired: its locks are not released, they expired.
    if (session.state === 'live' && session.lease.due) this.#expireSession(session);
    if (session.state === 'expired' || session.state === 'ended') throw session.signal.reason;
    const mine = session.holders.get(leaseId);
    if (mine === undefined || mine.name !== name) {
      const current = this.#locks.get(name);
      const who =
        current !== undefined && current.holders.size > 0
          ? `it is held by ${this.#holdersText(current)}`
          : 'it is not held';
      throw new NotHolderError(`lease ${leaseId || '(empty)'} is not a lock of this session on lock "${name}": ${who}`);
    }
    this.#freeSessionLock(session, leaseId, 'RELEASED');
  }

  #freeSessionLock(session: MemorySession, leaseId: string, why: 'RELEASED' | 'EXPIRED'): void {
    const mine = session.holders.get(leaseId)!;
    session.holders.delete(leaseId);
    session.names.delete(mine.name);
    // A release needs no copy with the session's expiry: only an expiry is reported with it.
    const lease = why === 'EXPIRED' ? this.#current(mine.holder) : mine.holder.lease;
    if (why === 'EXPIRED') this.#ended.expired(lease);
    this.#handOff(mine.name, mine.entry, lease, why);
  }

  #endSession(session: MemorySession): void {
    if (session.state === 'expired' || session.state === 'ended') return;
    const reason = session.lease.end();
    // Waiters left as the signal aborted (synchronously, above); now every lock, at once.
    for (const leaseId of [...session.holders.keys()]) this.#freeSessionLock(session, leaseId, 'RELEASED');
    this.#sessions.forget(session, reason.message);
  }

  /** The session's TTL ran out: each lock expires as a lease would, then the session. */
  #expireSession(session: MemorySession): void {
    if (session.state === 'expired' || session.state === 'ended') return;
    const locks = session.holders.size;
    const reason = session.lease.expire();
    for (const leaseId of [...session.holders.keys()]) this.#freeSessionLock(session, leaseId, 'EXPIRED');
    this.#sessions.forget(session, reason.message);
    this.#onSessionExpire?.({ ref: session.ref, ttlMs: session.ttlMs, locks });
  }

  /** The holder's lease as it stands: a session's lock expires with its session. */
  #current(holder: Holder): Lease {
    return holder.session === undefined
      ? holder.lease
      : { ...holder.lease, expiresAtMs: holder.session.lease.expiresAtMs };
  }

  #entry(name: string): Entry {
    let entry = this.#locks.get(name);
    if (entry === undefined) {
      entry = { holders: new Map(), waiters: new Set(), exclusive: 0, shared: 0 };
      this.#locks.set(name, entry);
    }
    return entry;
  }

  /** The limit the name's exclusive holders and waiters agreed on; 0 when there are none. */
  #limitOf(entry: Entry): number {
    // agreedLimit over the holders, then the queue, without copying them: this runs on every acquire.
    for (const { lease } of entry.holders.values()) if (lease.mode === 'EXCLUSIVE') return lease.limit;
    return agreedLimit(entry.waiters);
  }

  #grantable(entry: Entry, mode: LockMode, limit: number): boolean {
    return mode === 'SHARED' ? entry.exclusive === 0 : entry.shared === 0 && entry.exclusive < limit;
  }

  #grant(
    name: string,
    entry: Entry,
    owner: string,
    ttlMs: number,
    mode: LockMode,
    limit: number,
    session: MemorySession | undefined,
  ): Lease {
    const lease: Lease = {
      name,
      leaseId: newLeaseId(),
      fencingToken: ++this.#lastToken,
      expiresAtMs: session?.lease.expiresAtMs ?? this.#clock.now() + ttlMs,
      ttlMs,
      owner,
      mode,
      limit: mode === 'EXCLUSIVE' ? limit : 1,
    };
    if (session === undefined) {
      entry.holders.set(lease.leaseId, { lease, timer: this.#expiryTimer(name, entry, lease), session });
    } else {
      const holder: Holder = { lease, timer: undefined, session };
      entry.holders.set(lease.leaseId, holder);
      session.holders.set(lease.leaseId, { name, entry, holder });
      session.names.set(name, 'held');
    }
    if (mode === 'EXCLUSIVE') entry.exclusive++;
    else entry.shared++;
    this.#emit(name, 'ACQUIRED', owner, lease.fencingToken, mode);
    return lease;
  }

  #expiryTimer(name: string, entry: Entry, lease: Lease): Timer {
    return this.#clock.schedule(lease.expiresAtMs - this.#clock.now(), () => {
      if (entry.holders.get(lease.leaseId)?.lease !== lease) return;
      this.#ended.expired(lease);
      this.#handOff(name, entry, lease, 'EXPIRED');
    });
  }

  /** A holder is gone: hand its slot on in FIFO order, or forget the idle name. */
  #handOff(name: string, entry: Entry, lease: Lease, why: 'RELEASED' | 'EXPIRED'): void {
    entry.holders.delete(lease.leaseId);
    if (lease.mode === 'EXCLUSIVE') entry.exclusive--;
    else entry.shared--;
    this.#emit(name, why, lease.owner, lease.fencingToken, lease.mode);
    this.#pump(name, entry);
  }

  /** Grants waiters from the head of the queue for as long as the head can be granted. */
  #pump(name: string, entry: Entry): void {
    for (const waiter of entry.waiters) {
      if (!this.#grantable(entry, waiter.mode, waiter.limit)) break;
      entry.waiters.delete(waiter);
      waiter.grant(this.#grant(name, entry, waiter.owner, waiter.ttlMs, waiter.mode, waiter.limit, waiter.session));
    }
    this.#forgetIfIdle(name, entry);
  }

  /** Forgets the entry of a name nobody holds or waits for. */
  #forgetIfIdle(name: string, entry: Entry): void {
    if (entry.holders.size === 0 && entry.waiters.size === 0 && this.#locks.get(name) === entry)
      this.#locks.delete(name);
  }

  #holderOf(name: string, leaseId: string): { entry: Entry; holder: Holder } {
    const entry = this.#locks.get(name);
    const holder = entry?.holders.get(leaseId);
    if (entry !== undefined && holder !== undefined) {
      if (holder.session !== undefined) {
        if (!(holder.session.state === 'live' && holder.session.lease.due))
          throw new FailedPreconditionError(
            `lease ${leaseId} of lock "${name}" belongs to a lock session: its session's keepalive renews it (Locks/Session)`,
          );
        // A due session expires here, as a lease would; its locks are remembered as expired.
        this.#expireSession(holder.session);
      } else {
        if (!hasRunOut(holder.lease, this.#clock)) return { entry, holder };
        holder.timer?.cancel();
        this.#ended.expired(holder.lease);
        this.#handOff(name, entry, holder.lease, 'EXPIRED');
      }
    }
    this.#ended.throwIfEnded(leaseId);
    const current = this.#locks.get(name);
    const held =
      current !== undefined && current.holders.size > 0
        ? `it is held by ${this.#holdersText(current)}`
        : 'it is not held';
    throw notHolder(name, leaseId, held);
  }

  #holdersText(entry: Entry): string {
    const now = this.#clock.now();
    return describeHolders([...entry.holders.values()].map((h) => describeHolder(this.#current(h), now)));
  }

  #state(entry: Entry | undefined): LockState {
    if (entry === undefined) return lockState([], [], 0);
    const holders = [...entry.holders.values()].map((holder) => ({
      owner: holder.lease.owner,
      fencingToken: holder.lease.fencingToken,
      expiresAtMs: this.#current(holder).expiresAtMs,
      mode: holder.lease.mode,
    }));
    const queue = [...entry.waiters].map((w) => ({ owner: w.owner, mode: w.mode }));
    return lockState(holders, queue, this.#limitOf(entry));
  }

  #emit(name: string, type: LockEventType, owner: string, fencingToken: bigint, mode: LockMode): void {
    const listeners = this.#watchers.get(name);
    if (listeners === undefined) return;
    const event: LockEvent = { type, name, owner, fencingToken, mode, atMs: this.#clock.now() };
    for (const listener of listeners) listener(event);
  }
}
