// Cache store on memcached through memjs, speaking the binary protocol. memjs builds the
// requests and owns the connections; latchkey sets the header's CAS field itself, because
// memjs exposes no CAS (bytes 16-23 of a binary request/response header carry it).
//
// Keys are placed on the servers by libmemcached's ketama continuum (ketama.ts), so a
// libmemcached client with its ketama behaviour finds them on the same servers, and adding a
// server moves only the keys the new one takes over. An item given a group key (a key's
// tombstone: store.ts) goes to the group key's server, as libmemcached's *_by_key calls place
// it. A server that is down gives UNAVAILABLE naming it; there is no failover to another
// server, which would turn an outage into silent misses and split-brain values.
//
// NOTE: a request is sent at most once unless it provably never left this process (see
// #send). memcached executes whatever reached its socket, even after latchkey gave up on the
// connection, so resending a Set, Touch or Delete whose answer was lost can apply it twice,
// and late, over a newer write. "Provably" includes the socket it was queued for being
// destroyed: memjs leaves a connection that timed out connecting half-open, and it can still
// connect and send.
import type { Socket } from 'node:net';
import memjs from 'memjs';
import { BackendUnavailableError, InvalidArgumentError, ResourceExhaustedError, throwIfAborted } from '../errors.js';
import { clientSpan } from '../tracing.js';
import { Ketama } from './ketama.js';
import { type CacheStore, type Item, notANumber } from './store.js';
import { RequestNotSentError } from '../errors.js';

/** The parts of memjs's Server used here (its typings omit them). */
interface MemjsServer {
  readonly host: string;
  readonly port: number;
  /** The connection, once memjs has opened one (undefined before, and after an error). */
  readonly _socket?: Socket;
  /** Whether _socket has connected; memjs queues writes until it has. */
  readonly connected: boolean;
  onResponse(seq: number, fn: (response: Response) => void): void;
  onError(seq: number, fn: (err: Error) => void): void;
  /** The requests waiting for an answer (or for the connection), by seq. */
  readonly errorCallbacks: Readonly<Record<number, unknown>>;
  /** Runs fn once the connection being opened is up, after the writes queued for it. */
  onConnect(fn: () => void): void;
  write(request: Buffer): void;
  /** Destroys the connection and fails every request waiting on it with err. */
  error(err: Error): void;
  close(): void;
}

/** What the stall watchdog (#checkStalls) last saw of a server's connection. */
interface Progress {
  socket: Socket | undefined;
  bytesRead: number;
  /** Since when requests have waited with nothing read; undefined when none wait. */
  quietSinceMs: number | undefined;
}

interface Response {
  readonly header: { readonly status: number; readonly cas: Buffer; readonly opaque: number };
  readonly extras: Buffer;
  readonly val: Buffer;
}

/** Opcodes used, by the name errors give them. touch is memcached's get-and-touch (GAT). */
const Op = { get: 0x00, set: 0x01, add: 0x02, delete: 0x04, incr: 0x05, decr: 0x06, touch: 0x1d } as const;
const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([name, code]) => [code, name]));
const Status = {
  ok: 0x00,
  notFound: 0x01,
  exists: 0x02,
  tooLarge: 0x03,
  invalid: 0x04,
  notStored: 0x05,
  nonNumeric: 0x06,
  outOfMemory: 0x82,
} as const;

/** memcached reads an expiry above 30 days as an absolute Unix time. */
const RELATIVE_LIMIT_S = 30 * 86_400;
/** Per-item bytes memcached needs beside key and value (item header, CAS, suffix). */
const ITEM_OVERHEAD_BYTES = 64;

export interface MemcachedStoreOptions {
  /**
   * host:port of each server. Keys are placed by ketama over these names as written (the
   * order does not matter, the spelling does: name them as the pool's other clients do).
   */
  readonly servers: readonly string[];
  /**
   * memcached's item size limit in bytes (set it to the servers' -I option, default 1 MiB);
   * an item over it (key, value and about 64 bytes of memcached's own) is refused up front.
   */
  readonly maxItemBytes: number;
  /**
   * How long, in ms, a server may leave requests unanswered (nothing read while they wait) before
   * it counts as unavailable: its connection is then closed and every request waiting on it
   * fails, writes without a resend. Checked every timeoutMs/4, so a stall is noticed within
   * 1.5 x timeoutMs. Also the connect timeout.
   */
  readonly timeoutMs: number;
}

export class MemcachedStore implements CacheStore {
  readonly kind = 'memcached';
  readonly #client: memjs.Client;
  readonly #servers: readonly MemjsServer[];
  readonly #ring: Ketama;
  readonly #progress = new Map<MemjsServer, Progress>();
  readonly #watchdog: NodeJS.Timeout;
  readonly #maxItemBytes: number;
  readonly #timeoutMs: number;
  /** Servers whose socket is corked until the next tick (see #cork). */
  readonly #corked = new Set<MemjsServer>();
  #seq = 0;

  constructor(options: MemcachedStoreOptions) {
    this.#maxItemBytes = options.maxItemBytes;
    this.#timeoutMs = options.timeoutMs;
    const seconds = options.timeoutMs / 1000;
    this.#client = memjs.Client.create(options.servers.join(','), {
      timeout: seconds,
      conntimeout: seconds,
      keepAlive: true,
      // Retries are decided below (#send); memjs's own would resend written requests.
      retries: 1,
      failover: false,
      logger: { log: () => {} },
    });
    this.#servers = this.#client.servers as unknown as MemjsServer[];
    this.#ring = new Ketama(this.#servers);
    for (const server of this.#servers)
      this.#progress.set(server, { socket: undefined, bytesRead: 0, quietSinceMs: undefined });
    this.#watchdog = setInterval(() => this.#checkStalls(), Math.max(10, options.timeoutMs / 4)).unref();
  }

  /**
   * Which server holds a key, as "host:port": the one ketama places it on, or, given a group
   * key (see store.ts), the group key's.
   */
  serverFor(key: string, groupKey?: string): string {
    const server = this.#server(groupKey ?? key);
    return `${server.host}:${server.port}`;
  }

  async get(key: string, signal: AbortSignal, groupKey?: string): Promise<Item | undefined> {
    const response = await this.#send(key, Op.get, { signal, readOnly: true, groupKey });
    if (response.header.status === Status.notFound) return undefined;
    this.#expectOk(key, response, groupKey);
    return item(response);
  }

  async set(key: string, value: Buffer, flags: number, ttlMs: number, signal: AbortSignal): Promise<bigint> {
    const response = await this.#send(key, Op.set, {
      value,
      extras: storageExtras(flags, ttlMs),
      signal,
    });
    this.#expectOk(key, response);
    return response.header.cas.readBigUInt64BE();
  }

  async cas(
    key: string,
    value: Buffer,
    flags: number,
    cas: bigint,
    ttlMs: number,
    signal: AbortSignal,
    groupKey?: string,
  ) {
    const extras = storageExtras(flags, ttlMs);
    const response = await this.#send(key, Op.set, { value, extras, cas, signal, groupKey });
    const { status } = response.header;
    if (status === Status.notFound) return { outcome: 'NOT_FOUND' as const, cas: 0n };
    if (status === Status.exists) return { outcome: 'EXISTS' as const, cas: 0n };
    this.#expectOk(key, response, groupKey);
    return { outcome: 'STORED' as const, cas: response.header.cas.readBigUInt64BE() };
  }

  async add(key: string, value: Buffer, flags: number, ttlMs: number, signal: AbortSignal, groupKey?: string) {
    const extras = storageExtras(flags, ttlMs);
    const response = await this.#send(key, Op.add, { value, extras, signal, groupKey });
    const { status } = response.header;
    if (status === Status.exists || status === Status.notStored) return { outcome: 'EXISTS' as const, cas: 0n };
    this.#expectOk(key, response, groupKey);
    return { outcome: 'STORED' as const, cas: response.header.cas.readBigUInt64BE() };
  }

  async delete(key: string, cas: bigint, signal: AbortSignal, groupKey?: string) {
    const response = await this.#send(key, Op.delete, { cas, signal, groupKey });
    const { status } = response.header;
    if (status === Status.notFound) return 'NOT_FOUND' as const;
    if (status === Status.exists) return 'EXISTS' as const;
    this.#expectOk(key, response, groupKey);
    return 'DELETED' as const;
  }

  async incr(key: string, delta: bigint, initial: bigint, ttlMs: number, signal: AbortSignal) {
    // Binary incr/decr extras: amount (8), initial (8), expiration (4). memjs writes only the
    // low 32 bits of each, so they are built here in full.
    const extras = Buffer.alloc(20);
    extras.writeBigUInt64BE(delta < 0n ? -delta : delta, 0);
    extras.writeBigUInt64BE(initial, 8);
    extras.writeUInt32BE(expiration(ttlMs), 16);
    const response = await this.#send(key, delta < 0n ? Op.decr : Op.incr, { extras, signal });
    if (response.header.status === Status.nonNumeric) throw notANumber(key);
    this.#expectOk(key, response);
    return { value: response.val.readBigUInt64BE(), cas: response.header.cas.readBigUInt64BE() };
  }

  async touch(key: string, ttlMs: number, signal: AbortSignal): Promise<Item | undefined> {
    const extras = Buffer.alloc(4);
    extras.writeUInt32BE(expiration(ttlMs));
    // Get-and-touch: one atomic step that also says what was touched (cache.ts reads a claim
    // or a tombstone as absent). Like touch, it keeps the item's cas. It changes the expiry,
    // so it is a write: not resent once possibly written (#send).
    const response = await this.#send(key, Op.touch, { extras, signal });
    if (response.header.status === Status.notFound) return undefined;
    this.#expectOk(key, response);
    return item(response);
  }

  async close(): Promise<void> {
    clearInterval(this.#watchdog);
    this.#client.close();
  }

  #server(key: string): MemjsServer {
    return this.#servers[this.#ring.serverFor(key)]!;
  }

  /**
   * Sends one request and waits for its answer.
   *
   * NOTE: a request that memjs may have written to a socket is never sent again, except a
   * read (readOnly). Its answer can be lost after memcached received it: memcached stalls
   * past the timeout, memjs fails every request on that connection, and memcached executes
   * them when it resumes, possibly after a resend on a new connection was answered. Only a
   * request still queued for a connection that never came up (refused, timed out
   * connecting, or failed by another request's error first) is provably unsent and retried.
   */
  async #send(
    key: string,
    opcode: number,
    request: {
      value?: Buffer;
      extras?: Buffer;
      cas?: bigint;
      signal: AbortSignal;
      readOnly?: boolean;
      groupKey?: string | undefined;
    },
  ): Promise<Response> {
    throwIfAborted(request.signal);
    const value = request.value ?? Buffer.alloc(0);
    const keyBytes = Buffer.byteLength(key);
    if (keyBytes + value.length + ITEM_OVERHEAD_BYTES > this.#maxItemBytes) {
      throw new InvalidArgumentError(
        `value is ${value.length} bytes; memcached items are limited to ${this.#maxItemBytes} bytes including the key and ${ITEM_OVERHEAD_BYTES} bytes of overhead (--memcached-max-item-bytes)`,
      );
    }
    const server = this.#server(request.groupKey ?? key);
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    const buffer = memjs.Utils.makeRequestBuffer(opcode, key, request.extras ?? Buffer.alloc(0), value, seq);
    if (request.cas !== undefined) buffer.writeBigUInt64BE(request.cas, 16);
    const address = `${server.host}:${server.port}`;
    const op = request.cas !== undefined && opcode === Op.set ? 'cas' : OP_NAMES.get(opcode)!;
    // One span per request, however many attempts it takes (an unsent one is sent again).
    const span = clientSpan(`memcached ${op}`, () => ({
      'db.system.name': 'memcached',
      'db.operation.name': op,
      'server.address': server.host,
      'server.port': server.port,
    }));
    for (let attempt = 1; ; attempt++) {
      // NOTE: on a connected socket memjs writes at once. Otherwise it queues the write
      // until the connection is up, then runs the queued writes and after them the
      // onConnect callbacks; an error before then drops both. So `written` is true once
      // memjs may have handed the request to a socket.
      let written = server.connected && server._socket !== undefined;
      const response = new Promise<Response>((resolve, reject) => {
        server.onResponse(seq, resolve);
        server.onError(seq, reject);
      });
      this.#cork(server);
      server.write(buffer);
      // The socket the request is on, or queued for (memjs opens one on a write if needed).
      const carrier = server._socket;
      if (!written) server.onConnect(() => (written = true));
      try {
        const answer = await response;
        span.end(undefined, () => ({
          'db.response.status_code': `0x${answer.header.status.toString(16).padStart(2, '0')}`,
          ...(attempt > 1 ? { 'latchkey.memcached.attempts': attempt } : {}),
        }));
        return answer;
      } catch (err) {
        // NOTE: a request is provably unsent only once the socket it was queued for is gone.
        // memjs's connect timeout end()s a connecting socket without destroying it: should
        // its SYN get through later, memjs still writes the request it was opened for (to
        // whichever socket is current then), and a resend would be applied twice. And a
        // socket memjs timed out waiting for answers is only end()ed too: its late answers
        // would still be parsed, in the buffer a newer socket's answers go to. Every request
        // of the server has failed with this one, so its sockets carry nothing we still want.
        // NOTE: memjs's 'close' handler (its only one on the socket) acts on the server's
        // *current* socket: it cancels that socket's connect timeout and forgets it. Left on
        // this one, its close would come a tick later, after the retry below opened a new
        // socket, and leave the retry waiting on a connection with no timer, for ever
        // (test/cache/memcached-connect.test.ts).
        carrier?.removeAllListeners('close');
        carrier?.destroy();
        if (attempt < 2 && (!written || request.readOnly) && !request.signal.aborted) continue;
        const reason = (err as Error).message;
        const op = OP_NAMES.get(opcode);
        const unavailable = !written
          ? RequestNotSentError.of(`memcached ${address}`, reason, `the ${op} of key "${key}"`, { cause: err })
          : new BackendUnavailableError(
              request.readOnly
                ? `memcached ${address} is unavailable: ${reason}`
                : `memcached ${address} did not answer the ${op} of key "${key}" (${reason}); the write may or may not have been applied: read the key before retrying`,
              { cause: err },
            );
        span.end(unavailable);
        throw unavailable;
      }
    }
  }

  /**
   * The stall watchdog, every timeoutMs/4. memjs's own timeout measures socket idleness,
   * and writes count as activity, so a server that stalled under a steady load was never
   * timed out. Here a server whose connection has read nothing for timeoutMs while
   * requests wait on it counts as stalled: the connection is failed, and memjs fails every
   * request on it (memcached answers a connection's requests in order, so all of them were
   * stuck behind the first). Nothing is counted per request.
   */
  #checkStalls(): void {
    const now = performance.now();
    for (const [server, seen] of this.#progress) {
      const socket = server._socket;
      let waiting = false;
      for (const _ in server.errorCallbacks) {
        waiting = true;
        break;
      }
      if (socket === undefined || !waiting) {
        seen.quietSinceMs = undefined;
      } else if (socket !== seen.socket || socket.bytesRead !== seen.bytesRead || seen.quietSinceMs === undefined) {
        seen.socket = socket;
        seen.bytesRead = socket.bytesRead;
        seen.quietSinceMs = now;
      } else if (now - seen.quietSinceMs >= this.#timeoutMs) {
        seen.quietSinceMs = undefined;
        server.error(new Error(`no answer for ${this.#timeoutMs} ms (--memcached-timeout-ms)`));
      }
    }
  }

  /**
   * memjs writes each request to the socket at once: a syscall per operation, which was
   * 40% of the server's CPU under a pipelined load. Corked until the next tick, the
   * requests made in one turn (a Pipeline frame's operations, a GetMany) leave in one
   * writev. Nothing waits longer than the current turn, and memjs's per-request timeouts
   * are unaffected (they are kept per write call, not per syscall). A server that has no
   * connection yet is left alone: memjs queues those writes until it connects.
   */
  #cork(server: MemjsServer): void {
    const socket = server._socket;
    if (socket === undefined || this.#corked.has(server)) return;
    socket.cork();
    this.#corked.add(server);
    process.nextTick(() => {
      this.#corked.delete(server);
      socket.uncork();
    });
  }

  #expectOk(key: string, response: Response, groupKey?: string): void {
    const { status } = response.header;
    if (status === Status.ok) return;
    const server = this.serverFor(key, groupKey);
    const text = response.val.toString() || `status 0x${status.toString(16)}`;
    if (status === Status.tooLarge)
      throw new InvalidArgumentError(
        `memcached ${server} refused the item as too large (${text}); lower the value size or raise memcached's -I and --memcached-max-item-bytes`,
      );
    if (status === Status.outOfMemory)
      throw new ResourceExhaustedError(`memcached ${server} is out of memory (${text})`);
    throw new BackendUnavailableError(`memcached ${server} answered an unexpected status for key "${key}": ${text}`);
  }
}

/**
 * A get's (or get-and-touch's) item. NOTE: memcached's decr writes a shorter number over the
 * old one in place, padded with spaces ("100" decremented by 10 reads "90 "); such a value is
 * read as the number, as every other store has it. A value of digits then spaces no longer
 * than 20 bytes (the longest number) is taken for one.
 */
function item(response: Response): Item {
  const flags = response.extras.length >= 4 ? response.extras.readUInt32BE(0) : 0;
  let value = Buffer.from(response.val);
  if (value.length <= 20 && PADDED_NUMBER.test(value.toString('latin1')))
    value = value.subarray(0, value.indexOf(0x20));
  return { value, flags, cas: response.header.cas.readBigUInt64BE() };
}

const PADDED_NUMBER = /^\d+ +$/;

/** memcached's expiration field for a TTL in ms: seconds rounded up, absolute past 30 days. */
export function expiration(ttlMs: number, nowMs = Date.now()): number {
  if (ttlMs <= 0) return 0;
  const seconds = Math.ceil(ttlMs / 1000);
  return seconds <= RELATIVE_LIMIT_S ? seconds : Math.ceil((nowMs + ttlMs) / 1000);
}

/** Set/add extras: flags (see fencing.ts and the README's flags convention) and expiration. */
function storageExtras(flags: number, ttlMs: number): Buffer {
  const extras = Buffer.alloc(8);
  extras.writeUInt32BE(flags >>> 0, 0);
  extras.writeUInt32BE(expiration(ttlMs), 4);
  return extras;
}
