// Locks/Session: one bidi stream serving one lock session. The first request opens (or
// resumes) the session; then tagged ops, many per frame, run concurrently through the lock
// service (service.ts: the same validation and messages as the unary RPCs), and their
// results go back tagged, coalesced into as few frames as possible, in whatever order they
// finish. A waiting acquire is one more op in flight: it never holds up the others.
//
// The stream and the session are not the same thing. A clean end (a request with `end`)
// ends the session and releases all its locks. Anything else that stops the stream (a
// break, a half-close without `end`, a resume taking the session over, the server shutting
// down) only detaches the stream: the session and its locks stay until its TTL runs out, and
// may be resumed.
//
// Traces (tracing.ts): the stream is one span, and each op one more, in the trace of the
// caller whose context the op carries (trace_context), else under the stream's; opening and
// ending the session run in the stream's span.
//
// NOTE: a half-close alone never releases anything. grpc-js delivers a client's cancel (and
// its deadline) as a half-close first: the client's HTTP/2 stack ends its side of the
// stream, then resets it, and the reset arrives as 'cancelled' a read later. Releasing on
// the half-close would release every lock of a client whose stream broke.
import { setMaxListeners } from 'node:events';
import { status } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { type Attributes, context } from '@opentelemetry/api';
import type {
  Lease as LeaseMessage,
  SessionRequest__Output,
  SessionResponse,
  SessionResult,
  SessionOp__Output,
  SessionOpened,
} from '../../client/common/index.js';
import type { Config } from '../config.js';
import {
  AbortedError,
  CancelledError,
  InvalidArgumentError,
  type LatchkeyError,
  PermissionDeniedError,
  ResourceExhaustedError,
  ShuttingDownError,
  toOpError,
  toStatus,
} from '../errors.js';
import { uint64 } from '../uint64.js';
import {
  createCallContext,
  refuseStream,
  withSignal,
  type CallContext,
  type CallMeter,
  type RpcEnv,
} from '../call-context.js';
import type { SpanScope } from '../tracing.js';
import type { LockSession } from './backend.js';
import type { LockService, OpenSession } from './service.js';

/**
 * Ops of one stream running at once, waiting acquires aside; past this the stream stops
 * reading. NOTE: waiting acquires do not count: they may wait for hours, and a stream that
 * stopped reading because of them could not even send its keepalive. They are bounded by
 * --max-waiters(-per-lock) and by the session's lock limit instead.
 */
const MAX_RUNNING_PER_STREAM = 4096;
/** Reply frames are cut near this size, or near half of --max-message-bytes if that is less (see cache/pipeline.ts). */
const FRAME_BYTES = 1024 * 1024;

type Stream = grpc.ServerDuplexStream<SessionRequest__Output, SessionResponse>;

const text = (s: string | undefined) => (s === undefined ? 0 : Buffer.byteLength(s));

/** An upper bound of a result's encoded size (strings in full, generous room for the rest). */
function resultBytes(result: SessionResult): number {
  let bytes = 32;
  const { lease, state, error } = result;
  if (lease) bytes += 80 + text(lease.name) + text(lease.owner) + text(lease.lease_id) + text(lease.backend);
  if (state) {
    bytes += 128 + text(state.name) + text(state.backend) + text(state.owner);
    for (const h of state.holders ?? []) bytes += 48 + text(h.owner);
    for (const w of state.queue ?? []) bytes += 16 + text(w.owner);
  }
  if (error) bytes += 16 + text(error.message) + text(error.reason);
  return bytes;
}

function openedBytes(opened: SessionOpened): number {
  let bytes = 64 + Buffer.byteLength(opened.session_id ?? '') + Buffer.byteLength(opened.backend ?? '');
  for (const lease of opened.leases ?? [])
    bytes +=
      80 +
      Buffer.byteLength(lease.name ?? '') +
      Buffer.byteLength(lease.owner ?? '') +
      Buffer.byteLength(lease.lease_id ?? '') +
      Buffer.byteLength(lease.backend ?? '');
  return bytes;
}

/** What an op's span says of the lock it is about (traced-backend.ts's spans under it say the rest). */
function lockAttributes(op: SessionOp__Output, session: OpenSession | undefined): Attributes {
  const name = (op.acquire ?? op.release ?? op.describe)?.name;
  return {
    ...(name === undefined ? {} : { 'latchkey.lock.name': name }),
    ...(session === undefined ? {} : { 'latchkey.lock.backend': session.backend.kind }),
  };
}

/** `meter` counts each stream as one call: in flight while open, then the status it ended with. */
export function sessionHandler(
  locks: LockService,
  config: Config,
  env: RpcEnv,
  meter: CallMeter,
): grpc.handleBidiStreamingCall<SessionRequest__Output, SessionResponse> {
  const frameBytes = Math.min(FRAME_BYTES, config.maxMessageBytes / 2);
  const { log } = env;
  /** Session id → how to stop the stream serving it (a resume takes the session over). */
  const attached = new Map<string, (reason: LatchkeyError) => void>();
  /** Who opened each session, when tokens are on: only they may resume it. */
  const openedBy = new WeakMap<LockSession, string | undefined>();
  let streams = 0;

  return (call: Stream) => {
    if (streams >= config.maxStreams) {
      const err = new ResourceExhaustedError(
        `${streams} Locks/Session streams are open; the limit is ${config.maxStreams} (--max-streams): use unary calls or fewer clients`,
      );
      refuseStream(call, err, env, meter);
      return;
    }
    streams++;
    const principal = env.auth?.principalOf(call.metadata)?.id;

    let phase: 'first' | 'opening' | 'open' = 'first';
    let open: OpenSession | undefined;
    /** Requests that came while the session was being opened; they are taken once it is. */
    const queued: SessionRequest__Output[] = [];
    let halfClosed = false;
    /**
     * Set once the stream stops taking new work; what runs is answered, then the stream ends:
     * 'end' releases the session's locks and ends OK, 'detach' ends OK leaving the session to
     * its TTL, 'fail' ends with the reason's status (leaving the session to its TTL too).
     */
    let stopping: { reason: LatchkeyError; how: 'end' | 'detach' | 'fail' } | undefined;
    let ending = false;
    const unanswered = new Set<string>();
    /** Waiting acquires in flight by tag, each with its own signal, so a cancel op can withdraw one. */
    const acquires = new Map<string, AbortController>();
    /**
     * Try-once acquires (wait_ms 0) in flight by tag, and the cancel that withdrew one. They
     * run on the stream's signal: an AbortController of their own would cost more than the
     * rest of such an acquire. A cancel op marks one, and when it is answered its grant is
     * released and it answers CANCELLED, as a waiting acquire withdrawn does.
     */
    const tryOnce = new Map<string, CancelledError | undefined>();
    let running = 0;
    let waiting = 0;
    let paused = false;
    let pendingOpened: SessionOpened | undefined;
    let pending: SessionResult[] = [];
    let flushScheduled = false;
    /** The stream broke while `open` was running: a new session nobody learned the id of is ended at once. */
    let abandonOpening = false;
    let stopWatchingSession = () => {};

    const detach = () => {
      if (open !== undefined && attached.get(open.session.id) === stopFromOutside) {
        attached.delete(open.session.id);
        // Only when no other stream here took it over: that one serves it now.
        open.session.detach?.();
      }
      stopWatchingSession();
    };
    const scope = createCallContext(call, env, meter, {
      cancelMessage: 'session stream broken (cancelled, deadline or connection lost)',
      // The stream broke: nothing written reaches the client any more, so it ends now, with
      // its ops still running (their answers are dropped).
      onCancel: () => {
        if (!scope.end(status.CANCELLED)) return;
        streams--;
        // A broken stream releases nothing: the session stays until its TTL, resumable.
        detach();
        if (open === undefined) abandonOpening = true;
      },
      // At shutdown: answer what runs (waiters are already failed UNAVAILABLE by the backend) and end.
      onDrain: () =>
        fail(
          new ShuttingDownError(
            'server is shutting down; resume the session through another server where its backend allows it',
          ),
        ),
    });
    const { ctx } = scope;
    // Ops in flight on a backend that waits on I/O listen to the stream's signal: thousands
    // are normal, not a leak.
    setMaxListeners(0, ctx.signal);
    // The acquires in flight stop with the stream, in the order they came: one listener for
    // all of them rather than one each. NOTE: an AbortSignal keeps its listeners in a list
    // that add and remove walk, so one each cost O(acquires in flight) per acquire.
    ctx.signal.addEventListener(
      'abort',
      () => {
        for (const controller of acquires.values()) controller.abort(ctx.signal.reason);
      },
      { once: true },
    );

    const write = (response: SessionResponse) => {
      if (!call.write(response) && !paused) {
        // Backpressure: a client that does not read stops us reading its new ops.
        paused = true;
        call.pause();
        call.once('drain', () => {
          paused = false;
          call.resume();
        });
      }
    };

    const flush = () => {
      flushScheduled = false;
      if (scope.ended) return;
      if (pending.length === 0 && pendingOpened === undefined) return;
      let frame: SessionResult[] = [];
      let opened = pendingOpened;
      pendingOpened = undefined;
      let bytes = opened === undefined ? 0 : openedBytes(opened);
      for (const result of pending) {
        const size = resultBytes(result);
        if ((frame.length > 0 || opened !== undefined) && bytes + size > frameBytes) {
          write({ opened, results: frame });
          opened = undefined;
          frame = [];
          bytes = 0;
        }
        frame.push(result);
        bytes += size;
      }
      pending = [];
      write({ opened, results: frame });
    };

    const flushAfterMicrotasks = () => process.nextTick(flush);
    const scheduleFlush = () => {
      if (flushScheduled) return;
      flushScheduled = true;
      // NOTE: on a backend in this process (memory), a frame's ops are answered by the time
      // the promise reactions they set off are done: the answers leave then (a tick queued
      // from a microtask runs once the microtask queue is empty), before the next frame read
      // is worked on, so the client works on them while this server works on that frame.
      // On a backend that waits on I/O (etcd, lock files), answers come in one by one as
      // its replies are read: those read in the same turn share a frame (setImmediate).
      if (open?.backend.location === undefined) queueMicrotask(flushAfterMicrotasks);
      else setImmediate(flush);
    };

    /** Ends the stream once nothing runs any more (see `stopping`). */
    const maybeEnd = () => {
      if (stopping === undefined || running > 0 || ending || scope.ended || phase === 'opening') return;
      ending = true;
      const { reason, how } = stopping;
      void (async () => {
        let failure: unknown = how === 'fail' ? reason : undefined;
        if (how === 'end' && open !== undefined) {
          try {
            // In the stream's span: the backend's requests (etcd's revoke) are its children.
            await context.with(scope.trace, locks.endSession, locks, open);
          } catch (err) {
            failure = err;
          }
        }
        detach();
        flush();
        if (scope.ended) return;
        streams--;
        if (failure === undefined) {
          scope.end(status.OK);
          call.end();
        } else {
          const error = toStatus(failure, log);
          scope.end(error.code ?? status.INTERNAL);
          call.emit('error', Object.assign(new Error(error.details ?? 'session stream failed'), error));
        }
      })();
    };

    /** No new work from now on; acquires in flight leave with `reason` (answered with it). */
    const stop = (reason: LatchkeyError, how: 'end' | 'detach' | 'fail') => {
      if (stopping !== undefined || scope.ended) return;
      stopping = { reason, how };
      scope.abort(reason);
      maybeEnd();
    };
    /** A stream-level mistake: the stream ends with this status; the session is left to its TTL. */
    const fail = (err: LatchkeyError) => stop(err, 'fail');
    const stopFromOutside = (reason: LatchkeyError) => fail(reason);

    /** Sends an op's result and ends its span with the code it carries. */
    const answer = (result: SessionResult, wasWaiting: boolean, span: SpanScope) => {
      const tag = String(result.tag);
      unanswered.delete(tag);
      acquires.delete(tag);
      tryOnce.delete(tag);
      running--;
      if (wasWaiting) waiting--;
      // One answer too large for a message would fail the whole stream (grpc-js refuses to send it).
      if (resultBytes(result) > config.maxMessageBytes - 1024) {
        const err = new ResourceExhaustedError(
          `the answer to operation ${tag} would take ${resultBytes(result)} bytes, more than --max-message-bytes (${config.maxMessageBytes})`,
        );
        result = { tag: result.tag, error: toOpError(err, log) };
      }
      span.end(result.error?.code ?? status.OK, result.error?.reason);
      pending.push(result);
      scheduleFlush();
      if (paused && running - waiting < MAX_RUNNING_PER_STREAM / 2 && call.writableLength === 0) {
        paused = false;
        call.resume();
      }
      maybeEnd();
    };

    /**
     * An acquire's own context: its signal aborts with the stream's (the listener above), or
     * alone on a cancel op; answer() forgets it.
     */
    const acquireContext = (tag: string): CallContext => {
      const controller = new AbortController();
      if (ctx.signal.aborted) controller.abort(ctx.signal.reason);
      acquires.set(tag, controller);
      return withSignal(ctx, controller.signal);
    };

    /** A try-once acquire withdrawn while it ran: its grant is let go, and it answers the cancel. */
    const withdrawnTryOnce = async (session: OpenSession, lease: LeaseMessage, cancel: CancelledError) => {
      const release = { name: lease.name!, backend: '', lease_id: lease.lease_id! };
      // The stream goes on: it is not the stream's signal that stops this release.
      await locks.sessionRelease(session, release, withSignal(ctx, new AbortController().signal)).catch(() => {});
      throw cancel;
    };

    const run = (session: OpenSession, op: SessionOp__Output, waits: boolean): Promise<SessionResult> => {
      // Results carry the tag as a number where it is one (see uint64.ts).
      const tag = uint64(op.tag);
      switch (op.op) {
        case 'acquire': {
          if (waits)
            return locks.sessionAcquire(session, op.acquire!, acquireContext(op.tag)).then((lease) => ({ tag, lease }));
          tryOnce.set(op.tag, undefined);
          return locks.sessionAcquire(session, op.acquire!, ctx).then(
            (lease) => {
              const cancel = tryOnce.get(op.tag);
              return cancel === undefined ? { tag, lease } : withdrawnTryOnce(session, lease, cancel);
            },
            (err: unknown) => {
              throw tryOnce.get(op.tag) ?? err;
            },
          );
        }
        case 'release':
          return locks.sessionRelease(session, op.release!, ctx).then((released) => ({ tag, released }));
        case 'describe':
          return locks.sessionDescribe(session, op.describe!, ctx).then((state) => ({ tag, state }));
        case 'keepalive':
          return locks.keepAlive(session, ctx).then((kept_alive) => ({ tag, kept_alive }));
        default:
          return Promise.reject(
            new InvalidArgumentError(
              `operation ${tag} names no operation: set one of acquire, release, describe, keepalive, cancel`,
            ),
          );
      }
    };

    const handleOps = (ops: readonly SessionOp__Output[]) => {
      const tags = new Set<string>();
      for (const op of ops) {
        if (op.op === 'cancel') continue;
        if (unanswered.has(op.tag) || tags.has(op.tag)) {
          fail(
            new InvalidArgumentError(
              `tag ${op.tag} is already used by an unanswered operation of this stream: tags must be unique among unanswered operations`,
            ),
          );
          return;
        }
        tags.add(op.tag);
      }
      let refusal: LatchkeyError | undefined = stopping?.reason;
      if (refusal === undefined && ops.length > config.maxBatch)
        refusal = new ResourceExhaustedError(
          `a session frame has ${ops.length} operations; the limit is ${config.maxBatch} (--max-batch): split it`,
        );
      for (const op of ops) {
        if (op.op === 'cancel') {
          // No answer of its own: the withdrawn acquire is answered CANCELLED.
          const tag = op.cancel!.tag;
          const withdrawn = () => new CancelledError(`acquire ${tag} withdrawn by the client (a cancel op)`);
          const controller = acquires.get(tag);
          if (controller !== undefined) controller.abort(withdrawn());
          else if (tryOnce.has(tag)) tryOnce.set(tag, tryOnce.get(tag) ?? withdrawn());
          continue;
        }
        unanswered.add(op.tag);
        running++;
        // Each op in its own span, in its caller's trace when it carries one (a keepalive,
        // the client's own, does not: it stays under the stream's span).
        const span = scope.opSpan(op.op ?? 'none', op.tag, op.trace_context);
        if (span.recording) span.setAttributes(lockAttributes(op, open));
        if (refusal !== undefined) {
          // A frame too big, or one after the stream stopped, is refused op by op: every tag gets its answer.
          answer({ tag: uint64(op.tag), error: toOpError(refusal, log) }, false, span);
          continue;
        }
        const waits = op.op === 'acquire' && op.acquire!.wait_ms !== '0';
        if (waits) waiting++;
        context.with(span.context, run, undefined, open!, op, waits).then(
          (result) => answer(result, waits, span),
          (err: unknown) => answer({ tag: uint64(op.tag), error: toOpError(err, log) }, waits, span),
        );
      }
      if (running - waiting >= MAX_RUNNING_PER_STREAM && !paused) {
        paused = true;
        call.pause();
      }
    };

    const onOpened = (session: OpenSession, opened: SessionOpened) => {
      if (abandonOpening || scope.ended) {
        // Nobody will ever see this session's id: a new one (it holds nothing yet) ends now;
        // a resumed one is left as it was, to its TTL.
        if (!session.resumed) void context.with(scope.trace, locks.endSession, locks, session).catch(() => {});
        return;
      }
      phase = 'open';
      if (session.resumed && openedBy.has(session.session) && openedBy.get(session.session) !== principal) {
        fail(
          new PermissionDeniedError(
            `session ${session.session.ref} was opened with another token; only that token may resume it`,
          ),
        );
        return;
      }
      open = session;
      if (!session.resumed) openedBy.set(session.session, principal);
      // A resume takes the session over from a stream still attached to it (a stale
      // connection the client has given up on): that stream stops and ends ABORTED.
      const previous = attached.get(session.session.id);
      attached.set(session.session.id, stopFromOutside);
      previous?.(
        new AbortedError(
          `session ${session.session.ref} was resumed by another stream; this stream no longer serves it`,
        ),
      );
      // The session expiring (or lost, or its backend closing) ends the stream with that reason.
      const onSessionGone = () => fail(session.session.signal.reason as LatchkeyError);
      if (session.session.signal.aborted) onSessionGone();
      else {
        session.session.signal.addEventListener('abort', onSessionGone, { once: true });
        stopWatchingSession = () => session.session.signal.removeEventListener('abort', onSessionGone);
      }
      pendingOpened = opened;
      scheduleFlush();
      for (const request of queued.splice(0)) onRequest(request);
      if (halfClosed) onHalfClose();
      maybeEnd();
    };

    const onRequest = (request: SessionRequest__Output) => {
      if (scope.ended) return;
      if (phase === 'opening') {
        queued.push(request);
        return;
      }
      if (phase === 'first') {
        if (request.open === null) {
          fail(
            new InvalidArgumentError(
              'the first SessionRequest of a stream must carry open: a new session, or resume_id to resume one',
            ),
          );
          return;
        }
        phase = 'opening';
        if (request.ops.length > 0 || request.end) queued.push({ open: null, ops: request.ops, end: request.end });
        // In the stream's span: the backend's requests (etcd's lease grant) are its children.
        context.with(scope.trace, locks.openSession, locks, request.open, ctx).then(
          ({ open: session, opened }) => onOpened(session, opened),
          (err: unknown) => {
            phase = 'open';
            fail(err as LatchkeyError);
          },
        );
        return;
      }
      if (request.open !== null) {
        fail(
          new InvalidArgumentError(
            `open may come only in the first SessionRequest of a stream; this one already serves session ${open?.session.ref ?? '(none)'}`,
          ),
        );
        return;
      }
      handleOps(request.ops);
      if (request.end) stop(new CancelledError('the client ended the session while this acquire waited'), 'end');
    };

    const onHalfClose = () => {
      halfClosed = true;
      if (phase === 'opening') return; // onOpened comes back here
      // Nothing more will come; without `end`, the session is left to its TTL (see the NOTE on top).
      stop(
        new CancelledError(
          'the client half-closed the stream without ending the session; the session is left to its TTL',
        ),
        'detach',
      );
    };

    call.on('data', onRequest);
    call.on('end', onHalfClose);
    call.on('error', () => {
      // A transport error is a broken stream, like a cancel.
      if (scope.ended) return;
      scope.abort(new CancelledError('session stream failed'));
      if (scope.end(status.CANCELLED)) {
        streams--;
        detach();
      }
    });
  };
}
