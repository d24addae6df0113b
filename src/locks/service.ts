// gRPC handlers of latchkey.v1.Locks: validate the request, pick the backend, call it, and
// shape the answer. Backend errors are already ours; rpc.ts maps them to status codes.
import type {
  AcquireRequest__Output,
  DescribeRequest__Output,
  Lease as LeaseMessage,
  LockState as LockStateMessage,
  RefreshRequest__Output,
  ReleaseRequest__Output,
  ReleaseResponse,
  WatchRequest__Output,
  LockEvent as LockEventMessage,
} from '../../client/common/index.js';
import type { Config } from '../config.js';
import {
  BackendUnavailableError,
  FailedPreconditionError,
  InvalidArgumentError,
  LockBusyError,
  ResourceExhaustedError,
} from '../errors.js';
import type { CallContext } from '../call-context.js';
import { checkMs, checkName, checkText, quoted } from '../validate.js';
import type { Capabilities, Lease, LockBackend, LockEvent, LockMode, LockState } from './backend.js';

const MAX_OWNER_BYTES = 1024;
const MAX_LEASE_ID_BYTES = 1024;

export interface LockService {
  acquire(request: AcquireRequest__Output, ctx: CallContext): Promise<LeaseMessage>;
  refresh(request: RefreshRequest__Output, ctx: CallContext): Promise<LeaseMessage>;
  release(request: ReleaseRequest__Output, ctx: CallContext): Promise<ReleaseResponse>;
  describe(request: DescribeRequest__Output, ctx: CallContext): Promise<LockStateMessage>;
  /** The lock's events as Watch sends them; ends when ctx.signal aborts or the backend closes. */
  watch(request: WatchRequest__Output, ctx: CallContext): AsyncIterable<LockEventMessage>;
}

/** The largest semaphore limit accepted. */
const MAX_LIMIT = 1_000_000;

/**
 * How much later than its wait_ms an Acquire answers at the latest, whatever its backend does
 * (wait_ms 0: within this margin). Past it the caller gets UNAVAILABLE naming the backend, and
 * a grant that lands later is released at once (see acquire below).
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

const CAPABILITY_USE: Record<'semaphore' | 'shared' | 'watch', string> = {
  semaphore: 'semaphores (limit > 1)',
  shared: 'shared locks (mode SHARED)',
  watch: 'Watch',
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
      const waitMs = checkMs('wait_ms', request.wait_ms, 0, config.maxWaitMs);
      const owner = checkText('owner', request.owner, MAX_OWNER_BYTES) || ctx.peer;
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
      // Never wait so long that the answer would miss the caller's deadline: it would get
      // DEADLINE_EXCEEDED instead of the ABORTED that names the holder (see deadlineMarginMs).
      if (waitMs > 0 && ctx.remainingMs() <= 0)
        throw new LockBusyError(`lock "${name}" not acquired: the call's deadline has already passed`);
      const boundedWait = waitMs > 0 ? Math.max(1, Math.min(waitMs, ctx.answerWithinMs())) : waitMs;
      const leave = boundedWait > 0 ? admitWaiter(name) : undefined;
      // The answer is due ACQUIRE_ANSWER_MARGIN_MS after the wait, and before the deadline
      // (at least 50 ms after the wait's end, see deadlineMarginMs). With less time left
      // than that, the deadline itself ends the call.
      const dueMs = Math.min(boundedWait + ACQUIRE_ANSWER_MARGIN_MS, ctx.remainingMs() - ANSWER_BEFORE_DEADLINE_MS);
      const late = new AbortController();
      const signal = AbortSignal.any([ctx.signal, late.signal]);
      const attempt = backend.acquire({ name, ttlMs, waitMs: boundedWait, owner, mode, limit, signal });
      // A waiter counts until the backend is done with it, answered or not.
      void attempt.then(
        () => leave?.(),
        () => leave?.(),
      );
      let timer: NodeJS.Timeout | undefined;
      const overdue = new Promise<never>((_, reject) => {
        if (dueMs <= 0) return;
        timer = setTimeout(() => {
          const err = new BackendUnavailableError(
            `lock "${name}" not acquired: the ${backend.kind} backend${backend.location === undefined ? '' : ` (${backend.location})`} did not answer within ${Math.round(dueMs)} ms (wait_ms ${waitMs} + at most ${ACQUIRE_ANSWER_MARGIN_MS} ms); it may be unreachable from this server: retry, or use another server`,
          );
          late.abort(err);
          reject(err);
        }, dueMs);
      });
      let lease: Lease;
      try {
        lease = await Promise.race([attempt, overdue]);
      } catch (err) {
        // NOTE: answered while the backend still works on the request: it stops at its next
        // step (the signal), leaves the queue, and a grant that lands even so is released.
        if (late.signal.aborted)
          void attempt.then(
            (granted) => rollback(backend, granted),
            () => {},
          );
        throw err;
      } finally {
        clearTimeout(timer);
      }
      if (ctx.signal.aborted) {
        // NOTE: granted to a caller that is gone (cancelled between the grant and the reply).
        // Release at once, or the lock would stay orphaned until its TTL runs out.
        await rollback(backend, lease);
      }
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
  };
}

/**
 * Releases a lease granted to nobody (its caller gone, or already answered). Resolves after
 * the first try; while the backend is unavailable it tries again every ROLLBACK_RETRY_MS in
 * the background, until the lease would have run out anyway. Never rejects.
 */
async function rollback(backend: LockBackend, lease: Lease): Promise<void> {
  const never = new AbortController().signal;
  const attempt = () =>
    backend.release({ name: lease.name, leaseId: lease.leaseId, signal: never }).then(
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
