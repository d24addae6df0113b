// One call context for every kind of handler (unary, server-streaming, bidi), the way
// nice-grpc's createCallContext serves all of its handler kinds: the AbortSignal that a client
// cancel, the deadline and the server's shutdown abort; the "answered" flag; in-flight
// tracking for shutdown; the method's meter; and the call's span (tracing.ts). An adapter (rpc.ts unary and serverStream,
// cache/pipeline.ts) creates one per call, hands `ctx` to the handlers and keeps only its
// framing: what to read, what to write, and when the call is over.
import { status } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';
import { authorize, type TokenAuth } from './auth.js';
import { CancelledError, type LatchkeyError, ShuttingDownError, toStatus, type Logger } from './errors.js';
import { callSpan, opSpan, quietScope, type SpanScope } from './tracing.js';

/**
 * What the context uses of a grpc-js server call, which every kind has: unary, server-stream,
 * bidi (grpc-js does not export its ServerSurfaceCall).
 */
interface ServerCall {
  readonly cancelled: boolean;
  readonly metadata: grpc.Metadata;
  getPeer(): string;
  getPath(): string;
  getDeadline(): Date | number;
  once(event: 'cancelled', listener: () => void): unknown;
  emit(event: 'error', error: Error): boolean;
}

/** What a handler sees of its call. */
export interface CallContext {
  /** Aborted when the client cancels, the deadline passes, or the server is cut off. */
  readonly signal: AbortSignal;
  /** The caller's address, e.g. "ipv4:127.0.0.1:53211". */
  readonly peer: string;
  /** Milliseconds left before the call's deadline as the server read it; Infinity without one. */
  remainingMs(): number;
  /**
   * How long the handler may still take and have its answer reach the caller before the
   * caller's own deadline: remainingMs() less deadlineMarginMs() of it, in whole ms; Infinity
   * without a deadline. A handler that waits (Acquire) waits at most this long.
   */
  answerWithinMs(): number;
  /** Throws PermissionDeniedError if the caller's token may not use this lock name, cache key or election name. */
  authorize(what: 'lock' | 'key' | 'election', name: string): void;
}

/** What every call context needs from the server. */
export interface RpcEnv {
  readonly inflight: InflightCalls;
  readonly log: Logger;
  /** undefined = no authentication configured. */
  readonly auth: TokenAuth | undefined;
}

/**
 * The metering hook: a call is counted in flight from its start to its end, then by the status
 * it ended with. metrics.ts RpcMeter is one.
 */
export interface CallMeter {
  begin(): void;
  /** The call (or stream) ended with this status code. */
  end(code: status): void;
  /** Answered without ever being in flight (a stream refused at the door). */
  answered(code: status): void;
}

export interface CallOptions {
  /**
   * Long-lived calls (streams) say how to wind down at server shutdown: stop taking new
   * work, answer what runs, then end(). Without it shutdown waits for the call (up to its
   * grace period) and then aborts its signal.
   */
  readonly onDrain?: () => void;
  /**
   * Runs once if the client cancels (or the deadline passes) before end(), after ctx.signal
   * has aborted. A stream with work still running ends when that work has settled; a unary
   * handler needs none: its promise settles on the aborted signal.
   */
  readonly onCancel?: () => void;
  /** The message of the CancelledError that ctx.signal aborts with on a cancel. */
  readonly cancelMessage?: string;
}

/** What an adapter holds for one call; handlers only ever see `ctx`. */
export interface CallScope {
  readonly ctx: CallContext;
  /** The client cancelled before end(): nothing written now reaches it. */
  readonly cancelled: boolean;
  /** end() has run. */
  readonly ended: boolean;
  /**
   * Ends the call's bookkeeping, once: out of the in-flight set, off the drain list, and
   * metered with `code` (CANCELLED if the client cancelled first). Returns false when the
   * call had already ended, so an adapter sends its final status only once.
   */
  end(code: status): boolean;
  /** Aborts ctx.signal with `reason`, for work the adapter itself must stop (a stream at shutdown). */
  abort(reason: LatchkeyError): void;
  /**
   * The trace context of the call's span: the adapter runs the handler in it
   * (context.with), so the spans of the backend calls behind it are its children.
   */
  readonly trace: Context;
  /**
   * Starts the span of one operation of a stream (tracing.ts opSpan): `op` names it ("get",
   * "acquire"), `carrier` is the caller's trace context the operation carries, if any. Run
   * the operation in its `context`, and `end` it with the code it was answered with. With
   * nothing recording it allocates nothing.
   */
  opSpan(op: string, tag: string | number, carrier?: Readonly<Record<string, string>>): SpanScope;
}

/** The least a waiting call answers before its deadline: for the answer's way back and a busy event loop. */
export const DEADLINE_MARGIN_FLOOR_MS = 50;
/** The most: 10 min, reached only by deadlines past 16.6 h (see deadlineMarginMs). */
export const DEADLINE_MARGIN_CAP_MS = 600_000;

/**
 * How long before the deadline the server reads a waiting call gives up, so that its answer
 * (ABORTED naming the holder) reaches the client before the client's own deadline: 50 ms +
 * 1% of the time left, at most 10 min.
 * NOTE: gRPC's C core (Python, C++, Ruby, PHP) rounds the grpc-timeout it sends UP to three
 * significant digits: a 1 s deadline goes out as "1010m", 5 s as "5010m", 100 s as "101S",
 * 1 h as "3610S". The server's deadline is then up to 1% later than the one the client
 * keeps, so a fixed few milliseconds are not enough: 1% covers that rounding at every
 * length, the floor covers the trip back. Past 16.6 h C core rounds to tens of minutes, so
 * the cap is 10 min: every deadline that can bound a wait (--max-wait-ms is at most a day)
 * stays covered, and no wait ends more than 10 min early. grpc-go, grpc-java and grpc-js
 * send the time left unrounded; for them the margin is only the floor's worth of slack.
 */
export function deadlineMarginMs(remainingMs: number): number {
  return Math.min(DEADLINE_MARGIN_CAP_MS, DEADLINE_MARGIN_FLOOR_MS + remainingMs / 100);
}

/** The authorize() of a call with this metadata. */
function authorizer(env: RpcEnv, metadata: grpc.Metadata): CallContext['authorize'] {
  if (env.auth === undefined) return () => {};
  // The interceptor has already refused calls without a valid token.
  const principal = env.auth.principalOf(metadata);
  return (what, name) => authorize(principal, what, name);
}

function deadlineOf(call: ServerCall): number {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  return Number.isFinite(ms) ? ms : Infinity;
}

/**
 * Starts the bookkeeping of one call: in flight and metered until `end()`.
 * NOTE: ctx.signal is made when a handler first reads it, and a call served by an in-process
 * store (see CacheStore.inProcess) never reads it: an AbortSignal costs microseconds to make
 * and more to collect, against a fraction of one for the LRU Get it would serve. An abort
 * before then is kept, first reason first as AbortController keeps it, and the signal is made
 * aborted with it.
 */
export function createCallContext(
  call: ServerCall,
  env: RpcEnv,
  meter: CallMeter,
  options: CallOptions = {},
): CallScope {
  const scope = new Scope(call, env, meter, options);
  // A call can already be cancelled when its handler starts (the client gave up meanwhile).
  if (call.cancelled) queueMicrotask(() => scope.cancel());
  else call.once('cancelled', () => scope.cancel());
  return scope;
}

/** One call's scope and its ctx (the same object: handlers see it through CallContext only). */
class Scope implements CallScope, CallContext {
  readonly authorize: CallContext['authorize'];
  readonly trace: Context;
  readonly #call: ServerCall;
  readonly #env: RpcEnv;
  readonly #meter: CallMeter;
  readonly #options: CallOptions;
  readonly #deadline: number;
  readonly #path: string;
  readonly #span: SpanScope;
  readonly #stopDraining: (() => void) | undefined;
  #controller: AbortController | undefined;
  /** Why the call was aborted before its signal was made. */
  #abortReason: LatchkeyError | undefined;
  #peer: string | undefined;
  /** What opSpan hands out for the ops that record nothing: one per stream, not one per op. */
  #quiet: SpanScope | undefined;
  #cancelled = false;
  #ended = false;

  constructor(call: ServerCall, env: RpcEnv, meter: CallMeter, options: CallOptions) {
    this.#call = call;
    this.#env = env;
    this.#meter = meter;
    this.#options = options;
    this.#deadline = deadlineOf(call);
    this.#path = call.getPath();
    // The peer is read only for a span that records (see `peer`).
    this.#span = callSpan(this.#path, call.metadata, () => this.peer);
    this.trace = this.#span.context;
    this.authorize = authorizer(env, call.metadata);
    env.inflight.add(this);
    this.#stopDraining = options.onDrain === undefined ? undefined : env.inflight.onDrain(options.onDrain);
    // Metering hook: in flight from here until end().
    meter.begin();
  }

  get ctx(): CallContext {
    return this;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get peer(): string {
    this.#peer ??= this.#call.getPeer();
    return this.#peer;
  }

  remainingMs(): number {
    return this.#deadline - Date.now();
  }

  answerWithinMs(): number {
    if (this.#deadline === Infinity) return Infinity;
    const remaining = this.#deadline - Date.now();
    return Math.floor(remaining - deadlineMarginMs(remaining));
  }

  get cancelled(): boolean {
    return this.#cancelled;
  }

  get ended(): boolean {
    return this.#ended;
  }

  end(code: status): boolean {
    if (this.#ended) return false;
    this.#ended = true;
    this.#stopDraining?.();
    this.#env.inflight.delete(this);
    // Metering hook: the status the call ended with.
    this.#meter.end(this.#cancelled ? status.CANCELLED : code);
    this.#span.end(this.#cancelled ? status.CANCELLED : code);
    return true;
  }

  abort(reason: LatchkeyError): void {
    if (this.#controller !== undefined) this.#controller.abort(reason);
    else this.#abortReason ??= reason;
  }

  opSpan(op: string, tag: string | number, carrier?: Readonly<Record<string, string>>): SpanScope {
    this.#quiet ??= quietScope(this.trace);
    return opSpan(this.trace, this.#path, op, tag, carrier, this.#quiet);
  }

  cancel(): void {
    // NOTE: grpc-js emits 'cancelled' even after the call was answered (the stream closing
    // normally); only a call that has not ended yet is really cancelled.
    if (this.#ended || this.#cancelled) return;
    this.#cancelled = true;
    this.abort(new CancelledError(this.#options.cancelMessage ?? 'call cancelled by the client or its deadline'));
    this.#options.onCancel?.();
  }
}

/** `ctx` with a signal of its own (an operation of a stream that can be stopped alone). */
export function withSignal(ctx: CallContext, signal: AbortSignal): CallContext {
  return {
    signal,
    get peer() {
      return ctx.peer;
    },
    remainingMs: () => ctx.remainingMs(),
    answerWithinMs: () => ctx.answerWithinMs(),
    authorize: (what, name) => ctx.authorize(what, name),
  };
}

/**
 * Refuses a stream at the door (a limit reached) without it ever being in flight: the client
 * gets `err`'s status, and the meter counts it as answered.
 */
export function refuseStream(call: ServerCall, err: LatchkeyError, env: RpcEnv, meter: CallMeter): void {
  call.emit('error', Object.assign(new Error(err.message), toStatus(err, env.log)));
  meter.answered(err.code);
  callSpan(call.getPath(), call.metadata, () => call.getPeer()).end(err.code);
}

/** What InflightCalls holds of a call: how to abort it at the cut-off (a call's scope, an AbortController). */
export interface Abortable {
  abort(reason: LatchkeyError): void;
}

/** Calls in progress, so shutdown can wait for them and then cut off the rest. */
export class InflightCalls {
  readonly #calls = new Set<Abortable>();
  readonly #drainers = new Set<() => void>();
  #idle: (() => void)[] = [];
  #draining = false;

  get size(): number {
    return this.#calls.size;
  }

  add(call: Abortable): void {
    this.#calls.add(call);
  }

  delete(call: Abortable): void {
    this.#calls.delete(call);
    if (this.#calls.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Resolves once no call is in flight. */
  idle(): Promise<void> {
    return this.#calls.size === 0 ? Promise.resolve() : new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Long-lived calls (streams) register how to wind down: at shutdown they stop taking new
   * work and end once what they have is answered, instead of holding shutdown for the whole
   * grace period. Returns the unregister function.
   */
  onDrain(fn: () => void): () => void {
    if (this.#draining) queueMicrotask(fn);
    else this.#drainers.add(fn);
    return () => this.#drainers.delete(fn);
  }

  drain(): void {
    this.#draining = true;
    for (const fn of this.#drainers) fn();
    this.#drainers.clear();
  }

  abortAll(): void {
    for (const controller of this.#calls)
      controller.abort(new ShuttingDownError('server is shutting down; retry on another server'));
  }
}
