// One Locks/Session stream from raw grpc-js, for tests of the server's session protocol
// (not the SDK's): open or resume, tagged ops sent one per frame or many in one, each
// answered as a promise. A failed op rejects with a grpc-js-like error ({code, details,
// reason}); when the stream ends, ops still unanswered reject with the stream's status.
import * as grpc from '@grpc/grpc-js';
import type { LocksClient } from '../../client/generated/latchkey/v1/Locks.js';
import type { SessionOp } from '../../client/generated/latchkey/v1/SessionOp.js';
import type { SessionOpen } from '../../client/generated/latchkey/v1/SessionOpen.js';
import type { SessionOpened__Output } from '../../client/generated/latchkey/v1/SessionOpened.js';
import type { SessionResponse__Output } from '../../client/generated/latchkey/v1/SessionResponse.js';
import type { SessionResult__Output } from '../../client/generated/latchkey/v1/SessionResult.js';

/** An op as sent: one of acquire, release, describe, keepalive (no tag: the stream picks it). */
export type Op = Omit<SessionOp, 'tag' | 'op'>;

export interface OpError extends Error {
  readonly code: number;
  readonly details: string;
  readonly reason: string;
}

/** How a stream ended, as the client saw it. */
export interface StreamEnd {
  readonly code: grpc.status;
  readonly details: string;
}

const opError = (code: number, details: string, reason = ''): OpError =>
  Object.assign(new Error(details), { code, details, reason });

export class SessionStream {
  readonly call: grpc.ClientDuplexStream<object, SessionResponse__Output>;
  /** Every response frame, in order (tests of framing read it). */
  readonly frames: SessionResponse__Output[] = [];
  /** Tags in the order their results arrived. */
  readonly answered: string[] = [];
  /** Resolves with the stream's final status, OK included. */
  readonly ended: Promise<StreamEnd>;
  readonly #opened: Promise<SessionOpened__Output>;
  readonly #waiting = new Map<string, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #end: StreamEnd | undefined;
  #tag = 0;

  /** Starts the stream and sends `open` (plus `ops` in the same first frame, if given). */
  constructor(
    client: LocksClient,
    open: SessionOpen | null,
    options: grpc.CallOptions = {},
    metadata = new grpc.Metadata(),
  ) {
    this.call = (
      client as unknown as {
        Session(
          metadata: grpc.Metadata,
          options: grpc.CallOptions,
        ): grpc.ClientDuplexStream<object, SessionResponse__Output>;
      }
    ).Session(metadata, options);
    let resolveOpened!: (opened: SessionOpened__Output) => void;
    let rejectOpened!: (err: unknown) => void;
    this.#opened = new Promise((resolve, reject) => {
      resolveOpened = resolve;
      rejectOpened = reject;
    });
    this.#opened.catch(() => {});
    this.call.on('data', (response: SessionResponse__Output) => {
      this.frames.push(response);
      if (response.opened !== null) resolveOpened(response.opened);
      for (const result of response.results) this.#settle(result);
    });
    this.ended = new Promise<StreamEnd>((resolve) => {
      this.call.on('status', (status: grpc.StatusObject) => {
        this.#end = { code: status.code, details: status.details };
        // details: the server's own words; the message says it was the stream that ended.
        const err = Object.assign(opError(status.code, status.details), {
          message: `session stream ended ${grpc.status[status.code]}: ${status.details}`,
        });
        rejectOpened(err);
        for (const waiter of this.#waiting.values()) waiter.reject(err);
        this.#waiting.clear();
        resolve(this.#end);
      });
    });
    // The status event carries the end; 'error' only repeats it.
    this.call.on('error', () => {});
    if (open !== null) this.call.write({ open });
  }

  /** Opens a session and waits for `opened` (rejecting with the stream's status if it ends instead). */
  static async open(
    client: LocksClient,
    open: SessionOpen,
    options?: grpc.CallOptions,
    metadata?: grpc.Metadata,
  ): Promise<SessionStream & { readonly opened: SessionOpened__Output }> {
    const stream = new SessionStream(client, open, options, metadata);
    const opened = await stream.opened();
    return Object.assign(stream, { opened });
  }

  opened(): Promise<SessionOpened__Output> {
    return this.#opened;
  }

  /** The stream's status once it has ended; undefined while it is open. */
  get end(): StreamEnd | undefined {
    return this.#end;
  }

  /** Sends one op in a frame of its own. */
  op<T = unknown>(op: Op): Promise<T> {
    return this.ops<T>([op])[0]!;
  }

  /** Sends every op in one frame; each promise settles with its own result. */
  ops<T = unknown>(ops: readonly Op[]): Promise<T>[] {
    const tagged = ops.map((op) => ({ ...op, tag: String(++this.#tag) }));
    const promises = tagged.map((op) => this.#expect<T>(op.tag));
    this.call.write({ ops: tagged });
    return promises;
  }

  /** Sends a raw frame as it is (tests of bad frames); nothing is expected back for it. */
  writeRaw(request: object): void {
    this.call.write(request);
  }

  /** Expects a result for this tag (for frames sent with writeRaw). */
  expect<T = unknown>(tag: string): Promise<T> {
    return this.#expect<T>(tag);
  }

  /** Ends the session cleanly (a request with `end`, then a half-close). Resolves with the final status. */
  close(): Promise<StreamEnd> {
    if (this.#end === undefined) {
      this.call.write({ end: true });
      this.call.end();
    }
    return this.ended;
  }

  /** Half-closes without `end`: the session is left to its TTL. Resolves with the final status. */
  halfClose(): Promise<StreamEnd> {
    this.call.end();
    return this.ended;
  }

  /** Breaks the stream (a client-side cancel): the server must release nothing. */
  cancel(): Promise<StreamEnd> {
    this.call.cancel();
    return this.ended;
  }

  #expect<T>(tag: string): Promise<T> {
    if (this.#end !== undefined)
      return Promise.reject(opError(this.#end.code, `session stream already ended: ${this.#end.details}`));
    const promise = new Promise<T>((resolve, reject) =>
      this.#waiting.set(tag, { resolve: resolve as (v: unknown) => void, reject }),
    );
    promise.catch(() => {});
    return promise;
  }

  #settle(result: SessionResult__Output): void {
    this.answered.push(result.tag);
    const waiter = this.#waiting.get(result.tag);
    this.#waiting.delete(result.tag);
    if (waiter === undefined) return;
    if (result.result === 'error') {
      const e = result.error!;
      waiter.reject(opError(e.code, e.message, e.reason));
    } else waiter.resolve(result[result.result!]);
  }
}
