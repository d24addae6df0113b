// Locks/Session: one bidi stream serving one lock session. The first request opens (or
// resumes) the session; then tagged ops, many per frame, run concurrently through the lock
// service (service.ts: the same validation and messages as the unary RPCs), and their
// results go back tagged, coalesced into as few frames as possible, in whatever order they
// finish. A waiting acquire is one more op in flight: it never holds up the others.
//
// The stream and the session are not the same thing. A clean end (the client half-closes)
// ends the session and releases all its locks. Anything else that stops the stream (a
// break, a resume taking the session over, the server shutting down) only detaches the
// stream: the session and its locks stay until its TTL runs out, and may be resumed.
import { status } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import type { SessionRequest__Output } from '../../client/generated/latchkey/v1/SessionRequest.js';
import type { SessionResponse } from '../../client/generated/latchkey/v1/SessionResponse.js';
import type { SessionResult } from '../../client/generated/latchkey/v1/SessionResult.js';
import type { SessionOp__Output } from '../../client/generated/latchkey/v1/SessionOp.js';
import type { SessionOpened } from '../../client/generated/latchkey/v1/SessionOpened.js';
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
import type { RpcMeter } from '../metrics.js';
import { type CallMeter, type CallScope, createCallContext, type RpcEnv } from '../call-context.js';
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

/**
 * The stream's call context (call-context.ts) as this handler uses it: a broken stream
 * (cancel, deadline, connection lost) ends the call's bookkeeping as CANCELLED, then tells
 * `onBroken`; `finished` once the call's bookkeeping has ended, either way.
 */
function streamCallContext(call: Stream, env: RpcEnv, meter: CallMeter, onBroken: () => void) {
  const scope: CallScope = createCallContext(call, env, meter, {
    cancelMessage: 'session stream broken (cancelled, deadline or connection lost)',
    onCancel: () => {
      scope.end(status.CANCELLED);
      onBroken();
    },
  });
  return {
    ctx: scope.ctx,
    /** Ends this stream's work in the session: waiting acquires leave with `reason`. */
    stop: (reason: LatchkeyError) => scope.abort(reason),
    get finished() {
      return scope.ended;
    },
    finish: (code: status) => scope.end(code),
  };
}

/** An upper bound of a result's encoded size (strings in full, generous room for the rest). */
function resultBytes(result: SessionResult): number {
  const text = (s: string | undefined) => Buffer.byteLength(s ?? '');
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

/** `meter` counts each stream as one call: in flight while open, then the status it ended with. */
export function sessionHandler(
  locks: LockService,
  config: Config,
  env: RpcEnv,
  meter: RpcMeter,
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
      call.emit('error', Object.assign(new Error(err.message), toStatus(err, log)));
      meter.answered(err.code);
      return;
    }
    streams++;
    const principal = env.auth?.principalOf(call.metadata)?.id;

    let phase: 'first' | 'opening' | 'open' = 'first';
    let open: OpenSession | undefined;
    /** Frames that came while the session was being opened; they run once it is. */
    const queued: SessionRequest__Output[] = [];
    let halfClosed = false;
    /** Set once the stream stops taking new work; ops still running are answered, then it ends. */
    let stopping: { reason: LatchkeyError; clean: boolean } | undefined;
    let ending = false;
    const unanswered = new Set<string>();
    let running = 0;
    let waiting = 0;
    let paused = false;
    let pendingOpened: SessionOpened | undefined;
    let pending: SessionResult[] = [];
    let flushScheduled = false;

    const detach = () => {
      if (open !== undefined && attached.get(open.session.id) === stopFromOutside) attached.delete(open.session.id);
      stopDraining();
      stopWatchingSession();
    };
    const cc = streamCallContext(call, env, meter, () => {
      streams--;
      // A broken stream releases nothing: the session stays until its TTL, resumable.
      detach();
      if (open === undefined) abandonOpening = true;
    });
    const { ctx } = cc;
    /** The stream broke while `open` was running: a new session nobody learned the id of is ended at once. */
    let abandonOpening = false;

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
      if (cc.finished) return;
      if (pending.length === 0 && pendingOpened === undefined) return;
      let frame: SessionResult[] = [];
      let bytes = 0;
      let opened = pendingOpened;
      pendingOpened = undefined;
      if (opened !== undefined) bytes += openedBytes(opened);
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

    const scheduleFlush = () => {
      if (flushScheduled) return;
      flushScheduled = true;
      setImmediate(flush);
    };

    /** Ends the stream once nothing runs any more: with OK after a clean end, else with the reason's status. */
    const maybeEnd = () => {
      if (stopping === undefined || running > 0 || ending || cc.finished || phase === 'opening') return;
      ending = true;
      const { reason, clean } = stopping;
      void (async () => {
        let failure: unknown = clean ? undefined : reason;
        if (clean && open !== undefined) {
          try {
            await locks.endSession(open);
          } catch (err) {
            failure = err;
          }
        }
        detach();
        flush();
        if (cc.finished) return;
        streams--;
        if (failure === undefined) {
          cc.finish(status.OK);
          call.end();
        } else {
          const error = toStatus(failure, log);
          cc.finish(error.code ?? status.INTERNAL);
          call.emit('error', Object.assign(new Error(error.details ?? 'session stream failed'), error));
        }
      })();
    };

    /** No new work from now on; waiting acquires leave with `reason`. */
    const stop = (reason: LatchkeyError, clean = false) => {
      if (stopping !== undefined || cc.finished) return;
      stopping = { reason, clean };
      cc.stop(reason);
      maybeEnd();
    };
    const stopFromOutside = (reason: LatchkeyError) => stop(reason);

    // At shutdown: answer what runs (waiters are already failed UNAVAILABLE by the backend) and end.
    const stopDraining = env.inflight.onDrain(() =>
      stop(
        new ShuttingDownError(
          'server is shutting down; resume the session through another server where its backend allows it',
        ),
      ),
    );
    let stopWatchingSession = () => {};

    /** A stream-level mistake: the stream ends with this status; the session is left to its TTL. */
    const fail = (err: LatchkeyError) => {
      if (stopping !== undefined) return;
      stopping = { reason: err, clean: false };
      cc.stop(err);
      maybeEnd();
    };

    const answer = (result: SessionResult, wasWaiting: boolean) => {
      unanswered.delete(String(result.tag));
      running--;
      if (wasWaiting) waiting--;
      // One answer too large for a message would fail the whole stream (grpc-js refuses to send it).
      if (resultBytes(result) > config.maxMessageBytes - 1024) {
        const err = new ResourceExhaustedError(
          `the answer to operation ${String(result.tag)} would take ${resultBytes(result)} bytes, more than --max-message-bytes (${config.maxMessageBytes})`,
        );
        result = { tag: result.tag, error: toOpError(err, log) };
      }
      pending.push(result);
      scheduleFlush();
      if (paused && running - waiting < MAX_RUNNING_PER_STREAM / 2 && call.writableLength === 0) {
        paused = false;
        call.resume();
      }
      maybeEnd();
    };

    const run = (session: OpenSession, op: SessionOp__Output): Promise<SessionResult> => {
      const tag = op.tag;
      switch (op.op) {
        case 'acquire':
          return locks.sessionAcquire(session, op.acquire!, ctx).then((lease) => ({ tag, lease }));
        case 'release':
          return locks.sessionRelease(session, op.release!, ctx).then((released) => ({ tag, released }));
        case 'describe':
          return locks.sessionDescribe(session, op.describe!, ctx).then((state) => ({ tag, state }));
        case 'keepalive':
          return locks.keepAlive(session, ctx).then((kept_alive) => ({ tag, kept_alive }));
        default:
          return Promise.reject(
            new InvalidArgumentError(
              `operation ${tag} names no operation: set one of acquire, release, describe, keepalive`,
            ),
          );
      }
    };

    const handleOps = (ops: readonly SessionOp__Output[]) => {
      const tags = new Set<string>();
      for (const op of ops) {
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
        unanswered.add(op.tag);
        running++;
        if (refusal !== undefined) {
          // A frame too big, or one after the stream stopped, is refused op by op: every tag gets its answer.
          answer({ tag: op.tag, error: toOpError(refusal, log) }, false);
          continue;
        }
        const waits = op.op === 'acquire' && op.acquire!.wait_ms !== '0';
        if (waits) waiting++;
        run(open!, op).then(
          (result) => answer(result, waits),
          (err: unknown) => answer({ tag: op.tag, error: toOpError(err, log) }, waits),
        );
      }
      if (running - waiting >= MAX_RUNNING_PER_STREAM && !paused) {
        paused = true;
        call.pause();
      }
    };

    const onOpened = (session: OpenSession, opened: SessionOpened) => {
      if (abandonOpening || cc.finished) {
        // Nobody will ever see this session's id: a new one (it holds nothing yet) ends now;
        // a resumed one is left as it was, to its TTL.
        if (!session.resumed) void locks.endSession(session).catch(() => {});
        return;
      }
      if (session.resumed && openedBy.has(session.session) && openedBy.get(session.session) !== principal) {
        phase = 'open';
        fail(
          new PermissionDeniedError(
            `session ${session.session.ref} was opened with another token; only that token may resume it`,
          ),
        );
        return;
      }
      open = session;
      phase = 'open';
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
      const onSessionGone = () => {
        if (stopping === undefined) stop(session.session.signal.reason as LatchkeyError);
      };
      if (session.session.signal.aborted) onSessionGone();
      else {
        session.session.signal.addEventListener('abort', onSessionGone, { once: true });
        stopWatchingSession = () => session.session.signal.removeEventListener('abort', onSessionGone);
      }
      pendingOpened = opened;
      scheduleFlush();
      for (const request of queued.splice(0)) onRequest(request);
      if (halfClosed) onEnd();
      maybeEnd();
    };

    const onRequest = (request: SessionRequest__Output) => {
      if (cc.finished || ending) return;
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
        if (request.ops.length > 0) queued.push({ open: null, ops: request.ops });
        locks.openSession(request.open, ctx).then(
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
    };

    const onEnd = () => {
      halfClosed = true;
      if (phase === 'opening') return; // onOpened comes back here
      if (open === undefined) {
        // Ended before opening anything: nothing to end, and the stream ends OK.
        stop(new CancelledError('session stream ended by the client'), true);
        return;
      }
      stop(new CancelledError('the client ended the session (half-close) while this acquire waited'), true);
    };

    call.on('data', onRequest);
    call.on('end', onEnd);
    call.on('error', () => {
      // A transport error is a broken stream, like a cancel.
      if (cc.finished) return;
      cc.stop(new CancelledError('session stream failed'));
      if (cc.finish(status.CANCELLED)) {
        streams--;
        detach();
      }
    });
  };
}
