// Adapts async handlers to grpc-js: one AbortSignal per call (client cancel, deadline,
// server shutdown), error mapping through errors.ts, in-flight tracking for shutdown, and
// each method's in-flight gauge and status counts (metrics.ts).
import { status, type ServiceError } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { authorize, type TokenAuth } from './auth.js';
import { CancelledError, ShuttingDownError, toStatus, type Logger } from './errors.js';
import type { RpcMeter } from './metrics.js';

export interface CallContext {
  /** Aborted when the client cancels, the deadline passes, or the server is cut off. */
  readonly signal: AbortSignal;
  /** The caller's address, e.g. "ipv4:127.0.0.1:53211". */
  readonly peer: string;
  /** Milliseconds left before the call's deadline; Infinity without one. */
  remainingMs(): number;
  /** Throws PermissionDeniedError if the caller's token may not use this lock name or key. */
  authorize(what: 'lock' | 'key', name: string): void;
}

/** What every handler adapter needs from the server. */
export interface RpcEnv {
  readonly inflight: InflightCalls;
  readonly log: Logger;
  /** undefined = no authentication configured. */
  readonly auth: TokenAuth | undefined;
}

/** The authorize() of a call with this metadata. */
export function authorizer(env: RpcEnv, metadata: grpc.Metadata): CallContext['authorize'] {
  if (env.auth === undefined) return () => {};
  // The interceptor has already refused calls without a valid token.
  const principal = env.auth.principalOf(metadata);
  return (what, name) => authorize(principal, what, name);
}

export type Handler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/** Calls in progress, so shutdown can wait for them and then cut off the rest. */
export class InflightCalls {
  readonly #calls = new Set<AbortController>();
  readonly #drainers = new Set<() => void>();
  #idle: (() => void)[] = [];
  #draining = false;

  get size(): number {
    return this.#calls.size;
  }

  add(controller: AbortController): void {
    this.#calls.add(controller);
  }

  delete(controller: AbortController): void {
    this.#calls.delete(controller);
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

function deadlineMs(call: grpc.ServerUnaryCall<unknown, unknown>): number {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  return Number.isFinite(ms) ? ms : Infinity;
}

/** A grpc-js unary handler running `handler`; `meter` counts the call in flight and its status code. */
export function unary<Req, Res>(
  handler: Handler<Req, Res>,
  env: RpcEnv,
  meter: RpcMeter,
): grpc.handleUnaryCall<Req, Res> {
  const { inflight, log } = env;
  return (call, callback) => {
    const controller = new AbortController();
    // NOTE: grpc-js emits 'cancelled' even after a reply was sent; only a call that has not
    // been answered yet is really cancelled.
    let answered = false;
    call.on('cancelled', () => {
      if (!answered) controller.abort(new CancelledError('call cancelled by the client or its deadline'));
    });
    const deadline = deadlineMs(call);
    const ctx: CallContext = {
      signal: controller.signal,
      peer: call.getPeer(),
      remainingMs: () => deadline - Date.now(),
      authorize: authorizer(env, call.metadata),
    };
    inflight.add(controller);
    meter.begin();
    handler(call.request, ctx).then(
      (response) => {
        answered = true;
        inflight.delete(controller);
        meter.end(status.OK);
        callback(null, response);
      },
      (err: unknown) => {
        answered = true;
        inflight.delete(controller);
        const error: Partial<ServiceError> = toStatus(err, log);
        meter.end(error.code ?? status.INTERNAL);
        callback(error);
      },
    );
  };
}

/**
 * Adapts a handler that yields messages to a grpc-js server stream: the stream ends cleanly
 * (OK) when the handler's iteration ends, including at shutdown (drain), and with the
 * mapped status when it throws. Writes wait for the client to keep up.
 */
export function serverStream<Req, Res>(
  handler: (request: Req, ctx: CallContext) => AsyncIterable<Res>,
  env: RpcEnv,
  meter: RpcMeter,
): grpc.handleServerStreamingCall<Req, Res> {
  const { inflight, log } = env;
  return (call) => {
    const controller = new AbortController();
    let done = false;
    call.on('cancelled', () => {
      if (!done) controller.abort(new CancelledError('stream cancelled by the client'));
    });
    const ctx: CallContext = {
      signal: controller.signal,
      peer: call.getPeer(),
      remainingMs: () => Infinity,
      authorize: authorizer(env, call.metadata),
    };
    inflight.add(controller);
    meter.begin();
    // At shutdown a stream has nothing left to finish: end it now rather than at the cut-off.
    const stopDraining = inflight.onDrain(() => controller.abort(new ShuttingDownError('server is shutting down')));
    const finish = (code: status) => {
      done = true;
      stopDraining();
      inflight.delete(controller);
      meter.end(call.cancelled ? status.CANCELLED : code);
    };
    (async () => {
      for await (const message of handler(call.request, ctx)) {
        if (controller.signal.aborted) break;
        if (!call.write(message)) {
          // A client that stopped reading and then cancels must not leave us waiting here.
          await new Promise<void>((resolve) => {
            const done = () => {
              call.off('drain', done);
              controller.signal.removeEventListener('abort', done);
              resolve();
            };
            call.once('drain', done);
            controller.signal.addEventListener('abort', done, { once: true });
          });
        }
      }
    })().then(
      () => {
        finish(status.OK);
        if (!call.cancelled) call.end();
      },
      (err: unknown) => {
        const error = toStatus(err, log);
        finish(error.code ?? status.INTERNAL);
        if (!call.cancelled) call.emit('error', Object.assign(new Error('stream failed'), error));
      },
    );
  };
}
