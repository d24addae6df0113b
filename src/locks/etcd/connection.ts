// The etcd backend's edge: one etcd3 client with latchkey's fault policy, every etcd call run
// through `call` (which translates etcd3's errors into ours), the lease calls the session and
// Refresh share, and the backend's time. Only the files of src/locks/etcd/ import etcd3; they
// reach etcd only through this connection. The lock path's own-key Txns (`write`) do not go
// through etcd3 but straight onto HTTP/2 (txn-wire.ts), under the same host policy and with
// the same errors.
//
// NOTE on time: the clock given (src/clock.ts) runs every timer of the backend and every
// expiry it estimates or reports (wait_ms, keepalive cadence, lease expiry, backoffs, event
// times). gRPC deadlines stay on real time, as gRPC measures them, and so do the host pauses
// below, which pace transport failures against those deadlines.
import { setMaxListeners } from 'node:events';
import {
  castGrpcError,
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCInvalidArgumentError,
  GRPCUnavailableError,
  type IOptions,
  isRecoverableError,
  type ITxnResponse,
} from 'etcd3';
import type { Clock } from '../../clock.js';
import {
  BackendUnavailableError,
  CancelledError,
  LatchkeyError,
  LeaseExpiredError,
  ShuttingDownError,
} from '../../errors.js';
import { grpcClientSpans } from '../../tracing.js';
import { type TxnMember, TxnBatcher } from './txn-batch.js';
import { type Pauses, throwIfPassedOver, TxnWire } from './txn-wire.js';

/** Backoff between retries while etcd is unreachable (a wait's re-checks, keepalives, Watch). */
export const RETRY_MS = 250;
/** With several endpoints, how long one that failed is passed over (see pauseAfterFailure). */
const HOST_PAUSE_MS = 1_000;
/**
 * Each etcd request a span (tracing.ts), a child of the operation it serves: every unary
 * call, and the one-answer keepalive streams. NOTE: the long-lived streams (Watch, etcd3's
 * own keepalive) are not traced: they outlive the call that opened them and serve others.
 */
const ETCD_SPANS = [grpcClientSpans({ 'db.system.name': 'etcd' })];

export interface EtcdConnectionOptions {
  /** etcd client endpoints, `host:port` or `http(s)://host:port`: a list or a comma-separated string. */
  readonly endpoints: string | readonly string[];
  /** Bound on each etcd request, in ms (see EtcdLockBackendOptions.opTimeoutMs). */
  readonly opTimeoutMs: number;
  readonly clock: Clock;
}

/** One keepalive round trip: the TTL etcd restarted (0: the lease is gone), and when. */
export interface KeepAliveAnswer {
  readonly ttlS: number;
  /** When the request that etcd answered was sent: etcd restarted the TTL no earlier. */
  readonly sentAtMs: number;
  /** When the answer arrived. */
  readonly answeredAtMs: number;
}

export class EtcdConnection {
  readonly client: Etcd3;
  /** The endpoints, comma-separated, as messages name them. */
  readonly endpoints: string;
  readonly hostCount: number;
  readonly opTimeoutMs: number;
  readonly clock: Clock;
  /** Stops every wait and Watch; close() aborts it with ShuttingDownError. */
  readonly #closing = new AbortController();
  /** The lock path's own-key writes, one Txn per turn where they allow (txn-batch.ts). */
  readonly #writes: TxnBatcher;
  /** What sends those Txns, on HTTP/2 without etcd3 (txn-wire.ts says why). */
  readonly #wire: TxnWire;

  constructor(options: EtcdConnectionOptions) {
    const hosts = (typeof options.endpoints === 'string' ? options.endpoints.split(',') : [...options.endpoints])
      .map((h) => h.trim())
      .filter((h) => h !== '');
    if (hosts.length === 0) throw new TypeError('etcd lock backend: at least one endpoint (host:port) is required');
    this.endpoints = hosts.join(',');
    this.hostCount = hosts.length;
    this.opTimeoutMs = options.opTimeoutMs;
    this.clock = options.clock;
    // Every waiting acquire listens for close(); hundreds of waiters are normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    const opTimeoutMs = this.opTimeoutMs;
    const pauses: Pauses = new Map();
    const pauseMs = hosts.length > 1 ? HOST_PAUSE_MS : 0;
    this.client = new Etcd3({
      hosts,
      // Unary calls get a deadline; streams (watch, keepalive) are bounded where they are used.
      defaultCallOptions: (context) =>
        context.isStream ? {} : { deadline: Date.now() + opTimeoutMs, interceptors: ETCD_SPANS },
      faultHandling: {
        host: (host) => pauseAfterFailure(host, pauseMs, pauses, hosts.length),
        global: tryHosts(hosts.length),
      },
      grpcOptions: {
        // grpc-js backs off reconnects up to 120 s; cap it so a returning etcd is used promptly.
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1_000,
      },
    });
    // etcd checks a Txn's leases and arguments before applying any of it.
    const refusedUnapplied = (err: unknown) =>
      err instanceof EtcdLeaseInvalidError || err instanceof GRPCInvalidArgumentError;
    this.#wire = new TxnWire({ hosts, opTimeoutMs, pauses, pauseMs });
    this.#writes = new TxnBatcher((request) => this.#wire.txn(request), refusedUnapplied);
  }

  /** Aborted (with ShuttingDownError) once close() began. */
  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  throwIfClosed(): void {
    if (this.#closing.signal.aborted) throw new ShuttingDownError();
  }

  /** Stops every wait and Watch at once; the client stays open for their clean-up until close(). */
  beginClose(): void {
    if (!this.#closing.signal.aborted) this.#closing.abort(new ShuttingDownError());
  }

  close(): void {
    this.beginClose();
    this.#wire.close();
    this.client.close();
  }

  /** Runs one etcd call, translating its errors; a signal, if given, abandons the wait for it. */
  async call<T>(what: string, signal: AbortSignal | undefined, call: (client: Etcd3) => Promise<T>): Promise<T> {
    const result = (async () => {
      try {
        return await call(this.client);
      } catch (err) {
        throw this.#translate(err, what);
      }
    })();
    return signal === undefined ? result : raceStop(result, signal);
  }

  /**
   * One Txn that puts or deletes own keys, sent together with the others of this turn
   * (txn-batch.ts); errors translated as by call().
   */
  write(what: string, signal: AbortSignal | undefined, member: TxnMember): Promise<ITxnResponse> {
    return this.call(what, signal, () => this.#writes.submit(member));
  }

  /**
   * One LeaseKeepAlive round trip: restarts the lease's TTL; TTL 0 = the lease is gone.
   * etcd3 puts a stream on a random host and does not retry it, so a transport failure is
   * retried here, once per host (idempotent: it only restarts the TTL). Each attempt is
   * bounded by attemptTimeoutMs (default opTimeoutMs).
   */
  async keepAliveOnce(
    leaseDec: string,
    options: { signal?: AbortSignal; attemptTimeoutMs?: number } = {},
  ): Promise<KeepAliveAnswer> {
    const { signal, attemptTimeoutMs = this.opTimeoutMs } = options;
    for (let attempt = 1; ; attempt++) {
      const sentAtMs = this.clock.now();
      try {
        const ttlS = await this.call('keep the lease alive', signal, async (client) => {
          const stream = await client.leaseClient.leaseKeepAlive({
            deadline: Date.now() + attemptTimeoutMs,
            interceptors: ETCD_SPANS,
          });
          return new Promise<number>((resolve, reject) => {
            stream.on('data', (res) => {
              resolve(Number(res.TTL));
              // Half-close: etcd then ends the stream with OK.
              stream.end();
            });
            stream.on('error', (err) => reject(castGrpcError(err)));
            stream.on('end', () =>
              reject(new GRPCUnavailableError('etcd closed the keepalive stream without answering')),
            );
            stream.write({ ID: leaseDec });
          });
        });
        return { ttlS, sentAtMs, answeredAtMs: this.clock.now() };
      } catch (err) {
        if (attempt >= this.hostCount || !(err instanceof BackendUnavailableError) || signal?.aborted) throw err;
      }
    }
  }

  /**
   * LeaseTimeToLive; a lease etcd no longer knows reads as TTL -1 (etcd's answer for it).
   * With `keys`, the answer lists the keys attached to the lease too (else none).
   */
  async timeToLive(
    what: string,
    leaseDec: string,
    signal?: AbortSignal,
    keys = false,
  ): Promise<{ TTL: string; grantedTTL: string; keys: readonly Buffer[] }> {
    return this.call(what, signal, (client) => client.leaseClient.leaseTimeToLive({ ID: leaseDec, keys })).then(
      (info) => ({ TTL: info.TTL, grantedTTL: info.grantedTTL, keys: info.keys ?? [] }),
      (err: unknown) => {
        if (err instanceof LeaseExpiredError) return { TTL: '-1', grantedTTL: '0', keys: [] };
        throw err;
      },
    );
  }

  /** LeaseRevoke: etcd deletes every key on the lease; a lease already gone is no failure. */
  async revoke(leaseDec: string): Promise<void> {
    try {
      await this.call('revoke the lease', undefined, (client) => client.leaseClient.leaseRevoke({ ID: leaseDec }));
    } catch (err) {
      if (!(err instanceof LeaseExpiredError)) throw err;
    }
  }

  /** Resolves after ms on the backend's clock, or at once when signal aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const timer = this.clock.schedule(ms, done);
      signal.addEventListener('abort', done, { once: true });
      function done() {
        timer.cancel();
        signal.removeEventListener('abort', done);
        resolve();
      }
    });
  }

  /** etcd3's errors → ours. Anything unrecognised is rethrown as is (INTERNAL, and logged). */
  #translate(err: unknown, what: string): unknown {
    if (err instanceof LatchkeyError) return err;
    if (err instanceof ClientClosedError)
      return new ShuttingDownError(`server is shutting down (its etcd client is closed); retry on another server`, {
        cause: err,
      });
    if (err instanceof EtcdLeaseInvalidError)
      return new LeaseExpiredError(`etcd lease not found (${what})`, { cause: err });
    // Transport failures (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, "no leader", ...): etcd3
    // marks exactly these recoverable.
    if (isTransportFailure(err)) {
      return new BackendUnavailableError(
        `etcd at ${this.endpoints} is unavailable (${what}): ${(err as Error).message}; retry when it is back`,
        { cause: err },
      );
    }
    return err;
  }
}

/**
 * Resolves or rejects as `promise` does, or rejects when signal aborts: with its reason if
 * that is one of our errors, else CancelledError. The promise itself runs on.
 */
export async function raceStop<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => {});
  const reason = () => (signal.reason instanceof LatchkeyError ? signal.reason : new CancelledError('call cancelled'));
  if (signal.aborted) throw reason();
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(reason());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

// ---- fault policy ---------------------------------------------------------------------------
// etcd3's fault handling takes cockatiel policies; these two are written by hand because
// cockatiel is etcd3's dependency, not ours (etcd3 only ever calls execute()).

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type PolicyFn<T> = (context: { signal: AbortSignal }) => PromiseLike<T> | T;
const noEvent = () => ({ dispose() {} });
/**
 * What a policy's fn gets when etcd3 passes no signal (it never does): one that never
 * aborts. NOTE: not a new AbortController per call: an AbortSignal costs microseconds to
 * make, two per etcd call with both policies.
 */
const NEVER_ABORTED = new AbortController().signal;
const isTransportFailure = (err: unknown) => err instanceof Error && isRecoverableError(err);

/**
 * The global policy: a call that failed in transport is tried on the next host (etcd3 hands
 * each attempt the next host of one shuffled cycle), up to `attempts` hosts in all.
 */
function tryHosts(attempts: number): Policy {
  return {
    onSuccess: noEvent,
    onFailure: noEvent,
    async execute<T>(fn: PolicyFn<T>, signal = NEVER_ABORTED): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn({ signal });
        } catch (err) {
          if (attempt >= attempts || !isTransportFailure(err)) throw err;
        }
      }
    },
  } as unknown as Policy;
}

/**
 * The per-host policy: a host that just failed in transport is skipped for `pauseMs`, so the
 * next calls (and streams, which etcd3 places on a random host) go to the others.
 * NOTE: during an election every member can fail at once ("no leader"); were all of them
 * skipped, the server would refuse every etcd call without trying. So a host is skipped
 * only while some other host is not.
 * NOTE: this replaces etcd3's default circuit breaker, which after three failures refuses a
 * host for 5 s; with one endpoint that is 5 s of UNAVAILABLE after etcd is back. With one
 * endpoint there is no other host to prefer, so nothing is skipped (pauseMs 0).
 */
function pauseAfterFailure(endpoint: string, pauseMs: number, pauses: Pauses, hostCount: number): Policy {
  return {
    onSuccess: noEvent,
    onFailure: noEvent,
    async execute<T>(fn: PolicyFn<T>, signal = NEVER_ABORTED): Promise<T> {
      throwIfPassedOver(pauses, endpoint, hostCount, pauseMs);
      try {
        const result = await fn({ signal });
        pauses.delete(endpoint);
        return result;
      } catch (err) {
        if (isTransportFailure(err)) pauses.set(endpoint, Date.now() + pauseMs);
        throw err;
      }
    },
  } as unknown as Policy;
}
