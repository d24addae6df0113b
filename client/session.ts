// LockSession: one lock session on a Locks/Session stream. Every lock operation of the
// session (acquire with all of Acquire's options, release, describe) is a tagged op; ops
// queued in the same turn of the event loop go out as one frame, as the cache pipeline's do
// (pipeline.ts), and answers are matched back by tag. Every lock of the session lives on the
// session's one lease, which one keepalive op every TTL / 3 renews for all of them.
//
// The session outlives its stream. When the stream breaks (the server died, restarted or is
// shutting down, the connection dropped, a keepalive went unanswered), nothing is released on
// the server: the session reconnects, to the next server of the client's list when that one
// went away, and resumes by id. The server then lists the locks the session still holds: each
// handle keeps going, an acquire the break left unanswered is resolved from that list or asked
// again, and any lock nobody here holds a handle for any more is released. While the session
// cannot be confirmed, its handles' signals abort before it could expire (the margin a unary
// handle uses); once the server says the session is gone (expired, ended, taken over), they
// abort at once. Either way the next lock opens a new session.
//
// A session that has never opened gives its calls back (the caller makes them unary calls):
// for good against a server without the method, for a while when the server refused the
// stream (a backend without sessions, a TTL out of range, credentials) or none could be
// reached. A session holding nothing ends after `idleMs`, so that it does not keep the
// process alive.
//
// Candidacies (client/elections.ts) live in a session too: a tenant joins the session (which
// opens it if need be) before its Campaign names the session's id, keeps it from going idle
// while it waits and leads, and hears of the session's loss or end as a lock's keeper does.
import * as grpc from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';
import {
  CancelledError,
  fromOpError,
  fromStatus,
  InternalError,
  LeaseLostError,
  UnavailableError,
  type LatchkeyError,
} from './errors.js';
import type {
  AcquireRequest,
  DescribeRequest,
  Lease__Output,
  LockState__Output,
  SessionError__Output,
  SessionOp,
  SessionOpened__Output,
  SessionRequest,
  SessionResponse__Output,
  SessionResult__Output,
} from './common/index.js';
import { expiryMarginMs, type KeptLease, type LeaseKeeper } from './lock-handle.js';
import type { Server, ServerList } from './servers.js';
import {
  deadlineError,
  FRAME_BYTES,
  neverSent,
  REOPEN_REFUSED_MS,
  refused,
  reopenDelayMs,
  serverGone,
  statusCause,
} from './streams.js';
import { type DeadlineEntry, type DeadlineList, Deadlines } from './deadlines.js';
import { traceCarrier, tracedContext } from './tracing.js';
import { abortError } from './unary-call.js';

/** How the client's lock sessions behave; see ConnectOptions.sessions. */
export interface SessionOptions {
  /**
   * A session holding no lock, with nothing outstanding, ends after this many ms (its open
   * stream would keep the process alive, and on etcd it holds an etcd lease), and a new one
   * opens on the next lock. Default 1000; 0 ends it as soon as it is idle, so a program that
   * takes one lock at a time opens a session (one etcd lease grant) per lock.
   */
  readonly idleMs?: number;
  /**
   * Operations in one frame, at most; must not exceed the server's --max-batch (default 1000),
   * which refuses a bigger frame op by op. Default 1000; at least 1.
   */
  readonly maxFrameOps?: number;
}

export const DEFAULT_SESSIONS: Required<SessionOptions> = { idleMs: 1_000, maxFrameOps: 1_000 };

type Stream = grpc.ClientDuplexStream<SessionRequest, SessionResponse__Output>;
type Kind = 'acquire' | 'release' | 'describe' | 'keepalive' | 'cancel';
type Phase =
  /** No stream: never opened, or (with an id) waiting to reconnect. */
  | 'idle'
  /** A stream is open and its `opened` has not come yet. */
  | 'opening'
  | 'open'
  /** close(): the session's end is sent, or will be once the session is back. */
  | 'ending'
  /** Ended, or retired when idle or given up: the pool no longer hands it out. */
  | 'over';

const METHOD: Record<Kind, string> = {
  acquire: 'Acquire',
  release: 'Release',
  describe: 'Describe',
  keepalive: 'Session',
  cancel: 'Acquire',
};

/** Field headers and the integer fields of one operation, generously. */
const OP_OVERHEAD_BYTES = 64;

/** An answer frame with at least this many results may be settled in two turns (see #onData). */
const SPLIT_MIN_RESULTS = 8;

/** One operation on its way through the session. It is its own abort listener (handleEvent). */
class Op implements DeadlineEntry {
  tag = 0;
  /** Written to the current stream (and in `#sent`), or left unanswered by a broken one. */
  sent = false;
  /** The caller has its outcome; a late answer still has its effect on the session's locks. */
  settled = false;
  /** performance.now() when written: a keepalive's answer confirms the session from then. */
  sentAt = 0;
  // Its deadline, in DEADLINES (deadlines.ts).
  dueAt = 0;
  deadlineNext: Op | undefined = undefined;
  deadlinePrev: Op | undefined = undefined;
  deadlineList: DeadlineList | undefined = undefined;
  /**
   * The caller's context when it has a trace to continue (tracing.ts): the op carries it as
   * its trace_context, the stream's metadata being that of whoever opened it. Undefined for
   * the session's own ops (keepalives, cancels, releases of locks nobody holds): no caller.
   */
  trace: Context | undefined = undefined;
  resolve: (value: never) => void = noop;
  reject: (reason: unknown) => void = noop;

  constructor(
    readonly session: LockSession,
    readonly kind: Kind,
    /** acquire and describe: the request; release: built from `lease`. */
    readonly request: AcquireRequest | DescribeRequest | undefined,
    /** release: the lock it lets go. */
    readonly lease: SessionLease | undefined,
    /** cancel: the acquire it withdraws. */
    readonly target: Op | undefined,
    readonly deadlineMs: number,
    readonly signal: AbortSignal | undefined,
    /** acquire: performance.now() when asked, to send what is left of its wait again after a break. */
    readonly startedAt: number,
    readonly waitMs: number,
  ) {}

  get name(): string {
    return this.lease?.name ?? (this.request as { name: string }).name;
  }

  /** Ops the session makes for itself (keepalives, releases of locks nobody holds) have no caller. */
  get internal(): boolean {
    return this.resolve === noop;
  }

  handleEvent(): void {
    this.session.abort(this);
  }
}

function noop(): void {}

/** The server says the session is gone (expired, ended, its lease lost) rather than the op failed. */
function sessionGone(error: SessionError__Output): boolean {
  return error.code === grpc.status.FAILED_PRECONDITION && error.reason === 'SessionExpiredError';
}

/** A waiting op answered UNAVAILABLE because its server shuts down: ask again after the resume. */
function shuttingDown(error: SessionError__Output): boolean {
  return error.code === grpc.status.UNAVAILABLE && error.reason === 'ShuttingDownError';
}

/**
 * One lock of a session, as its handle's keeper: the session keeps it alive with all the
 * others, and the session says when it is lost or released at the session's end.
 */
export class SessionLease implements LeaseKeeper {
  readonly lease: Lease__Output;
  readonly #session: LockSession;
  #held: KeptLease | undefined;
  #lost: LeaseLostError | undefined;
  /** Its handle let go of it without a confirmed release: the session releases it by itself. */
  orphan = false;
  /** The release op on its way, if any. */
  releasing: Op | undefined;

  constructor(session: LockSession, lease: Lease__Output) {
    this.#session = session;
    this.lease = lease;
  }

  get name(): string {
    return this.lease.name;
  }

  get ttlMs(): number {
    return this.#session.ttlMs;
  }

  get expiresAt(): Date {
    return this.#session.expiresAt;
  }

  get lostReason(): LeaseLostError | undefined {
    return this.#lost;
  }

  start(held: KeptLease): void {
    this.#held = held;
    if (this.#lost !== undefined) held.lose(this.#lost);
  }

  /** Nothing to stop: the session keeps every lock alive together, until each is released. */
  stop(): void {}

  release(options: { readonly deadlineMs: number; readonly signal?: AbortSignal | undefined }): Promise<void> {
    return this.#session.release(this, options.deadlineMs, options.signal);
  }

  lose(reason: LeaseLostError): void {
    this.#lost ??= reason;
    this.#held?.lose(reason);
  }

  ended(error?: Error): void {
    this.#held?.ended(error);
  }
}

/** What a session needs from the pool of sessions it belongs to. */
/** A candidacy in a session (elections.ts): told when the session is lost or ends, as a lock is. */
export interface SessionTenant extends KeptLease {
  /** The election it campaigns for: a session campaigns for a name at most once. */
  readonly election: string;
}

/** The session as a tenant joined it. */
export interface JoinedSession {
  readonly id: string;
  readonly ttlMs: number;
  readonly expiresAt: Date;
}

export interface SessionHost {
  /** The server has no Session method: every later lock goes unary. */
  unimplemented(): void;
  /** No new session for this one's backend and TTL for `ms`: locks go unary meanwhile. */
  decline(session: LockSession, ms: number): void;
  /** The session is over (ended, idle or given up): hand it out no more. */
  retire(session: LockSession): void;
}

export interface LockSessionInit {
  readonly host: SessionHost;
  readonly servers: ServerList;
  /** As lock() was asked: '' = the server's default backend. */
  readonly backend: string;
  /** As lock() was asked: 0 = the server's default TTL. */
  readonly ttlMs: number;
  /** The TTL assumed if a server grants a session without saying its TTL. */
  readonly fallbackTtlMs: number;
  /** The client's default deadline: bounds the end of the session at close(). */
  readonly deadlineMs: number;
  readonly options: Required<SessionOptions>;
}

export class LockSession {
  /** The pool's key: backend and requested TTL. */
  readonly key: string;
  readonly backend: string;
  readonly #host: SessionHost;
  readonly #servers: ServerList;
  readonly #requestedTtlMs: number;
  readonly #fallbackTtlMs: number;
  readonly #deadlineMs: number;
  readonly #idleMs: number;
  readonly #maxFrameOps: number;

  #phase: Phase = 'idle';
  /** The session's id once opened ('' before, and after it is lost). */
  #id = '';
  /** The backend the server named in `opened`. */
  #backendName = '';
  #ttlMs = 0;
  #marginMs = 0;
  #expiresAt = new Date(0);
  /** performance.now() when the open or keepalive last answered was sent: the session lives at least TTL from then. */
  #confirmedAt = 0;
  #lastError: LatchkeyError | undefined;

  #stream: Stream | undefined;
  /** The server #stream went to. */
  #server: Server | undefined;
  /** A resume not answered in time: that server is stuck, try the next. */
  #openTimer: NodeJS.Timeout | undefined;
  /** The stream has its status: nothing more goes into it, and #ended is on its way. */
  #streamOver = false;
  #resuming = false;
  #openSentAt = 0;
  #waitingForDrain = false;
  #flushScheduled = false;
  /** The second half of an answer frame, settled on the next turn (see #onData). */
  #deferred: { stream: Stream; results: SessionResult__Output[]; from: number } | undefined;

  /** Ops not yet written; settled ones are skipped. */
  #queue: Op[] = [];
  #queueHead = 0;
  /** Written on the current stream and not yet answered, by tag. */
  readonly #sent = new Map<number, Op>();
  /** Left unanswered by a broken stream: settled by the resume (or the loss) of the session. */
  #resend: Op[] = [];
  #lastTag = 0;
  /** The session's locks, by lease id. */
  readonly #leases = new Map<string, SessionLease>();
  /** Names held or being acquired here: a session holds a name at most once. */
  readonly #names = new Set<string>();
  #keepalive: Op | undefined;
  /** Candidacies living in the session. */
  readonly #tenants = new Set<SessionTenant>();
  /** join()s waiting for the session to open: resolved with it, or with undefined if it will not. */
  #joining: ((joined: JoinedSession | undefined) => void)[] = [];

  #keepaliveTimer: NodeJS.Timeout | undefined;
  #giveUpTimer: NodeJS.Timeout | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleSince = 0;
  /** Breaks in a row without a session opened in between, for the backoff. */
  #breaks = 0;
  /** Opens in a row that found their server unreachable. */
  #unreachable = 0;

  #closed = false;
  #ended: Promise<void> | undefined;
  #endDone: (() => void) | undefined;
  #endTimer: NodeJS.Timeout | undefined;
  /** How the end went: undefined = released everything. */
  #endError: Error | undefined;

  constructor(init: LockSessionInit) {
    this.#host = init.host;
    this.#servers = init.servers;
    this.backend = init.backend;
    this.#requestedTtlMs = init.ttlMs;
    this.key = sessionKey(init.backend, init.ttlMs);
    this.#fallbackTtlMs = init.fallbackTtlMs;
    this.#deadlineMs = init.deadlineMs;
    this.#idleMs = init.options.idleMs;
    this.#maxFrameOps = init.options.maxFrameOps;
  }

  get ttlMs(): number {
    return this.#ttlMs;
  }

  get expiresAt(): Date {
    return this.#expiresAt;
  }

  /** Open right now, and of `backend` as lock() or describe() name it. */
  serves(backend: string): boolean {
    return this.#phase === 'open' && (backend === this.backend || backend === this.#backendName);
  }

  /** Whether a lock of `name` is held or being acquired here. */
  uses(name: string): boolean {
    return this.#names.has(name);
  }

  /** Whether a candidacy for `election` lives here. */
  campaigns(election: string): boolean {
    for (const tenant of this.#tenants) if (tenant.election === election) return true;
    return false;
  }

  /**
   * Lodges `tenant` in the session, opening it if it is not yet: resolves with the session
   * once it is open, or with undefined when it will not be (it could not be opened, or was
   * lost or closed meanwhile): the caller then campaigns on its own, unary.
   */
  join(tenant: SessionTenant): Promise<JoinedSession | undefined> {
    if (this.#over || this.#closed) return Promise.resolve(undefined);
    this.#tenants.add(tenant);
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#phase === 'open') return Promise.resolve(this.#joined());
    const joined = new Promise<JoinedSession | undefined>((resolve) => this.#joining.push(resolve));
    if (this.#phase === 'idle' && this.#id === '' && this.#stream === undefined) this.#open();
    return joined;
  }

  /** The tenant is done (resigned, or its campaign failed): the session may go idle. */
  leave(tenant: SessionTenant): void {
    if (!this.#tenants.delete(tenant)) return;
    this.#maybeIdle();
  }

  #joined(): JoinedSession {
    return { id: this.#id, ttlMs: this.#ttlMs, expiresAt: this.#expiresAt };
  }

  /** Settles every waiting join(): with the session now open, or with undefined. */
  #settleJoins(open: boolean): void {
    const joining = this.#joining;
    this.#joining = [];
    for (const resolve of joining) resolve(open ? this.#joined() : undefined);
  }

  get #over(): boolean {
    return this.#phase === 'over';
  }

  get #giveUpAt(): number {
    return this.#confirmedAt + this.#ttlMs - this.#marginMs;
  }

  /**
   * Acquires through the session; resolves with the lock's keeper, or with undefined when the
   * session gives the call back (it could not be opened): the caller then makes it unary.
   */
  acquire(
    request: AcquireRequest,
    deadlineMs: number,
    signal: AbortSignal | undefined,
  ): Promise<SessionLease | undefined> {
    const { op, promise } = this.#start(
      'acquire',
      request,
      undefined,
      deadlineMs,
      signal,
      Number(request.wait_ms ?? 0),
    );
    if (op !== undefined) this.#names.add(request.name as string);
    return promise as Promise<SessionLease | undefined>;
  }

  /** Describe through the session; undefined when given back. */
  describe(
    request: DescribeRequest,
    deadlineMs: number,
    signal: AbortSignal | undefined,
  ): Promise<LockState__Output | undefined> {
    return this.#start('describe', request, undefined, deadlineMs, signal, 0).promise as Promise<
      LockState__Output | undefined
    >;
  }

  /** SessionLease.release: one release op, or the session's end if that is under way. */
  release(lease: SessionLease, deadlineMs: number, signal: AbortSignal | undefined): Promise<void> {
    if (!this.#leases.has(lease.lease.lease_id) || this.#leases.get(lease.lease.lease_id) !== lease)
      return Promise.reject(
        lease.lostReason ?? new LeaseLostError(`lock "${lease.name}" is no longer held by its session`),
      );
    if (this.#closed)
      return this.#end().then(() => {
        if (this.#endError !== undefined) throw this.#endError;
      });
    const { op, promise } = this.#start('release', undefined, lease, deadlineMs, signal, 0);
    if (op !== undefined) lease.releasing = op;
    return promise as Promise<void>;
  }

  #start(
    kind: Kind,
    request: AcquireRequest | DescribeRequest | undefined,
    lease: SessionLease | undefined,
    deadlineMs: number,
    signal: AbortSignal | undefined,
    waitMs: number,
  ): { op: Op | undefined; promise: Promise<unknown> } {
    const method = METHOD[kind];
    if (signal?.aborted) return { op: undefined, promise: Promise.reject(abortError(method, signal)) };
    if (!(deadlineMs > 0)) return { op: undefined, promise: Promise.reject(deadlineError(method, deadlineMs)) };
    const now = performance.now();
    const op = new Op(this, kind, request, lease, undefined, deadlineMs, signal, now, waitMs);
    op.trace = tracedContext();
    const promise = new Promise<unknown>((resolve, reject) => {
      op.resolve = resolve as (value: never) => void;
      op.reject = reject;
    });
    // NOTE: not unref'd: a caller waits for this op, and while the session reconnects no
    // stream keeps the process alive for it (the session's own timers are unref'd).
    if (deadlineMs !== Infinity) DEADLINES.add(op, deadlineMs, now);
    signal?.addEventListener('abort', op, { once: true });
    this.#enqueue(op);
    return { op, promise };
  }

  #enqueue(op: Op): void {
    this.#queue.push(op);
    if (this.#phase === 'idle' && this.#id === '' && this.#stream === undefined) this.#open();
    this.#scheduleFlush();
  }

  /** An op the session makes for itself. */
  #internal(kind: 'keepalive' | 'release' | 'cancel', lease?: SessionLease, target?: Op): Op {
    const op = new Op(this, kind, undefined, lease, target, Infinity, undefined, performance.now(), 0);
    if (lease !== undefined) lease.releasing = op;
    this.#queue.push(op);
    this.#scheduleFlush();
    return op;
  }

  /** Releases, with no caller waiting, a lock nobody holds a handle for. */
  #releaseOrphan(lease: SessionLease): void {
    lease.orphan = true;
    if (lease.releasing === undefined && this.#phase !== 'ending' && !this.#closed) this.#internal('release', lease);
  }

  // --- Ending ---------------------------------------------------------------------------

  /**
   * Ends the session: every lock of it is released at once (handles become 'released'), and
   * waiting acquires fail with CancelledError. Bounded by the client's deadline and the TTL:
   * past that, the locks are left to the session's expiry (handles 'release-failed').
   */
  end(): Promise<void> {
    return this.#end();
  }

  #end(): Promise<void> {
    if (this.#ended !== undefined) return this.#ended;
    this.#closed = true;
    this.#ended = new Promise((resolve) => (this.#endDone = resolve));
    clearTimeout(this.#keepaliveTimer);
    clearTimeout(this.#idleTimer);
    // Nothing queued is worth sending: the end releases every lock.
    for (const op of this.#takeQueue()) {
      if (op.kind === 'release') this.#resend.push(op);
      else
        this.#fail(
          op,
          new CancelledError(`${METHOD[op.kind]}: the latchkey client was closed before this call was sent`, {
            method: METHOD[op.kind],
          }),
        );
    }
    if (this.#id === '' && this.#stream === undefined) {
      this.#finishEnd(undefined);
      return this.#ended;
    }
    const capMs = Math.min(this.#deadlineMs, this.#ttlMs || this.#deadlineMs);
    this.#endTimer = setTimeout(() => {
      const stream = this.#stream;
      this.#stream = undefined;
      stream?.cancel();
      this.#finishEnd(
        new UnavailableError(
          `the lock session could not be ended within ${capMs} ms (${this.#lastError?.message ?? 'no answer'}); its locks are freed when it expires`,
          { method: 'Session', cause: this.#lastError },
        ),
      );
    }, capMs);
    // A stream that is open (or opening a new session) is ended now; a session being resumed
    // is ended as soon as it is back.
    if (this.#stream !== undefined && (this.#phase === 'open' || !this.#resuming)) this.#sendEnd();
    return this.#ended;
  }

  #sendEnd(): void {
    this.#phase = 'ending';
    endSession(this.#stream!);
  }

  /** `error` undefined: the server ended the session and released everything. */
  #finishEnd(error: Error | undefined): void {
    if (this.#phase === 'over') return;
    this.#endError = error;
    const leases = [...this.#leases.values()];
    this.#leases.clear();
    this.#names.clear();
    for (const lease of leases) lease.ended(error);
    const tenants = [...this.#tenants];
    this.#tenants.clear();
    for (const tenant of tenants) tenant.ended(error);
    this.#settleJoins(false);
    const cancelled = (op: Op) =>
      error ?? new CancelledError(`${METHOD[op.kind]}: the latchkey client was closed`, { method: METHOD[op.kind] });
    for (const op of [...this.#sent.values(), ...this.#resend, ...this.#takeQueue()]) {
      if (op.kind === 'release' && error === undefined) this.#fulfil(op, undefined);
      else this.#fail(op, cancelled(op));
    }
    this.#sent.clear();
    this.#resend = [];
    this.#retire();
    this.#endDone?.();
  }

  #retire(): void {
    if (this.#phase === 'over') return;
    this.#phase = 'over';
    this.#settleJoins(false);
    // Tenants still here were never told of a session (it never opened): they go unary.
    this.#tenants.clear();
    clearTimeout(this.#keepaliveTimer);
    clearTimeout(this.#giveUpTimer);
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#endTimer);
    clearTimeout(this.#openTimer);
    this.#host.retire(this);
  }

  // --- Settling ops -----------------------------------------------------------------------

  #settle(op: Op): void {
    op.settled = true;
    DEADLINES.remove(op);
    op.signal?.removeEventListener('abort', op);
  }

  #fulfil(op: Op, value: unknown): void {
    if (op.settled) return;
    this.#settle(op);
    op.resolve(value as never);
  }

  #fail(op: Op, reason: unknown): void {
    if (op.settled) return;
    this.#settle(op);
    op.reject(reason);
  }

  /** The caller's signal fired (Op.handleEvent). */
  abort(op: Op): void {
    if (op.settled) return;
    this.#giveUp(op);
    op.reject(abortError(METHOD[op.kind], op.signal!));
  }

  expire(op: Op): void {
    if (op.settled) return;
    this.#giveUp(op);
    op.reject(deadlineError(METHOD[op.kind], op.deadlineMs));
  }

  /**
   * The caller gives up on an op before its answer. One still queued is never sent. A written
   * acquire is withdrawn with a cancel op; any other written op still runs on the server. An
   * answer that comes anyway only has its effect on the locks: a grant that crossed the
   * cancel is released, a late release forgets the lock.
   */
  #giveUp(op: Op): void {
    this.#settle(op);
    if (op.kind === 'release') {
      op.lease!.orphan = true;
      if (!op.sent) op.lease!.releasing = undefined;
    } else if (op.kind === 'acquire') {
      // Queued: never sent. Written: withdrawn from the server's queue, answered CANCELLED.
      if (!op.sent) this.#names.delete(op.name);
      else if (this.#sent.get(op.tag) === op) this.#internal('cancel', undefined, op);
    }
    this.#maybeIdle();
  }

  /** Hands ops back to the caller, which makes them unary calls (the session never opened). */
  #giveBack(ops: Iterable<Op>): void {
    for (const op of ops) {
      if (op.kind === 'acquire') this.#names.delete(op.name);
      this.#fulfil(op, undefined);
    }
  }

  #takeQueue(): Op[] {
    const ops = this.#queue.slice(this.#queueHead).filter((op) => !op.settled || op.internal);
    this.#queue = [];
    this.#queueHead = 0;
    return ops;
  }

  /** Puts ops back in front of the queue, to be written on the next stream. */
  #requeue(ops: readonly Op[]): void {
    if (ops.length === 0) return;
    const now = performance.now();
    for (const op of ops) {
      op.sent = false;
      // Asked again with what is left of its wait (0: try once).
      if (op.kind === 'acquire' && op.waitMs > 0) {
        (op.request as { wait_ms: number }).wait_ms = Math.max(0, Math.floor(op.waitMs - (now - op.startedAt)));
      }
    }
    this.#queue = [...ops, ...this.#queue.slice(this.#queueHead)];
    this.#queueHead = 0;
    this.#scheduleFlush();
  }

  // --- Writing ----------------------------------------------------------------------------

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // Once the code running now and the promise reactions it set off are done, so every op
    // they make shares the frame. NOTE: not a turn later (setImmediate): written inside the
    // callback that read an answer, the frame leaves at the end of that read, while the server
    // may still be busy, rather than after everything else the turn does (see #onData).
    queueMicrotask(this.#flushAfterMicrotasks);
  }

  /** A tick queued from a microtask runs once the microtask queue is empty. */
  readonly #flushAfterMicrotasks = (): void => {
    process.nextTick(this.#flush);
  };

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    this.#pump();
  };

  readonly #onDrain = (): void => {
    this.#waitingForDrain = false;
    this.#pump();
  };

  /** Writes queued ops as frames while the stream takes them. */
  #pump(): void {
    const stream = this.#stream;
    if (stream === undefined || this.#streamOver || this.#waitingForDrain) return;
    // Ops ride on a new session's first frames (they run once it is open); after a resume
    // they wait until the session's locks are known.
    if (!(this.#phase === 'open' || (this.#phase === 'opening' && !this.#resuming))) return;
    if (this.#id !== '' && this.#checkExpired()) return;
    const now = performance.now();
    while (this.#queueHead < this.#queue.length) {
      const ops: SessionOp[] = [];
      let bytes = 0;
      while (ops.length < this.#maxFrameOps && this.#queueHead < this.#queue.length) {
        const op = this.#queue[this.#queueHead]!;
        if (op.settled && !op.internal) {
          this.#queueHead++;
          continue;
        }
        const size = opBytes(op);
        if (bytes + size > FRAME_BYTES && ops.length > 0) break;
        this.#queueHead++;
        if (op.kind === 'cancel') {
          // Only for the acquire's own stream, and while it waits: it has no answer of its own.
          const target = op.target!;
          if (target.sent && this.#sent.get(target.tag) === target) {
            bytes += size;
            ops.push({ tag: 0, cancel: { tag: target.tag } });
          }
          continue;
        }
        bytes += size;
        op.tag = ++this.#lastTag;
        op.sent = true;
        op.sentAt = now;
        this.#sent.set(op.tag, op);
        const message = wire(op);
        // NOTE: only for a caller with a trace: with tracing off no op makes a carrier.
        if (op.trace !== undefined) message.trace_context = traceCarrier(op.trace);
        ops.push(message);
      }
      if (ops.length === 0) break;
      if (!stream.write({ ops })) {
        this.#waitingForDrain = true;
        stream.once('drain', this.#onDrain);
        break;
      }
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  // --- The stream -------------------------------------------------------------------------

  #open(): void {
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const server = this.#servers.current;
    let stream: Stream;
    try {
      stream = server.locks.Session();
    } catch (err) {
      // grpc-js throws for a closed channel: the client is closing.
      const error = fromStatus(err, 'Session');
      queueMicrotask(() => this.#failToOpen(error));
      return;
    }
    this.#stream = stream;
    this.#server = server;
    this.#streamOver = false;
    this.#waitingForDrain = false;
    this.#resuming = this.#id !== '';
    this.#phase = 'opening';
    if (this.#resuming) {
      const waitMs = Math.max(50, Math.round(this.#ttlMs / 3));
      this.#openTimer = setTimeout(() => {
        if (stream === this.#stream && this.#phase === 'opening')
          this.#breakStuck(`the server did not answer the session's resume within ${waitMs} ms`);
      }, waitMs);
      this.#openTimer.unref();
    }
    stream.on('data', (response: SessionResponse__Output) => this.#onData(stream, response));
    // The 'status' that always follows says the same.
    stream.on('error', noop);
    stream.on('status', (status: grpc.StatusObject) => {
      if (stream === this.#stream) this.#streamOver = true;
      // NOTE: grpc-js may still hold replies it has read and not yet emitted as 'data' (they
      // go out on process.nextTick); settle the stream's ops only after those.
      setImmediate(() => this.#onStatus(stream, status, server));
    });
    this.#openSentAt = performance.now();
    stream.write({
      open: {
        backend: this.backend,
        ttl_ms: String(this.#requestedTtlMs),
        resume_id: this.#id,
        owner: '',
      },
    });
    this.#pump();
  }

  /** The stream could not even be created. */
  #failToOpen(error: LatchkeyError): void {
    if (this.#closed) return this.#finishEnd(error);
    this.#lastError = error;
    if (this.#id === '') {
      this.#giveBack([...this.#sent.values(), ...this.#takeQueue()]);
      this.#sent.clear();
      this.#retire();
      return;
    }
    this.#lose(`could not be resumed: ${error.message}`, error);
  }

  #onData(stream: Stream, response: SessionResponse__Output): void {
    if (stream !== this.#stream) return;
    // A stalled process (a long pause, SIGSTOP) may read answers only after its session
    // could have expired: it must not trust the session, whatever they say.
    if (this.#id !== '' && this.#checkExpired()) return;
    // Answers are settled in the order they came.
    this.#settleDeferred();
    if (response.opened !== null) this.#onOpened(response.opened);
    const { results } = response;
    // NOTE: pipelining. Callers that each take a lock, release it and take the next, as many
    // workers of one process do, fall into step: one frame of all their ops goes out, one
    // frame of all the answers comes back, and client and server take turns, each idle while
    // the other works. A frame that answers more than half of the ops in flight is the sign:
    // half of it is settled now, and the ops that half makes leave at once (#scheduleFlush)
    // for the server to work on while the other half is settled a turn later. Two frames then
    // stay in flight, and both processes work at once (c=64 memory lock cycles: 37k -> 52k/s).
    let now = results.length;
    if (now >= SPLIT_MIN_RESULTS && now * 2 > this.#sent.size) now = Math.ceil(now / 2);
    for (let i = 0; i < now; i++) this.#onResult(results[i]!);
    if (now < results.length) {
      this.#deferred = { stream, results, from: now };
      setImmediate(this.#settleDeferredLater);
    }
    if (this.#queueHead < this.#queue.length) this.#scheduleFlush();
    this.#maybeIdle();
  }

  /** Settles the rest of the last answer frame, if it came on the current stream. */
  #settleDeferred(): void {
    const deferred = this.#deferred;
    if (deferred === undefined) return;
    this.#deferred = undefined;
    if (deferred.stream !== this.#stream) return; // that stream was given up with its ops
    const { results, from } = deferred;
    for (let i = from; i < results.length; i++) this.#onResult(results[i]!);
  }

  readonly #settleDeferredLater = (): void => {
    if (this.#deferred === undefined || this.#deferred.stream !== this.#stream) return;
    if (this.#id !== '' && this.#checkExpired()) return;
    this.#settleDeferred();
    if (this.#queueHead < this.#queue.length) this.#scheduleFlush();
    this.#maybeIdle();
  };

  #onOpened(opened: SessionOpened__Output): void {
    if (this.#phase !== 'opening' && this.#phase !== 'ending') return;
    clearTimeout(this.#openTimer);
    const resumed = this.#resuming;
    if (resumed && !opened.resumed) {
      // A server should refuse instead; a fresh session is no place for the old locks.
      this.#lose('could not be resumed: the server opened a new session instead', undefined);
      return;
    }
    this.#id = opened.session_id;
    this.#backendName = opened.backend;
    this.#ttlMs = Number(opened.ttl_ms) || this.#ttlMs || this.#requestedTtlMs || this.#fallbackTtlMs;
    this.#marginMs = expiryMarginMs(this.#ttlMs);
    this.#breaks = 0;
    this.#unreachable = 0;
    this.#lastError = undefined;
    this.#confirm(this.#openSentAt, opened.expires_at_ms);
    if (this.#phase === 'ending') return;
    if (this.#closed) {
      // close() came while the session was away: end it now that it is back.
      this.#sendEnd();
      return;
    }
    this.#phase = 'open';
    this.#resuming = false;
    if (resumed) this.#reconcile(opened.leases);
    this.#settleJoins(true);
    this.#armKeepalive(this.#openSentAt);
    this.#pump();
  }

  /**
   * After a resume: the server's list of the session's locks against ours. Our locks it no
   * longer holds are lost; an acquire the break left unanswered is granted if its name is
   * there, else asked again; a release, done if its lock is gone, else sent again; any lock
   * nobody here wants is released.
   */
  #reconcile(leases: readonly Lease__Output[]): void {
    const held = new Map(leases.map((lease) => [lease.lease_id, lease]));
    for (const [id, lease] of this.#leases) {
      if (held.delete(id)) continue;
      this.#leases.delete(id);
      this.#names.delete(lease.name);
      const reason = new LeaseLostError(
        `lock "${lease.name}" was no longer held by its session when the session resumed`,
      );
      lease.lose(reason);
      // Its release, if one was on its way, is over too: there is nothing left to release.
      if (lease.releasing !== undefined) this.#fulfil(lease.releasing, undefined);
      lease.releasing = undefined;
    }
    const byName = new Map([...held.values()].map((lease) => [lease.name, lease]));
    const again: Op[] = [];
    for (const op of this.#resend) {
      switch (op.kind) {
        case 'acquire': {
          const granted = byName.get(op.name);
          if (granted !== undefined) {
            byName.delete(op.name);
            held.delete(granted.lease_id);
            this.#granted(op, granted);
          } else if (!op.settled) again.push(op);
          else this.#names.delete(op.name);
          break;
        }
        case 'release':
          if (this.#leases.has(op.lease!.lease.lease_id)) {
            if (op.settled) op.lease!.releasing = undefined;
            else again.push(op);
          }
          break;
        case 'describe':
          if (!op.settled) again.push(op);
          break;
        case 'keepalive':
          break;
      }
    }
    this.#resend = [];
    this.#requeue(again);
    // Held by the session, wanted by nobody: granted to a caller that gave up, or a lock whose
    // handle's release could not get through.
    for (const lease of held.values()) {
      const orphan = new SessionLease(this, lease);
      this.#leases.set(lease.lease_id, orphan);
      this.#names.add(lease.name);
      this.#releaseOrphan(orphan);
    }
    for (const lease of this.#leases.values()) if (lease.orphan) this.#releaseOrphan(lease);
  }

  #onResult(result: SessionResult__Output): void {
    const tag = Number(result.tag);
    const op = this.#sent.get(tag);
    if (op === undefined) return;
    this.#sent.delete(tag);
    const error = result.result === 'error' ? result.error! : undefined;
    if (error !== undefined && (sessionGone(error) || shuttingDown(error))) {
      // Not the op's failure: the session expired under it, or its server is going. The
      // stream ends right after; the op is settled by the loss or the resume that follow.
      this.#resend.push(op);
      return;
    }
    switch (op.kind) {
      case 'acquire':
        if (result.result === 'lease') return this.#granted(op, result.lease!);
        this.#names.delete(op.name);
        if (error !== undefined) return this.#fail(op, fromOpError(error, 'Acquire'));
        return this.#fail(op, mismatch(op, result));
      case 'release': {
        const lease = op.lease!;
        lease.releasing = undefined;
        if (result.result === 'released' || (error !== undefined && error.code === grpc.status.FAILED_PRECONDITION)) {
          this.#forget(lease);
          if (error === undefined) return this.#fulfil(op, undefined);
          return this.#fail(op, fromOpError(error, 'Release'));
        }
        // Still held: the session lets it go later, by itself.
        lease.orphan = true;
        return this.#fail(op, error !== undefined ? fromOpError(error, 'Release') : mismatch(op, result));
      }
      case 'describe':
        if (result.result === 'state') return this.#fulfil(op, result.state);
        return this.#fail(op, error !== undefined ? fromOpError(error, 'Describe') : mismatch(op, result));
      case 'keepalive':
        if (this.#keepalive === op) this.#keepalive = undefined;
        if (result.result === 'kept_alive') {
          const kept = result.kept_alive!;
          if (Number(kept.ttl_ms) > 0) this.#ttlMs = Number(kept.ttl_ms);
          this.#confirm(op.sentAt, kept.expires_at_ms);
        } else if (error !== undefined) {
          this.#lastError = fromOpError(error, 'Session');
        }
        return;
    }
  }

  #granted(op: Op, lease: Lease__Output): void {
    const held = new SessionLease(this, lease);
    this.#leases.set(lease.lease_id, held);
    this.#names.add(lease.name);
    // NOTE: granted to a caller that gave up meanwhile (its signal or deadline): the session
    // would keep the lock alive forever for nobody; let it go at once.
    if (op.settled) return this.#releaseOrphan(held);
    this.#fulfil(op, held);
  }

  #forget(lease: SessionLease): void {
    if (this.#leases.get(lease.lease.lease_id) !== lease) return;
    this.#leases.delete(lease.lease.lease_id);
    this.#names.delete(lease.name);
  }

  #onStatus(stream: Stream, status: grpc.StatusObject, server: Server): void {
    if (stream !== this.#stream) return; // ended when the session went idle or was given up
    // Answers read before the status count: their ops must not be sent again.
    this.#settleDeferred();
    clearTimeout(this.#openTimer);
    this.#stream = undefined;
    this.#server = undefined;
    this.#streamOver = false;
    this.#waitingForDrain = false;
    if (this.#phase === 'ending')
      return this.#finishEnd(status.code === grpc.status.OK ? undefined : fromStatus(statusCause(status), 'Session'));
    const resuming = this.#phase === 'opening' && this.#resuming;
    this.#phase = 'idle';
    if (serverGone(status) || status.code === grpc.status.UNIMPLEMENTED) this.#servers.failed(server);
    if (this.#id === '') return this.#neverOpened(status);
    const cause = fromStatus(statusCause(status), 'Session');
    this.#lastError = cause;
    // The server says the session is gone: it expired (or lost its lease), cannot be resumed,
    // or someone else took it over with its id. Nothing will bring it back.
    if (
      status.code === grpc.status.FAILED_PRECONDITION ||
      (resuming && status.code === grpc.status.INVALID_ARGUMENT) ||
      (!resuming && status.code === grpc.status.ABORTED)
    )
      return this.#lose(`was lost: its session expired or ended (${status.details})`, cause);
    if (this.#closed && this.#leases.size === 0) return this.#finishEnd(undefined);
    for (const op of this.#sent.values()) if (op.kind !== 'keepalive') this.#resend.push(op);
    this.#sent.clear();
    this.#keepalive = undefined;
    clearTimeout(this.#keepaliveTimer);
    if (resuming && neverSent(status)) {
      this.#unreachable++;
      if (this.#unreachable % this.#servers.size !== 0) return this.#reconnect(0);
      this.#failUnreachable(cause);
      if (this.#over) return; // closing, and given up
      this.#breaks++;
      return this.#reconnect(reopenDelayMs(this.#breaks));
    }
    this.#unreachable = 0;
    this.#breaks++;
    // Straight to the next server when this one went (or is stuck); else back off, and back to it.
    this.#reconnect(this.#servers.current !== server ? 0 : reopenDelayMs(this.#breaks));
  }

  /** The stream of a session not yet opened ended: its ops go unary, now and for a while. */
  #neverOpened(status: grpc.StatusObject): void {
    const nothingRan = refused(status) || neverSent(status);
    if (this.#closed) {
      this.#finishEnd(
        nothingRan || status.code === grpc.status.OK ? undefined : fromStatus(statusCause(status), 'Session'),
      );
      return;
    }
    if (neverSent(status) && ++this.#unreachable % this.#servers.size !== 0) {
      // Nothing was sent: the same ops, on the next server, now.
      this.#requeue([...this.#sent.values()]);
      this.#sent.clear();
      return this.#open();
    }
    if (status.code === grpc.status.UNIMPLEMENTED) this.#host.unimplemented();
    else if (refused(status)) this.#host.decline(this, REOPEN_REFUSED_MS);
    else this.#host.decline(this, reopenDelayMs(++this.#breaks));
    if (nothingRan) this.#giveBack(this.#sent.values());
    else {
      const cause = statusCause(status);
      for (const op of this.#sent.values()) {
        if (op.kind === 'acquire') this.#names.delete(op.name);
        this.#fail(
          op,
          new UnavailableError(
            `${METHOD[op.kind]}: the session stream ended before the session opened (${status.details || grpc.status[status.code]}); the operation may or may not have been applied, and a lock it took is freed at the session's TTL`,
            { method: METHOD[op.kind], cause },
          ),
        );
      }
    }
    this.#sent.clear();
    this.#giveBack(this.#takeQueue());
    this.#retire();
  }

  /** Every server was tried and none could be reached: what waits fails now, as a unary call would. */
  #failUnreachable(cause: LatchkeyError): void {
    if (this.#closed) {
      // close() waits for no server: the locks are left to the session's expiry.
      return this.#finishEnd(
        new UnavailableError(
          `the lock session could not be ended: no latchkey server (${this.#servers.addresses.join(', ')}) can be reached (${cause.message}); its locks are freed when it expires`,
          { method: 'Session', cause },
        ),
      );
    }
    const error = (op: Op) =>
      new UnavailableError(
        `${METHOD[op.kind]}: no latchkey server (${this.#servers.addresses.join(', ')}) can be reached to resume the lock session (${cause.message})`,
        { method: METHOD[op.kind], cause },
      );
    const internal: Op[] = [];
    for (const op of this.#takeQueue()) {
      // The session's own (keepalives, releases of orphans) wait for it to be back.
      if (op.internal) {
        internal.push(op);
        continue;
      }
      if (op.kind === 'acquire') this.#names.delete(op.name);
      if (op.kind === 'release') {
        op.lease!.orphan = true;
        op.lease!.releasing = undefined;
      }
      this.#fail(op, error(op));
    }
    this.#requeue(internal);
    // Written ones stay for the resume to settle their effects (a grant, a release); their
    // callers learn now.
    for (const op of this.#resend) {
      if (op.kind === 'release') op.lease!.orphan = true;
      this.#fail(op, error(op));
    }
  }

  #reconnect(delayMs: number): void {
    if (this.#leases.size === 0 && this.#resend.length === 0 && this.#tenants.size === 0) {
      // Nothing to keep: the old session expires on its own, holding nothing; what is queued
      // goes to a new one.
      this.#reset();
      if (this.#queueHead < this.#queue.length) this.#open();
      else this.#retire();
      return;
    }
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#phase === 'idle' && this.#id !== '') this.#open();
    }, delayMs);
    this.#reconnectTimer.unref();
  }

  #reset(): void {
    this.#id = '';
    this.#resuming = false;
    clearTimeout(this.#keepaliveTimer);
    clearTimeout(this.#giveUpTimer);
    clearTimeout(this.#reconnectTimer);
    this.#keepalive = undefined;
  }

  // --- Keeping the session alive ----------------------------------------------------------

  #confirm(sentAt: number, expiresAtMs: string): void {
    if (sentAt < this.#confirmedAt) return;
    this.#confirmedAt = sentAt;
    this.#expiresAt = new Date(Number(expiresAtMs));
    this.#armGiveUp();
  }

  #armGiveUp(): void {
    clearTimeout(this.#giveUpTimer);
    // +1: a timer may fire up to a millisecond before performance.now() says it is due.
    this.#giveUpTimer = setTimeout(this.#onGiveUp, Math.max(0, this.#giveUpAt - performance.now()) + 1);
    this.#giveUpTimer.unref();
  }

  readonly #onGiveUp = (): void => {
    this.#giveUpTimer = undefined;
    // Early after all: the session still has time, and the timer must still come.
    if (!this.#checkExpired() && this.#id !== '') this.#armGiveUp();
  };

  /** Gives the session up once it may have expired unconfirmed; true if it did. */
  #checkExpired(): boolean {
    if (this.#id === '' || performance.now() < this.#giveUpAt) return false;
    const last =
      this.#lastError ??
      new UnavailableError(`no session keepalive was answered within ${this.#ttlMs} ms`, { method: 'Session' });
    this.#lose(
      `may have expired: its session was not confirmed within its ${this.#ttlMs} ms TTL (last error: ${last.message})`,
      last,
    );
    return true;
  }

  #armKeepalive(from: number): void {
    clearTimeout(this.#keepaliveTimer);
    this.#keepaliveTimer = setTimeout(this.#tick, Math.max(0, from + this.#ttlMs / 3 - performance.now()));
    this.#keepaliveTimer.unref();
  }

  /**
   * The stream is stuck (a half-dead connection, a stopped server): its server counts as gone,
   * and the stream is cancelled, which releases nothing; the session resumes, on the next
   * server where there is one.
   */
  #breakStuck(why: string): void {
    this.#lastError = new UnavailableError(why, { method: 'Session' });
    if (this.#server !== undefined) this.#servers.failed(this.#server);
    this.#stream?.cancel();
  }

  readonly #tick = (): void => {
    this.#keepaliveTimer = undefined;
    if (this.#phase !== 'open' || this.#checkExpired()) return;
    if (this.#keepalive !== undefined) {
      // The last keepalive has gone a third of the TTL unanswered: the stream is stuck
      // (a half-dead connection, a stopped server). Break it and resume, elsewhere if possible.
      this.#breakStuck(`the session keepalive went unanswered for ${Math.round(this.#ttlMs / 3)} ms`);
      return;
    }
    this.#keepalive = this.#internal('keepalive');
    for (const lease of this.#leases.values()) if (lease.orphan) this.#releaseOrphan(lease);
    this.#armKeepalive(performance.now());
  };

  /**
   * The session is gone, or may be: every lock of it is lost (`why` completes "lock "x" ..."),
   * waiting releases fail, acquires and describes not answered go to a new session.
   */
  #lose(why: string, cause: LatchkeyError | undefined): void {
    const leases = [...this.#leases.values()];
    this.#leases.clear();
    for (const lease of leases) lease.lose(new LeaseLostError(`lock "${lease.name}" ${why}`, { cause }));
    const tenants = [...this.#tenants];
    this.#tenants.clear();
    for (const tenant of tenants)
      tenant.lose(new LeaseLostError(`candidacy for election "${tenant.election}" ${why}`, { cause }));
    this.#settleJoins(false);
    const again: Op[] = [];
    for (const op of [...this.#sent.values(), ...this.#resend, ...this.#takeQueue()]) {
      if (op.internal) continue;
      if (op.kind === 'release') {
        this.#fail(op, op.lease!.lostReason ?? new LeaseLostError(`lock "${op.name}" ${why}`, { cause }));
      } else if (op.settled) {
        if (op.kind === 'acquire') this.#names.delete(op.name);
      } else {
        again.push(op);
      }
    }
    this.#sent.clear();
    this.#resend = [];
    this.#names.clear();
    for (const op of again) if (op.kind === 'acquire') this.#names.add(op.name);
    const stream = this.#stream;
    const over = this.#streamOver;
    this.#stream = undefined;
    this.#reset();
    this.#phase = 'idle';
    // NOTE: given up within the margin, the server may still hold the session: ending it
    // releases its locks now rather than at its expiry.
    if (stream !== undefined && !over) endSession(stream);
    if (this.#closed) return this.#finishEnd(undefined);
    if (again.length > 0) {
      this.#requeue(again);
      this.#open();
    } else {
      this.#retire();
    }
  }

  // --- Idle -------------------------------------------------------------------------------

  #maybeIdle(): void {
    if (this.#phase !== 'open' || this.#closed || !this.#quiet()) return;
    this.#idleSince = performance.now();
    if (this.#idleTimer === undefined) {
      this.#idleTimer = setTimeout(this.#onIdle, this.#idleMs);
      this.#idleTimer.unref();
    }
  }

  #quiet(): boolean {
    if (this.#tenants.size > 0) return false;
    if (this.#leases.size > 0 || this.#names.size > 0 || this.#resend.length > 0) return false;
    if (this.#sent.size > (this.#keepalive?.sent ? 1 : 0)) return false;
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const op = this.#queue[i]!;
      if (op.kind !== 'keepalive' && (!op.settled || op.internal)) return false;
    }
    return true;
  }

  readonly #onIdle = (): void => {
    this.#idleTimer = undefined;
    if (this.#phase !== 'open' || this.#closed || !this.#quiet()) return;
    const left = this.#idleSince + this.#idleMs - performance.now();
    if (left > 1) {
      this.#idleTimer = setTimeout(this.#onIdle, left);
      this.#idleTimer.unref();
      return;
    }
    // The server ends the session, which holds nothing.
    const stream = this.#stream;
    this.#stream = undefined;
    this.#reset();
    this.#retire();
    if (stream !== undefined) endSession(stream);
  };
}

/**
 * Ends the session cleanly: the server releases every lock of it at once.
 * NOTE: a half-close alone does not: a server on grpc-js sees a client's cancel first as a
 * half-close, so the protocol asks for an explicit `end`.
 */
function endSession(stream: Stream): void {
  stream.write({ end: true });
  stream.end();
}

export function sessionKey(backend: string, ttlMs: number): string {
  return `${ttlMs}/${backend}`;
}

/** Every session's ops' deadlines. */
const DEADLINES = new Deadlines<Op>((op) => op.session.expire(op));

function opBytes(op: Op): number {
  const r = op.request as { name?: string; owner?: string; backend?: string } | undefined;
  const lease = op.lease?.lease;
  return (
    OP_OVERHEAD_BYTES +
    (r?.name?.length ?? 0) +
    (r?.owner?.length ?? 0) +
    (r?.backend?.length ?? 0) +
    (lease === undefined ? 0 : lease.name.length + lease.backend.length + lease.lease_id.length)
  );
}

function wire(op: Op): SessionOp {
  switch (op.kind) {
    case 'acquire':
      return { tag: op.tag, acquire: op.request as AcquireRequest };
    case 'release': {
      const { name, backend, lease_id } = op.lease!.lease;
      return { tag: op.tag, release: { name, backend, lease_id } };
    }
    case 'describe':
      return { tag: op.tag, describe: op.request as DescribeRequest };
    case 'keepalive':
      return { tag: op.tag, keepalive: {} };
    case 'cancel':
      return { tag: 0, cancel: { tag: op.target!.tag } };
  }
}

function mismatch(op: Op, result: SessionResult__Output): InternalError {
  const method = METHOD[op.kind];
  return new InternalError(`${method}: the session answered with "${result.result ?? 'nothing'}"`, { method });
}
