// In-process lock backend: exact FIFO hand-off, TTL leases, fencing tokens from one
// process-wide counter, semaphores (limit > 1), shared (read) locks, and watch streams.
// Locks live and die with this server process.
import { systemClock, type Clock, type Timer } from '../clock.js';
import { ShuttingDownError, throwIfAborted } from '../errors.js';
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
  LockState,
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

export const memoryCapabilities: Capabilities = {
  acrossHosts: false,
  fencing: true,
  fifo: true,
  autoRelease: true,
  semaphore: true,
  shared: true,
  watch: true,
};

interface Holder {
  lease: Lease;
  timer: Timer;
}

interface Waiter {
  owner: string;
  ttlMs: number;
  mode: LockMode;
  limit: number;
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
  /** Told of every lease that runs out of TTL (see ExpiryListener). Default none. */
  readonly onExpire?: ExpiryListener;
}

export class MemoryLockBackend implements LockBackend {
  readonly kind = 'memory';
  readonly capabilities = memoryCapabilities;
  readonly #clock: Clock;
  readonly #locks = new Map<string, Entry>();
  readonly #ended: EndedLeases;
  readonly #watchers = new Map<string, Set<(event: LockEvent) => void>>();
  readonly #closing = new AbortController();
  // NOTE: one counter for every name. Per-name counters would restart at 1 when an idle
  // name's entry is dropped, reusing tokens; a process-wide counter is strictly increasing
  // per name for the life of the process without keeping idle entries.
  #lastToken = 0n;

  constructor(options: MemoryLockBackendOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#ended = new EndedLeases(options.onExpire);
  }

  async acquire({ name, ttlMs, waitMs, owner, mode, limit, signal }: AcquireOptions): Promise<Lease> {
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
      return this.#grant(name, entry, owner, ttlMs, mode, limit);
    }
    if (waitMs <= 0) throw busy(name, this.#holdersText(entry));
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
      const onAbort = () => giveUp(cancelledWhileWaiting(name));
      const waiter: Waiter = {
        owner,
        ttlMs,
        mode,
        limit,
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
    holder.timer.cancel();
    const ttl = ttlMs > 0 ? ttlMs : holder.lease.ttlMs;
    const lease: Lease = { ...holder.lease, ttlMs: ttl, expiresAtMs: this.#clock.now() + ttl };
    entry.holders.set(leaseId, { lease, timer: this.#expiryTimer(name, entry, lease) });
    return lease;
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    const { entry, holder } = this.#holderOf(name, leaseId);
    holder.timer.cancel();
    this.#handOff(name, entry, holder.lease, 'RELEASED');
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
      for (const holder of entry.holders.values()) holder.timer.cancel();
      for (const waiter of [...entry.waiters]) waiter.fail(new ShuttingDownError());
    }
    this.#locks.clear();
  }

  #throwIfClosed(): void {
    if (this.#closing.signal.aborted) throw new ShuttingDownError();
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

  #grant(name: string, entry: Entry, owner: string, ttlMs: number, mode: LockMode, limit: number): Lease {
    const lease: Lease = {
      name,
      leaseId: newLeaseId(),
      fencingToken: ++this.#lastToken,
      expiresAtMs: this.#clock.now() + ttlMs,
      ttlMs,
      owner,
      mode,
      limit: mode === 'EXCLUSIVE' ? limit : 1,
    };
    entry.holders.set(lease.leaseId, { lease, timer: this.#expiryTimer(name, entry, lease) });
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
      waiter.grant(this.#grant(name, entry, waiter.owner, waiter.ttlMs, waiter.mode, waiter.limit));
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
      if (!hasRunOut(holder.lease, this.#clock)) return { entry, holder };
      holder.timer.cancel();
      this.#ended.expired(holder.lease);
      this.#handOff(name, entry, holder.lease, 'EXPIRED');
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
    return describeHolders([...entry.holders.values()].map((h) => describeHolder(h.lease, now)));
  }

  #state(entry: Entry | undefined): LockState {
    if (entry === undefined) return lockState([], [], 0);
    const holders = [...entry.holders.values()].map(({ lease }) => ({
      owner: lease.owner,
      fencingToken: lease.fencingToken,
      expiresAtMs: lease.expiresAtMs,
      mode: lease.mode,
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
