// Cache store on memcached through memjs, speaking the binary protocol. memjs builds the
// requests and owns the connections; latchkey sets the header's CAS field itself, because
// memjs exposes no CAS (bytes 16-23 of a binary request/response header carry it).
//
// Keys are spread over the servers by memjs's own hash: server index = |h(key)| mod N, where
// h is Java's String.hashCode over the key's UTF-16 code units. A server that is down gives
// UNAVAILABLE naming it; there is no failover to another server, which would turn an outage
// into silent misses and split-brain values.
import type { Socket } from 'node:net';
import memjs from 'memjs';
import {
  BackendUnavailableError,
  FailedPreconditionError,
  InvalidArgumentError,
  ResourceExhaustedError,
  throwIfAborted,
} from '../errors.js';
import type { CacheStore, Item } from './store.js';

/** The parts of memjs's Server used here (its typings omit them). */
interface MemjsServer {
  readonly host: string;
  readonly port: number;
  /** The connection, once memjs has opened one (undefined before, and after an error). */
  readonly _socket?: Socket;
  onResponse(seq: number, fn: (response: Response) => void): void;
  onError(seq: number, fn: (err: Error) => void): void;
  write(request: Buffer): void;
  close(): void;
}

interface Response {
  readonly header: { readonly status: number; readonly cas: Buffer; readonly opaque: number };
  readonly extras: Buffer;
  readonly val: Buffer;
}

const Op = { get: 0x00, set: 0x01, add: 0x02, delete: 0x04, incr: 0x05, decr: 0x06, touch: 0x1c, gat: 0x1d } as const;
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
  /** host:port of each server, in the order that fixes the key → server mapping. */
  readonly servers: readonly string[];
  /** memcached's item size limit (its -I option); larger items are refused up front. */
  readonly maxItemBytes: number;
  /** How long one request may take before the server counts as unavailable. */
  readonly timeoutMs: number;
}

export class MemcachedStore implements CacheStore {
  readonly kind = 'memcached';
  readonly #client: memjs.Client;
  readonly #servers: readonly MemjsServer[];
  readonly #maxItemBytes: number;
  /** Servers whose socket is corked until the next tick (see #cork). */
  readonly #corked = new Set<MemjsServer>();
  #seq = 0;

  constructor(options: MemcachedStoreOptions) {
    this.#maxItemBytes = options.maxItemBytes;
    const seconds = options.timeoutMs / 1000;
    this.#client = memjs.Client.create(options.servers.join(','), {
      timeout: seconds,
      conntimeout: seconds,
      keepAlive: true,
      // Retries are decided per operation below; memjs's own would repeat an incr.
      retries: 1,
      failover: false,
      logger: { log: () => {} },
    });
    this.#servers = this.#client.servers as unknown as MemjsServer[];
  }

  /** Which server holds a key, as "host:port". */
  serverFor(key: string): string {
    const server = this.#server(key);
    return `${server.host}:${server.port}`;
  }

  async get(key: string, signal: AbortSignal): Promise<Item | undefined> {
    const response = await this.#send(key, Op.get, { signal, idempotent: true });
    if (response.header.status === Status.notFound) return undefined;
    this.#expectOk(key, response);
    return item(response);
  }

  async set(key: string, value: Buffer, flags: number, ttlMs: number, signal: AbortSignal): Promise<bigint> {
    const response = await this.#send(key, Op.set, {
      value,
      extras: storageExtras(flags, ttlMs),
      signal,
      idempotent: true,
    });
    this.#expectOk(key, response);
    return response.header.cas.readBigUInt64BE();
  }

  async cas(key: string, value: Buffer, flags: number, cas: bigint, ttlMs: number, signal: AbortSignal) {
    const response = await this.#send(key, Op.set, { value, extras: storageExtras(flags, ttlMs), cas, signal });
    const { status } = response.header;
    if (status === Status.notFound) return { outcome: 'NOT_FOUND' as const, cas: 0n };
    if (status === Status.exists) return { outcome: 'EXISTS' as const, cas: 0n };
    this.#expectOk(key, response);
    return { outcome: 'STORED' as const, cas: response.header.cas.readBigUInt64BE() };
  }

  async add(key: string, value: Buffer, flags: number, ttlMs: number, signal: AbortSignal) {
    const response = await this.#send(key, Op.add, { value, extras: storageExtras(flags, ttlMs), signal });
    const { status } = response.header;
    if (status === Status.exists || status === Status.notStored) return { outcome: 'EXISTS' as const, cas: 0n };
    this.#expectOk(key, response);
    return { outcome: 'STORED' as const, cas: response.header.cas.readBigUInt64BE() };
  }

  async delete(key: string, cas: bigint, signal: AbortSignal) {
    const response = await this.#send(key, Op.delete, { cas, signal, idempotent: cas === 0n });
    const { status } = response.header;
    if (status === Status.notFound) return 'NOT_FOUND' as const;
    if (status === Status.exists) return 'EXISTS' as const;
    this.#expectOk(key, response);
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
    if (response.header.status === Status.nonNumeric) {
      throw new FailedPreconditionError(
        `key "${key}" holds a value that is not a decimal number below 2^64; incr needs one (reset it with set)`,
      );
    }
    this.#expectOk(key, response);
    return { value: response.val.readBigUInt64BE(), cas: response.header.cas.readBigUInt64BE() };
  }

  async touch(key: string, ttlMs: number, signal: AbortSignal): Promise<Item | undefined> {
    const extras = Buffer.alloc(4);
    extras.writeUInt32BE(expiration(ttlMs));
    // Get-and-touch: one atomic step that also says what was touched (keyspace.ts reads a
    // claim as absent). Like touch, it keeps the item's cas.
    const response = await this.#send(key, Op.gat, { extras, signal, idempotent: true });
    if (response.header.status === Status.notFound) return undefined;
    this.#expectOk(key, response);
    return item(response);
  }

  async close(): Promise<void> {
    this.#client.close();
  }

  #server(key: string): MemjsServer {
    return this.#servers[this.#servers.length > 1 ? memjs.Utils.hashCode(key) % this.#servers.length : 0]!;
  }

  async #send(
    key: string,
    opcode: number,
    request: { value?: Buffer; extras?: Buffer; cas?: bigint; signal: AbortSignal; idempotent?: boolean },
  ): Promise<Response> {
    throwIfAborted(request.signal);
    const value = request.value ?? Buffer.alloc(0);
    const keyBytes = Buffer.byteLength(key);
    if (keyBytes + value.length + ITEM_OVERHEAD_BYTES > this.#maxItemBytes) {
      throw new InvalidArgumentError(
        `value is ${value.length} bytes; memcached items are limited to ${this.#maxItemBytes} bytes including the key and ${ITEM_OVERHEAD_BYTES} bytes of overhead (--memcached-max-item-bytes)`,
      );
    }
    const server = this.#server(key);
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    const buffer = memjs.Utils.makeRequestBuffer(opcode, key, request.extras ?? Buffer.alloc(0), value, seq);
    if (request.cas !== undefined) buffer.writeBigUInt64BE(request.cas, 16);
    // NOTE: only idempotent requests are retried. A request whose answer was lost may
    // have been applied; sending an incr or a cas again could apply it twice.
    let attempts = request.idempotent ? 2 : 1;
    for (;;) {
      try {
        return await new Promise<Response>((resolve, reject) => {
          server.onResponse(seq, resolve);
          server.onError(seq, reject);
          this.#cork(server);
          server.write(buffer);
        });
      } catch (err) {
        if (--attempts > 0 && !request.signal.aborted) continue;
        throw new BackendUnavailableError(
          `memcached ${server.host}:${server.port} is unavailable: ${(err as Error).message}`,
          { cause: err },
        );
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

  #expectOk(key: string, response: Response): void {
    const { status } = response.header;
    if (status === Status.ok) return;
    const server = this.serverFor(key);
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
