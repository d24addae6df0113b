// A LockSession that hands every call to another one: the base of the session decorators
// (metered-backend.ts, traced-backend.ts), which override only what they observe.
import type { Lease, LeaseRef, LockSession, SessionAcquireOptions, SessionLeaseInfo } from './backend.js';

export class ForwardingSession implements LockSession {
  protected readonly inner: LockSession;

  constructor(inner: LockSession) {
    this.inner = inner;
  }

  get id(): string {
    return this.inner.id;
  }
  get ref(): string {
    return this.inner.ref;
  }
  get ttlMs(): number {
    return this.inner.ttlMs;
  }
  get expiresAtMs(): number {
    return this.inner.expiresAtMs;
  }
  get state(): LockSession['state'] {
    return this.inner.state;
  }
  get signal(): AbortSignal {
    return this.inner.signal;
  }
  get lockCount(): number {
    return this.inner.lockCount;
  }

  acquire(options: SessionAcquireOptions): Promise<Lease> {
    return this.inner.acquire(options);
  }

  release(ref: LeaseRef): Promise<void> {
    return this.inner.release(ref);
  }

  keepAlive(signal: AbortSignal): Promise<SessionLeaseInfo> {
    return this.inner.keepAlive(signal);
  }

  end(): Promise<void> {
    return this.inner.end();
  }

  leases(): readonly Lease[] {
    return this.inner.leases();
  }

  detach(): void {
    this.inner.detach?.();
  }
}
