// gRPC handlers of latchkey.v1.Locks: validate the request, pick the backend, call it, and
// shape the answer. Backend errors are already ours; rpc.ts maps them to status codes. The
// operations of a lock session (Locks/Session, framed by session-service.ts) are validated
// here too, by the same functions as their unary RPCs, so they answer the same.
import type { AcquireRequest__Output } from '../../client/generated/latchkey/v1/AcquireRequest.js';
import type { DescribeRequest__Output } from '../../client/generated/latchkey/v1/DescribeRequest.js';
import type { Lease as LeaseMessage } from '../../client/generated/latchkey/v1/Lease.js';
import type { LockState as LockStateMessage } from '../../client/generated/latchkey/v1/LockState.js';
import type { RefreshRequest__Output } from '../../client/generated/latchkey/v1/RefreshRequest.js';
import type { ReleaseRequest__Output } from '../../client/generated/latchkey/v1/ReleaseRequest.js';
import type { ReleaseResponse } from '../../client/generated/latchkey/v1/ReleaseResponse.js';
import type { WatchRequest__Output } from '../../client/generated/latchkey/v1/WatchRequest.js';
import type { SessionOpen__Output } from '../../client/generated/latchkey/v1/SessionOpen.js';
import type { SessionOpened } from '../../client/generated/latchkey/v1/SessionOpened.js';
import type { SessionKeptAlive } from '../../client/generated/latchkey/v1/SessionKeptAlive.js';
import type { LockEvent as LockEventMessage } from '../../client/generated/latchkey/v1/LockEvent.js';
import type { Config } from '../config.js';
import {
  CancelledError,
  FailedPreconditionError,
  InvalidArgumentError,
  LatchkeyError,
  LockBusyError,
  ResourceExhaustedError,
} from '../errors.js';
import type { CallContext } from '../call-context.js';
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
    fencing_token: state.fencingToken.toString(),
    expires_at_ms: state.expiresAtMs.toString(),
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
      fencing_token: h.fencingToken.toString(),
      expires_at_ms: h.expiresAtMs.toString(),
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

  // Acquire calls that may wait, per lock name and in all: each holds a call, timers and
  // backend resources, so a flood of them is refused before it can exhaust the server.
  const waiting = new Map<string, number>();
  let waitingTotal = 0;
  function admitWaiter(name: string): () => void {
    const here = waiting.get(name) ?? 0;
    if (here >= config.maxWaitersPerLock)
      throw new ResourceExhaustedError(
        `${here} callers already wait for lock "${name}" through this server; the limit is ${config.maxWaitersPerLock} (--max-waiters-per-lock)`,
      );
    if (waitingTotal >= config.maxWaiters)
      throw new ResourceExhaustedError(
        `${waitingTotal} callers already wait for locks through this server; the limit is ${config.maxWaiters} (--max-waiters)`,
      );
    waiting.set(name, here + 1);
    waitingTotal++;
    return () => {
      waitingTotal--;
      const left = waiting.get(name)! - 1;
      if (left === 0) waiting.delete(name);
      else waiting.set(name, left);
    };
  }

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
   * the waiter limits, and releasing a grant whose caller has gone.
   */
  async function acquireWithin(
    name: string,
    waitMs: number,
    ctx: CallContext,
    acquire: (waitMs: number) => Promise<Lease>,
    release: (lease: Lease) => Promise<void>,
  ): Promise<Lease> {
    // Never wait so long that the answer would miss the caller's deadline: it would get
    // DEADLINE_EXCEEDED instead of the ABORTED that names the holder (see deadlineMarginMs).
    if (waitMs > 0 && ctx.remainingMs() <= 0)
      throw new LockBusyError(`lock "${name}" not acquired: the call's deadline has already passed`);
    const boundedWait = waitMs > 0 ? Math.max(1, Math.min(waitMs, ctx.answerWithinMs())) : waitMs;
    const leave = boundedWait > 0 ? admitWaiter(name) : undefined;
    let lease: Lease;
    try {
      lease = await acquire(boundedWait);
    } finally {
      leave?.();
    }
    if (ctx.signal.aborted) {
      // NOTE: granted to a caller that is gone (cancelled between the grant and the reply).
      // Release at once, or the lock would stay orphaned until its TTL runs out.
      await release(lease).catch(() => {});
    }
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
    fencing_token: lease.fencingToken.toString(),
    expires_at_ms: lease.expiresAtMs.toString(),
    owner: lease.owner,
    ttl_ms: lease.ttlMs.toString(),
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
        (wait) => backend.acquire({ name, ttlMs, waitMs: wait, owner, mode, limit, signal: ctx.signal }),
        (granted) => backend.release({ name, leaseId: granted.leaseId, signal: new AbortController().signal }),
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
        (wait) => session.acquire({ name, waitMs: wait, owner, mode, limit, signal: ctx.signal }),
        (granted) => session.release({ name, leaseId: granted.leaseId, signal: new AbortController().signal }),
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
      return { ttl_ms: ttlMs.toString(), expires_at_ms: expiresAtMs.toString() };
    },

    endSession(open) {
      return open.session.end();
    },
  };
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
