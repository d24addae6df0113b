// createCacheTransport: how each cache call reaches the server. Through the pipeline
// (pipeline.ts) when its stream can take the call, else as a unary RPC; either way with the
// same deadline, AbortSignal, error mapping and retries of idempotent calls (unary-call.ts),
// so a caller cannot tell which way a call went.
import type * as grpc from '@grpc/grpc-js';
import type { CacheCall, CacheMethod, CacheRpcs } from './cache.js';
import { CancelledError } from './errors.js';
import { Pipeline, type PipelineOptions, type UnaryAttempt } from './pipeline.js';
import type { ServerList } from './servers.js';
import { serverGone, unanswered } from './streams.js';
import { retryPolicy, unaryAttempt, withRetries, type CallOptions, type RetryOptions } from './unary-call.js';

export interface CacheTransportOptions {
  readonly address: string;
  /** Each call goes to the current server; one that fails for the server going away moves the list on. */
  readonly servers: ServerList;
  /** The client's default deadline, for calls that do not pass their own. */
  readonly deadlineMs: number;
  readonly retry: RetryOptions | false;
  /** false: every call is a unary RPC. */
  readonly pipeline: Required<PipelineOptions> | false;
}

export interface CacheTransport {
  readonly call: CacheCall;
  /** Refuses new calls and ends the pipeline stream; calls already sent still get their answers. */
  close(): void;
}

type UnaryStub = Record<
  CacheMethod,
  (
    request: object,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<unknown>,
  ) => grpc.ClientUnaryCall
>;

export function createCacheTransport(options: CacheTransportOptions): CacheTransport {
  const { address, servers, deadlineMs: defaultDeadlineMs, retry } = options;
  let closed = false;
  const closedError = (method: CacheMethod) =>
    new CancelledError(`latchkey client for ${address} is closed; connect again`, { method });
  const unary: UnaryAttempt = (method, request, deadlineMs, signal) => {
    // A retry, or a call the pipeline gives back, may come after close(): it must not reach
    // the closed channel (grpc-js would throw).
    if (closed) return Promise.reject(closedError(method));
    const server = servers.current;
    return unaryAttempt(
      (md, o, cb) =>
        (server.cache as unknown as UnaryStub)[method](request, md, o, (err, response) => {
          if (err !== null && (serverGone(err) || unanswered(err))) servers.failed(server);
          cb(err, response);
        }),
      deadlineMs,
      { method, signal },
    );
  };
  const pipeline =
    options.pipeline === false ? undefined : new Pipeline(servers, unary, options.pipeline, defaultDeadlineMs);
  // The pipeline declines calls after close(), so those reach unary() and its check.
  const attempt = (
    method: CacheMethod,
    request: CacheRpcs[CacheMethod][0],
    deadlineMs: number,
    signal: AbortSignal | undefined,
  ) => pipeline?.send(method, request, deadlineMs, signal) ?? unary(method, request, deadlineMs, signal);

  const call: CacheCall = <M extends CacheMethod>(method: M, request: CacheRpcs[M][0], callOptions: CallOptions) => {
    const deadlineMs = callOptions.deadlineMs ?? defaultDeadlineMs;
    const { signal } = callOptions;
    const retries = retryPolicy('latchkey.v1.Cache', method, retry);
    // Retried or not, every attempt goes whichever way is open at the time: a Get whose
    // stream broke is retried as a unary call while the stream backs off.
    const result =
      retries === false
        ? attempt(method, request, deadlineMs, signal)
        : withRetries((ms) => attempt(method, request, ms, signal), deadlineMs, retries, method, signal);
    return result as Promise<CacheRpcs[M][1]>;
  };

  return {
    call,
    close() {
      closed = true;
      pipeline?.close();
    },
  };
}
