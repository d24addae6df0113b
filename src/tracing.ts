// Traces, written against @opentelemetry/api alone: what the server records, not how it is
// exported. With no OpenTelemetry SDK registered (the default: tracing-start.ts loads one only
// when the OTEL_* variables ask for it) every span here is the API's non-recording span, and
// each helper returns before it computes an attribute. An application that embeds
// createServer and registers its own SDK gets the same spans.
//
// The spans of one call:
//   latchkey.v1.Locks/Acquire          SERVER, per RPC (call-context.ts), a child of the
//                                      caller's span when its metadata carries one
//     lock acquire                     INTERNAL, per backend or store operation
//       etcdserverpb.KV/Txn            CLIENT, per etcd request (grpcClientSpans)
//   latchkey.v1.Cache/Pipeline get     per stream operation (opSpan), a child of the
//     cache get                        caller's span the operation carries, else of the
//       memcached get                  stream's; CLIENT per memcached request (clientSpan)
//   latchkey.v1.Locks/Session acquire  the same for a lock session's ops, with the lock's
//     lock acquire                     name and backend; the session's own ops (keepalive)
//       etcdserverpb.KV/Txn            carry no caller's context: children of the stream's
// The RPC attributes follow OpenTelemetry's RPC conventions (rpc.system, rpc.service,
// rpc.method, rpc.grpc.status_code); latchkey's own are latchkey.lock.*, latchkey.cache.*,
// latchkey.outcome. NOTE: never a cache value, a lease id (whoever reads one can release the
// lock), an auth token or a fencing token goes into a span.
//
// NOTE: why not @opentelemetry/instrumentation-grpc (0.300, tried on this server). It patches
// @grpc/grpc-js from a require() hook, and latchkey imports grpc-js as an ES module, which
// that hook does not see: a plain ESM gRPC server got no span at all. latchkey's own server
// got RPC spans only because a CommonJS dependency (grpc-health-check, @grpc/reflection,
// etcd3) happens to require grpc-js after the SDK started, and never client spans (an ES
// module's named exports are copies the patch does not reach). Its ESM loader hook
// (import-in-the-middle) worked under plain node, not under tsx (`npm start`, the tests); and
// every variant needs the SDK started before grpc-js is first loaded, which an application
// embedding createServer cannot promise. Spans made here from the call context need none of
// that, and carry the lock and cache attributes the instrumentation cannot know.
import * as grpc from '@grpc/grpc-js';
import {
  type Attributes,
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api';
import { LatchkeyError, reasonOf } from './errors.js';

const tracer = trace.getTracer('latchkey');

/** The status codes that mark an RPC span failed (OpenTelemetry's RPC conventions): the server's fault, not the request's. */
const SERVER_ERRORS: ReadonlySet<grpc.status> = new Set([
  grpc.status.UNKNOWN,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.UNIMPLEMENTED,
  grpc.status.INTERNAL,
  grpc.status.UNAVAILABLE,
  grpc.status.DATA_LOSS,
]);

const METADATA_GETTER: TextMapGetter<grpc.Metadata> = {
  get(metadata, key) {
    const values = metadata.get(key);
    return values.length === 0 ? undefined : values.map(String);
  },
  keys: (metadata) => Object.keys(metadata.getMap()),
};

/** One span in progress: the context to run its work in, and how it ends. */
export interface SpanScope {
  /** The context with this span active (with nothing recording: the parent's). */
  readonly context: Context;
  /**
   * Ends the span with the gRPC status code its call or operation ended with and, for a
   * failure, the error reason (LockBusyError, FencedOutError, ...). Only the first call counts.
   */
  end(code: grpc.status, errorType?: string): void;
  /** Whether the span records: build attributes for setAttributes only when it does. */
  readonly recording: boolean;
  /** Adds attributes to the span (nothing when it does not record). */
  setAttributes(attributes: Attributes): void;
}

const NOT_RECORDING = { end() {}, recording: false, setAttributes() {} } as const;

/** A scope in `context` that records nothing. */
export function quietScope(context: Context): SpanScope {
  return { context, ...NOT_RECORDING };
}

/** rpc.* of a gRPC method path, "/latchkey.v1.Locks/Acquire". */
function rpcAttributes(path: string): Attributes {
  const slash = path.lastIndexOf('/');
  return { 'rpc.system': 'grpc', 'rpc.service': path.slice(1, slash), 'rpc.method': path.slice(slash + 1) };
}

/** network.peer.* of a grpc-js peer, "ipv4:127.0.0.1:53211" or "ipv6:[::1]:53211". */
function peerAttributes(peer: string): Attributes {
  const match = /^(?:ipv[46]:)?\[?(.*?)\]?:(\d+)$/.exec(peer);
  return match === null
    ? { 'network.peer.address': peer }
    : { 'network.peer.address': match[1]!, 'network.peer.port': Number(match[2]) };
}

function rpcScope(span: Span, parent: Context): SpanScope {
  let ended = false;
  return {
    context: trace.setSpan(parent, span),
    recording: true,
    setAttributes: (attributes) => span.setAttributes(attributes),
    end(code, errorType) {
      if (ended) return;
      ended = true;
      span.setAttribute('rpc.grpc.status_code', code);
      if (code !== grpc.status.OK) span.setAttribute('error.type', errorType ?? grpc.status[code] ?? String(code));
      if (SERVER_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

/**
 * The SERVER span of one call, from its start to its end (a stream's: until it ends): a child
 * of the trace context in the call's metadata (W3C traceparent, or whatever propagator the
 * SDK was set up with), else a new trace.
 */
export function callSpan(path: string, metadata: grpc.Metadata, peer: () => string): SpanScope {
  const parent = propagation.extract(ROOT_CONTEXT, metadata, METADATA_GETTER);
  const span = tracer.startSpan(path.slice(1), { kind: SpanKind.SERVER }, parent);
  if (!span.isRecording()) return quietScope(parent);
  span.setAttributes({ ...rpcAttributes(path), ...peerAttributes(peer()) });
  return rpcScope(span, parent);
}

/**
 * The span of one operation of a stream (a Pipeline op, a Session op): named after the
 * stream's method and the op ("latchkey.v1.Cache/Pipeline get"). A stream carries the calls of
 * many callers, so an op that brings its caller's trace context (`carrier`, the op's
 * trace_context field) is a SERVER span of that caller's trace, linked to the stream's span;
 * one without is an INTERNAL child of the stream's span. `quiet` is the stream's scope that
 * records nothing (quietScope of `stream`), handed out for an op that would not record.
 * NOTE: no cost when nothing records. An op without a carrier on a stream whose span does not
 * record (no SDK, or the stream's trace not sampled) gets `quiet`, with no span started: under
 * the SDK's parent-based sampler (its default) such a child would not be sampled either, and
 * the ops of a busy stream allocate nothing for tracing. An op with a carrier is extracted and
 * started as usual: its caller traces, and this server may too.
 */
export function opSpan(
  stream: Context,
  path: string,
  op: string,
  tag: string | number,
  carrier: Readonly<Record<string, string>> | undefined,
  quiet: SpanScope,
): SpanScope {
  let parent = stream;
  let kind = SpanKind.INTERNAL;
  let links: Link[] | undefined;
  if (carrier !== undefined && hasKeys(carrier)) {
    const remote = propagation.extract(ROOT_CONTEXT, carrier);
    if (trace.getSpanContext(remote) !== undefined) {
      parent = remote;
      kind = SpanKind.SERVER;
      const streamSpan = trace.getSpanContext(stream);
      if (streamSpan !== undefined) links = [{ context: streamSpan }];
    }
  }
  if (parent === stream && trace.getSpan(stream)?.isRecording() !== true) return quiet;
  const span = tracer.startSpan(`${path.slice(1)} ${op}`, { kind, links }, parent);
  if (!span.isRecording()) return quietScope(parent);
  span.setAttributes({ ...rpcAttributes(path), 'latchkey.op': op, 'latchkey.op.tag': String(tag) });
  return rpcScope(span, parent);
}

/** Whether `record` has an own key, without the array Object.keys makes. */
function hasKeys(record: Readonly<Record<string, string>>): boolean {
  for (const key in record) if (Object.hasOwn(record, key)) return true;
  return false;
}

/** What a failed operation's span says of it: the wire reason of ours, the class name of anything else. */
export function errorTypeOf(err: unknown): string {
  if (err instanceof LatchkeyError) return reasonOf(err);
  return err instanceof Error ? err.name : 'Error';
}

function failed(span: Span, err: unknown): void {
  span.setAttribute('error.type', errorTypeOf(err));
  const code = err instanceof LatchkeyError ? err.code : grpc.status.INTERNAL;
  // An answer such as busy, not the holder or fenced out is an outcome; a backend down or a
  // bug is the operation failing.
  if (SERVER_ERRORS.has(code))
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof LatchkeyError ? err.message : undefined });
}

/**
 * Runs one backend or store operation as an INTERNAL span (a child of the active span), with
 * `attributes()` and, when it settles, latchkey.outcome from `outcome` (or, when it throws,
 * from `failure`). The decorators of traced-backend.ts and traced-cache.ts use it.
 */
export function inSpan<T>(
  name: string,
  attributes: () => Attributes,
  run: () => Promise<T>,
  outcome: (result: T) => string,
  failure: (err: unknown) => string,
): Promise<T> {
  const span = tracer.startSpan(name);
  if (!span.isRecording()) return run();
  span.setAttributes(attributes());
  return context.with(trace.setSpan(context.active(), span), run).then(
    (result) => {
      span.setAttribute('latchkey.outcome', outcome(result));
      span.end();
      return result;
    },
    (err: unknown) => {
      span.setAttribute('latchkey.outcome', failure(err));
      failed(span, err);
      span.end();
      throw err;
    },
  );
}

/**
 * One request to a backend server as a CLIENT span (a child of the active span): `end` it with
 * the request's error (undefined if none) and what the answer adds. For memcached
 * (cache/memcached.ts).
 */
export function clientSpan(
  name: string,
  attributes: () => Attributes,
): { end(err: unknown, attributes?: () => Attributes): void } {
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT });
  if (!span.isRecording()) return NOT_RECORDING;
  span.setAttributes(attributes());
  return {
    end(err, more) {
      if (more !== undefined) span.setAttributes(more());
      if (err !== undefined) failed(span, err);
      span.end();
    },
  };
}

/**
 * One gRPC call to a backend as a CLIENT span (a child of the active span) named after its
 * method, "etcdserverpb.KV/Txn", with rpc.* and `attributes`: `end` it with the call's status.
 */
export function grpcClientSpan(
  path: string,
  attributes: Attributes,
): { end(code: grpc.status, details: string): void } {
  const span = tracer.startSpan(path.slice(1), { kind: SpanKind.CLIENT });
  if (!span.isRecording()) return NOT_RECORDING;
  span.setAttributes({ ...rpcAttributes(path), ...attributes });
  return {
    end(code, details) {
      span.setAttribute('rpc.grpc.status_code', code);
      if (code !== grpc.status.OK) span.setAttribute('error.type', grpc.status[code] ?? 'UNKNOWN');
      if (SERVER_ERRORS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: details });
      span.end();
    },
  };
}

/**
 * A grpc-js client interceptor that makes each call a grpcClientSpan, ended by the call's
 * status. For etcd (locks/etcd/connection.ts), whose client takes call options per request.
 */
export function grpcClientSpans(attributes: Attributes): grpc.Interceptor {
  return (options, nextCall) => {
    const span = grpcClientSpan(options.method_definition.path, attributes);
    // A call passed on untouched: what grpc-js's Interceptor type asks for.
    if (span === NOT_RECORDING) return new grpc.InterceptingCall(nextCall(options));
    return new grpc.InterceptingCall(nextCall(options), {
      start(metadata, _listener, next) {
        next(metadata, {
          onReceiveStatus(status, nextStatus) {
            span.end(status.code, status.details);
            nextStatus(status);
          },
        });
      },
    });
  };
}
