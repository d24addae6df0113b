// Pipeline: a client's cache calls multiplexed onto one Cache/Pipeline stream. Calls made in
// the same turn of the event loop go out as one frame of tagged operations, and the replies
// are matched back by tag. grpc-js pays mostly per message, not per byte, so a frame of 100
// operations costs about what one unary call does: that is where the speed comes from, and
// why the per-call path below allocates little (no closure or timer per call when the call
// uses the client's default deadline).
//
// The stream opens on the first call, ends after `idleMs` with nothing outstanding (an open
// stream keeps the process alive and holds a server's graceful shutdown), and reopens on
// demand. Where it cannot be used, send() returns undefined and the call goes unary: for
// good once the server answers UNIMPLEMENTED (an older server), for a while after the server
// refused the stream or the stream broke, and for values too big to be worth coalescing.
import * as grpc from '@grpc/grpc-js';
import { type Context, context } from '@opentelemetry/api';
import type { CacheMethod, CacheRpcs } from './cache.js';
import type { PipelineOp, PipelineRequest, PipelineResponse__Output, PipelineResult__Output } from './common/index.js';
import { CancelledError, fromOpError, InternalError, UnavailableError } from './errors.js';
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
import { traceCarrier, tracedContext } from './tracing.js';
import { abortError } from './unary-call.js';

export interface PipelineOptions {
  /**
   * Operations sent and not yet answered, at most; later calls wait in the client until
   * answers free room (their deadlines run meanwhile). Default 2048 (a server stops reading
   * a stream at 4096 running); at least 1 (0 is refused, InvalidArgumentError).
   */
  readonly maxOutstanding?: number;
  /**
   * Operations in one frame, at most. Default 1000; at least 1. Must not exceed the server's
   * --max-batch (default 1000): a larger frame has every operation in it refused with
   * ResourceExhaustedError.
   */
  readonly maxFrameOps?: number;
  /**
   * The stream ends after this many ms with nothing outstanding, and reopens on the next
   * call. Default 1000; 0 = it ends as soon as nothing is outstanding; Infinity is refused.
   */
  readonly idleMs?: number;
}

export const DEFAULT_PIPELINE: Required<PipelineOptions> = { maxOutstanding: 2048, maxFrameOps: 1000, idleMs: 1000 };

/** A call as its own unary RPC: for calls the stream cannot take, and those it gives back. */
export type UnaryAttempt = (
  method: CacheMethod,
  request: CacheRequest,
  deadlineMs: number,
  signal: AbortSignal | undefined,
) => Promise<unknown>;

type CacheRequest = CacheRpcs[CacheMethod][0];
type Stream = grpc.ClientDuplexStream<PipelineRequest, PipelineResponse__Output>;
type Field = Exclude<PipelineResult__Output['result'], 'error' | undefined>;

/**
 * An operation estimated above OP_BYTES_MAX goes unary: a big value does not hold up the
 * small operations queued behind it, and gains nothing from coalescing anyway.
 * NOTE: the estimate counts string lengths, not UTF-8 bytes; FRAME_BYTES's 2x margin below
 * the server's smallest message limit covers keys that are not ASCII.
 */
const OP_BYTES_MAX = 8 * 1024;
/** Tag, field headers and the integer fields of one operation, generously. */
const OP_OVERHEAD_BYTES = 48;
/**
 * A call that expires unanswered after this long on a stream that has answered nothing since
 * it was written shows the stream stalled (see #stalled).
 * NOTE: not less: a healthy server under load may answer nothing for a while, and breaking
 * its stream leaves every call on it of unknown outcome; a short deadline alone proves nothing.
 */
const STALLED_MS = 1_000;

const FIELD: Record<CacheMethod, Field> = {
  Get: 'get',
  Set: 'set',
  Cas: 'cas',
  Add: 'add',
  Delete: 'delete',
  Incr: 'incr',
  Touch: 'touch',
};

// One literal shape per kind of operation keeps the frames' objects monomorphic.
const WRAP: Record<CacheMethod, (tag: number, request: CacheRequest) => PipelineOp> = {
  Get: (tag, get) => ({ tag, get }),
  Set: (tag, set) => ({ tag, set: set as CacheRpcs['Set'][0] }),
  Cas: (tag, cas) => ({ tag, cas: cas as CacheRpcs['Cas'][0] }),
  Add: (tag, add) => ({ tag, add: add as CacheRpcs['Add'][0] }),
  Delete: (tag, del) => ({ tag, delete: del as CacheRpcs['Delete'][0] }),
  Incr: (tag, incr) => ({ tag, incr: incr as CacheRpcs['Incr'][0] }),
  Touch: (tag, touch) => ({ tag, touch: touch as CacheRpcs['Touch'][0] }),
};

function opBytes(request: CacheRequest): number {
  const r = request as {
    key?: string;
    store?: string;
    value?: { length: number };
    fence?: { lock?: string; backend?: string } | null;
  };
  const fence = r.fence ? (r.fence.lock?.length ?? 0) + (r.fence.backend?.length ?? 0) : 0;
  return OP_OVERHEAD_BYTES + (r.key?.length ?? 0) + (r.store?.length ?? 0) + (r.value?.length ?? 0) + fence;
}

/**
 * One call on its way through the stream. It is its own abort listener (handleEvent), so a
 * call with a signal costs no closure either.
 */
class Op {
  tag = 0;
  /** Written to the stream (and in `sent`), rather than still queued. */
  sent = false;
  /** performance.now() of the frame that wrote it. */
  sentAt = 0;
  /** Answered, expired, aborted or given back; a late answer for it is dropped. */
  settled = false;
  /** Only for a deadline other than the client's default; those share one sweep instead. */
  timer: NodeJS.Timeout | undefined = undefined;
  /** The caller's context when it has a trace (tracing.ts): the op carries it to the server. */
  trace: Context | undefined = undefined;
  resolve!: (value: unknown) => void;
  reject!: (reason: unknown) => void;

  constructor(
    readonly pipeline: Pipeline,
    readonly method: CacheMethod,
    readonly request: CacheRequest,
    readonly bytes: number,
    readonly deadlineMs: number,
    /** On the performance.now() clock; Infinity = none. */
    readonly deadline: number,
    readonly signal: AbortSignal | undefined,
  ) {}

  handleEvent(): void {
    this.pipeline.abort(this);
  }
}

// new Promise(capture) hands the promise's functions to the Op being built, without a
// closure per call.
let capturing: Op | undefined;
function capture(resolve: (value: unknown) => void, reject: (reason: unknown) => void): void {
  capturing!.resolve = resolve;
  capturing!.reject = reject;
}

function expire(op: Op): void {
  op.pipeline.expire(op);
}

export class Pipeline {
  readonly #servers: ServerList;
  readonly #unary: UnaryAttempt;
  readonly #maxOutstanding: number;
  readonly #maxFrameOps: number;
  readonly #idleMs: number;
  readonly #defaultDeadlineMs: number;

  /** Calls not yet written: waiting for this turn's flush, for room, or for 'drain'. Settled ones are skipped. */
  #queue: Op[] = [];
  #queueHead = 0;
  /** Written and not yet answered, by tag; its size is the room in use. */
  readonly #sent = new Map<number, Op>();
  /**
   * Calls with the client's default deadline, in call order, which is their deadline order:
   * one timer, armed for the first, sweeps them all.
   */
  readonly #byDeadline = new Set<Op>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleSince = 0;
  #lastTag = 0;
  #flushScheduled = false;
  #waitingForDrain = false;

  /** The stream calls are written to; undefined until the next call opens one. */
  #stream: Stream | undefined;
  /** The server #stream went to. */
  #streamServer: Server | undefined;
  /** performance.now() when #stream last answered (0: not yet). */
  #answeredAt = 0;
  /** #stream has its status: nothing more goes into it, and #ended is on its way. */
  #streamOver = false;
  /** The stream close() half-closed, still owed answers. */
  #closing: Stream | undefined;
  #unimplemented = false;
  #closed = false;
  #breaks = 0;
  /** While the stream is down: no new one before this (performance.now() clock). */
  #reopenAt = 0;

  constructor(servers: ServerList, unary: UnaryAttempt, options: Required<PipelineOptions>, defaultDeadlineMs: number) {
    this.#servers = servers;
    this.#unary = unary;
    this.#maxOutstanding = options.maxOutstanding;
    this.#maxFrameOps = options.maxFrameOps;
    this.#idleMs = options.idleMs;
    this.#defaultDeadlineMs = defaultDeadlineMs;
  }

  /**
   * Sends one call through the stream, resolving with its response. undefined when the
   * stream cannot take it now: the caller makes it a unary call instead.
   */
  send(
    method: CacheMethod,
    request: CacheRequest,
    deadlineMs: number,
    signal: AbortSignal | undefined,
  ): Promise<unknown> | undefined {
    if (this.#unimplemented || this.#closed) return undefined;
    if (this.#stream === undefined && this.#reopenAt !== 0 && performance.now() < this.#reopenAt) return undefined;
    const bytes = opBytes(request);
    if (bytes > OP_BYTES_MAX) return undefined;
    if (signal?.aborted) return Promise.reject(abortError(method, signal));
    if (!(deadlineMs > 0)) return Promise.reject(deadlineError(method, deadlineMs));

    const finite = deadlineMs !== Infinity;
    const op = new Op(
      this,
      method,
      request,
      bytes,
      deadlineMs,
      finite ? performance.now() + deadlineMs : Infinity,
      signal,
    );
    capturing = op;
    const promise = new Promise<unknown>(capture);
    capturing = undefined;
    op.trace = tracedContext();
    if (finite) {
      if (deadlineMs === this.#defaultDeadlineMs) {
        this.#byDeadline.add(op);
        if (this.#sweepTimer === undefined) this.#armSweep();
      } else {
        op.timer = setTimeout(expire, deadlineMs, op);
        op.timer.unref();
      }
    }
    signal?.addEventListener('abort', op, { once: true });
    this.#queue.push(op);
    this.#scheduleFlush();
    return promise;
  }

  /** Ends the stream: calls already written still get their answers; queued ones are written first if there is room. */
  close(): void {
    if (this.#closed) return;
    this.#pump();
    this.#closed = true;
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      const op = this.#queue[i]!;
      if (op.settled) continue;
      this.#settle(op);
      op.reject(
        new CancelledError(`${op.method}: the latchkey client was closed before this call was sent`, {
          method: op.method,
        }),
      );
    }
    this.#queue = [];
    this.#queueHead = 0;
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream !== undefined) {
      this.#closing = stream;
      stream.end();
    }
  }

  /** The caller's signal fired (Op.handleEvent). */
  abort(op: Op): void {
    if (op.settled) return;
    this.#drop(op);
    op.reject(abortError(op.method, op.signal!));
  }

  expire(op: Op): void {
    if (op.settled) return;
    const stalled = op.sent && this.#stalled(op);
    this.#drop(op);
    op.reject(deadlineError(op.method, op.deadlineMs));
    if (stalled) this.#breakStalled();
  }

  /**
   * Whether the stream `op` was written on has answered nothing since, for STALLED_MS at
   * least: its connection is dead without knowing it (a partition drops packets silently;
   * nothing resets it), or its server stopped.
   */
  #stalled(op: Op): boolean {
    const now = performance.now();
    return (
      this.#stream !== undefined && !this.#streamOver && this.#answeredAt <= op.sentAt && now - op.sentAt >= STALLED_MS
    );
  }

  /**
   * Counts the stalled stream's server as gone and cancels the stream: what it owes fails as
   * from any broken stream ("may or may not have been applied"), and the next calls go to
   * the next server, unary until a stream opens again.
   */
  #breakStalled(): void {
    if (this.#streamServer !== undefined) this.#servers.failed(this.#streamServer);
    this.#stream?.cancel();
  }

  /**
   * Gives up on a call before its answer. A written operation still runs on the server (the
   * protocol cannot cancel one); its answer, if it comes, is dropped. Its room is freed now,
   * like a cancelled unary call's: the server bounds what one stream runs at once anyway.
   */
  #drop(op: Op): void {
    this.#settle(op);
    if (!op.sent) return; // skipped when the queue gets to it
    this.#sent.delete(op.tag);
    if (this.#queueHead < this.#queue.length) this.#scheduleFlush();
    else this.#maybeIdle();
  }

  #settle(op: Op): void {
    op.settled = true;
    if (op.timer !== undefined) clearTimeout(op.timer);
    else if (op.deadline !== Infinity) this.#byDeadline.delete(op);
    op.signal?.removeEventListener('abort', op);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // After this turn's I/O callbacks, so every call made in the turn shares the frame.
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    this.#pump();
  };

  readonly #onDrain = (): void => {
    this.#waitingForDrain = false;
    this.#pump();
  };

  /** Writes queued calls as frames while there is room and the stream's buffer takes them. */
  #pump(): void {
    if (this.#closed) return;
    const now = performance.now();
    while (
      !this.#waitingForDrain &&
      !this.#streamOver &&
      this.#sent.size < this.#maxOutstanding &&
      this.#queueHead < this.#queue.length
    ) {
      const room = Math.min(this.#maxFrameOps, this.#maxOutstanding - this.#sent.size);
      const ops: PipelineOp[] = [];
      let bytes = 0;
      while (ops.length < room && this.#queueHead < this.#queue.length) {
        const op = this.#queue[this.#queueHead]!;
        if (op.settled) {
          this.#queueHead++;
          continue;
        }
        if (bytes + op.bytes > FRAME_BYTES && ops.length > 0) break;
        this.#queueHead++;
        bytes += op.bytes;
        op.tag = ++this.#lastTag;
        op.sent = true;
        op.sentAt = now;
        this.#sent.set(op.tag, op);
        const wire = WRAP[op.method](op.tag, op.request);
        if (op.trace !== undefined) wire.trace_context = traceCarrier(op.trace);
        ops.push(wire);
      }
      if (ops.length === 0) break;
      const stream = (this.#stream ??= this.#open());
      if (!stream.write({ ops })) {
        this.#waitingForDrain = true;
        stream.once('drain', this.#onDrain);
      }
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    this.#maybeIdle();
  }

  #open(): Stream {
    const server = this.#servers.current;
    const stream = server.cache.Pipeline();
    this.#streamServer = server;
    // A new stream has answered nothing yet.
    this.#answeredAt = 0;
    stream.on('data', this.#onData);
    // The 'status' that always follows says the same.
    stream.on('error', () => {});
    stream.on('status', (status: grpc.StatusObject) => {
      // Nothing more goes into a stream that is over: calls stay queued, and #ended gives
      // them back as unary calls.
      if (stream === this.#stream) this.#streamOver = true;
      // NOTE: grpc-js may still hold replies it has read and not yet emitted as 'data' (they
      // go out on process.nextTick); settle the stream's calls only after those.
      setImmediate(this.#ended, stream, status, server);
    });
    return stream;
  }

  readonly #onData = (response: PipelineResponse__Output): void => {
    this.#breaks = 0;
    this.#answeredAt = performance.now();
    for (const result of response.results) {
      const tag = Number(result.tag);
      const op = this.#sent.get(tag);
      if (op === undefined) continue; // settled before its answer came: dropped
      this.#sent.delete(tag);
      this.#settle(op);
      const kind = result.result;
      if (kind === FIELD[op.method]) op.resolve(result[kind]);
      else if (kind === 'error') op.reject(fromOpError(result.error!, op.method));
      else
        op.reject(
          new InternalError(
            `${op.method}: the pipeline answered with "${kind ?? 'nothing'}" instead of "${FIELD[op.method]}"`,
            { method: op.method },
          ),
        );
    }
    // Coalesce what this room lets out with the calls the answers' callers make next.
    if (this.#queueHead < this.#queue.length) this.#scheduleFlush();
    else this.#maybeIdle();
  };

  /**
   * A stream is over and every reply it carried has been handled. What was written on it
   * and not answered, and what is still queued, is settled here.
   * NOTE: every call in `sent` was written on the current stream or on the closing one: a
   * new stream opens only after the previous one ended with nothing outstanding (idle) or
   * ended here.
   */
  readonly #ended = (stream: Stream, status: grpc.StatusObject, server: Server): void => {
    // The next stream, and the calls given back, go to the next server.
    if (serverGone(status)) this.#servers.failed(server);
    if (stream === this.#stream) {
      this.#stream = undefined;
      this.#streamOver = false;
      this.#waitingForDrain = false;
    } else if (stream !== this.#closing) {
      return; // ended for being idle: it owed nothing
    }
    if (refused(status)) {
      // None of these ran: unary calls instead, them too (for good on an older server), and
      // those fail or succeed exactly as they would have without the pipeline.
      if (status.code === grpc.status.UNIMPLEMENTED) this.#unimplemented = true;
      else this.#reopenAt = performance.now() + REOPEN_REFUSED_MS;
      for (const op of this.#sent.values()) this.#giveBack(op);
      this.#sent.clear();
      this.#giveBackQueued();
      return;
    }
    if (!(stream === this.#closing && status.code === grpc.status.OK)) {
      // Broken, or ended by the server (it does so at shutdown): unary for a while.
      this.#breaks++;
      this.#reopenAt = performance.now() + reopenDelayMs(this.#breaks);
    }
    if (neverSent(status)) {
      // Nothing ran: each call fails (or, the connection back, succeeds) as a unary call
      // would, with its own error rather than "may or may not have been applied".
      for (const op of this.#sent.values()) this.#giveBack(op);
      this.#sent.clear();
      this.#giveBackQueued();
      return;
    }
    const cause = statusCause(status);
    for (const op of this.#sent.values()) {
      this.#settle(op);
      // Its fate is unknown, as for a unary call cut off by a dropped connection; Get,
      // being idempotent, is retried by the caller's retry policy.
      op.reject(
        new UnavailableError(
          `${op.method}: the pipeline stream ended before the answer came (${status.details || grpc.status[status.code]}); the operation may or may not have been applied`,
          { method: op.method, cause },
        ),
      );
    }
    this.#sent.clear();
    // Never written, so safe to send again: as unary calls, while the stream is down.
    this.#giveBackQueued();
  };

  #giveBackQueued(): void {
    const queued = this.#queue;
    const head = this.#queueHead;
    this.#queue = [];
    this.#queueHead = 0;
    for (let i = head; i < queued.length; i++) if (!queued[i]!.settled) this.#giveBack(queued[i]!);
  }

  /** Sends a call the stream will not answer as a unary call, within what is left of its deadline. */
  #giveBack(op: Op): void {
    this.#settle(op);
    const left = op.deadline - performance.now();
    if (!(left > 0)) return op.reject(deadlineError(op.method, op.deadlineMs));
    // In the caller's context, which the stream's event that gives the op back is not.
    const unary = () => this.#unary(op.method, op.request, left, op.signal);
    (op.trace === undefined ? unary() : context.with(op.trace, unary)).then(op.resolve, op.reject);
  }

  #armSweep(): void {
    const first = this.#byDeadline.values().next();
    if (first.done) return;
    // unref: while calls are outstanding their stream keeps the process alive; after that,
    // a leftover sweep must not.
    this.#sweepTimer = setTimeout(this.#sweep, Math.max(1, first.value.deadline - performance.now()));
    this.#sweepTimer.unref();
  }

  readonly #sweep = (): void => {
    this.#sweepTimer = undefined;
    const now = performance.now();
    for (const op of this.#byDeadline) {
      if (op.deadline > now) break;
      this.expire(op);
    }
    this.#armSweep();
  };

  /** Starts the idle countdown when nothing is outstanding; one timer, re-armed only when it fires early. */
  #maybeIdle(): void {
    if (this.#stream === undefined || this.#sent.size > 0 || this.#queueHead < this.#queue.length) return;
    this.#idleSince = performance.now();
    if (this.#idleTimer === undefined) {
      this.#idleTimer = setTimeout(this.#onIdle, this.#idleMs);
      this.#idleTimer.unref();
    }
  }

  readonly #onIdle = (): void => {
    this.#idleTimer = undefined;
    const stream = this.#stream;
    if (stream === undefined || this.#sent.size > 0 || this.#queueHead < this.#queue.length) return;
    const left = this.#idleSince + this.#idleMs - performance.now();
    if (left > 1) {
      this.#idleTimer = setTimeout(this.#onIdle, left);
      this.#idleTimer.unref();
      return;
    }
    this.#stream = undefined;
    this.#streamOver = false;
    this.#waitingForDrain = false;
    stream.end();
  };
}
