// Histories of client operations, for the checkers in checker.ts. Each operation is recorded
// with its invoke and return times on one monotonic clock and what came back: a value, a
// definite failure (the operation certainly did not take effect), or "unknown" (an error or a
// timeout after which it may or may not have taken effect, at any time after its invoke).
//
// The clock is process.hrtime (CLOCK_MONOTONIC), which every process on the machine shares,
// whatever its network namespace: histories recorded by client processes of their own can be
// merged with the test process's.
import * as grpc from '@grpc/grpc-js';

/** Milliseconds on the machine's monotonic clock. */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** A wall-clock time in ms (e.g. a lease's expires_at_ms, from a server on this machine) on the monotonic clock. */
export const wallToMonotonicMs = (wallMs: number): number => wallMs - Date.now() + monotonicMs();

export type Outcome<T> =
  | { readonly status: 'ok'; readonly value: T }
  /** Certainly not applied (e.g. ABORTED: not granted; INVALID_ARGUMENT). */
  | { readonly status: 'fail'; readonly code: string; readonly message: string }
  /** Applied or not, at any time after the invoke (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, ...). */
  | { readonly status: 'unknown'; readonly code: string; readonly message: string };

export interface Op<I, O> {
  /** Unique within its history, in invoke order. */
  readonly id: number;
  /** Who issued it: a client issues one operation at a time. */
  readonly client: string;
  readonly input: I;
  readonly invokeMs: number;
  /** When the answer came (or the client gave up); undefined while it runs. */
  returnMs: number | undefined;
  outcome: Outcome<O> | undefined;
}

export class History<I, O> {
  readonly ops: Op<I, O>[] = [];

  /** Records the invoke now; the returned function records the return, once. */
  begin(client: string, input: I): (outcome: Outcome<O>) => Op<I, O> {
    const op: Op<I, O> = {
      id: this.ops.length,
      client,
      input,
      invokeMs: monotonicMs(),
      returnMs: undefined,
      outcome: undefined,
    };
    this.ops.push(op);
    return (outcome) => {
      if (op.outcome === undefined) {
        op.returnMs = monotonicMs();
        op.outcome = outcome;
      }
      return op;
    };
  }

  /** Runs `call` as one operation and records it; never rejects. */
  async record(client: string, input: I, call: () => Promise<Outcome<O>>): Promise<Op<I, O>> {
    const end = this.begin(client, input);
    try {
      return end(await call());
    } catch (err) {
      return end({ status: 'unknown', code: 'THROWN', message: err instanceof Error ? err.message : String(err) });
    }
  }

  /** The operations that have returned (an operation still running at the end counts as unknown). */
  completed(): Op<I, O>[] {
    return this.ops.map((op) =>
      op.outcome !== undefined
        ? op
        : { ...op, returnMs: Infinity, outcome: { status: 'unknown', code: 'RUNNING', message: 'never returned' } },
    );
  }
}

/** The name of a gRPC status code. */
export const codeName = (code: number): string => grpc.status[code] ?? String(code);

/** Codes after which a write certainly did not happen: the server refused it before acting. */
const DEFINITE: ReadonlySet<number> = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.UNIMPLEMENTED,
]);

/**
 * A grpc-js unary call as an Outcome: `ok` maps the response; `answer` turns an error that is
 * an answer of the operation (a fenced write refused) into a value; `definite` names, on top
 * of the codes every call is refused with before it acts, what else certainly did not take
 * effect. Anything else is unknown.
 */
export function unaryCall<Res, O>(
  client: grpc.Client,
  method: string,
  request: object,
  deadlineMs: number,
  ok: (res: Res) => O,
  errors: { definite?: (err: grpc.ServiceError) => boolean; answer?: (err: grpc.ServiceError) => O | undefined } = {},
): Promise<Outcome<O>> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, Function>)[method];
    if (typeof fn !== 'function') throw new Error(`no method ${method}`);
    fn.call(client, request, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: Res) => {
      if (err === null) return resolve({ status: 'ok', value: ok(res) });
      const answer = errors.answer?.(err);
      if (answer !== undefined) return resolve({ status: 'ok', value: answer });
      const status = DEFINITE.has(err.code) || errors.definite?.(err) ? 'fail' : 'unknown';
      resolve({ status, code: codeName(err.code), message: err.details });
    });
  });
}

/** The server's error class, from the latchkey-error trailer. */
export const errorClass = (err: grpc.ServiceError): string => String(err.metadata?.get('latchkey-error')[0] ?? '');

/**
 * One operation as a JSON line, for histories recorded by other processes (a client on a host
 * of its own, a worker process): bigints travel as {"$bigint": "123"}. The clock is shared,
 * so their times mix with this process's.
 */
export const opToJson = (op: Op<unknown, unknown>): string =>
  JSON.stringify(op, (_, v) => (typeof v === 'bigint' ? { $bigint: v.toString() } : v === Infinity ? null : v));

/** The operations of JSON lines written with opToJson, numbered anew in invoke order. */
export function opsFromJson<I, O>(text: string): Op<I, O>[] {
  const ops = text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(
      (line) =>
        JSON.parse(line, (_, v) =>
          typeof v === 'object' && v !== null && typeof v.$bigint === 'string' ? BigInt(v.$bigint) : v,
        ) as Op<I, O>,
    )
    .sort((a, b) => a.invokeMs - b.invokeMs);
  return ops.map((op, id) => ({ ...op, id, returnMs: op.returnMs ?? Infinity }));
}
