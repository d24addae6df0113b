// The caller's trace goes on into latchkey: the SDK writes the active trace context (W3C
// traceparent and tracestate, or whatever propagator the application's OpenTelemetry SDK set
// up) into the metadata of every call and stream it makes, and into each operation it sends
// through a shared stream. @opentelemetry/api only: in an application without an OpenTelemetry
// SDK there is no active span, and none of this does anything.
import * as grpc from '@grpc/grpc-js';
import { type Context, context, propagation, type TextMapSetter, trace } from '@opentelemetry/api';

const METADATA_SETTER: TextMapSetter<grpc.Metadata> = {
  set: (metadata, key, value) => metadata.set(key, value),
};

/**
 * A client interceptor: each call and stream carries the trace context it was started in. It
 * runs first (outermost), so the context is the caller's even when a later interceptor holds
 * the call back (the token interceptor waits for its token).
 */
export const traceContextInterceptor: grpc.Interceptor = (options, nextCall) => {
  const active = context.active();
  if (trace.getSpanContext(active) === undefined) return new grpc.InterceptingCall(nextCall(options));
  return new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      propagation.inject(active, metadata, METADATA_SETTER);
      next(metadata, listener);
    },
  });
};

/**
 * The caller's context when it has a trace to continue, else undefined: what an operation
 * sent through a shared stream (the pipeline) keeps, to carry it (traceCarrier) and to make
 * its unary fallback in it.
 * NOTE: a stream opened by one caller carries the operations of every later one, so the
 * stream's metadata cannot speak for them: each operation carries its own.
 */
export function tracedContext(): Context | undefined {
  const active = context.active();
  return trace.getSpanContext(active) === undefined ? undefined : active;
}

/** `traced`'s trace context as an operation's `trace_context` field (PipelineOp, SessionOp) carries it. */
export function traceCarrier(traced: Context): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(traced, carrier);
  return carrier;
}
