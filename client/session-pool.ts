// SessionPool: which lock session (session.ts) a lock goes through. One session per backend
// and TTL asked for, opened on first use: every lock of a backend taken with the same ttlMs
// shares one session lease, as etcd's concurrency.Session does. A session holds a name at
// most once (etcd's rule too), so a second lock of a name this client already holds or is
// acquiring (another holder of a semaphore or a shared lock, a second waiter) goes through a
// second session of the same backend and TTL, made for it.
import type { AcquireRequest } from './common/index.js';
import type { ServerList } from './servers.js';
import { LockSession, sessionKey, type SessionHost, type SessionOptions } from './session.js';

export interface SessionPoolInit {
  readonly servers: ServerList;
  readonly deadlineMs: number;
  readonly fallbackTtlMs: number;
  readonly options: Required<SessionOptions>;
}

export class SessionPool implements SessionHost {
  readonly #init: SessionPoolInit;
  readonly #sessions = new Map<string, LockSession[]>();
  /** Keys whose sessions could not be opened: no new one before this (performance.now()). */
  readonly #declined = new Map<string, number>();
  #unimplemented = false;
  #closed = false;

  constructor(init: SessionPoolInit) {
    this.#init = init;
  }

  /**
   * The session a lock of `name` goes through, or undefined: the lock is a unary Acquire
   * (the server has no sessions, or this backend and TTL are declined for a while).
   */
  forLock(backend: string, ttlMs: number, name: string): LockSession | undefined {
    if (this.#unimplemented || this.#closed) return undefined;
    const key = sessionKey(backend, ttlMs);
    const until = this.#declined.get(key);
    if (until !== undefined) {
      if (performance.now() < until) return undefined;
      this.#declined.delete(key);
    }
    let list = this.#sessions.get(key);
    if (list === undefined) {
      list = [];
      this.#sessions.set(key, list);
    }
    for (const session of list) if (!session.uses(name)) return session;
    const session = new LockSession({ ...this.#init, host: this, backend, ttlMs });
    list.push(session);
    return session;
  }

  /**
   * The session a campaign for `election` goes through, or undefined (a unary Campaign): as
   * forLock, a session campaigns for an election at most once.
   */
  forCampaign(backend: string, ttlMs: number, election: string): LockSession | undefined {
    if (this.#unimplemented || this.#closed) return undefined;
    const key = sessionKey(backend, ttlMs);
    const until = this.#declined.get(key);
    if (until !== undefined && performance.now() < until) return undefined;
    let list = this.#sessions.get(key);
    if (list === undefined) {
      list = [];
      this.#sessions.set(key, list);
    }
    for (const session of list) if (!session.campaigns(election)) return session;
    const session = new LockSession({ ...this.#init, host: this, backend, ttlMs });
    list.push(session);
    return session;
  }

  /** An open session of this backend for a describe, or undefined: a unary Describe. */
  forDescribe(backend: string): LockSession | undefined {
    if (this.#closed) return undefined;
    for (const list of this.#sessions.values()) for (const session of list) if (session.serves(backend)) return session;
    return undefined;
  }

  unimplemented(): void {
    this.#unimplemented = true;
  }

  decline(session: LockSession, ms: number): void {
    this.#declined.set(session.key, performance.now() + ms);
  }

  retire(session: LockSession): void {
    const list = this.#sessions.get(session.key);
    const i = list?.indexOf(session) ?? -1;
    if (i < 0) return;
    list!.splice(i, 1);
    if (list!.length === 0) this.#sessions.delete(session.key);
  }

  /** Ends every session: each releases all its locks at once. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#sessions.values()].flat();
    await Promise.all(all.map((session) => session.end()));
  }
}

/** Margin by which a session acquire's wait ends before its deadline: the answer's way back. */
const WAIT_MARGIN_MS = 20;

/**
 * The acquire a session sends for lock(): Acquire's request with the TTL left to the session,
 * and the wait bounded by the call's deadline, as the server bounds a unary Acquire's by its
 * grpc-timeout: a wait that runs out answers LockBusyError naming the holder, not
 * DeadlineExceededError.
 */
export function sessionAcquire(request: AcquireRequest, waitMs: number, deadlineMs: number): AcquireRequest {
  const bounded =
    waitMs > 0 && Number.isFinite(deadlineMs)
      ? Math.max(1, Math.min(waitMs, Math.floor(deadlineMs) - WAIT_MARGIN_MS))
      : waitMs;
  // As numbers: protobufjs encodes a number in two divisions, a decimal string through
  // Long.fromString; the bytes are the same.
  return { ...request, ttl_ms: 0, wait_ms: bounded };
}
