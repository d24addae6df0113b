// In-process lock backend: exact FIFO hand-off, TTL leases, fencing tokens from one
// process-wide counter. Locks live and die with this server process.
import { randomBytes } from 'node:crypto';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { CancelledError, LeaseExpiredError, LockBusyError, NotHolderError, ShuttingDownError, throwIfAborted } from '../errors.js';
import type { AcquireOptions, Capabilities, Lease, LeaseRef, LockBackend, LockState } from './backend.js';

export const memoryCapabilities: Capabilities = { acrossHosts: false, fencing: true, fifo: true, autoRelease: true };

interface Holder {
  lease: Lease;
  timer: Timer;
}

interface Waiter {
  owner: string;
  ttlMs: number;
  grant(lease: Lease): void;
  fail(err: Error): void;
}

interface Entry {
  holder: Holder | undefined;
  /** Insertion-ordered, so iteration is FIFO and a cancelled waiter leaves in O(1). */
  waiters: Set<Waiter>;
}

/** How many expired lease ids to remember, so Refresh/Release can say "expired" precisely. */
const EXPIRED_MEMORY = 10_000;

export function describeHolder(lease: Lease, now: number): string {
  return `${lease.owner || 'an unnamed owner'} (fencing token ${lease.fencingToken}, expires in ${Math.max(0, lease.expiresAtMs - now)} ms)`;
}

export class MemoryLockBackend implements LockBackend {
  readonly kind = 'memory';
  readonly capabilities = memoryCapabilities;
  readonly #clock: Clock;
  readonly #locks = new Map<string, Entry>();
  readonly #expired = new Map<string, number>();
  // NOTE: one counter for every name. Per-name counters would restart at 1 when an idle
  // name's entry is dropped, reusing tokens; a process-wide counter is strictly increasing
  // per name for the life of the process without keeping idle entries.
  #lastToken = 0n;
  #closed = false;

  constructor(options: { clock?: Clock } = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  async acquire({ name, ttlMs, waitMs, owner, signal }: AcquireOptions): Promise<Lease> {
    throwIfAborted(signal);
    if (this.#closed) throw new ShuttingDownError('server is shutting down; acquire on another server');
    const entry = this.#entry(name);
    if (entry.holder === undefined) {
      return this.#grant(name, entry, owner, ttlMs);
    }
    if (waitMs <= 0) {
      throw new LockBusyError(`lock "${name}" is held by ${describeHolder(entry.holder.lease, this.#clock.now())}; not acquired (wait_ms = 0 tries once)`);
    }
    return new Promise<Lease>((resolve, reject) => {
      let timer: Timer | undefined;
      const leave = () => {
        entry.waiters.delete(waiter);
        timer?.cancel();
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        leave();
        reject(new CancelledError(`acquire of lock "${name}" cancelled while waiting`));
        this.#dropIfIdle(name, entry);
      };
      const waiter: Waiter = {
        owner,
        ttlMs,
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
      signal.addEventListener('abort', onAbort, { once: true });
      timer = this.#clock.schedule(waitMs, () => {
        const holder = entry.holder;
        leave();
        const held = holder ? `still held by ${describeHolder(holder.lease, this.#clock.now())}` : 'not granted';
        reject(new LockBusyError(`lock "${name}" ${held} after waiting ${waitMs} ms`));
        this.#dropIfIdle(name, entry);
      });
    });
  }

  async refresh({ name, leaseId, signal }: LeaseRef, ttlMs: number): Promise<Lease> {
    throwIfAborted(signal);
    const { entry, holder } = this.#holderOf(name, leaseId);
    holder.timer.cancel();
    const ttl = ttlMs > 0 ? ttlMs : holder.lease.ttlMs;
    const lease: Lease = { ...holder.lease, ttlMs: ttl, expiresAtMs: this.#clock.now() + ttl };
    entry.holder = { lease, timer: this.#expiryTimer(name, entry, lease) };
    return lease;
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    const { entry, holder } = this.#holderOf(name, leaseId);
    holder.timer.cancel();
    this.#handOff(name, entry);
  }

  async describe(name: string, signal: AbortSignal): Promise<LockState> {
    throwIfAborted(signal);
    const entry = this.#locks.get(name);
    const lease = entry?.holder?.lease;
    if (entry === undefined || lease === undefined) return { held: false, owner: '', fencingToken: 0n, expiresAtMs: 0, waiters: 0 };
    return { held: true, owner: lease.owner, fencingToken: lease.fencingToken, expiresAtMs: lease.expiresAtMs, waiters: entry.waiters.size };
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const entry of this.#locks.values()) {
      entry.holder?.timer.cancel();
      for (const waiter of [...entry.waiters]) waiter.fail(new ShuttingDownError('server is shutting down; retry on another server'));
    }
    this.#locks.clear();
  }

  #entry(name: string): Entry {
    let entry = this.#locks.get(name);
    if (entry === undefined) {
      entry = { holder: undefined, waiters: new Set() };
      this.#locks.set(name, entry);
    }
    return entry;
  }

  #grant(name: string, entry: Entry, owner: string, ttlMs: number): Lease {
    const lease: Lease = {
      name,
      leaseId: randomBytes(16).toString('hex'),
      fencingToken: ++this.#lastToken,
      expiresAtMs: this.#clock.now() + ttlMs,
      ttlMs,
      owner,
    };
    entry.holder = { lease, timer: this.#expiryTimer(name, entry, lease) };
    return lease;
  }

  #expiryTimer(name: string, entry: Entry, lease: Lease): Timer {
    return this.#clock.schedule(lease.expiresAtMs - this.#clock.now(), () => {
      if (entry.holder?.lease !== lease) return;
      this.#rememberExpired(lease);
      this.#handOff(name, entry);
    });
  }

  /** The lock is free: grant it to exactly the next waiter, or forget the idle name. */
  #handOff(name: string, entry: Entry): void {
    entry.holder = undefined;
    const next = entry.waiters.values().next();
    if (next.done) {
      this.#locks.delete(name);
      return;
    }
    const waiter = next.value;
    waiter.grant(this.#grant(name, entry, waiter.owner, waiter.ttlMs));
  }

  #dropIfIdle(name: string, entry: Entry): void {
    if (entry.holder === undefined && entry.waiters.size === 0 && this.#locks.get(name) === entry) this.#locks.delete(name);
  }

  #holderOf(name: string, leaseId: string): { entry: Entry; holder: Holder } {
    const entry = this.#locks.get(name);
    const holder = entry?.holder;
    if (entry !== undefined && holder !== undefined && holder.lease.leaseId === leaseId) {
      // A timer can fire late; the lease's own expiry time is what counts.
      if (this.#clock.now() < holder.lease.expiresAtMs) return { entry, holder };
      holder.timer.cancel();
      this.#rememberExpired(holder.lease);
      this.#handOff(name, entry);
    }
    const expiredAt = this.#expired.get(leaseId);
    if (expiredAt !== undefined) {
      throw new LeaseExpiredError(`lease ${leaseId} on lock "${name}" expired at ${new Date(expiredAt).toISOString()}; acquire the lock again`);
    }
    const current = this.#locks.get(name)?.holder;
    const who = current ? `it is held by ${describeHolder(current.lease, this.#clock.now())}` : 'it is not held';
    throw new NotHolderError(`lease ${leaseId || '(empty)'} does not hold lock "${name}": ${who}`);
  }

  #rememberExpired(lease: Lease): void {
    this.#expired.set(lease.leaseId, lease.expiresAtMs);
    if (this.#expired.size > EXPIRED_MEMORY) this.#expired.delete(this.#expired.keys().next().value!);
  }
}
