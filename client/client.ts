// connect(addresses): the latchkey client. One channel per server for both services, the
// servers taken in turn as each goes away (servers.ts). Lock calls go through a lock session
// (session.ts, session-pool.ts): every acquire, release and describe of a backend on one
// Locks/Session stream, one session lease kept alive for all its locks; or, with sessions
// off or against a server without them, through unary calls (deadline, AbortSignal, error
// mapping, retries of idempotent calls) and handles that refresh their own lease. Cache calls
// go through the cache transport, which multiplexes them onto the Cache/Pipeline stream with
// the same guarantees, or makes them unary; watch() reads a Locks/Watch stream. TLS and the
// bearer token (credentials.ts) apply to all of them.
import * as grpc from '@grpc/grpc-js';
import type { PackageDefinition, ServiceDefinition } from '@grpc/proto-loader';
import { createCacheClient, type Flights, type CacheClient } from './cache.js';
import { createCacheTransport, type CacheTransport } from './cache-transport.js';
import {
  channelCredentials,
  tlsChannelOptions,
  tokenInterceptor,
  type TlsOptions,
  type TokenSource,
} from './credentials.js';
import { CancelledError, fromStatus, InternalError, InvalidArgumentError, UnavailableError } from './errors.js';
import {
  type CacheProto,
  type CacheClient as CacheStub,
  type ElectionsProto,
  type ElectionsClient as ElectionsStub,
  type Lease__Output,
  type LockEvent__Output,
  type LockState__Output,
  type LocksClient as LocksStub,
  type ReleaseResponse__Output,
  type LocksProto,
  type SessionRequest,
  type SessionResponse__Output,
  loadPackageDefinition,
} from './common/index.js';
import {
  type CampaignOptions,
  Elections,
  type Leader,
  type LeaderOptions,
  type Leadership,
  type ObserveOptions,
} from './elections.js';
import { createLockHandle, openLockHandle, type LeaseCalls, type LeaseKeeper, type LockHandle } from './lock-handle.js';
import { DEFAULT_PIPELINE, type PipelineOptions } from './pipeline.js';
import { parseAddresses, type Server, ServerList } from './servers.js';
import { DEFAULT_SESSIONS, type SessionOptions } from './session.js';
import { sessionResponseDecoder } from './session-decode.js';
import { sessionRequestEncoder } from './session-encode.js';
import { SessionPool, sessionAcquire } from './session-pool.js';
import { neverSent, serverGone, unanswered } from './streams.js';
import { traceContextInterceptor } from './tracing.js';
import { retryPolicy, unaryCall, withRetries, type CallOptions, type RetryOptions } from './unary-call.js';
import { msField, toDate } from './wire.js';

export interface ConnectOptions {
  /**
   * Deadline of each call in ms, unless the call passes its own `deadlineMs`. Default
   * 10_000; Infinity = none; 0 or less is refused (InvalidArgumentError). It covers a call's
   * retries too. lock() adds its `waitMs` on top, so a long wait does not end in
   * DEADLINE_EXCEEDED; a lock handle's Refreshes and Release are bounded by it as well, and
   * its Release further by the lease's TTL, and so is the end of each lock session at close().
   */
  readonly deadlineMs?: number;
  /**
   * TLS: verify the server against `ca` (default Node's root CAs), and with `cert` and `key`
   * present a client certificate (mutual TLS, a server with --tls-ca). Default none: without
   * `tls` (or `credentials`) the channel is plaintext, which a server accepts only on
   * loopback or with --insecure. `{}` = TLS against Node's root CAs.
   */
  readonly tls?: TlsOptions;
  /**
   * grpc-js channel credentials, for what `tls` does not cover. Default none (plaintext);
   * giving both this and `tls` is refused (InvalidArgumentError).
   */
  readonly credentials?: grpc.ChannelCredentials;
  /**
   * Bearer token for a server with --auth-tokens-file, sent as `authorization: Bearer
   * <token>` on every call and stream; or a function called before each one for the current
   * token. A provider that throws fails the call with UnauthenticatedError (no RPC is sent).
   * Default none: no authorization header. A stream (a lock session, the cache pipeline, a
   * watch) carries the token it started with.
   * NOTE: on a plaintext channel the token crosses the network readable by anyone on it.
   * NOTE: a server lets only the token that opened a lock session resume it: after a token
   * rotation, a session whose stream breaks cannot resume, its handles abort, and the next
   * lock opens a new session with the new token.
   */
  readonly token?: TokenSource;
  /**
   * Retries on UNAVAILABLE, with exponential backoff, of the calls whose RPC the .proto marks
   * with `option idempotency_level` (the SDK reads the marks; today that makes describe() and
   * cache get()). The whole series stays within the call's deadline. Never retried: lock(),
   * release and every cache write, which UNAVAILABLE does not prove unapplied. Default
   * { attempts: 3, baseDelayMs: 100, maxDelayMs: 1_000 }; false (or attempts: 1) turns
   * retries off. Lock handles retry their own Refreshes, on their own schedule, until the
   * lease's expiry, whatever this says; a lock session reconnects by itself until its TTL
   * runs out. Apart from these, a call that could not be sent because its server is
   * unreachable is tried once on each other server of the list, whatever the method:
   * nothing of it ran.
   */
  readonly retry?: RetryOptions | false;
  /**
   * grpc-js channel options (keepalive, message size limits, ...), for the channel of each
   * server, applied over the SDK's own (TLS server name, the pipeline's unlimited receive
   * size); interceptors given here wrap the token's, which is innermost. Default none.
   * NOTE: after a connection failure grpc-js waits `grpc.initial_reconnect_backoff_ms`
   * (default 1 s, growing to 120 s) before reconnecting, and calls fail at once meanwhile.
   * With one server, lock handles (and lock sessions) with TTLs near or below that lose
   * their locks across a server restart unless it is lowered; with several, the client
   * moves to the next server instead of waiting.
   */
  readonly channelOptions?: grpc.ChannelOptions;
  /**
   * Cache calls made at the same time share one Cache/Pipeline stream, many to a frame,
   * which serves far more calls per second than one RPC per call. Deadlines, signals, errors
   * and retries are the same either way. Default on, with { maxOutstanding: 2048,
   * maxFrameOps: 1000, idleMs: 1000 }; false makes every cache call its own unary RPC.
   * The client falls back to unary calls by itself against a server without the method,
   * while a broken stream backs off, and for values over 8 KiB.
   * NOTE: with the pipeline on, the channel accepts messages of any size unless
   * `channelOptions` sets `grpc.max_receive_message_length`: a reply frame carries many
   * values, and grpc-js's default 4 MB cap would break the stream, not one call.
   */
  readonly pipeline?: boolean | PipelineOptions;
  /**
   * Lock sessions: lock(), withLock() and describe() share one Locks/Session stream and one
   * session lease per backend and `ttlMs` (opened on the first lock, ended by close()), many
   * operations to a frame, and one keepalive every TTL / 3 renews every lock of the session
   * instead of a Refresh per lock. On etcd that is one etcd lease per session rather than
   * one per lock. Handles behave the same either way. Default on, with { idleMs: 1000,
   * maxFrameOps: 1000 } (see SessionOptions); false makes every lock operation its own
   * unary RPC (Acquire, Refresh, Release, Describe), as other languages' clients do.
   *
   * - close() ends each session: the server releases all of its locks at once. A waiting
   *   lock() whose signal aborts (or whose deadline passes) is withdrawn from the server's
   *   queue, as a cancelled unary Acquire is.
   * - A broken stream releases nothing: the session resumes, through the next server of the
   *   list when its own went away (or the same one restarted), and keeps every lock, as long
   *   as that happens within its TTL. Until then the handles' signals stay quiet; they abort
   *   when the session can no longer be confirmed before it could expire, or at once when a
   *   server says it has expired (a memory-backend server that restarted has forgotten it).
   * - The client goes unary by itself against a server without the method (for good), and
   *   for a while when a session cannot be opened (no server reachable, a backend without
   *   sessions, a TTL the server refuses, credentials refused).
   * - A second lock of a name this client holds or is acquiring (a semaphore's or shared
   *   lock's other holders, another waiter) goes through another session, made for it.
   * NOTE: while a session holds a lock its stream keeps the process alive (a unary handle's
   * timers do not): release the locks or close the client. A session holding nothing ends
   * after `idleMs`.
   */
  readonly sessions?: boolean | SessionOptions;
}

export interface LockOptions extends CallOptions {
  /**
   * Lease TTL in ms; default the server's (--default-ttl-ms, 15 s unless changed); 0 is
   * refused (InvalidArgumentError: leave it out for the default), and so is more than the
   * server's --max-ttl-ms. Through a session, the lock lives on the lease of the client's
   * session for this backend and TTL; otherwise the handle refreshes its own lease. Either
   * way it is renewed every TTL / 3, and the handle gives up (aborting its signal) when no
   * renewal has been confirmed for about one TTL. The backend may round the TTL up (etcd: to
   * whole seconds); `handle.ttlMs` is what was granted.
   */
  readonly ttlMs?: number;
  /**
   * How long to wait for a held lock, in ms; default 0 = try once (LockBusyError if held).
   * At most the server's --max-wait-ms (InvalidArgumentError past it). The call's deadline
   * grows by it (see `deadlineMs`); a wait ends, as LockBusyError, just before the deadline.
   */
  readonly waitMs?: number;
  /** Lock backend ("memory", "file", "etcd"); default '' = the server's --backend. */
  readonly backend?: string;
  /**
   * Names the holder for humans (in LockBusyError messages, Describe, Watch); at most 1024
   * bytes. Default '' = the server names the holder by its peer address.
   */
  readonly owner?: string;
  /**
   * A semaphore: up to `limit` EXCLUSIVE holders at once, each with its own lease and fencing
   * token. Default 1 (a plain lock); 0 is refused (leave it out), and so is more than the
   * server accepts (1_000_000). Every holder and waiter of a name must ask for the same
   * limit (else FailedPreconditionError naming both). Not with `mode: 'SHARED'`. Needs a
   * backend that declares `semaphore`.
   */
  readonly limit?: number;
  /**
   * EXCLUSIVE (default) or SHARED: any number of SHARED holders at once, and no EXCLUSIVE one
   * while any is there (a read lock). One FIFO queue serves both modes, so a waiting writer
   * is not starved by readers arriving after it. SHARED takes no `limit`. Needs a backend
   * that declares `shared`.
   */
  readonly mode?: LockMode;
  // `signal` cancels the Acquire (and its wait) only; the handle has its own signal.
  // `deadlineMs` defaults to waitMs + the client's deadlineMs.
}

/** What `describe()` takes besides the call's signal and deadline. */

/** How a lease holds its lock; see LockOptions.mode. */
export type LockMode = 'EXCLUSIVE' | 'SHARED';

export interface DescribeOptions extends CallOptions {
  /** Lock backend; default '' = the server's --backend. */
  readonly backend?: string;
}

/** A watch has no deadline: it runs until `signal` aborts, the loop breaks or the server ends it. */
export interface WatchOptions {
  /**
   * Lock backend; default '' = the server's --backend. It must declare `watch` (else
   * FailedPreconditionError).
   */
  readonly backend?: string;
  /** Aborting it ends the iteration quietly (no error); so does breaking out of the loop. Default none. */
  readonly signal?: AbortSignal;
}

/** What a lock backend guarantees, as the server declares it. */
export interface Capabilities {
  /** Mutual exclusion holds across latchkey servers on different hosts. */
  readonly acrossHosts: boolean;
  /** Fencing tokens strictly increase per lock name. */
  readonly fencing: boolean;
  /** Waiters are granted in arrival order. */
  readonly fifo: boolean;
  /** A lease that is not refreshed is released when its TTL runs out. */
  readonly autoRelease: boolean;
  /** lock() with `limit` > 1. */
  readonly semaphore: boolean;
  /** lock() with `mode: 'SHARED'`. */
  readonly shared: boolean;
  /** watch(). */
  readonly watch: boolean;
  /**
   * Lock sessions (Locks/Session), which the client uses by itself where it can. A session
   * resumes through another server only where `acrossHosts` holds too.
   */
  readonly sessions: boolean;
  /** campaign(), observe() and leader(): leader election. */
  readonly elections: boolean;
}

export interface LockHolder {
  readonly owner: string;
  readonly fencingToken: bigint;
  readonly expiresAt: Date;
  readonly mode: LockMode;
}

export interface LockWaiter {
  readonly owner: string;
  readonly mode: LockMode;
}

export interface LockState {
  readonly name: string;
  readonly backend: string;
  readonly held: boolean;
  /** The first holder's (oldest grant); '' when not held. */
  readonly owner: string;
  /** The first holder's token; 0n when not held. */
  readonly fencingToken: bigint;
  /** The first holder's expiry; undefined when not held. */
  readonly expiresAt: Date | undefined;
  /** Callers waiting for the lock right now. */
  readonly waiters: number;
  /** Every holder, oldest grant first. */
  readonly holders: readonly LockHolder[];
  /** The waiters, in the order they will be served. */
  readonly queue: readonly LockWaiter[];
  /** The semaphore limit in force: 1 for a plain lock, 0 when nobody holds or waits. */
  readonly limit: number;
  readonly capabilities: Capabilities;
}

export type LockEventType = 'STATE' | 'ACQUIRED' | 'RELEASED' | 'EXPIRED' | 'WAITER_ADDED' | 'WAITER_LEFT';

interface LockEventBase {
  readonly name: string;
  /** Who acquired, released, expired, or started or stopped waiting; '' on STATE. */
  readonly owner: string;
  /** The lease's token on ACQUIRED, RELEASED and EXPIRED; 0n otherwise. */
  readonly fencingToken: bigint;
  readonly mode: LockMode;
  /** When it happened, by the server's clock. */
  readonly at: Date;
}

/** What watch() yields: first one STATE with the lock's state, then one event per change. */
export type LockEvent =
  | (LockEventBase & { readonly type: 'STATE'; readonly state: LockState })
  | (LockEventBase & { readonly type: Exclude<LockEventType, 'STATE'>; readonly state?: undefined });

/**
 * A connection to a latchkey service (see connect()): locks, the cache and watches, over one
 * channel per server. Close it, or dispose it, when done: that ends its lock sessions,
 * releasing their locks at once, and releases the locks it holds otherwise.
 *
 * ```ts
 * import { connect } from 'latchkey/client';
 *
 * await using client = connect('127.0.0.1:50051');
 * // Waits up to 5 s for the lock, and releases it when the function returns or throws.
 * await client.withLock(
 *   'nightly-report',
 *   async (lock) => {
 *     await buildReport({ signal: lock.signal }); // aborted if the lease is lost
 *   },
 *   { ttlMs: 30_000, waitMs: 5_000 },
 * );
 * const state = await client.describe('nightly-report'); // holders, queue, capabilities
 * ```
 */
export interface LatchkeyClient extends AsyncDisposable {
  /** The server addresses, as connect() was given them, joined by commas. */
  readonly address: string;
  /** The server addresses in the order they are tried. */
  readonly addresses: readonly string[];
  /** Acquires a lock; dispose the handle (or call release()) to let it go. */
  lock(name: string, options?: LockOptions): Promise<LockHandle>;
  /**
   * Acquires, runs fn, and releases even if fn throws; resolves with fn's result. fn should
   * stop when `lock.signal` aborts: past that point the lock no longer protects it.
   */
  withLock<T>(name: string, fn: (lock: LockHandle) => T | Promise<T>, options?: LockOptions): Promise<T>;
  describe(name: string, options?: DescribeOptions): Promise<LockState>;
  /**
   * Follows a lock: yields a STATE event with its current state, then an event for every
   * grant, release, expiry and waiter arriving or leaving, in order. The stream opens when
   * the iteration starts. It ends without error when `signal` aborts, when the loop breaks,
   * when the server ends it (it does so at shutdown) or when the client is closed; a failure
   * (server unreachable, backend without `watch`) is thrown as the SDK's error for it.
   * NOTE: not resumed after a failure: events in between are lost, and a new watch starts
   * with a fresh STATE.
   */
  watch(name: string, options?: WatchOptions): AsyncIterable<LockEvent>;
  /**
   * Campaigns for election `name` with `value` (what the leader makes known, e.g. its
   * address) and resolves once this candidate leads (FIFO among the candidates). With lock
   * sessions on (the default) the candidacy lives in the client's lock session of its backend
   * and `ttlMs`, kept alive with its locks; with `sessions: false` (or a server without them)
   * in a session of its own, kept alive while it waits and, once leading, by the leadership.
   * Dispose it, or resign(), to step down. Rejects with NotElectedError if `waitMs` runs out
   * first.
   */
  campaign(name: string, value: string, options?: CampaignOptions): Promise<Leadership>;
  /** Who leads election `name` now. */
  leader(name: string, options?: LeaderOptions): Promise<Leader>;
  /**
   * Follows election `name`: yields its current leader (or none), then one Leader per change
   * (a new leader, a value proclaimed, nobody leading), in order. Ends without error when
   * `signal` aborts, the loop breaks, the server ends the stream (at shutdown) or the client
   * closes; a failure is thrown as the SDK's error for it. NOTE: not resumed after a failure.
   */
  observe(name: string, options?: ObserveOptions): AsyncIterable<Leader>;
  /** The cache API on one store; default the server's default store. */
  cache(store?: string): CacheClient;
  /**
   * Ends the lock sessions (the server releases each session's locks at once; their handles
   * become 'released') and releases the unary lock handles still held, then closes the
   * channels. Idempotent.
   */
  close(): Promise<void>;
}

export const DEFAULT_DEADLINE_MS = 10_000;
/** TTL the handle assumes if a server grants a lease without saying its TTL. */
export const DEFAULT_TTL_MS = 15_000;
export const DEFAULT_RETRY: RetryOptions = { attempts: 3, baseDelayMs: 100, maxDelayMs: 1_000 };

let proto: (LocksProto & CacheProto & ElectionsProto)['latchkey']['v1'] | undefined;

function services() {
  proto ??= (
    grpc.loadPackageDefinition(withSessionCodec(loadPackageDefinition())) as unknown as LocksProto &
      CacheProto &
      ElectionsProto
  ).latchkey.v1;
  return proto;
}

/**
 * The package definition with Locks/Session's frames written by session-encode.ts and its
 * answers read by session-decode.ts; a copy, as the loader's is shared.
 */
function withSessionCodec(definition: PackageDefinition): PackageDefinition {
  const locks = definition['latchkey.v1.Locks'] as ServiceDefinition;
  const session = locks.Session!;
  return {
    ...definition,
    'latchkey.v1.Locks': {
      ...locks,
      Session: {
        ...session,
        requestSerialize: sessionRequestEncoder(session.requestSerialize as (value: SessionRequest) => Buffer),
        responseDeserialize: sessionResponseDecoder(
          session.responseDeserialize as (buf: Buffer) => SessionResponse__Output,
        ),
      },
    },
  };
}

const LOCK_MODES: ReadonlySet<string> = new Set<LockMode>(['EXCLUSIVE', 'SHARED']);
const UINT32_MAX = 2 ** 32 - 1;

function toCapabilities(c: LockState__Output['capabilities']): Capabilities {
  return {
    acrossHosts: c?.across_hosts ?? false,
    fencing: c?.fencing ?? false,
    fifo: c?.fifo ?? false,
    autoRelease: c?.auto_release ?? false,
    semaphore: c?.semaphore ?? false,
    shared: c?.shared ?? false,
    watch: c?.watch ?? false,
    sessions: c?.sessions ?? false,
    elections: c?.elections ?? false,
  };
}

function toLockState(state: LockState__Output): LockState {
  return {
    name: state.name,
    backend: state.backend,
    held: state.held,
    owner: state.owner,
    fencingToken: BigInt(state.fencing_token),
    expiresAt: toDate(state.expires_at_ms),
    waiters: state.waiters,
    holders: state.holders.map((h) => ({
      owner: h.owner,
      fencingToken: BigInt(h.fencing_token),
      expiresAt: new Date(Number(h.expires_at_ms)),
      mode: h.mode,
    })),
    queue: state.queue.map((w) => ({ owner: w.owner, mode: w.mode })),
    limit: state.limit,
    capabilities: toCapabilities(state.capabilities),
  };
}

function toLockEvent(event: LockEvent__Output): LockEvent {
  const base = {
    name: event.name,
    owner: event.owner,
    fencingToken: BigInt(event.fencing_token),
    mode: event.mode,
    at: new Date(Number(event.at_ms)),
  };
  if (event.type === 'STATE') {
    if (event.state === null)
      throw new InternalError('Watch: a STATE event came without its state', { method: 'Watch' });
    return { ...base, type: 'STATE', state: toLockState(event.state) };
  }
  if (event.type === 'TYPE_UNSPECIFIED')
    throw new InternalError('Watch: an event came without its type', { method: 'Watch' });
  return { ...base, type: event.type };
}

/**
 * A client for one latchkey service: `address` is one server, or several (an array, or one
 * string with commas: `'10.0.0.1:50051,10.0.0.2:50051'`, as `latchkey --address` takes them),
 * which must serve the same backends (for locks, one etcd cluster). Each is host:port, or any
 * gRPC target such as unix:/path. Calls go to the first until it goes away, then to the next,
 * round the list. Nothing is sent until the first call; an address that cannot be reached
 * fails calls with UnavailableError, not connect().
 *
 * ```ts
 * import { readFileSync } from 'node:fs';
 * import { connect } from 'latchkey/client';
 *
 * const client = connect(['lk-1.internal:50051', 'lk-2.internal:50051'], {
 *   tls: { ca: readFileSync('ca.pem') },
 *   token: () => readFileSync('/run/secrets/latchkey', 'utf8'),
 *   deadlineMs: 5_000,
 * });
 * try {
 *   // ... client.lock(), client.cache(), client.watch()
 * } finally {
 *   await client.close();
 * }
 * ```
 */
export function connect(address: string | readonly string[], options: ConnectOptions = {}): LatchkeyClient {
  return new Client(parseAddresses(address), options);
}

function pipelineOptions(option: boolean | PipelineOptions | undefined): Required<PipelineOptions> | false {
  if (option === false) return false;
  const given: PipelineOptions = option === true || option === undefined ? {} : option;
  const merged = {
    maxOutstanding: given.maxOutstanding ?? DEFAULT_PIPELINE.maxOutstanding,
    maxFrameOps: given.maxFrameOps ?? DEFAULT_PIPELINE.maxFrameOps,
    idleMs: given.idleMs ?? DEFAULT_PIPELINE.idleMs,
  };
  for (const key of ['maxOutstanding', 'maxFrameOps'] as const) {
    if (!Number.isSafeInteger(merged[key]) || merged[key] < 1)
      throw new InvalidArgumentError(`pipeline.${key} must be a whole number >= 1, got ${merged[key]}`);
  }
  if (!(merged.idleMs >= 0) || merged.idleMs === Infinity)
    throw new InvalidArgumentError(`pipeline.idleMs must be a finite number of ms >= 0, got ${merged.idleMs}`);
  return merged;
}

function sessionOptions(option: boolean | SessionOptions | undefined): Required<SessionOptions> | false {
  if (option === false) return false;
  const given: SessionOptions = option === true || option === undefined ? {} : option;
  const merged = {
    idleMs: given.idleMs ?? DEFAULT_SESSIONS.idleMs,
    maxFrameOps: given.maxFrameOps ?? DEFAULT_SESSIONS.maxFrameOps,
  };
  if (!Number.isSafeInteger(merged.maxFrameOps) || merged.maxFrameOps < 1)
    throw new InvalidArgumentError(`sessions.maxFrameOps must be a whole number >= 1, got ${merged.maxFrameOps}`);
  if (!(merged.idleMs >= 0) || merged.idleMs === Infinity)
    throw new InvalidArgumentError(`sessions.idleMs must be a finite number of ms >= 0, got ${merged.idleMs}`);
  return merged;
}

/** A unary call (Locks or Elections) on whichever server is current when the attempt starts. */
type ServerCall<Res> = (
  server: Server,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

interface InvokeOptions<Res> extends CallOptions {
  readonly retry?: false;
  readonly onAbandoned?: (response: Res) => void;
}

class Client implements LatchkeyClient {
  readonly address: string;
  readonly addresses: readonly string[];
  readonly #servers: ServerList;
  readonly #cache: CacheTransport;
  readonly #sessions: SessionPool | undefined;
  readonly #deadlineMs: number;
  readonly #retry: RetryOptions | false;
  readonly #handles = new Set<LockHandle>();
  /** Each handle's onSettled: one function for all of them, not a closure per lock. */
  readonly #forgetHandle = (handle: LockHandle) => void this.#handles.delete(handle);
  readonly #watches = new Set<grpc.ClientReadableStream<LockEvent__Output>>();
  readonly #flights: Flights = new Map();
  readonly #elections: Elections;
  #closing: Promise<void> | undefined;
  #closed = false;

  constructor(addresses: readonly string[], options: ConnectOptions) {
    this.addresses = addresses;
    this.address = addresses.join(',');
    this.#deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    if (!(this.#deadlineMs > 0)) throw new InvalidArgumentError(`deadlineMs must be > 0, got ${this.#deadlineMs}`);
    this.#retry = options.retry ?? DEFAULT_RETRY;
    const credentials = channelCredentials(options.tls, options.credentials);
    const pipeline = pipelineOptions(options.pipeline);
    const sessions = sessionOptions(options.sessions);
    // The trace context goes first, outermost: it reads the caller's context as the call
    // starts (tracing.ts). The token interceptor goes last, innermost: it may hold back the
    // call it wraps until the token is there (see credentials.ts).
    const interceptors: grpc.Interceptor[] = [
      traceContextInterceptor,
      ...((options.channelOptions?.interceptors as grpc.Interceptor[] | undefined) ?? []),
    ];
    if (options.token !== undefined) interceptors.push(tokenInterceptor(options.token));
    const channelOptions: grpc.ClientOptions = {
      ...(pipeline === false ? {} : { 'grpc.max_receive_message_length': -1 }),
      ...tlsChannelOptions(options.tls),
      ...options.channelOptions,
      interceptors,
    };
    const { Locks, Cache, Elections: ElectionsService } = services();
    this.#servers = new ServerList(addresses, (address) => {
      const locks: LocksStub = new Locks(address, credentials, channelOptions);
      // One channel (one HTTP/2 connection) per server for every service.
      const cache: CacheStub = new Cache(address, credentials, {
        ...channelOptions,
        channelOverride: locks.getChannel(),
      });
      const elections: ElectionsStub = new ElectionsService(address, credentials, {
        ...channelOptions,
        channelOverride: locks.getChannel(),
      });
      return { address, locks, cache, elections };
    });
    this.#cache = createCacheTransport({
      address: this.address,
      servers: this.#servers,
      deadlineMs: this.#deadlineMs,
      retry: this.#retry,
      pipeline,
    });
    this.#elections = new Elections({
      servers: this.#servers,
      deadlineMs: this.#deadlineMs,
      invoke: (method, call, options) => this.#invoke(method, call, options),
      checkOpen: (method) => {
        if (this.#closing !== undefined) throw this.#closedError(method);
      },
      forCampaign: (backend, ttlMs, election) => this.#sessions?.forCampaign(backend, ttlMs, election),
    });
    this.#sessions =
      sessions === false
        ? undefined
        : new SessionPool({
            servers: this.#servers,
            deadlineMs: this.#deadlineMs,
            fallbackTtlMs: DEFAULT_TTL_MS,
            options: sessions,
          });
  }

  #closedError(method: string): CancelledError {
    return new CancelledError(`latchkey client for ${this.address} is closed; connect again`, { method });
  }

  /**
   * One unary Locks call: deadline, signal, error mapping and retries of idempotent methods
   * (unary-call.ts), each attempt on the current server. An attempt that shows its server
   * gone, or that it never answered in time (unanswered(): a partition), moves the client to
   * the next one; one that was never sent (the server unreachable)
   * is safe to repeat for any method, and is, on each other server once.
   */
  async #invoke<Res>(method: string, call: ServerCall<Res>, options: InvokeOptions<Res>): Promise<Res> {
    const deadlineMs = options.deadlineMs ?? this.#deadlineMs;
    const deadline = performance.now() + deadlineMs;
    for (let tried = 1; ; tried++) {
      if (this.#closed) throw this.#closedError(method);
      try {
        return await unaryCall<Res>(
          (md, o, cb) => {
            const server = this.#servers.current;
            return call(server, md, o, (err, response) => {
              if (err !== null && (serverGone(err) || unanswered(err))) this.#servers.failed(server);
              cb(err, response);
            });
          },
          {
            service: 'latchkey.v1.Locks',
            method,
            deadlineMs: tried === 1 ? deadlineMs : deadline - performance.now(),
            signal: options.signal,
            retry: options.retry ?? this.#retry,
            onAbandoned: options.onAbandoned,
          },
        );
      } catch (err) {
        const status = err instanceof UnavailableError ? (err.cause as grpc.StatusObject | undefined) : undefined;
        if (status === undefined || !neverSent(status) || tried >= this.#servers.size) throw err;
        if (!(deadline - performance.now() > 0)) throw err;
      }
    }
  }

  async lock(name: string, options: LockOptions = {}): Promise<LockHandle> {
    // 0 asks for the server's default TTL (--default-ttl-ms); the Lease says what was granted.
    const requestedTtlMs = options.ttlMs ?? 0;
    const waitMs = options.waitMs ?? 0;
    if (options.ttlMs !== undefined && !(requestedTtlMs > 0))
      throw new InvalidArgumentError(`ttlMs must be > 0, got ${requestedTtlMs}`);
    const mode = options.mode ?? 'EXCLUSIVE';
    if (!LOCK_MODES.has(mode))
      throw new InvalidArgumentError(`mode must be 'EXCLUSIVE' or 'SHARED', got ${String(mode)}`);
    // 0 on the wire is "a plain lock", as 1 is.
    const limit = options.limit ?? 0;
    if (options.limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 1 && limit <= UINT32_MAX)) {
      throw new InvalidArgumentError(`limit must be a whole number between 1 and ${UINT32_MAX}, got ${limit}`);
    }
    const backend = options.backend ?? '';
    const request = {
      name,
      backend,
      ttl_ms: msField('ttlMs', requestedTtlMs),
      wait_ms: msField('waitMs', waitMs),
      owner: options.owner ?? '',
      limit,
      mode,
    };
    if (this.#closing !== undefined) throw this.#closedError('Acquire');
    const deadlineMs = options.deadlineMs ?? waitMs + this.#deadlineMs;
    const started = performance.now();

    const session = this.#sessions?.forLock(backend, requestedTtlMs, name);
    if (session !== undefined) {
      const keeper = await session.acquire(sessionAcquire(request, waitMs, deadlineMs), deadlineMs, options.signal);
      if (keeper !== undefined) return this.#adopt(createLockHandle(this.#handleOptions(keeper.lease, keeper)));
      // Given back (the session could not be opened): a unary Acquire instead.
    }

    const sentAt = performance.now();
    const lease = await this.#invoke<Lease__Output>(
      'Acquire',
      ({ locks }, md, o, cb) => locks.Acquire(request, md, o, cb),
      {
        signal: options.signal,
        deadlineMs: deadlineMs - (sentAt - started),
        // NOTE: the grant crossed our cancel on the wire; the server saw no cancellation and
        // would keep the lock held for a caller that is gone until the TTL ran out.
        onAbandoned: (granted) =>
          void this.#leaseCalls(granted)
            .release({ deadlineMs: Number(granted.ttl_ms) || DEFAULT_TTL_MS })
            .catch(() => {}),
      },
    );
    // The TTL the backend granted: it may round up (etcd: whole seconds); older servers
    // that send none granted what was asked, or their default.
    const ttlMs = Number(lease.ttl_ms) || requestedTtlMs || DEFAULT_TTL_MS;
    return this.#adopt(
      await openLockHandle({
        lease,
        ttlMs,
        sentAt,
        calls: this.#leaseCalls(lease),
        deadlineMs: this.#deadlineMs,
        signal: options.signal,
        onSettled: this.#forgetHandle,
      }),
    );
  }

  #handleOptions(lease: Lease__Output, keeper: LeaseKeeper) {
    return { lease, keeper, deadlineMs: this.#deadlineMs, onSettled: this.#forgetHandle };
  }

  /** Hands a new handle out, unless the client was closed while it was being acquired. */
  async #adopt(handle: LockHandle): Promise<LockHandle> {
    if (this.#closing !== undefined) {
      await handle.release();
      throw new CancelledError(
        `latchkey client for ${this.address} was closed while lock "${handle.name}" was being acquired`,
        { method: 'Acquire' },
      );
    }
    this.#handles.add(handle);
    return handle;
  }

  #leaseCalls(lease: Lease__Output): LeaseCalls {
    const ref = { name: lease.name, backend: lease.backend, lease_id: lease.lease_id };
    return {
      // The handle retries Refresh itself, on its own schedule, until the lease's expiry.
      refresh: (ttlMs, options) =>
        this.#invoke<Lease__Output>(
          'Refresh',
          ({ locks }, md, o, cb) => locks.Refresh({ ...ref, ttl_ms: msField('ttlMs', ttlMs) }, md, o, cb),
          { ...options, retry: false },
        ),
      release: async (options) => {
        await this.#invoke<ReleaseResponse__Output>(
          'Release',
          ({ locks }, md, o, cb) => locks.Release(ref, md, o, cb),
          options,
        );
      },
    };
  }

  async withLock<T>(name: string, fn: (lock: LockHandle) => T | Promise<T>, options?: LockOptions): Promise<T> {
    await using lock = await this.lock(name, options);
    return await fn(lock);
  }

  async describe(name: string, options: DescribeOptions = {}): Promise<LockState> {
    const backend = options.backend ?? '';
    const request = { name, backend };
    const { signal } = options;
    // Through an open session of the backend if there is one (none is opened for it), else
    // unary; a retry goes whichever way is open at the time.
    const attempt = async (deadlineMs: number): Promise<LockState__Output> => {
      const viaSession = await this.#sessions?.forDescribe(backend)?.describe(request, deadlineMs, signal);
      return (
        viaSession ??
        (await this.#invoke<LockState__Output>(
          'Describe',
          ({ locks }, md, o, cb) => locks.Describe(request, md, o, cb),
          {
            deadlineMs,
            signal,
            retry: false,
          },
        ))
      );
    };
    const deadlineMs = options.deadlineMs ?? this.#deadlineMs;
    const retries = retryPolicy('latchkey.v1.Locks', 'Describe', this.#retry);
    return toLockState(
      retries === false
        ? await attempt(deadlineMs)
        : await withRetries(attempt, deadlineMs, retries, 'Describe', signal),
    );
  }

  async *watch(name: string, options: WatchOptions = {}): AsyncGenerator<LockEvent, void, undefined> {
    const { signal } = options;
    if (this.#closing !== undefined) throw this.#closedError('Watch');
    if (signal?.aborted) return;
    const server = this.#servers.current;
    // No deadline: a watch runs until it is stopped.
    const call = server.locks.Watch({ name, backend: options.backend ?? '' }, new grpc.Metadata(), {});
    // NOTE: grpc-js emits a failed stream's 'error' itself; once the loop below is gone (a
    // break, an abort) nothing else listens, and an unheard 'error' would crash the process.
    call.on('error', () => {});
    const stop = () => call.cancel();
    signal?.addEventListener('abort', stop, { once: true });
    this.#watches.add(call);
    try {
      for await (const message of call as AsyncIterable<LockEvent__Output>) {
        // Events already buffered when the signal fired are not wanted any more.
        if (signal?.aborted || this.#closing !== undefined) return;
        yield toLockEvent(message);
      }
    } catch (err) {
      const cancelled = (err as { code?: unknown }).code === grpc.status.CANCELLED;
      if (cancelled && (signal?.aborted || this.#closing !== undefined)) return;
      if (serverGone(err as grpc.StatusObject)) this.#servers.failed(server);
      throw fromStatus(err, 'Watch');
    } finally {
      signal?.removeEventListener('abort', stop);
      this.#watches.delete(call);
      call.cancel();
    }
  }

  campaign(name: string, value: string, options?: CampaignOptions): Promise<Leadership> {
    return this.#elections.campaign(name, value, options);
  }

  leader(name: string, options?: LeaderOptions): Promise<Leader> {
    return this.#elections.leader(name, options);
  }

  observe(name: string, options?: ObserveOptions): AsyncIterable<Leader> {
    return this.#elections.observe(name, options);
  }

  cache(store = ''): CacheClient {
    return createCacheClient(this.#cache.call, store, this.#deadlineMs, this.#flights);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      // Each session ends at once with all its locks; unary handles release one by one.
      await this.#sessions?.close();
      await Promise.all([...[...this.#handles].map((h) => h.release()), this.#elections.close()]);
      this.#closed = true;
      for (const call of this.#watches) call.cancel();
      this.#cache.close();
      // A stream still owed answers keeps going until they come.
      this.#servers.close();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
