// gRPC handlers of latchkey.v1.Locks: validate the request, pick the backend, call it, and
// shape the answer. Backend errors are already ours; rpc.ts maps them to status codes. The
// operations of a lock session (Locks/Session, framed by session-service.ts) are validated
// here too, by the same functions as their unary RPCs, so they answer the same.
import type {
  AcquireRequest__Output,
  DescribeRequest__Output,
  Lease as LeaseMessage,
  LockState as LockStateMessage,
  RefreshRequest__Output,
  ReleaseRequest__Output,
  ReleaseResponse,
  WatchRequest__Output,
  SessionOpen__Output,
  SessionOpened,
  SessionKeptAlive,
  LockEvent as LockEventMessage,
} from '../../client/common/index.js';
import type { Config } from '../config.js';
import {
  BackendUnavailableError,
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  LatchkeyError,
  LockBusyError,
  ResourceExhaustedError,
} from '../errors.js';
import type { CallContext } from '../call-context.js';
import { uint64 } from '../uint64.js';
import { WaiterLimits } from './waiter-limits.js';
import { checkMs, checkName, checkText, quoted } from '../validate.js';
import type { Capabilities, Lease, LockBackend, LockEvent, LockMode, LockSession, LockState } from './backend.js';

const MAX_OWNER_BYTES = 1024;
const MAX_LEASE_ID_BYTES = 1024;
const MAX_SESSION_ID_BYTES = 1024;

/**
 * The most a Lease message of a session can take on the wire: a 250-byte name, a
 * 1024-byte owner, a lease id (backends issue at most 128 bytes), the backend name and six
 * numbers, with their tags and lengths.
 */
export const MAX_LEASE_MESSAGE_BYTES = 250 + MAX_OWNER_BYTES + 128 + 64 + 6 * 11 + 32;

/**
 * How many locks one session may hold (or wait for) at once: as many as one `opened` message
 * of at most half of --max-message-bytes can list on resume (16 MiB: 5,000 or so).
 */
export function maxSessionLocks(config: Config): number {
  return Math.max(1, Math.floor((config.maxMessageBytes / 2 - 1024) / MAX_LEASE_MESSAGE_BYTES));
}

/** A session as a Session stream holds it: the backend's object, and this stream's default owner. */
export interface OpenSession {
  readonly backend: LockBackend;
  readonly session: LockSession;
  /** Owner of the session's locks whose acquire names none (open.owner, else the peer). */
  readonly owner: string;
  readonly resumed: boolean;
}
export interface LockService {
  acquire(request: AcquireRequest__Output, ctx: CallContext): Promise<LeaseMessage>;
  refresh(request: RefreshRequest__Output, ctx: CallContext): Promise<LeaseMessage>;
  release(request: ReleaseRequest__Output, ctx: CallContext): Promise<ReleaseResponse>;
  describe(request: DescribeRequest__Output, ctx: CallContext): Promise<LockStateMessage>;
  /** The lock's events as Watch sends them; ends when ctx.signal aborts or the backend closes. */
  watch(request: WatchRequest__Output, ctx: CallContext): AsyncIterable<LockEventMessage>;
  /** A session stream's `open`: a new session, or a resumed one. */
  openSession(request: SessionOpen__Output, ctx: CallContext): Promise<{ open: OpenSession; opened: SessionOpened }>;
  /** The ops of a session; ctx is the stream's (its signal aborts when the stream stops serving the session). */
  sessionAcquire(open: OpenSession, request: AcquireRequest__Output, ctx: CallContext): Promise<LeaseMessage>;
  sessionRelease(open: OpenSession, request: ReleaseRequest__Output, ctx: CallContext): Promise<ReleaseResponse>;
  sessionDescribe(open: OpenSession, request: DescribeRequest__Output, ctx: CallContext): Promise<LockStateMessage>;
  keepAlive(open: OpenSession, ctx: CallContext): Promise<SessionKeptAlive>;
  /** The clean end (a request with `end`): every lock of the session released at once. */
  endSession(open: OpenSession): Promise<void>;
}

/** The largest semaphore limit accepted. */
const MAX_LIMIT = 1_000_000;

/**
 * How much later than its wait_ms an Acquire answers at the latest, whatever its backend does
 * (wait_ms 0: within this margin). Past it the caller gets UNAVAILABLE naming the backend, and
 * a grant that lands later is released at once (see acquireWithin below).
 * NOTE: a backend's own steps are bounded only by its timeouts: with etcd unreachable, every
 * etcd call of a request is held for the etcd backend's 3 s per endpoint, and a waiter that gave up
 * still has to leave the queue. The margin is the backend's allowance for that bookkeeping
 * when it is healthy (milliseconds), with room for a busy machine.
 */
export const ACQUIRE_ANSWER_MARGIN_MS = 1_000;
/** How long before the call's deadline the server answers a late Acquire, at the latest: the answer's way back. */
const ANSWER_BEFORE_DEADLINE_MS = 10;
/** How often the release of a grant that landed late is retried while the backend is unavailable. */
const ROLLBACK_RETRY_MS = 500;

const CAPABILITY_USE: Record<'semaphore' | 'shared' | 'watch' | 'sessions', string> = {
  semaphore: 'semaphores (limit > 1)',
  shared: 'shared locks (mode SHARED)',
  watch: 'Watch',
  sessions: 'lock sessions (Locks/Session)',
};

function stateMessage(name: string, backend: LockBackend, state: LockState): LockStateMessage {
  const c = backend.capabilities;
  return {
    name,
    backend: backend.kind,
    held: state.held,
    owner: state.owner,
    fencing_token: uint64(state.fencingToken),
    expires_at_ms: uint64(state.expiresAtMs),
    waiters: state.waiters,
    capabilities: {
      across_hosts: c.acrossHosts,
      fencing: c.fencing,
      fifo: c.fifo,
      auto_release: c.autoRelease,
      semaphore: c.semaphore,
      shared: c.shared,
      watch: c.watch,
      sessions: c.sessions ?? false,
      elections: c.elections,
    },
    holders: state.holders.map((h) => ({
      owner: h.owner,
      fencing_token: uint64(h.fencingToken),
      expires_at_ms: uint64(h.expiresAtMs),
      mode: h.mode,
    })),
    queue: state.queue.map((w) => ({ owner: w.owner, mode: w.mode })),
    limit: state.limit,
  };
}

export function createLockService(backends: ReadonlyMap<string, LockBackend>, config: Config): LockService {
  function pick(name: string): LockBackend {
    const backend = backends.get(name === '' ? config.backend : name);
    if (backend === undefined) {
      throw new InvalidArgumentError(
        `backend ${quoted(name)} is not enabled on this server; use one of: ${[...backends.keys()].join(', ')} (or leave it empty for ${config.backend})`,
      );
    }
    return backend;
  }

  // Acquire calls that may wait, per lock name and in all (waiter-limits.ts).
  const waiters = new WaiterLimits({
    perName: config.maxWaitersPerLock,
    total: config.maxWaiters,
    forName: (n, name) => `${n} callers already wait for lock "${name}"`,
    inAll: (n) => `${n} callers already wait for locks`,
  });

  /** Refuses, naming the capability, what a backend does not declare. */
  function requireCapability(backend: LockBackend, capability: keyof typeof CAPABILITY_USE & keyof Capabilities): void {
    if (backend.capabilities[capability]) return;
    const able = [...backends.values()].filter((b) => b.capabilities[capability]).map((b) => b.kind);
    throw new FailedPreconditionError(
      `backend ${backend.kind} does not support ${CAPABILITY_USE[capability]} (capability ${capability})${able.length > 0 ? `; use ${able.join(' or ')}` : ''}`,
    );
  }

  function lockName(value: string, ctx: CallContext): string {
    checkName('name', value);
    ctx.authorize('lock', value);
    return value;
  }

  function leaseId(value: string): string {
    if (value === '') throw new InvalidArgumentError('lease_id is required: send the lease_id that Acquire returned');
    return checkText('lease_id', value, MAX_LEASE_ID_BYTES);
  }

  /** The fields of an acquire every path checks alike (ttl_ms aside), in the unary order. */
  function acquireArgs(request: AcquireRequest__Output, backend: LockBackend, defaultOwner: string) {
    const waitMs = checkMs('wait_ms', request.wait_ms, 0, config.maxWaitMs);
    const owner = checkText('owner', request.owner, MAX_OWNER_BYTES) || defaultOwner;
    const mode = request.mode as LockMode;
    if (mode !== 'EXCLUSIVE' && mode !== 'SHARED')
      throw new InvalidArgumentError(`mode must be EXCLUSIVE or SHARED, got ${String(request.mode)}`);
    const limit = request.limit === 0 ? 1 : request.limit;
    if (limit > MAX_LIMIT) throw new InvalidArgumentError(`limit must be at most ${MAX_LIMIT}, got ${limit}`);
    if (mode === 'SHARED' && limit !== 1)
      throw new InvalidArgumentError(
        `limit applies to EXCLUSIVE holders (a semaphore); SHARED holders are not counted: send limit 0 with mode SHARED, got ${limit}`,
      );
    if (limit > 1) requireCapability(backend, 'semaphore');
    if (mode === 'SHARED') requireCapability(backend, 'shared');
    return { waitMs, owner, mode, limit };
  }

  /**
   * Runs a backend acquire as Acquire does: never waiting past the caller's deadline, within
   * the waiter limits, answering within ACQUIRE_ANSWER_MARGIN_MS of the wait whatever the
   * backend does, and releasing a grant whose caller has gone or that landed too late.
   */
  async function acquireWithin(
    name: string,
    waitMs: number,
    ctx: CallContext,
    backend: LockBackend,
    acquire: (waitMs: number, signal: AbortSignal) => Promise<Lease>,
    release: Release,
  ): Promise<Lease> {
    // Never wait so long that the answer would miss the caller's deadline: it would get
    // DEADLINE_EXCEEDED instead of the ABORTED that names the holder (see deadlineMarginMs).
    if (waitMs > 0 && ctx.remainingMs() <= 0)
      throw new LockBusyError(`lock "${name}" not acquired: the call's deadline has already passed`);
    const boundedWait = waitMs > 0 ? Math.max(1, Math.min(waitMs, ctx.answerWithinMs())) : waitMs;
    const leave = boundedWait > 0 ? waiters.admit(name) : undefined;
    // The answer is due ACQUIRE_ANSWER_MARGIN_MS after the wait, and before the deadline
    // (at least 50 ms after the wait's end, see deadlineMarginMs). With less time left
    // than that, the deadline itself ends the call.
    if (backend.location === undefined) return acquireInProcess(boundedWait, ctx, acquire, release, leave);
    const dueMs = Math.min(boundedWait + ACQUIRE_ANSWER_MARGIN_MS, ctx.remainingMs() - ANSWER_BEFORE_DEADLINE_MS);
    // The backend's signal: aborts with the caller's, or when the answer is overdue.
    // NOTE: not AbortSignal.any([ctx.signal, ...]). On Node 20 it adds a WeakRef to
    // ctx.signal's set of dependants that nothing ever removes, and a session stream's
    // try-once acquires all run on the stream's signal: each one left an entry behind for
    // as long as the stream lived (memory and GC work growing with every acquire of a
    // long-lived session). A listener removed once the backend is done leaves nothing.
    // It is one more listener on that signal per try-once acquire in flight (waiting
    // acquires have signals of their own, see session-service.ts).
    const stop = new AbortController();
    const onCaller = () => stop.abort(ctx.signal.reason);
    if (ctx.signal.aborted) onCaller();
    else ctx.signal.addEventListener('abort', onCaller, { once: true });
    const attempt = acquire(boundedWait, stop.signal);
    // A waiter counts until the backend is done with it, answered or not.
    const settled = () => {
      ctx.signal.removeEventListener('abort', onCaller);
      leave?.();
    };
    void attempt.then(settled, settled);
    let late = false;
    let timer: NodeJS.Timeout | undefined;
    const overdue = new Promise<never>((_, reject) => {
      if (dueMs <= 0) return;
      timer = setTimeout(() => {
        const err = new BackendUnavailableError(
          `lock "${name}" not acquired: the ${backend.kind} backend${backend.location === undefined ? '' : ` (${backend.location})`} did not answer within ${Math.round(dueMs)} ms (wait_ms ${waitMs} + at most ${ACQUIRE_ANSWER_MARGIN_MS} ms); it may be unreachable from this server: retry, or use another server`,
        );
        late = true;
        stop.abort(err);
        reject(err);
      }, dueMs);
    });
    let lease: Lease;
    try {
      lease = await Promise.race([attempt, overdue]);
    } catch (err) {
      // NOTE: answered while the backend still works on the request: it stops at its next
      // step (the signal), leaves the queue, and a grant that lands even so is released.
      if (late)
        void attempt.then(
          (granted) => rollback(release, granted),
          () => {},
        );
      throw err;
    } finally {
      clearTimeout(timer);
    }
    if (ctx.signal.aborted) {
      // NOTE: granted to a caller that is gone (cancelled between the grant and the reply).
      // Release at once, or the lock would stay orphaned until its TTL runs out.
      await rollback(release, lease);
    }
    return lease;
  }

  /**
   * acquireWithin for a backend in this process (one without a location): its steps never
   * wait on I/O and its wait is a timer of its own, so it answers within `waitMs` without the
   * overdue timer. NOTE: that timer and the combined signal it aborts cost more than the
   * rest of an uncontended acquire (an AbortSignal.any keeps weak references the collector
   * has to trace).
   */
  async function acquireInProcess(
    waitMs: number,
    ctx: CallContext,
    acquire: (waitMs: number, signal: AbortSignal) => Promise<Lease>,
    release: Release,
    leave: (() => void) | undefined,
  ): Promise<Lease> {
    let lease: Lease;
    try {
      lease = await acquire(waitMs, ctx.signal);
    } finally {
      leave?.();
    }
    // Granted to a caller that is gone (see acquireWithin).
    if (ctx.signal.aborted) await rollback(release, lease);
    return lease;
  }

  function sessionBackend(open: OpenSession, backend: string): void {
    if (backend !== '' && backend !== open.backend.kind)
      throw new InvalidArgumentError(
        `backend ${quoted(backend)} is not this session's: a session holds locks of one backend (${open.backend.kind}); leave backend empty or send ${open.backend.kind}`,
      );
  }

  const sessionLocks = maxSessionLocks(config);

  const toMessage = (backend: LockBackend, lease: Lease): LeaseMessage => ({
    name: lease.name,
    backend: backend.kind,
    lease_id: lease.leaseId,
    fencing_token: uint64(lease.fencingToken),
    expires_at_ms: uint64(lease.expiresAtMs),
    owner: lease.owner,
    ttl_ms: uint64(lease.ttlMs),
    mode: lease.mode,
    limit: lease.limit,
  });

  return {
    async acquire(request, ctx) {
      const name = lockName(request.name, ctx);
      const backend = pick(request.backend);
      const ttlMs =
        request.ttl_ms === '0' ? config.defaultTtlMs : checkMs('ttl_ms', request.ttl_ms, 10, config.maxTtlMs);
      const { waitMs, owner, mode, limit } = acquireArgs(request, backend, ctx.peer);
      const lease = await acquireWithin(
        name,
        waitMs,
        ctx,
        backend,
        (wait, signal) => backend.acquire({ name, ttlMs, waitMs: wait, owner, mode, limit, signal }),
        (granted, signal) => backend.release({ name, leaseId: granted.leaseId, signal }),
      );
      return toMessage(backend, lease);
    },

    async refresh(request, ctx) {
      const name = lockName(request.name, ctx);
      const backend = pick(request.backend);
      const ttlMs = request.ttl_ms === '0' ? 0 : checkMs('ttl_ms', request.ttl_ms, 10, config.maxTtlMs);
      const lease = await backend.refresh({ name, leaseId: leaseId(request.lease_id), signal: ctx.signal }, ttlMs);
      return toMessage(backend, lease);
    },

    async release(request, ctx) {
      const name = lockName(request.name, ctx);
      const backend = pick(request.backend);
      await backend.release({ name, leaseId: leaseId(request.lease_id), signal: ctx.signal });
      return { released: true };
    },

    async describe(request, ctx) {
      const name = lockName(request.name, ctx);
      const backend = pick(request.backend);
      return stateMessage(name, backend, await backend.describe(name, ctx.signal));
    },

    async *watch(request, ctx) {
      const name = lockName(request.name, ctx);
      const backend = pick(request.backend);
      requireCapability(backend, 'watch');
      for await (const event of backend.watch!(name, ctx.signal)) yield eventMessage(backend, event);
    },

    async openSession(request, ctx) {
      const owner = checkText('owner', request.owner, MAX_OWNER_BYTES) || ctx.peer;
      let backend: LockBackend;
      let session: LockSession;
      const resumed = request.resume_id !== '';
      if (resumed) {
        const id = checkText('resume_id', request.resume_id, MAX_SESSION_ID_BYTES);
        const dot = id.indexOf('.');
        const kind = dot > 0 ? id.slice(0, dot) : '';
        const found = backends.get(kind);
        if (found === undefined)
          throw new InvalidArgumentError(
            dot > 0
              ? `resume_id is a session of backend ${quoted(kind)}, which is not enabled on this server (enabled: ${[...backends.keys()].join(', ')})`
              : 'resume_id is not a session id: send the session_id of an opened message as it came',
          );
        if (request.backend !== '' && request.backend !== kind)
          throw new InvalidArgumentError(
            `backend ${quoted(request.backend)} does not match resume_id, a session of backend ${kind}: leave backend empty on resume`,
          );
        backend = found;
        requireCapability(backend, 'sessions');
        session = await backend.resumeSession!(id, ctx.signal);
      } else {
        backend = pick(request.backend);
        const ttlMs =
          request.ttl_ms === '0' ? config.defaultTtlMs : checkMs('ttl_ms', request.ttl_ms, 10, config.maxTtlMs);
        requireCapability(backend, 'sessions');
        session = await backend.openSession!({ ttlMs, signal: ctx.signal });
      }
      return {
        open: { backend, session, owner, resumed },
        opened: {
          session_id: session.id,
          backend: backend.kind,
          ttl_ms: session.ttlMs.toString(),
          expires_at_ms: session.expiresAtMs.toString(),
          resumed,
          leases: resumed ? session.leases().map((lease) => toMessage(backend, lease)) : [],
        },
      };
    },

    async sessionAcquire(open, request, ctx) {
      const name = lockName(request.name, ctx);
      sessionBackend(open, request.backend);
      if (request.ttl_ms !== '0')
        throw new InvalidArgumentError(
          `ttl_ms must be 0 in a session, got ${request.ttl_ms}: its locks live on the session's lease (TTL ${open.session.ttlMs} ms), which a keepalive renews`,
        );
      const { backend, session } = open;
      const { waitMs, owner, mode, limit } = acquireArgs(request, backend, open.owner);
      if (session.lockCount >= sessionLocks)
        throw new ResourceExhaustedError(
          `this session holds or waits for ${session.lockCount} locks; the limit is ${sessionLocks} (as many as a resume can list within half of --max-message-bytes): release some, or take more in another session`,
        );
      const lease = await acquireWithin(
        name,
        waitMs,
        ctx,
        backend,
        (wait, signal) => session.acquire({ name, waitMs: wait, owner, mode, limit, signal }),
        (granted, signal) => session.release({ name, leaseId: granted.leaseId, signal }),
      );
      // A unary caller that has gone hears nothing; a session stream that stopped serving the
      // session (ended, half-closed, taken over) still reads, and must not be told it holds a lock it does not.
      if (ctx.signal.aborted)
        throw ctx.signal.reason instanceof LatchkeyError
          ? ctx.signal.reason
          : new CancelledError(`acquire of lock "${name}" cancelled`);
      return toMessage(backend, lease);
    },

    async sessionRelease(open, request, ctx) {
      const name = lockName(request.name, ctx);
      sessionBackend(open, request.backend);
      await open.session.release({ name, leaseId: leaseId(request.lease_id), signal: ctx.signal });
      return { released: true };
    },

    async sessionDescribe(open, request, ctx) {
      const name = lockName(request.name, ctx);
      sessionBackend(open, request.backend);
      return stateMessage(name, open.backend, await open.backend.describe(name, ctx.signal));
    },

    async keepAlive(open, ctx) {
      const { ttlMs, expiresAtMs } = await open.session.keepAlive(ctx.signal);
      return { ttl_ms: uint64(ttlMs), expires_at_ms: uint64(expiresAtMs) };
    },

    endSession(open) {
      return open.session.end();
    },
  };
}

/** Gives back a lease: the backend's Release, or a session's for a session lock. */
type Release = (lease: Lease, signal: AbortSignal) => Promise<void>;

/**
 * Releases a lease granted to nobody (its caller gone, or already answered). Resolves after
 * the first try; while the backend is unavailable it tries again every ROLLBACK_RETRY_MS in
 * the background, until the lease would have run out anyway. Never rejects.
 */
async function rollback(release: Release, lease: Lease): Promise<void> {
  const never = new AbortController().signal;
  const attempt = () =>
    release(lease, never).then(
      () => true,
      (err: unknown) =>
        !(err instanceof BackendUnavailableError) || Date.now() + ROLLBACK_RETRY_MS >= lease.expiresAtMs,
    );
  if (await attempt()) return;
  void (async () => {
    do await new Promise((resolve) => setTimeout(resolve, ROLLBACK_RETRY_MS).unref());
    while (!(await attempt()));
  })();
}

function eventMessage(backend: LockBackend, event: LockEvent): LockEventMessage {
  return {
    type: event.type,
    name: event.name,
    owner: event.owner,
    fencing_token: event.fencingToken.toString(),
    mode: event.mode,
    at_ms: event.atMs.toString(),
    state: event.state === undefined ? null : stateMessage(event.name, backend, event.state),
  };
}
