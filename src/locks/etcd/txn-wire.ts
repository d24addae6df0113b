// etcd's KV/Txn written straight onto an HTTP/2 stream, for the lock path's own-key writes
// (txn-batch.ts): the put of every acquire and the delete of every release. Every other etcd
// call goes through etcd3 (connection.ts).
//
// NOTE: why not etcd3 here: under it, grpc-js spends about as much CPU on a unary call as
// etcd spends answering it. Measured at one caller on one etcd, a Txn + DeleteRange cycle
// cost 0.85 ms of client CPU through etcd3 (0.82 ms through a bare grpc-js Client, retries
// off) and 0.42 ms written on node:http2 as here, and ran 1.4× as often per second. An
// uncontended lock cycle is two such Txns, most of what it costs the server.
//
// What this keeps of etcd3, so that the two paths behave alike:
// - the encoding: etcd3's own rpc.proto under etcd3's loader options, so a request and an
//   answer are the very objects etcd3 takes and gives (ITxnRequest, ITxnResponse);
// - the errors: a gRPC status becomes the error etcd3 would throw for it (castGrpcError);
//   etcd3's transport failures are the ones it marks recoverable, and so are these;
// - the host policy of connection.ts: each call starts at a random host and tries the next
//   one after a transport failure, one try a host; a host that failed is passed over while
//   another is not (the shared `pauses`), and its connection is replaced, as etcd3 replaces
//   a failed host's channel (calls already on the old one finish there);
// - the bound: each try has opTimeoutMs, and tells etcd so (grpc-timeout).
// NOTE: a Txn whose try failed in transport may have been applied; trying it on the next
// host is what etcd3 does too, and safe for these writes: a put guarded by "my key is absent"
// and a delete of my own key mean the same done twice.
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  castGrpcError,
  ClientClosedError,
  GRPCUnavailableError,
  isRecoverableError,
  type ITxnRequest,
  type ITxnResponse,
} from 'etcd3';
import { grpcClientSpan } from '../../tracing.js';

const TXN_PATH = '/etcdserverpb.KV/Txn';
const TXN = (() => {
  const definition = protoLoader.loadSync(createRequire(import.meta.url).resolve('etcd3/proto/rpc.proto'), {
    // etcd3's options (connection-pool.js), so the objects are etcd3's.
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return (definition['etcdserverpb.KV'] as protoLoader.ServiceDefinition)['Txn']!;
})();
const SPAN_ATTRIBUTES = { 'db.system.name': 'etcd' };
const { HTTP2_HEADER_STATUS, NGHTTP2_CANCEL } = http2.constants;

/** Until when each host is passed over (connection.ts pauseAfterFailure), keyed by endpoint. */
export type Pauses = Map<string, number>;

/**
 * Refuses `host` (as a transport failure) while it is paused, unless every host is: during an
 * election every member can fail at once, and then each is tried.
 */
export function throwIfPassedOver(pauses: Pauses, host: string, hostCount: number, pauseMs: number): void {
  const now = Date.now();
  if (now >= (pauses.get(host) ?? 0)) return;
  const paused = [...pauses.values()].filter((until) => now < until).length;
  if (paused < hostCount) throw new GRPCUnavailableError(`etcd endpoint ${host} failed less than ${pauseMs} ms ago`);
}

export interface TxnWireOptions {
  /** etcd endpoints as given: `host:port` or `http(s)://host:port`. */
  readonly hosts: readonly string[];
  /** Bound on each try, in ms. */
  readonly opTimeoutMs: number;
  /** Shared with etcd3's host policy, so both paths pass over the same failed hosts. */
  readonly pauses: Pauses;
  /** How long a host that failed in transport is passed over, in ms (0: never). */
  readonly pauseMs: number;
  /**
   * Calls one connection carries before the next call opens another (the old one finishes
   * what it carries). Default: STREAMS_PER_CONNECTION; smaller only in tests.
   */
  readonly streamsPerConnection?: number;
}

/**
 * A client's HTTP/2 stream ids are the odd numbers below 2^31, so a connection carries about
 * 2^30 calls: 37 hours of 8,000 Txns/s. A new connection takes over well before that.
 */
const STREAMS_PER_CONNECTION = 2 ** 30 - 2 ** 20;

/** One connection to a host, the calls it has carried, and why it failed (if it did). */
interface Link {
  readonly session: http2.ClientHttp2Session;
  streams: number;
  error?: Error;
}

/**
 * Sends etcd Txns, each on an HTTP/2 stream of one long-lived connection per host.
 *
 * @example
 * const wire = new TxnWire({ hosts: ['127.0.0.1:2379'], opTimeoutMs: 5000, pauses: new Map(), pauseMs: 0 });
 * const txn = await wire.txn({ compare: [], success: [{ request_put: { key, value } }], failure: [] });
 * wire.close();
 */
export class TxnWire {
  readonly #hosts: readonly string[];
  readonly #opTimeoutMs: number;
  /** Every call's request headers (http2 reads them, and takes :authority from the connection). */
  readonly #headers: http2.OutgoingHttpHeaders;
  readonly #pauses: Pauses;
  readonly #pauseMs: number;
  readonly #streamsPerConnection: number;
  readonly #links = new Map<string, Link>();
  #closed = false;

  constructor(options: TxnWireOptions) {
    this.#hosts = options.hosts;
    this.#opTimeoutMs = options.opTimeoutMs;
    this.#headers = {
      ':method': 'POST',
      ':path': TXN_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': grpcTimeout(options.opTimeoutMs),
    };
    this.#pauses = options.pauses;
    this.#pauseMs = options.pauseMs;
    this.#streamsPerConnection = options.streamsPerConnection ?? STREAMS_PER_CONNECTION;
  }

  async txn(request: ITxnRequest): Promise<ITxnResponse> {
    if (this.#closed) throw new ClientClosedError('KV');
    const body = TXN.requestSerialize(request);
    const hosts = this.#hosts.length;
    const first = hosts === 1 ? 0 : Math.floor(Math.random() * hosts);
    for (let attempt = 0; ; attempt++) {
      const host = this.#hosts[(first + attempt) % hosts]!;
      try {
        return TXN.responseDeserialize(await this.#try(host, body)) as ITxnResponse;
      } catch (err) {
        if (attempt + 1 >= hosts || !isRecoverableError(err as Error)) throw err;
      }
    }
  }

  /** Ends every connection; calls still open fail, later ones throw ClientClosedError. */
  close(): void {
    this.#closed = true;
    for (const link of this.#links.values()) link.session.destroy();
    this.#links.clear();
  }

  /** One try on one host: the answer's message bytes, or etcd3's error for what went wrong. */
  async #try(host: string, body: Buffer): Promise<Buffer> {
    throwIfPassedOver(this.#pauses, host, this.#hosts.length, this.#pauseMs);
    const span = grpcClientSpan(TXN_PATH, SPAN_ATTRIBUTES);
    try {
      const answer = await this.#call(host, body);
      span.end(grpc.status.OK, '');
      this.#pauses.delete(host);
      return answer;
    } catch (err) {
      span.end((err as { code?: grpc.status }).code ?? grpc.status.UNKNOWN, (err as Error).message);
      const failure = castGrpcError(err as Error);
      if (isRecoverableError(failure)) this.#failed(host);
      throw failure;
    }
  }

  /** A transport failure on `host`: pass it over for a while, and connect anew next time. */
  #failed(host: string): void {
    if (this.#pauseMs > 0) this.#pauses.set(host, Date.now() + this.#pauseMs);
    // Calls still waiting for it to connect fail now, and try the next host.
    this.#retire(host, true);
  }

  /**
   * New calls to `host` go on a new connection; the calls open on this one finish there, and
   * so (unless `failed`) do those waiting for it to connect.
   */
  #retire(host: string, failed: boolean): void {
    const link = this.#links.get(host);
    if (link === undefined) return;
    this.#links.delete(host);
    const { session } = link;
    // NOTE: close() on a connection still connecting fails the calls queued for it ("New
    // streams cannot be created after receiving a GOAWAY"); after 'connect' they are open
    // streams, which close() lets finish.
    if (session.connecting && !failed) session.once('connect', () => session.close());
    else session.close();
  }

  /** The connection the next call to `host` goes on. */
  #link(host: string): Link {
    const current = this.#links.get(host);
    if (current !== undefined && !current.session.closed && !current.session.destroyed) {
      if (++current.streams <= this.#streamsPerConnection) return current;
      this.#retire(host, false);
    }
    const session = http2.connect(/^https?:\/\//.test(host) ? host : `http://${host}`);
    const link: Link = { session, streams: 1 };
    // A connection's failure reaches its streams, which report it (with this error, when
    // there is one); the server stays up.
    session.on('error', (err) => (link.error = err));
    const forget = () => this.#links.get(host) === link && this.#links.delete(host);
    session.on('goaway', forget);
    session.on('close', forget);
    // Idle, it keeps no process alive (etcd3's channels do not either).
    session.unref();
    this.#links.set(host, link);
    return link;
  }

  /** One gRPC unary call; rejects with a plain Error carrying the status code, as grpc-js does. */
  #call(host: string, body: Buffer): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      const link = this.#link(host);
      try {
        stream = link.session.request(this.#headers);
      } catch (err) {
        reject(statusError(grpc.status.UNAVAILABLE, `etcd at ${host}: ${(err as Error).message}`));
        return;
      }
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message: string | undefined;
      let httpStatus = 0;
      let done = false;
      const finish = (err: Error | undefined, answer?: Buffer) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err !== undefined) reject(err);
        else resolve(answer!);
      };
      const timer = setTimeout(() => {
        stream.close(NGHTTP2_CANCEL);
        finish(statusError(grpc.status.DEADLINE_EXCEEDED, `Deadline exceeded after ${this.#opTimeoutMs} ms`));
      }, this.#opTimeoutMs);
      const statusOf = (headers: http2.IncomingHttpHeaders) => {
        if (headers['grpc-status'] === undefined) return;
        status = String(headers['grpc-status']);
        message = headers['grpc-message'] === undefined ? '' : decodeMessage(String(headers['grpc-message']));
      };
      stream.on('response', (headers) => {
        httpStatus = Number(headers[HTTP2_HEADER_STATUS]);
        // A status in the headers is a trailers-only answer (an error).
        statusOf(headers);
      });
      stream.on('trailers', statusOf);
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      let streamError: Error | undefined;
      stream.on('error', (err) => (streamError = err));
      stream.on('close', () => {
        if (status === undefined) {
          // No status: the connection or the stream failed, or etcd answered without gRPC.
          const failure = link.error ?? streamError;
          const why =
            httpStatus !== 0 && httpStatus !== 200
              ? `HTTP status ${httpStatus} and no gRPC status`
              : (failure?.message ?? `stream closed (code ${stream.rstCode}) without a gRPC status`);
          return finish(statusError(grpc.status.UNAVAILABLE, `etcd at ${host}: ${why}`));
        }
        if (status !== '0') return finish(statusError(Number(status), message ?? ''));
        const frame = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        // One uncompressed message: flag 0, a 4-byte length, the bytes (we ask for no compression).
        if (frame.length < 5 || frame[0] !== 0 || frame.readUInt32BE(1) !== frame.length - 5)
          return finish(statusError(grpc.status.INTERNAL, `etcd at ${host}: not one uncompressed gRPC message`));
        finish(undefined, frame.subarray(5));
      });
      const framed = Buffer.allocUnsafe(5 + body.length);
      framed[0] = 0;
      framed.writeUInt32BE(body.length, 1);
      body.copy(framed, 5);
      stream.end(framed);
    });
  }
}

/** The error grpc-js rejects a call with, which castGrpcError reads. */
function statusError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${grpc.status[code] ?? 'UNKNOWN'}: ${details}`), { code, details });
}

/** A grpc-timeout header value: at most 8 digits and a unit. */
function grpcTimeout(ms: number): string {
  return ms <= 99_999_999 ? `${Math.ceil(ms)}m` : `${Math.ceil(ms / 1000)}S`;
}

/** grpc-message is percent-encoded (gRPC over HTTP/2). */
function decodeMessage(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
