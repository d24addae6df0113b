// Adapts async handlers to grpc-js: each call gets its context from createCallContext
// (signal, deadline, in-flight tracking, metering); errors map to a status through errors.ts.
// What is left here is framing: one reply for a unary call, a paced stream of writes for a
// server stream.
import { status, type ServiceError } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { context } from '@opentelemetry/api';
import { createCallContext, type CallContext, type CallMeter, type RpcEnv } from './call-context.js';
import { ShuttingDownError, toStatus } from './errors.js';

export type Handler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/** A grpc-js unary handler running `handler`; `meter` counts the call in flight and its status code. */
export function unary<Req, Res>(
  handler: Handler<Req, Res>,
  env: RpcEnv,
  meter: CallMeter,
): grpc.handleUnaryCall<Req, Res> {
  const { log } = env;
  return (call, callback) => {
    const scope = createCallContext(call, env, meter);
    // In the call's span, so the spans of the backend calls behind it are its children.
    context.with(scope.trace, handler, undefined, call.request, scope.ctx).then(
      (response) => {
        scope.end(status.OK);
        callback(null, response);
      },
      (err: unknown) => {
        const error: Partial<ServiceError> = toStatus(err, log);
        scope.end(error.code ?? status.INTERNAL);
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
  meter: CallMeter,
): grpc.handleServerStreamingCall<Req, Res> {
  const { log } = env;
  return (call) => {
    const scope = createCallContext(call, env, meter, {
      cancelMessage: 'stream cancelled by the client',
      // At shutdown a stream has nothing left to finish: end it now rather than at the cut-off.
      onDrain: () => scope.abort(new ShuttingDownError('server is shutting down')),
    });
    const { signal } = scope.ctx;
    const stream = async () => {
      for await (const message of handler(call.request, scope.ctx)) {
        if (signal.aborted) break;
        if (!call.write(message)) {
          // A client that stopped reading and then cancels must not leave us waiting here.
          await new Promise<void>((resolve) => {
            const done = () => {
              call.off('drain', done);
              signal.removeEventListener('abort', done);
              resolve();
            };
            call.once('drain', done);
            signal.addEventListener('abort', done, { once: true });
          });
        }
      }
    };
    // In the call's span, as for a unary call.
    context.with(scope.trace, stream).then(
      () => {
        scope.end(status.OK);
        if (!scope.cancelled) call.end();
      },
      (err: unknown) => {
        const error = toStatus(err, log);
        scope.end(error.code ?? status.INTERNAL);
        if (!scope.cancelled) call.emit('error', Object.assign(new Error('stream failed'), error));
      },
    );
  };
}
