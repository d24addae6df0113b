// etcd lock backend: etcd's concurrency mutex recipe (client/v3/concurrency/mutex.go and
// key.go) on etcd3's raw KV / Lease / Watch clients. Locks live in etcd, so any number of
// latchkey servers share them, and `etcdctl lock <prefix><name>` contends for the same locks.
//
// Layout (the same as etcdctl lock, so the two interoperate):
//   key   = prefix + name + '/' + lowercase hex of the etcd lease id   ("own key")
//   value = owner
//   lease = an etcd lease with TTL ⌈ttl_ms / 1000⌉ s that the own key is attached to
// The holder is the key with the lowest create revision under prefix + name + '/'; the
// others wait in create-revision order (FIFO). The fencing token is the holder's create
// revision: etcd's revision is cluster-wide and only grows, so tokens strictly increase.
//
// lease_id (what clients hold): the lowercase hex etcd lease id, i.e. the own key's last
// segment. With the lock name the request carries, it is all any server needs (the key is
// prefix + name + '/' + lease_id), so Refresh and Release work through any latchkey server
// on the same etcd; no server keeps state about a lease it granted.
//
// Only this file imports etcd3; it translates etcd3's errors into ours at this edge.
import { setMaxListeners } from 'node:events';
import { castGrpcError, ClientClosedError, Etcd3, EtcdLeaseInvalidError, GRPCUnavailableError, isRecoverableError, type IKeyValue, type IOptions, type IRangeRequest, type IRangeResponse } from 'etcd3';
import {
  BackendUnavailableError,
  CancelledError,
  FailedPreconditionError,
  LatchkeyError,
  LeaseExpiredError,
  LockBusyError,
  NotHolderError,
  ShuttingDownError,
  throwIfAborted,
} from '../errors.js';
import { singleHolderState, type AcquireOptions, type Capabilities, type Lease, type LeaseRef, type LockBackend, type LockState } from './backend.js';

export const etcdCapabilities: Capabilities = { acrossHosts: true, fencing: true, fifo: true, autoRelease: true, semaphore: false, shared: false, watch: false };

export interface EtcdLockBackendOptions {
  /** etcd client endpoints, `host:port` or `http(s)://host:port`: a list or a comma-separated string. */
  readonly endpoints: string | readonly string[];
  /** Prefix of every lock key; lock `name` lives under prefix + name + '/'. Default `latchkey/locks/`. */
  readonly prefix?: string;
  /**
   * Bound on each etcd request, in ms (default 3000). A request that neither succeeds nor
   * fails in this time (partitioned etcd, no leader) fails with UNAVAILABLE instead of
   * hanging the caller; waits for a lock are bounded by wait_ms, not by this.
   */
  readonly opTimeoutMs?: number;
}

/** A key under prefix + name + '/' in our (and etcdctl's) layout: ends in a hex lease id. */
interface QueueKey {
  readonly key: string;
  /** The etcd lease the key is attached to, decimal ('0' = none). */
  readonly leaseDec: string;
  readonly createRevision: bigint;
  readonly owner: string;
}

interface EtcdLease {
  readonly dec: string;
  readonly hex: string;
  readonly ttlS: number;
  /** When we asked for it: etcd's TTL started no earlier, so this bounds its expiry. */
  readonly grantedAt: number;
}

// Go prints lease ids with %x: lowercase, no leading zeros; a positive int64 (etcd's ids).
const LEASE_HEX = /^(?:[1-9a-f][0-9a-f]{0,14}|[1-7][0-9a-f]{15})$/;
/** Keys per range page while looking for the first key of our layout (see #firstInQueue). */
const PAGE = 16;
/** Backoff between re-checks while etcd is unreachable during a wait. */
const RETRY_MS = 250;
/**
 * A waiter re-checks its turn at least this often even without a watch event.
 * NOTE: insurance only. The watch is what hands the lock over; the re-check bounds the
 * damage if an event were ever lost (a stream that died silently, a library bug).
 */
const RECHECK_MS = 10_000;
/** With several endpoints, how long one that failed is passed over (see pauseAfterFailure). */
const HOST_PAUSE_MS = 1_000;

const hexToDec = (hex: string) => BigInt(`0x${hex}`).toString();
const decToHex = (dec: string) => BigInt(dec).toString(16);

/** range_end for "every key starting with prefix": the prefix with its last byte + 1. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function describeHolder(holder: QueueKey): string {
  const who = holder.owner === '' ? 'an unnamed owner (e.g. `etcdctl lock`)' : holder.owner;
  return `${who} (etcd key ${holder.key}, fencing token ${holder.createRevision})`;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });

/** Why a wait stopped early: one of our errors, or the wait_ms timer. */
const TIMED_OUT = Symbol('timed out');

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type PolicyFn<T> = (context: { signal: AbortSignal }) => PromiseLike<T> | T;
const noEvent = () => ({ dispose() {} });
const isTransportFailure = (err: unknown) => err instanceof Error && isRecoverableError(err);

// etcd3's fault handling takes cockatiel policies; these two are written by hand because
// cockatiel is etcd3's dependency, not ours (etcd3 only ever calls execute()).

/**
 * The global policy: a call that failed in transport is tried on the next host (etcd3 hands
 * each attempt the next host of one shuffled cycle), up to `attempts` hosts in all.
 */
function tryHosts(attempts: number): Policy {
  return {
    onSuccess: noEvent,
    onFailure: noEvent,
    async execute<T>(fn: PolicyFn<T>, signal = new AbortController().signal): Promise<T> {
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

/** Until when each host is passed over; shared by the hosts of one client. */
type Pauses = Map<string, number>;

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
    async execute<T>(fn: PolicyFn<T>, signal = new AbortController().signal): Promise<T> {
      const now = Date.now();
      if (now < (pauses.get(endpoint) ?? 0)) {
        const pausedHosts = [...pauses.values()].filter((until) => now < until).length;
        if (pausedHosts < hostCount) throw new GRPCUnavailableError(`etcd endpoint ${endpoint} failed less than ${pauseMs} ms ago`);
      }
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

export class EtcdLockBackend implements LockBackend {
  readonly kind = 'etcd';
  readonly capabilities = etcdCapabilities;
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #endpoints: string;
  readonly #opTimeoutMs: number;
  readonly #hostCount: number;
  /** Stops every waiting acquire; close() aborts it with ShuttingDownError. */
  readonly #closing = new AbortController();
  /** Acquires in progress, so close() can let them clean up their keys before it closes the client. */
  readonly #inflight = new Set<Promise<unknown>>();

  constructor(options: EtcdLockBackendOptions) {
    const hosts = (typeof options.endpoints === 'string' ? options.endpoints.split(',') : [...options.endpoints]).map((h) => h.trim()).filter((h) => h !== '');
    if (hosts.length === 0) throw new TypeError('etcd lock backend: at least one endpoint (host:port) is required');
    this.#endpoints = hosts.join(',');
    this.#hostCount = hosts.length;
    this.#prefix = options.prefix ?? 'latchkey/locks/';
    this.#opTimeoutMs = options.opTimeoutMs ?? 3_000;
    // Every waiting acquire listens for close(); hundreds of waiters are normal, not a leak.
    setMaxListeners(0, this.#closing.signal);
    const opTimeoutMs = this.#opTimeoutMs;
    const pauses: Pauses = new Map();
    this.#client = new Etcd3({
      hosts,
      // Unary calls get a deadline; streams (watch, keepalive) are bounded where they are used.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + opTimeoutMs }),
      faultHandling: { host: (host) => pauseAfterFailure(host, hosts.length > 1 ? HOST_PAUSE_MS : 0, pauses, hosts.length), global: tryHosts(hosts.length) },
      grpcOptions: {
        // grpc-js backs off reconnects up to 120 s; cap it so a returning etcd is used promptly.
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1_000,
      },
    });
  }

  async acquire(options: AcquireOptions): Promise<Lease> {
    throwIfAborted(options.signal);
    this.#throwIfClosed();
    const attempt = this.#acquire(options);
    const tracked = attempt.catch(() => {});
    this.#inflight.add(tracked);
    void tracked.then(() => this.#inflight.delete(tracked));
    return attempt;
  }

  async refresh({ name, leaseId, signal }: LeaseRef, ttlMs: number): Promise<Lease> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const holder = await this.#holder(name, leaseId, 'refresh', signal);
    if (ttlMs > 0) {
      // NOTE: an etcd lease's TTL is fixed when it is granted; a keepalive restarts that TTL
      // and nothing can change it. A shorter TTL than granted is served with the granted one
      // (expires_at_ms says so); a longer one is refused rather than silently cut short.
      const info = await this.#rpc('read the lease TTL', signal, () => this.#client.leaseClient.leaseTimeToLive({ ID: holder.leaseDec }));
      const granted = Number(info.grantedTTL);
      if (Number(info.TTL) < 0) throw this.#expired(name, leaseId);
      const asked = Math.ceil(ttlMs / 1000);
      if (asked > granted) {
        throw new FailedPreconditionError(
          `lease ${leaseId} on lock "${name}" has a fixed TTL of ${granted} s (etcd leases cannot change TTL); refresh with ttl_ms 0 or at most ${granted * 1000}, or release and acquire again with ttl_ms ${ttlMs}`,
        );
      }
    }
    const { ttlS, sentAt } = await this.#keepAliveOnce(holder.leaseDec, signal);
    if (ttlS <= 0) throw this.#expired(name, leaseId);
    return { name, leaseId, fencingToken: holder.createRevision, expiresAtMs: sentAt + ttlS * 1000, ttlMs: ttlS * 1000, owner: holder.owner, mode: 'EXCLUSIVE', limit: 1 };
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const holder = await this.#holder(name, leaseId, 'release', signal);
    // Delete only the key we checked (mutex.go's IsOwner compare): had it expired and been
    // recreated since, it would no longer be this grant's.
    const txn = await this.#rpc('release', signal, () =>
      this.#client.kv.txn({
        compare: [{ key: Buffer.from(holder.key), target: 'Create', result: 'Equal', create_revision: holder.createRevision.toString() }],
        success: [{ request_delete_range: { key: Buffer.from(holder.key) } }],
      }),
    );
    // The lease has no other use; revoking it now spares etcd tracking it until its TTL.
    await this.#revoke(holder.leaseDec).catch(() => {});
    if (!txn.succeeded) throw this.#expired(name, leaseId);
  }

  async describe(name: string, signal: AbortSignal): Promise<LockState> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const dir = this.#dir(name);
    const all = await this.#rpc('describe', signal, () => this.#client.kv.range(this.#queueRange(dir, 'Ascend', { limit: 0 })));
    const queue = this.#queueKeys(dir, all.kvs);
    const holder = queue[0];
    if (holder === undefined) return singleHolderState(undefined, 0);
    let expiresAtMs = 0;
    if (holder.leaseDec !== '0') {
      const now = Date.now();
      const info = await this.#rpc('describe', signal, () => this.#client.leaseClient.leaseTimeToLive({ ID: holder.leaseDec }));
      // etcd reports whole seconds left, rounded down: this is the earliest it can expire.
      expiresAtMs = now + Math.max(0, Number(info.TTL)) * 1000;
    }
    return singleHolderState({ owner: holder.owner, fencingToken: holder.createRevision, expiresAtMs }, queue.length - 1);
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new ShuttingDownError('server is shutting down; retry on another server'));
    // Waiters stop at once and revoke their leases; give them (bounded) time to do so.
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise((resolve) => (timer = setTimeout(resolve, this.#opTimeoutMs * 2)));
    await Promise.race([Promise.all(this.#inflight), bound]);
    clearTimeout(timer);
    this.#client.close();
  }

  // ---- acquire: mutex.go's Lock / TryLock -------------------------------------------------

  async #acquire({ name, ttlMs, waitMs, owner, signal }: AcquireOptions): Promise<Lease> {
    const waitUntil = Date.now() + waitMs;
    const dir = this.#dir(name);
    // A lease of our own (Session in mutex.go): the key, and so our place in the queue, dies
    // with it, which is what makes an abandoned lock free itself after its TTL.
    const grantedAt = Date.now();
    const grant = await this.#rpc(`acquire lock "${name}"`, undefined, () => this.#client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000), ID: 0 }));
    const lease: EtcdLease = { dec: grant.ID, hex: decToHex(grant.ID), ttlS: Number(grant.TTL), grantedAt };
    const key = dir + lease.hex;
    let granted = false;
    try {
      // NOTE: the grant and the transaction are not raced against the signal: abandoning
      // them mid-flight could leave a key behind that we do not know about. Each is bounded
      // by opTimeoutMs; the signal is checked between steps and ends a wait at once.
      throwIfAborted(signal);
      this.#throwIfClosed();
      const ownKey = Buffer.from(key);
      const firstPage = this.#queueRange(dir, 'Ascend');
      // mutex.go tryAcquire: put our key only if it does not exist yet (create revision 0);
      // else read it back (a retried call may have put it already). Either way fetch the
      // current holder in the same transaction, so the uncontended path is one round trip.
      const txn = await this.#rpc(`acquire lock "${name}"`, undefined, () =>
        this.#client.kv.txn({
          compare: [{ key: ownKey, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [{ request_put: { key: ownKey, value: Buffer.from(owner), lease: lease.dec } }, { request_range: firstPage }],
          failure: [{ request_range: { key: ownKey } }, { request_range: firstPage }],
        }),
      ).catch((err: unknown) => {
        // The put names a lease that is already gone: etcd took longer than the TTL.
        if (err instanceof LeaseExpiredError) throw new LockBusyError(`lock "${name}" not acquired: its ${lease.ttlS} s etcd lease expired before etcd queued it; retry, or use a longer ttl_ms`);
        throw err;
      });
      const mine = txn.succeeded ? BigInt(txn.header.revision) : BigInt(txn.responses[0]!.response_range.kvs[0]!.create_revision);
      // The lowest create revision holds the lock; if that is ours, we have it.
      const holder = await this.#firstInQueue(dir, 'Ascend', {}, txn.responses[1]!.response_range);
      let expiresAtMs = lease.grantedAt + lease.ttlS * 1000;
      if (holder !== undefined && holder.createRevision !== mine) {
        if (waitMs <= 0) {
          // TryLock: lost; take our key out of the queue (the finally below) and say who has it.
          throw new LockBusyError(`lock "${name}" is held by ${describeHolder(holder)}; not acquired (wait_ms = 0 tries once)`);
        }
        expiresAtMs = await this.#waitTurn({ name, dir, key, lease, mine, waitUntil, waitMs, signal });
      }
      granted = true;
      return { name, leaseId: lease.hex, fencingToken: mine, expiresAtMs, ttlMs: lease.ttlS * 1000, owner, mode: 'EXCLUSIVE', limit: 1 };
    } finally {
      // Not granted (lost try-once, timeout, cancel, lost lease, shutdown, etcd error): leave
      // the queue before answering, so nobody waits behind a key whose caller is gone and a
      // Describe right after our answer does not count it.
      if (!granted) await this.#dropKey(key, lease.dec);
    }
  }

  /**
   * Waits until every key before ours is gone (key.go waitDeletes), keeping our lease alive
   * meanwhile. Resolves with the lease's new expiry once the lock is ours.
   */
  async #waitTurn(w: { name: string; dir: string; key: string; lease: EtcdLease; mine: bigint; waitUntil: number; waitMs: number; signal: AbortSignal }): Promise<number> {
    const { name, dir, key, lease, mine, signal } = w;
    const stop = new AbortController();
    const onAbort = () => stop.abort(new CancelledError(`acquire of lock "${name}" cancelled while waiting`));
    const onClose = () => stop.abort(this.#closing.signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    this.#closing.signal.addEventListener('abort', onClose, { once: true });
    // A signal that fired before we listened never calls the listener.
    if (signal.aborted) onAbort();
    if (this.#closing.signal.aborted) onClose();
    const waitTimer = setTimeout(() => stop.abort(TIMED_OUT), Math.max(0, w.waitUntil - Date.now()));

    // NOTE: while the caller waits, this server keeps the waiter's lease alive (as a Go
    // Session would): the caller is present, its gRPC call is open. Once granted, only the
    // caller's Refresh keeps it alive. Expiry is tracked here from our own clock and the
    // last keepalive that etcd answered, not from etcd3's Lease 'lost' event, which fires
    // only ~2×TTL after the last good keepalive while etcd drops the lease at 1×TTL.
    let expiresAtMs = lease.grantedAt + lease.ttlS * 1000;
    let expiryTimer: NodeJS.Timeout | undefined;
    let keepTimer: NodeJS.Timeout | undefined;
    const lost = (why: string) => stop.abort(new LockBusyError(`lock "${name}" not acquired: the waiter's etcd lease ${lease.hex} ${why}; acquire again`));
    const armExpiry = () => {
      clearTimeout(expiryTimer);
      expiryTimer = setTimeout(() => lost(`expired (etcd did not answer a keepalive for ${lease.ttlS} s)`), Math.max(0, expiresAtMs - Date.now()));
    };
    const keepAlive = async () => {
      if (stop.signal.aborted) return;
      try {
        const { ttlS, sentAt } = await this.#keepAliveOnce(lease.dec, stop.signal);
        if (ttlS <= 0) return lost('was revoked or expired behind its back');
        expiresAtMs = sentAt + ttlS * 1000;
        armExpiry();
      } catch {
        // Unreachable etcd: the expiry timer decides whether the lease is lost.
      }
      if (!stop.signal.aborted) keepTimer = setTimeout(() => void keepAlive(), (lease.ttlS * 1000) / 3);
    };
    armExpiry();
    keepTimer = setTimeout(() => void keepAlive(), (lease.ttlS * 1000) / 3);

    let unavailable: unknown;
    try {
      for (;;) {
        if (stop.signal.aborted) break;
        let turn: { ownExists: boolean; predecessor: QueueKey | undefined; revision: string };
        try {
          turn = await this.#raceStop(this.#checkTurn(dir, key, mine), stop.signal);
          unavailable = undefined;
        } catch (err) {
          if (stop.signal.aborted) break;
          if (!(err instanceof BackendUnavailableError)) throw err;
          unavailable = err;
          await sleep(RETRY_MS, stop.signal);
          continue;
        }
        // mutex.go: "make sure the session is not expired, and the owner key still exists";
        // checked on every round, so a waiter whose key vanished stops at once instead of
        // waiting out its predecessors (key.go's TODO).
        if (!turn.ownExists) {
          lost('or its key was removed while waiting');
          break;
        }
        // No key with a lower create revision is left: ours is the lowest, the lock is ours.
        if (turn.predecessor === undefined) {
          stop.abort(null);
          // Restart the TTL at the grant, so the caller gets all of it.
          const { ttlS, sentAt } = await this.#keepAliveOnce(lease.dec, undefined);
          if (ttlS <= 0) throw new LockBusyError(`lock "${name}" not acquired: the waiter's etcd lease ${lease.hex} expired as the lock was handed over; acquire again`);
          return sentAt + ttlS * 1000;
        }
        // key.go waitDelete: watch only the key just before ours (no thundering herd: one
        // deletion wakes one waiter), from the revision we read it at, so a delete between
        // the read and the watch is not missed. Then re-check: it may have been a waiter that
        // gave up while others still precede us.
        await this.#waitDelete(turn.predecessor.key, turn.revision, stop.signal);
      }
      const reason: unknown = stop.signal.reason;
      if (reason !== TIMED_OUT) throw reason;
      if (unavailable !== undefined) throw unavailable;
      const holder = await this.#firstInQueue(dir, 'Ascend', {}).catch(() => undefined);
      const held = holder === undefined ? 'not granted' : `still held by ${describeHolder(holder)}`;
      throw new LockBusyError(`lock "${name}" ${held} after waiting ${w.waitMs} ms`);
    } finally {
      if (!stop.signal.aborted) stop.abort(null);
      clearTimeout(waitTimer);
      clearTimeout(expiryTimer);
      clearTimeout(keepTimer);
      signal.removeEventListener('abort', onAbort);
      this.#closing.signal.removeEventListener('abort', onClose);
    }
  }

  /** One consistent read: does our key still exist, and which key comes right before it? */
  async #checkTurn(dir: string, key: string, mine: bigint): Promise<{ ownExists: boolean; predecessor: QueueKey | undefined; revision: string }> {
    // key.go waitDeletes: the last key created before ours (max create revision mine - 1).
    const before = this.#queueRange(dir, 'Descend', { maxCreate: mine - 1n });
    const txn = await this.#rpc('wait for the lock', undefined, () =>
      this.#client.kv.txn({ compare: [], success: [{ request_range: { key: Buffer.from(key), count_only: true } }, { request_range: before }] }),
    );
    const ownExists = Number(txn.responses[0]!.response_range.count) > 0;
    const predecessor = await this.#firstInQueue(dir, 'Descend', { maxCreate: mine - 1n }, txn.responses[1]!.response_range);
    return { ownExists, predecessor, revision: txn.header.revision };
  }

  /** Resolves when `key` is deleted at or after `revision`, or the watch fails, or stop fires. */
  async #waitDelete(key: string, revision: string, stop: AbortSignal): Promise<void> {
    if (stop.aborted) return;
    let stream;
    try {
      stream = await this.#client.watchClient.watch();
    } catch {
      return sleep(RETRY_MS, stop);
    }
    const watch = stream;
    await new Promise<void>((resolve) => {
      let settled = false;
      const recheck = setTimeout(() => done(false), RECHECK_MS);
      function done(failed: boolean) {
        if (settled) return;
        settled = true;
        clearTimeout(recheck);
        stop.removeEventListener('abort', onStop);
        // NOTE: end() before cancel(). etcd3 reports an error on a still-writable stream as a
        // host failure (it resets all of that host's connections); our own CANCELLED is not one.
        watch.end();
        watch.cancel();
        // A failed stream (etcd gone): pause before the caller re-checks, so an outage is
        // not a busy loop.
        if (failed && !stop.aborted) void sleep(RETRY_MS, stop).then(resolve);
        else resolve();
      }
      const onStop = () => done(false);
      stop.addEventListener('abort', onStop, { once: true });
      if (stop.aborted) return done(false);
      watch.on('data', (res) => {
        // Canceled: e.g. our start revision was compacted away; re-checking is always safe.
        if (res.canceled) return done(true);
        if (res.events.some((e) => e.type === 'Delete')) done(false);
      });
      // The error listener stays for the stream's life: cancel() itself emits CANCELLED.
      watch.on('error', () => done(true));
      watch.on('end', () => done(true));
      watch.write({ create_request: { key: Buffer.from(key), start_revision: revision, filters: ['Noput'] } });
    });
  }

  // ---- refresh / release helpers ------------------------------------------------------------

  /** The queue key of `leaseId` on lock `name` if it holds the lock; else the precise refusal. */
  async #holder(name: string, leaseId: string, what: 'refresh' | 'release', signal: AbortSignal): Promise<QueueKey> {
    if (!LEASE_HEX.test(leaseId)) {
      throw new NotHolderError(`lease ${leaseId} does not hold lock "${name}": etcd lease ids are lowercase hex; send the lease_id that Acquire returned`);
    }
    const dir = this.#dir(name);
    const key = dir + leaseId;
    const firstPage = this.#queueRange(dir, 'Ascend');
    const txn = await this.#rpc(what, signal, () => this.#client.kv.txn({ compare: [], success: [{ request_range: { key: Buffer.from(key) } }, { request_range: firstPage }] }));
    const own = this.#queueKeys(dir, txn.responses[0]!.response_range.kvs)[0];
    const holder = await this.#firstInQueue(dir, 'Ascend', {}, txn.responses[1]!.response_range);
    if (own !== undefined && holder?.key === own.key) return own;
    const current = holder === undefined ? 'it is not held' : `it is held by ${describeHolder(holder)}`;
    if (own !== undefined) {
      // A waiter's lease (e.g. a latchkey or etcdctl waiter): it is queued, not holding.
      throw new NotHolderError(`lease ${leaseId} is waiting for lock "${name}", not holding it: ${current}`);
    }
    const info = await this.#rpc(what, signal, () => this.#client.leaseClient.leaseTimeToLive({ ID: hexToDec(leaseId) })).catch((err: unknown) => {
      if (err instanceof LeaseExpiredError) return { TTL: '-1' };
      throw err;
    });
    if (Number(info.TTL) < 0) throw this.#expired(name, leaseId, current);
    throw new NotHolderError(`lease ${leaseId} does not hold lock "${name}": ${current}`);
  }

  #expired(name: string, leaseId: string, current?: string): LeaseExpiredError {
    return new LeaseExpiredError(
      `lease ${leaseId} on lock "${name}" no longer exists in etcd (its TTL ran out, or it was released or revoked)${current ? `; ${current}` : ''}; acquire the lock again`,
    );
  }

  /**
   * One LeaseKeepAlive round trip: restarts the lease's TTL; TTL 0 = the lease is gone.
   * etcd3 puts a stream on a random host and does not retry it, so a transport failure is
   * retried here, once per host (idempotent: it only restarts the TTL).
   */
  async #keepAliveOnce(leaseDec: string, signal: AbortSignal | undefined): Promise<{ ttlS: number; sentAt: number }> {
    for (let attempt = 1; ; attempt++) {
      const sentAt = Date.now();
      try {
        const ttlS = await this.#rpc('keep the lease alive', signal, async () => {
          const stream = await this.#client.leaseClient.leaseKeepAlive({ deadline: Date.now() + this.#opTimeoutMs });
          return new Promise<number>((resolve, reject) => {
            stream.on('data', (res) => {
              resolve(Number(res.TTL));
              // Half-close: etcd then ends the stream with OK.
              stream.end();
            });
            stream.on('error', (err) => reject(castGrpcError(err)));
            stream.on('end', () => reject(new GRPCUnavailableError('etcd closed the keepalive stream without answering')));
            stream.write({ ID: leaseDec });
          });
        });
        return { ttlS, sentAt };
      } catch (err) {
        if (attempt >= this.#hostCount || !(err instanceof BackendUnavailableError) || signal?.aborted) throw err;
      }
    }
  }

  /** Takes a key out of the queue and frees its lease (best effort: a failure leaves it to the TTL). */
  async #dropKey(key: string, leaseDec: string): Promise<void> {
    // Deleting the key is what frees the successor; revoking the lease would delete it too,
    // but the key goes first so that a failed revoke cannot leave it queued.
    await this.#rpc('leave the queue', undefined, () => this.#client.kv.deleteRange({ key: Buffer.from(key) })).catch(() => {});
    await this.#revoke(leaseDec).catch(() => {});
  }

  async #revoke(leaseDec: string): Promise<void> {
    try {
      await this.#rpc('revoke the lease', undefined, () => this.#client.leaseClient.leaseRevoke({ ID: leaseDec }));
    } catch (err) {
      if (!(err instanceof LeaseExpiredError)) throw err;
    }
  }

  // ---- keys ---------------------------------------------------------------------------------

  #dir(name: string): string {
    return `${this.#prefix}${name}/`;
  }

  /** A range over the queue of `dir`, by create revision. */
  #queueRange(dir: string, order: 'Ascend' | 'Descend', bounds: { minCreate?: bigint; maxCreate?: bigint; limit?: number } = {}): IRangeRequest {
    const key = Buffer.from(dir);
    return {
      key,
      range_end: prefixEnd(key),
      sort_target: 'Create',
      sort_order: order,
      limit: bounds.limit ?? PAGE,
      min_create_revision: (bounds.minCreate ?? 0n).toString(),
      max_create_revision: (bounds.maxCreate ?? 0n).toString(),
    };
  }

  /**
   * The keys of `dir` in our layout. NOTE: lock "a" owns the keys "a/<hex>", but a prefix
   * range over "a/" also returns lock "a/b"'s keys ("a/b/<hex>"); etcdctl lock has the same
   * overlap. Only a key whose remainder is a bare lease id belongs to this lock.
   */
  #queueKeys(dir: string, kvs: readonly IKeyValue[]): QueueKey[] {
    const keys: QueueKey[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString();
      const leaseHex = key.slice(dir.length);
      if (!key.startsWith(dir) || !LEASE_HEX.test(leaseHex)) continue;
      keys.push({ key, leaseDec: kv.lease, createRevision: BigInt(kv.create_revision), owner: kv.value.toString() });
    }
    return keys;
  }

  /** The first key of our layout in `order`, paging past other locks' keys (see #queueKeys). */
  async #firstInQueue(dir: string, order: 'Ascend' | 'Descend', bounds: { maxCreate?: bigint }, page?: IRangeResponse): Promise<QueueKey | undefined> {
    let next: { minCreate?: bigint; maxCreate?: bigint } = bounds;
    for (;;) {
      const range = this.#queueRange(dir, order, next);
      page ??= await this.#rpc('read the lock queue', undefined, () => this.#client.kv.range(range));
      const first = this.#queueKeys(dir, page.kvs)[0];
      if (first !== undefined || !page.more || page.kvs.length === 0) return first;
      const edge = BigInt(page.kvs.at(-1)!.create_revision);
      next = order === 'Ascend' ? { ...next, minCreate: edge + 1n } : { ...next, maxCreate: edge - 1n };
      page = undefined;
    }
  }

  // ---- etcd calls and error translation -------------------------------------------------------

  /** Runs one etcd call, translating its errors; a signal, if given, abandons the wait for it. */
  async #rpc<T>(what: string, signal: AbortSignal | undefined, call: () => Promise<T>): Promise<T> {
    const result = (async () => {
      try {
        return await call();
      } catch (err) {
        throw this.#translate(err, what);
      }
    })();
    return signal === undefined ? result : this.#raceStop(result, signal);
  }

  async #raceStop<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
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

  /** etcd3's errors → ours. Anything unrecognised is rethrown as is (INTERNAL, and logged). */
  #translate(err: unknown, what: string): unknown {
    if (err instanceof LatchkeyError) return err;
    if (err instanceof ClientClosedError) return new ShuttingDownError(`server is shutting down (its etcd client is closed); retry on another server`, { cause: err });
    if (err instanceof EtcdLeaseInvalidError) return new LeaseExpiredError(`etcd lease not found (${what})`, { cause: err });
    // Transport failures (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, "no leader", ...): etcd3
    // marks exactly these recoverable.
    if (err instanceof Error && isRecoverableError(err)) {
      return new BackendUnavailableError(`etcd at ${this.#endpoints} is unavailable (${what}): ${err.message}; retry when it is back`, { cause: err });
    }
    return err;
  }

  #throwIfClosed(): void {
    if (this.#closing.signal.aborted) throw new ShuttingDownError('server is shutting down; retry on another server');
  }
}
