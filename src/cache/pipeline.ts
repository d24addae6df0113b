// Cache/Pipeline: any cache operations over one bidi stream. Each request frame carries
// tagged operations; they run concurrently through the same handlers as the unary RPCs, and
// their results go back tagged, coalesced into as few reply frames as possible (results
// that finish in the same turn of the event loop share a frame). Per-message overhead is
// what limits a gRPC server, so batching ops per frame is where the pipeline's speed comes from.
import { status } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { context } from '@opentelemetry/api';
import type {
  PipelineRequest__Output,
  PipelineResponse,
  PipelineResult,
  PipelineOp__Output,
} from '../../client/common/index.js';
import type { Config } from '../config.js';
import { InvalidArgumentError, ResourceExhaustedError, ShuttingDownError, toOpError } from '../errors.js';
import { createCallContext, refuseStream, type CallContext, type CallMeter, type RpcEnv } from '../call-context.js';
import { checkBatch, type CacheService } from './service.js';

/** Operations of one stream running at once; past this the stream stops reading. */
const MAX_INFLIGHT_PER_STREAM = 4096;
/**
 * Reply frames are cut near this size, or near half of --max-message-bytes if that is less (a
 * frame holds at least one result).
 * NOTE: a reply over --max-message-bytes fails the whole stream (grpc-js: "Sent message
 * larger than max"), losing every answer in it. Half the limit leaves room for what the size
 * estimate below does not count; a frame of one result fits anyway, since --max-value-bytes
 * is at most --max-message-bytes - 64 KiB.
 */
const FRAME_BYTES = 1024 * 1024;

type Stream = grpc.ServerDuplexStream<PipelineRequest__Output, PipelineResponse>;

async function run(cache: CacheService, op: PipelineOp__Output, ctx: CallContext): Promise<PipelineResult> {
  switch (op.op) {
    case 'get':
      return { tag: op.tag, get: await cache.get(op.get!, ctx) };
    case 'set':
      return { tag: op.tag, set: await cache.set(op.set!, ctx) };
    case 'cas':
      return { tag: op.tag, cas: await cache.cas(op.cas!, ctx) };
    case 'add':
      return { tag: op.tag, add: await cache.add(op.add!, ctx) };
    case 'delete':
      return { tag: op.tag, delete: await cache.delete(op.delete!, ctx) };
    case 'incr':
      return { tag: op.tag, incr: await cache.incr(op.incr!, ctx) };
    case 'touch':
      return { tag: op.tag, touch: await cache.touch(op.touch!, ctx) };
    default:
      throw new InvalidArgumentError(
        `operation ${op.tag} names no operation: set one of get, set, cas, add, delete, incr, touch`,
      );
  }
}

/**
 * `meter` counts each stream as one call: in flight while open, then OK or CANCELLED. The
 * call context (call-context.ts) owns the signal, cancel and in-flight bookkeeping; this
 * handler keeps the framing: tagged operations in, coalesced reply frames out, backpressure.
 */
export function pipelineHandler(
  cache: CacheService,
  config: Config,
  env: RpcEnv,
  meter: CallMeter,
): grpc.handleBidiStreamingCall<PipelineRequest__Output, PipelineResponse> {
  const frameBytes = Math.min(FRAME_BYTES, config.maxMessageBytes / 2);
  const { log } = env;
  let open = 0;
  return (call: Stream) => {
    if (open >= config.maxStreams) {
      const err = new ResourceExhaustedError(
        `${open} Cache/Pipeline streams are open; the limit is ${config.maxStreams} (--max-streams): use unary calls or fewer clients`,
      );
      refuseStream(call, err, env, meter);
      return;
    }
    open++;
    let running = 0;
    // No more operations will come: the client half-closed or cancelled, or the server drains.
    let inputDone = false;
    let paused = false;
    let draining = false;
    let pending: PipelineResult[] = [];
    let flushScheduled = false;

    const finish = (code = status.OK) => {
      if (!scope.end(code)) return;
      open--;
      if (!scope.cancelled) call.end();
    };
    const scope = createCallContext(call, env, meter, {
      cancelMessage: 'pipeline cancelled by the client',
      // Nobody reads the answers any more; the stream ends once what runs has settled.
      onCancel: () => {
        inputDone = true;
        if (running === 0) finish();
      },
      // At shutdown: answer what is running, refuse what comes after, and end the stream.
      onDrain: () => {
        draining = true;
        inputDone = true;
        // NOTE: answers computed this turn are written by the next flush; write them before
        // ending, or those operations (applied!) would go unanswered.
        if (running === 0) {
          flush();
          finish();
        }
      },
    });
    const { ctx } = scope;

    const flush = () => {
      flushScheduled = false;
      if (pending.length > 0 && !scope.ended && !scope.cancelled) write(pending);
      pending = [];
      if (inputDone && running === 0) finish();
    };
    const write = (results: PipelineResult[]) => {
      // Reply frames stay near frameBytes however many results finished together, so no
      // frame outgrows the client's message size limit.
      let writable = true;
      let frame: PipelineResult[] = [];
      let bytes = 0;
      for (const result of results) {
        const size =
          32 + (result.get?.value?.length ?? 0) + (result.error ? Buffer.byteLength(result.error.message ?? '') : 0);
        if (frame.length > 0 && bytes + size > frameBytes) {
          writable = call.write({ results: frame }) && writable;
          frame = [];
          bytes = 0;
        }
        frame.push(result);
        bytes += size;
      }
      writable = call.write({ results: frame }) && writable;
      // Backpressure: a client that does not read stops us reading its new operations.
      if (!writable && !paused) {
        paused = true;
        call.pause();
        call.once('drain', () => {
          paused = false;
          call.resume();
        });
      }
    };
    const answer = (result: PipelineResult) => {
      pending.push(result);
      running--;
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
      if (running < MAX_INFLIGHT_PER_STREAM / 2 && paused && call.writableLength === 0) {
        paused = false;
        call.resume();
      }
    };

    /** An operation refused before it ran: answered with `err`, and traced as such. */
    const refuse = (op: PipelineOp__Output, err: unknown) => {
      const error = toOpError(err, log);
      scope.opSpan(op.op ?? 'none', op.tag, op.trace_context).end(error.code, error.reason);
      answer({ tag: op.tag, error });
    };

    call.on('data', (request: PipelineRequest__Output) => {
      if (scope.cancelled) return;
      try {
        checkBatch('a pipeline frame', request.ops.length, config);
      } catch (err) {
        // A frame too big is refused op by op, so every tag still gets its answer.
        for (const op of request.ops) {
          running++;
          refuse(op, err);
        }
        return;
      }
      for (const op of request.ops) {
        running++;
        if (draining) {
          refuse(op, new ShuttingDownError('server is shutting down; retry on another server'));
          continue;
        }
        // Each operation in its own span, in its caller's trace when it carries one.
        const span = scope.opSpan(op.op ?? 'none', op.tag, op.trace_context);
        context
          .with(span.context, () => run(cache, op, ctx))
          .then(
            (result) => {
              span.end(status.OK);
              answer(result);
            },
            (err: unknown) => {
              const error = toOpError(err, log);
              span.end(error.code, error.reason);
              answer({ tag: op.tag, error });
            },
          );
      }
      if (running >= MAX_INFLIGHT_PER_STREAM && !paused) {
        paused = true;
        call.pause();
      }
    });
    call.on('end', () => {
      inputDone = true;
      if (running === 0) {
        flush();
        finish();
      }
    });
    call.on('error', () => finish(status.UNKNOWN));
  };
}
