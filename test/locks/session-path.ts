// The lock contract's calls sent through Locks/Session instead of the unary RPCs, so the
// same checks run on the session path. Sessions are kept per client (one grpc-js channel):
// an acquire goes to a session of that client with the asked-for TTL that does not hold the
// name yet (a session holds a name at most once), else to a new one; its lease is the
// session's. Refresh is the session's keepalive; release goes to the session that holds the
// lease, whichever client the test names (a unary Release works from any client too).
// Nothing keeps sessions alive behind the test's back: a session not refreshed expires as a
// unary lease would. An op on a session whose stream has ended resumes it on a new stream
// first, so a gone session answers as the server says (FAILED_PRECONDITION). A lease id no
// session knows goes to the unary RPC, which answers for it.
import type * as grpc from '@grpc/grpc-js';
import type {
  Lease__Output,
  LockState__Output,
  LocksClient,
  SessionKeptAlive__Output,
} from '../../client/common/index.js';
import { SessionStream } from '../support/session-stream.js';

type Unary = <Res>(client: LocksClient, method: string, request: object) => Promise<Res>;

interface PooledSession {
  readonly client: LocksClient;
  stream: SessionStream;
  readonly ttlMs: number;
  /** Names it holds or is asking for. */
  readonly names: Set<string>;
  /** When it was opened or last kept alive, by this process's clock. */
  renewedAt: number;
  /** Opened for one call (a deadline of its own): never picked for another. */
  readonly dedicated: boolean;
  /** The session's id, once a stream has opened it (a failed resume's stream never says). */
  id: string;
}

export class SessionPath {
  readonly #backend: string;
  readonly #unary: Unary;
  readonly #sessions = new Map<LocksClient, PooledSession[]>();
  readonly #byLease = new Map<string, PooledSession>();

  constructor(backend: string, unary: Unary) {
    this.#backend = backend;
    this.#unary = unary;
  }

  acquire(
    client: LocksClient,
    name: string,
    fields: Record<string, unknown>,
    options: grpc.CallOptions = {},
  ): Promise<Lease__Output> & { call?: { cancel(): void } } {
    const ttlMs = Number(fields.ttl_ms ?? 0);
    const session = this.#pick(client, name, ttlMs, options);
    session.names.add(name);
    const promise = session.stream
      .op<Lease__Output>({ acquire: { ...fields, name, backend: this.#backend, ttl_ms: 0 } })
      .then(
        (lease) => {
          this.#byLease.set(lease.lease_id, session);
          return lease;
        },
        (err: unknown) => {
          session.names.delete(name);
          throw err;
        },
      ) as Promise<Lease__Output> & { call?: { cancel(): void } };
    // Cancelling a session call breaks its stream: the test's own session for that call.
    promise.call = { cancel: () => void session.stream.cancel() };
    return promise;
  }

  /** `client` only matters for a lease no session knows (a forged one): it goes to the unary Release. */
  async release(client: LocksClient, lease: Lease__Output): Promise<{ released: boolean }> {
    const session =
      this.#byLease.get(lease.lease_id) ??
      this.#of(client).find((s) => s.names.has(lease.name) && s.stream.end === undefined);
    const request = { name: lease.name, backend: this.#backend, lease_id: lease.lease_id };
    if (session === undefined) return this.#unary(client, 'Release', request);
    const released = await this.#streamOf(session).op<{ released: boolean }>({ release: request });
    if (this.#byLease.get(lease.lease_id) === session) {
      session.names.delete(lease.name);
      // NOTE: forgotten once released: a forged lease id (a contract test changes one digit)
      // may name an earlier lease of the same session, and must not reach its keepalive.
      this.#byLease.delete(lease.lease_id);
    }
    return released;
  }

  async refresh(client: LocksClient, lease: Lease__Output, ttlMs: number): Promise<Lease__Output> {
    const session = this.#byLease.get(lease.lease_id);
    if (session === undefined)
      return this.#unary(client, 'Refresh', {
        name: lease.name,
        backend: this.#backend,
        lease_id: lease.lease_id,
        ttl_ms: ttlMs,
      });
    if (ttlMs !== 0) throw new Error('a session keeps its TTL: the contract refreshes with ttl_ms 0 only');
    const sentAt = Date.now();
    const kept = await this.#streamOf(session).op<SessionKeptAlive__Output>({ keepalive: {} });
    session.renewedAt = sentAt;
    return { ...lease, expires_at_ms: kept.expires_at_ms, ttl_ms: kept.ttl_ms };
  }

  describe(client: LocksClient, name: string): Promise<LockState__Output> {
    const session = this.#of(client).find((s) => this.#usable(s, s.ttlMs)) ?? this.#openSession(client, 10_000, {});
    return session.stream.op<LockState__Output>({ describe: { name, backend: this.#backend } });
  }

  /** Ends every session cleanly (their locks are released). */
  async close(): Promise<void> {
    const all = [...this.#sessions.values()].flat();
    await Promise.all(all.map((s) => (s.stream.end === undefined ? s.stream.close() : undefined)));
  }

  #of(client: LocksClient): PooledSession[] {
    let sessions = this.#sessions.get(client);
    if (sessions === undefined) this.#sessions.set(client, (sessions = []));
    return sessions;
  }

  #pick(client: LocksClient, name: string, ttlMs: number, options: grpc.CallOptions): PooledSession {
    if (options.deadline !== undefined) return this.#openSession(client, ttlMs, options, true);
    return (
      this.#of(client).find((s) => !s.names.has(name) && this.#usable(s, ttlMs)) ??
      this.#openSession(client, ttlMs, options)
    );
  }

  /** Open, not dedicated, with this TTL, and with more than half of it left. */
  #usable(session: PooledSession, ttlMs: number): boolean {
    return (
      !session.dedicated &&
      session.stream.end === undefined &&
      session.ttlMs === ttlMs &&
      Date.now() - session.renewedAt < ttlMs / 2
    );
  }

  #openSession(client: LocksClient, ttlMs: number, options: grpc.CallOptions, dedicated = false): PooledSession {
    const session: PooledSession = {
      client,
      stream: new SessionStream(client, { backend: this.#backend, ttl_ms: ttlMs }, options),
      ttlMs,
      names: new Set(),
      renewedAt: Date.now(),
      dedicated,
      id: '',
    };
    this.#of(client).push(session);
    return session;
  }

  /** The session's stream; if it has ended, a new stream resuming the session (the server decides). */
  #streamOf(session: PooledSession): SessionStream {
    if (session.stream.end === undefined) return session.stream;
    session.id ||= session.stream.frames.find((f) => f.opened !== null)?.opened?.session_id ?? '';
    session.stream = new SessionStream(session.client, { resume_id: session.id });
    return session.stream;
  }
}
