// etcd lock backend: etcd's concurrency mutex recipe (client/v3/concurrency/mutex.go and
// key.go), generalised to semaphores and read/write locks (Curator's and etcd's recipes on
// create-revision order), on etcd3's raw KV / Lease / Watch clients. Locks live in etcd, so
// any number of latchkey servers share them, and `etcdctl lock <prefix><name>` contends for
// the same locks.
//
// Layout (the same as etcdctl lock, so the two interoperate):
//   key   = prefix + name + '/' + lowercase hex of the etcd lease id   ("own key")
//   value = the owner, for a plain lock (EXCLUSIVE, limit 1): exactly what etcdctl expects;
//           etcdctl lock itself writes an empty value, which reads as a plain lock too.
//           Anything else (SHARED, or a semaphore's limit N > 1, or an owner that starts
//           with NUL) is VALUE_TAG + JSON {"owner":…,"mode":"EXCLUSIVE"|"SHARED","limit":N},
//           e.g. "\u0000latchkey:{"owner":"r1","mode":"SHARED","limit":1}". A value that
//           does not parse as that reads as a plain lock held by its text: an unknown key is
//           taken for the strictest kind, as etcdctl takes every key.
//   lease = an etcd lease with TTL ⌈ttl_ms / 1000⌉ s that the own key is attached to
// Every key of a name, whatever its mode, is in one queue, in create-revision order (FIFO).
// Which keys hold the lock is a pure function of that queue (grantedCount below), so every
// server, and Describe and Watch, evaluates it alike with no state of its own. Walking from
// the oldest key, a key holds the lock while every key before it does and
//   SHARED:          no EXCLUSIVE key is before it;
//   EXCLUSIVE, N:    no SHARED key is before it and fewer than N EXCLUSIVE keys are (N = 1:
//                    it is the first key, etcd's mutex), and N is the limit of the first
//                    EXCLUSIVE key (else it is a request being refused: see below).
// The first key that does not hold stops the walk: later keys never pass it, which keeps a
// writer queued behind readers ahead of readers that came after it. Once a key holds, only
// deleting keys before it changes what is before it, so it holds until its own key goes.
// The fencing token is the own key's create revision: etcd's revision is cluster-wide and
// only grows, and grants follow create order, so tokens strictly increase per grant.
//
// Limits: a request checks, after putting its key, the first EXCLUSIVE key before it; a
// different limit is refused with FAILED_PRECONDITION naming both (and its key removed).
// `etcdctl lock` waits until its key is the first, so it is always safe; a semaphore
// request behind an etcdctl key (limit 1) is refused, as for any other limit 1 holder.
//
// Waiting: a plain waiter watches only the key just before its own (key.go waitDeletes:
// one deletion wakes one waiter). A SHARED or semaphore waiter can be freed by the deletion
// of any key before it, so it watches the deletes under the name, keeps the keys before it
// in memory, and re-reads the queue only when that copy says its turn has come: every
// release reaches every such waiter as a watch event, but costs no reads.
//
// Watch: one range read of the queue at revision R (the STATE event), then an etcd watch of
// prefix + name + '/' from R + 1, so events follow the snapshot with no gap, from whichever
// server made them. A put is WAITER_ADDED (or ACQUIRED if the key holds at once); a delete
// is RELEASED for a holder and WAITER_LEFT for a waiter, followed by ACQUIRED for each key
// the deletion let in. NOTE: etcd deletes an expired lease's keys as if they were released,
// so a TTL that ran out is reported as RELEASED (never EXPIRED); and a try-once that lost,
// or a request refused for its limit, shows as WAITER_ADDED then WAITER_LEFT, as its key
// briefly queued.
//
// lease_id (what clients hold): the lowercase hex etcd lease id, i.e. the own key's last
// segment. With the lock name the request carries, it is all any server needs (the key is
// prefix + name + '/' + lease_id), so Refresh and Release work through any latchkey server
// on the same etcd; no server keeps state about a lease it granted.
//
// Only this file imports etcd3; it translates etcd3's errors into ours at this edge.
import { setMaxListeners } from 'node:events';
import {
  castGrpcError,
  ClientClosedError,
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCUnavailableError,
  isRecoverableError,
  type IKeyValue,
  type IOptions,
  type IRangeRequest,
  type IRangeResponse,
  type IWatchCreateRequest,
  type IWatchResponse,
} from 'etcd3';
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
import type {
  AcquireOptions,
  Capabilities,
  HolderInfo,
  Lease,
  LeaseRef,
  LockBackend,
  LockEvent,
  LockEventType,
  LockMode,
  LockState,
} from './backend.js';

export const etcdCapabilities: Capabilities = {
  acrossHosts: true,
  fencing: true,
  fifo: true,
  autoRelease: true,
  semaphore: true,
  shared: true,
  watch: true,
};

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

/** What a key's value says about the request that put it. */
interface KeyValueInfo {
  readonly owner: string;
  readonly mode: LockMode;
  /** 1 for SHARED keys. */
  readonly limit: number;
}

/** A key under prefix + name + '/' in our (and etcdctl's) layout: ends in a hex lease id. */
interface QueueKey extends KeyValueInfo {
  readonly key: string;
  /** The etcd lease the key is attached to, decimal ('0' = none). */
  readonly leaseDec: string;
  readonly createRevision: bigint;
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
/**
 * How long a request that was not granted waits for its key to leave the queue before it
 * answers (see #acquire's finally); a healthy etcd takes milliseconds.
 */
const LEAVE_WAIT_MS = 250;
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
  return `${holder.mode === 'SHARED' ? 'shared: ' : ''}${who} (etcd key ${holder.key}, fencing token ${holder.createRevision})`;
}

/** The holders of a queue for a message: the first three, and how many more. */
function describeHolders(holders: readonly QueueKey[]): string {
  if (holders.length === 0) return 'nobody, but earlier waiters are queued';
  const shown = holders.slice(0, 3).map(describeHolder).join(', ');
  return holders.length <= 3 ? shown : `${shown} and ${holders.length - 3} more`;
}

// ---- values and the grant rule (pure) -------------------------------------------------------

/** Starts every value that is not a plain lock's owner; NUL keeps it apart from any owner text. */
export const VALUE_TAG = '\u0000latchkey:';

/** The value of an own key: the bare owner for a plain lock (as etcdctl lock), else tagged JSON. */
export function encodeValue(info: KeyValueInfo): Buffer {
  // An owner that starts with NUL could pass for a tagged value: tag it, so it reads back as itself.
  if (info.mode === 'EXCLUSIVE' && info.limit === 1 && !info.owner.startsWith('\u0000')) return Buffer.from(info.owner);
  return Buffer.from(
    VALUE_TAG + JSON.stringify({ owner: info.owner, mode: info.mode, limit: info.mode === 'SHARED' ? 1 : info.limit }),
  );
}

/**
 * Reads any value found in the queue. NOTE: never throws: a key we cannot read (another tool's,
 * a newer format, damage) is a plain lock held by the value's text, the strictest reading,
 * which is also how `etcdctl lock` treats every key.
 */
export function decodeValue(value: Buffer): KeyValueInfo {
  const text = value.toString('utf8');
  if (text.startsWith(VALUE_TAG)) {
    try {
      const parsed: unknown = JSON.parse(text.slice(VALUE_TAG.length));
      if (typeof parsed === 'object' && parsed !== null) {
        const { owner, mode, limit } = parsed as Record<string, unknown>;
        if (
          typeof owner === 'string' &&
          (mode === 'EXCLUSIVE' || mode === 'SHARED') &&
          typeof limit === 'number' &&
          Number.isSafeInteger(limit) &&
          limit >= 1
        ) {
          return { owner, mode, limit: mode === 'SHARED' ? 1 : limit };
        }
      }
    } catch {
      // Not JSON: read as a plain lock, below.
    }
  }
  return { owner: text, mode: 'EXCLUSIVE', limit: 1 };
}

/**
 * How many keys of a queue (oldest first) hold the lock: they are always its first keys. The
 * same rule as the memory backend's (one FIFO queue across modes, the head never passed):
 * a SHARED key holds while no EXCLUSIVE key does; an EXCLUSIVE key while no SHARED key does
 * and fewer than its limit of EXCLUSIVE keys do. An EXCLUSIVE key whose limit differs from
 * the first EXCLUSIVE key's is a request being refused for it: it never holds, and stops
 * the walk until its owner removes it (`etcdctl lock`'s key behind a semaphore's waits so
 * until it is first, as etcdctl itself does).
 */
export function grantedCount(queue: readonly Pick<QueueKey, 'mode' | 'limit'>[]): number {
  let exclusive = 0;
  let shared = 0;
  let limit = 0;
  for (let i = 0; i < queue.length; i++) {
    const key = queue[i]!;
    if (key.mode === 'SHARED') {
      if (exclusive > 0) return i;
      shared++;
      continue;
    }
    if (limit === 0) limit = key.limit;
    if (key.limit !== limit || shared > 0 || exclusive >= limit) return i;
    exclusive++;
  }
  return queue.length;
}

/** The limit in force: the first EXCLUSIVE key's; 1 with only SHARED keys; 0 for no keys. */
function queueLimit(queue: readonly QueueKey[]): number {
  return queue.find((k) => k.mode === 'EXCLUSIVE')?.limit ?? (queue.length > 0 ? 1 : 0);
}

/** Why an EXCLUSIVE request is refused, as the memory backend says it. */
function limitMismatch(name: string, current: number, asked: number): FailedPreconditionError {
  return new FailedPreconditionError(
    `lock "${name}" is held or awaited with limit ${current}; this request asks for limit ${asked}: every holder of a name must use the same limit`,
  );
}

type QueueChange = readonly [LockEventType, QueueKey];

/**
 * The queue of one lock as a Watch follows it: its keys in create-revision order, and the
 * events each change makes. Grants are recomputed with grantedCount after every change.
 */
class QueueMirror {
  #keys: QueueKey[];
  /** The keys that hold the lock, as last reported. */
  #holding: Set<string>;

  constructor(keys: readonly QueueKey[]) {
    this.#keys = [...keys].sort((a, b) =>
      a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0,
    );
    this.#holding = new Set(this.#keys.slice(0, grantedCount(this.#keys)).map((k) => k.key));
  }

  get keys(): readonly QueueKey[] {
    return this.#keys;
  }

  /** A key was put: new (WAITER_ADDED or ACQUIRED), or rewritten in place (no event of its own). */
  put(key: QueueKey): QueueChange[] {
    const at = this.#keys.findIndex((k) => k.key === key.key);
    const changes: QueueChange[] = [];
    if (at >= 0 && this.#keys[at]!.createRevision === key.createRevision) {
      this.#keys[at] = key;
      return this.#regrant(changes);
    }
    // Recreated under the same name: the old key's delete was missed (cannot happen with a
    // gap-free watch, but then report it as gone rather than keep a ghost).
    if (at >= 0) changes.push(...this.delete(key.key));
    let index = this.#keys.length;
    while (index > 0 && this.#keys[index - 1]!.createRevision > key.createRevision) index--;
    this.#keys.splice(index, 0, key);
    if (index >= grantedCount(this.#keys)) changes.push(['WAITER_ADDED', key]);
    return this.#regrant(changes);
  }

  /** A key was deleted: RELEASED or WAITER_LEFT, then ACQUIRED for each key it let in. */
  delete(key: string): QueueChange[] {
    const at = this.#keys.findIndex((k) => k.key === key);
    if (at < 0) return [];
    const [gone] = this.#keys.splice(at, 1);
    const changes: QueueChange[] = [[this.#holding.delete(key) ? 'RELEASED' : 'WAITER_LEFT', gone!]];
    return this.#regrant(changes);
  }

  #regrant(changes: QueueChange[]): QueueChange[] {
    const holders = this.#keys.slice(0, grantedCount(this.#keys));
    for (const holder of holders) if (!this.#holding.has(holder.key)) changes.push(['ACQUIRED', holder]);
    this.#holding = new Set(holders.map((k) => k.key));
    return changes;
  }
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

/** A waiter's view of the queue after one read, and how to wait for its next chance. */
interface Turn {
  readonly ownExists: boolean;
  readonly granted: boolean;
  /** Resolves when re-reading may find the lock ours (or stop fires). */
  wait(stop: AbortSignal): Promise<void>;
}

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
        if (pausedHosts < hostCount)
          throw new GRPCUnavailableError(`etcd endpoint ${endpoint} failed less than ${pauseMs} ms ago`);
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
  get location(): string {
    return `etcd at ${this.#endpoints}`;
  }
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
    const hosts = (typeof options.endpoints === 'string' ? options.endpoints.split(',') : [...options.endpoints])
      .map((h) => h.trim())
      .filter((h) => h !== '');
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
      faultHandling: {
        host: (host) => pauseAfterFailure(host, hosts.length > 1 ? HOST_PAUSE_MS : 0, pauses, hosts.length),
        global: tryHosts(hosts.length),
      },
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
      const info = await this.#rpc('read the lease TTL', signal, () =>
        this.#client.leaseClient.leaseTimeToLive({ ID: holder.leaseDec }),
      );
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
    return {
      name,
      leaseId,
      fencingToken: holder.createRevision,
      expiresAtMs: sentAt + ttlS * 1000,
      ttlMs: ttlS * 1000,
      owner: holder.owner,
      mode: holder.mode,
      limit: holder.limit,
    };
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const holder = await this.#holder(name, leaseId, 'release', signal);
    // Delete only the key we checked (mutex.go's IsOwner compare): had it expired and been
    // recreated since, it would no longer be this grant's.
    const txn = await this.#rpc('release', signal, () =>
      this.#client.kv.txn({
        compare: [
          {
            key: Buffer.from(holder.key),
            target: 'Create',
            result: 'Equal',
            create_revision: holder.createRevision.toString(),
          },
        ],
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
    const all = await this.#rpc('describe', signal, () =>
      this.#client.kv.range(this.#queueRange(dir, 'Ascend', { limit: 0 })),
    );
    return this.#stateOf(this.#queueKeys(dir, all.kvs), signal);
  }

  async *watch(name: string, signal: AbortSignal): AsyncIterable<LockEvent> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const dir = this.#dir(name);
    // Ends the iteration: the caller went away, or close() was called.
    const stop = new AbortController();
    const onStop = () => stop.abort();
    signal.addEventListener('abort', onStop, { once: true });
    this.#closing.signal.addEventListener('abort', onStop, { once: true });
    if (signal.aborted || this.#closing.signal.aborted) stop.abort();

    const responses: IWatchResponse[] = [];
    let wake: (() => void) | undefined;
    const notify = () => {
      const resolve = wake;
      wake = undefined;
      resolve?.();
    };
    type WatchStream = Awaited<ReturnType<Etcd3['watchClient']['watch']>>;
    let stream: WatchStream | undefined;
    /** The current stream broke: reopen it from `next`. */
    let broken = true;
    const closeStream = () => {
      const current = stream;
      stream = undefined;
      if (current === undefined) return;
      // NOTE: end() before cancel(), as in #watchUntil: our own CANCELLED is no host failure.
      current.end();
      current.cancel();
    };
    stop.signal.addEventListener(
      'abort',
      () => {
        closeStream();
        notify();
      },
      { once: true },
    );

    try {
      let snapshot: IRangeResponse;
      let state: LockState;
      try {
        snapshot = await this.#rpc(`watch lock "${name}"`, stop.signal, () =>
          this.#client.kv.range(this.#queueRange(dir, 'Ascend', { limit: 0 })),
        );
        state = await this.#stateOf(this.#queueKeys(dir, snapshot.kvs), stop.signal);
      } catch (err) {
        if (stop.signal.aborted) return;
        throw err;
      }
      const mirror = new QueueMirror(this.#queueKeys(dir, snapshot.kvs));
      /** The first revision not yet translated: the snapshot's revision + 1, then past each event. */
      let next = BigInt(snapshot.header.revision) + 1n;
      yield { type: 'STATE', name, owner: '', fencingToken: 0n, mode: 'EXCLUSIVE', atMs: Date.now(), state };

      let opened = false;
      while (!stop.signal.aborted) {
        const res = responses.shift();
        if (res !== undefined) {
          if (res.canceled) {
            // NOTE: a compacted start revision cannot be resumed without a gap; the caller
            // watches again and gets a fresh STATE. Any other cancel is resumed below.
            if (res.compact_revision !== undefined && BigInt(res.compact_revision) > 0n) {
              throw new BackendUnavailableError(
                `watch of lock "${name}" fell behind: etcd compacted its history up to revision ${res.compact_revision}; watch again for a fresh state`,
              );
            }
            broken = true;
            continue;
          }
          // A resumed stream may repeat what the broken one already delivered. NOTE: one
          // revision can hold several events (a txn, a revoked lease's keys): all pass here.
          const seen = next;
          for (const event of res.events) {
            const revision = BigInt(event.kv.mod_revision);
            if (revision < seen) continue;
            const key = event.kv.key.toString();
            const changes =
              event.type === 'Delete'
                ? mirror.delete(key)
                : this.#queueKeys(dir, [event.kv]).flatMap((k) => mirror.put(k));
            const atMs = Date.now();
            for (const [type, k] of changes) {
              const token = type === 'WAITER_ADDED' || type === 'WAITER_LEFT' ? 0n : k.createRevision;
              yield { type, name, owner: k.owner, fencingToken: token, mode: k.mode, atMs };
            }
            // etcd sends a revision's events in one response (unless it fragments huge ones,
            // which we do not ask for), so a resume from here misses none of them.
            next = revision + 1n;
          }
          continue;
        }
        if (broken) {
          closeStream();
          // A stream that broke again right away (etcd unreachable): not a busy loop.
          if (opened) await sleep(RETRY_MS, stop.signal);
          if (stop.signal.aborted) break;
          opened = true;
          broken = false;
          try {
            const opening = await this.#client.watchClient.watch();
            if (stop.signal.aborted) {
              opening.end();
              opening.cancel();
              break;
            }
            stream = opening;
            opening.on('data', (response: IWatchResponse) => {
              if (stream !== opening) return;
              responses.push(response);
              notify();
            });
            // The error listener stays for the stream's life: cancel() itself emits CANCELLED.
            const fail = () => {
              if (stream !== opening) return;
              broken = true;
              notify();
            };
            opening.on('error', fail);
            opening.on('end', fail);
            const create: IWatchCreateRequest = {
              key: Buffer.from(dir),
              range_end: prefixEnd(Buffer.from(dir)),
              start_revision: next.toString(),
            };
            opening.write({ create_request: create });
          } catch {
            broken = true;
          }
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      signal.removeEventListener('abort', onStop);
      this.#closing.signal.removeEventListener('abort', onStop);
      if (!stop.signal.aborted) stop.abort();
      closeStream();
    }
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

  /** A queue (oldest key first) as Describe and Watch's STATE show it. */
  async #stateOf(queue: readonly QueueKey[], signal: AbortSignal): Promise<LockState> {
    const granted = grantedCount(queue);
    const holders: HolderInfo[] = [];
    // A few lease reads at a time: a read lock can have many holders.
    for (let i = 0; i < granted; i += 16) {
      const batch = queue.slice(i, Math.min(granted, i + 16));
      holders.push(
        ...(await Promise.all(
          batch.map(async (k) => ({
            owner: k.owner,
            fencingToken: k.createRevision,
            expiresAtMs: await this.#expiresAt(k, signal),
            mode: k.mode,
          })),
        )),
      );
    }
    const first = holders[0];
    return {
      held: first !== undefined,
      owner: first?.owner ?? '',
      fencingToken: first?.fencingToken ?? 0n,
      expiresAtMs: first?.expiresAtMs ?? 0,
      waiters: queue.length - granted,
      holders,
      queue: queue.slice(granted).map((k) => ({ owner: k.owner, mode: k.mode })),
      limit: queueLimit(queue),
    };
  }

  /** The earliest a key's lease can expire (0: no lease; now: gone already). */
  async #expiresAt(key: QueueKey, signal: AbortSignal): Promise<number> {
    if (key.leaseDec === '0') return 0;
    const now = Date.now();
    const info = await this.#rpc("read a holder's lease", signal, () =>
      this.#client.leaseClient.leaseTimeToLive({ ID: key.leaseDec }),
    ).catch((err: unknown) => {
      if (err instanceof LeaseExpiredError) return { TTL: '-1' };
      throw err;
    });
    // etcd reports whole seconds left, rounded down: this is the earliest it can expire.
    return now + Math.max(0, Number(info.TTL)) * 1000;
  }

  // ---- acquire: mutex.go's Lock / TryLock -------------------------------------------------

  async #acquire({ name, ttlMs, waitMs, owner, mode, limit, signal }: AcquireOptions): Promise<Lease> {
    const waitUntil = Date.now() + waitMs;
    const dir = this.#dir(name);
    const me: KeyValueInfo = { owner, mode, limit: mode === 'SHARED' ? 1 : limit };
    // A plain lock is etcd's mutex exactly as before semaphores and read locks: it holds when
    // its key is the first, so the first page of the queue and its predecessor suffice.
    const plain = me.mode === 'EXCLUSIVE' && me.limit === 1;
    // A lease of our own (Session in mutex.go): the key, and so our place in the queue, dies
    // with it, which is what makes an abandoned lock free itself after its TTL.
    const grantedAt = Date.now();
    const grant = await this.#rpc(`acquire lock "${name}"`, undefined, () =>
      this.#client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000), ID: 0 }),
    );
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
      // A semaphore or shared request needs every key before its own to know its turn.
      const queuePage = plain ? this.#queueRange(dir, 'Ascend') : this.#queueRange(dir, 'Ascend', { limit: 0 });
      // mutex.go tryAcquire: put our key only if it does not exist yet (create revision 0);
      // else read it back (a retried call may have put it already). Either way fetch the
      // queue in the same transaction, so the uncontended path is one round trip.
      const txn = await this.#rpc(`acquire lock "${name}"`, undefined, () =>
        this.#client.kv.txn({
          compare: [{ key: ownKey, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [
            { request_put: { key: ownKey, value: encodeValue(me), lease: lease.dec } },
            { request_range: queuePage },
          ],
          failure: [{ request_range: { key: ownKey } }, { request_range: queuePage }],
        }),
      ).catch((err: unknown) => {
        // The put names a lease that is already gone: etcd took longer than the TTL.
        if (err instanceof LeaseExpiredError)
          throw new LockBusyError(
            `lock "${name}" not acquired: its ${lease.ttlS} s etcd lease expired before etcd queued it; retry, or use a longer ttl_ms`,
          );
        throw err;
      });
      const mine = txn.succeeded
        ? BigInt(txn.header.revision)
        : BigInt(txn.responses[0]!.response_range.kvs[0]!.create_revision);
      const page = txn.responses[1]!.response_range;
      let holders: readonly QueueKey[] = [];
      if (plain) {
        // The lowest create revision holds the lock; if that is ours, we have it.
        const holder = await this.#firstInQueue(dir, 'Ascend', {}, page);
        if (holder !== undefined && holder.createRevision !== mine) {
          const first = await this.#firstInQueue(
            dir,
            'Ascend',
            { maxCreate: mine - 1n },
            page,
            (k) => k.mode === 'EXCLUSIVE',
          );
          if (first !== undefined && first.limit !== 1) throw limitMismatch(name, first.limit, 1);
          holders = [holder];
        }
      } else {
        const ahead = this.#queueKeys(dir, page.kvs).filter((k) => k.createRevision < mine);
        const first = ahead.find((k) => k.mode === 'EXCLUSIVE');
        if (me.mode === 'EXCLUSIVE' && first !== undefined && first.limit !== me.limit)
          throw limitMismatch(name, first.limit, me.limit);
        const queue = [...ahead, { ...me, key, leaseDec: lease.dec, createRevision: mine }];
        if (grantedCount(queue) < queue.length) holders = ahead.slice(0, grantedCount(ahead));
      }
      let expiresAtMs = lease.grantedAt + lease.ttlS * 1000;
      if (holders.length > 0) {
        if (waitMs <= 0) {
          // TryLock: lost; take our key out of the queue (the finally below) and say who has it.
          throw new LockBusyError(
            `lock "${name}" is held by ${describeHolders(holders)}; not acquired (wait_ms = 0 tries once)`,
          );
        }
        expiresAtMs = await this.#waitTurn({ name, dir, key, me, lease, mine, waitUntil, waitMs, signal });
      }
      granted = true;
      return {
        name,
        leaseId: lease.hex,
        fencingToken: mine,
        expiresAtMs,
        ttlMs: lease.ttlS * 1000,
        owner,
        mode: me.mode,
        limit: me.limit,
      };
    } finally {
      // Not granted (lost try-once, refused limit, timeout, cancel, lost lease, shutdown,
      // etcd error): leave the queue before answering, so nobody waits behind a key whose
      // caller is gone and a Describe right after our answer does not count it.
      // NOTE: but wait for that LEAVE_WAIT_MS at most: with etcd unreachable each of its
      // calls is held for opTimeoutMs per endpoint, and the answer must not wait for them
      // (the key goes, or its lease runs out, after the answer; close() still waits for it).
      if (!granted) await this.#leaveQueue(key, lease.dec);
    }
  }

  /**
   * Waits until our key holds the lock (for a plain lock: every key before ours is gone,
   * key.go waitDeletes), keeping our lease alive meanwhile. Resolves with the lease's new
   * expiry once the lock is ours.
   */
  async #waitTurn(w: {
    name: string;
    dir: string;
    key: string;
    me: KeyValueInfo;
    lease: EtcdLease;
    mine: bigint;
    waitUntil: number;
    waitMs: number;
    signal: AbortSignal;
  }): Promise<number> {
    const { name, dir, key, me, lease, mine, signal } = w;
    const plain = me.mode === 'EXCLUSIVE' && me.limit === 1;
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
    const lost = (why: string) =>
      stop.abort(
        new LockBusyError(`lock "${name}" not acquired: the waiter's etcd lease ${lease.hex} ${why}; acquire again`),
      );
    const armExpiry = () => {
      clearTimeout(expiryTimer);
      expiryTimer = setTimeout(
        () => lost(`expired (etcd did not answer a keepalive for ${lease.ttlS} s)`),
        Math.max(0, expiresAtMs - Date.now()),
      );
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
        let turn: Turn;
        try {
          const check = plain
            ? this.#plainTurn(dir, key, mine)
            : this.#queueTurn(dir, key, { ...me, key, leaseDec: lease.dec, createRevision: mine });
          turn = await this.#raceStop(check, stop.signal);
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
        if (turn.granted) {
          stop.abort(null);
          // Restart the TTL at the grant, so the caller gets all of it.
          const { ttlS, sentAt } = await this.#keepAliveOnce(lease.dec, undefined);
          if (ttlS <= 0)
            throw new LockBusyError(
              `lock "${name}" not acquired: the waiter's etcd lease ${lease.hex} expired as the lock was handed over; acquire again`,
            );
          return sentAt + ttlS * 1000;
        }
        // Then re-check: a plain waiter's predecessor may have been a waiter that gave up
        // while others still precede us; a semaphore's re-read confirms its copy.
        await turn.wait(stop.signal);
      }
      const reason: unknown = stop.signal.reason;
      if (reason !== TIMED_OUT) throw reason;
      if (unavailable !== undefined) throw unavailable;
      const holders = await this.#holdersNow(dir, plain).catch(() => []);
      const held = holders.length === 0 ? 'not granted' : `still held by ${describeHolders(holders)}`;
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

  /**
   * A plain waiter's turn, in one consistent read: does our key still exist, and which key
   * comes right before it? None: ours is the lowest, the lock is ours.
   */
  async #plainTurn(dir: string, key: string, mine: bigint): Promise<Turn> {
    // key.go waitDeletes: the last key created before ours (max create revision mine - 1).
    const before = this.#queueRange(dir, 'Descend', { maxCreate: mine - 1n });
    const txn = await this.#rpc('wait for the lock', undefined, () =>
      this.#client.kv.txn({
        compare: [],
        success: [{ request_range: { key: Buffer.from(key), count_only: true } }, { request_range: before }],
      }),
    );
    const ownExists = Number(txn.responses[0]!.response_range.count) > 0;
    const predecessor = await this.#firstInQueue(
      dir,
      'Descend',
      { maxCreate: mine - 1n },
      txn.responses[1]!.response_range,
    );
    const revision = txn.header.revision;
    return {
      ownExists,
      granted: predecessor === undefined,
      // key.go waitDelete: watch only the key just before ours (no thundering herd: one
      // deletion wakes one waiter), from the revision we read it at, so a delete between
      // the read and the watch is not missed.
      wait: (stop) =>
        this.#watchUntil(
          { key: Buffer.from(predecessor!.key), start_revision: revision, filters: ['Noput'] },
          (res) => res.events.some((e) => e.type === 'Delete'),
          stop,
        ),
    };
  }

  /**
   * A SHARED or semaphore waiter's turn, in one consistent read: our key, and every key
   * before it, which grantedCount then judges.
   */
  async #queueTurn(dir: string, key: string, me: QueueKey): Promise<Turn> {
    const before = this.#queueRange(dir, 'Ascend', { maxCreate: me.createRevision - 1n, limit: 0 });
    const txn = await this.#rpc('wait for the lock', undefined, () =>
      this.#client.kv.txn({
        compare: [],
        success: [{ request_range: { key: Buffer.from(key), count_only: true } }, { request_range: before }],
      }),
    );
    const ownExists = Number(txn.responses[0]!.response_range.count) > 0;
    const ahead = this.#queueKeys(dir, txn.responses[1]!.response_range.kvs);
    const from = (BigInt(txn.header.revision) + 1n).toString();
    return {
      ownExists,
      granted: grantedCount([...ahead, me]) > ahead.length,
      // Any deletion before us may be the one that lets us in: follow them all from right
      // after the read, in a copy of the keys before us, and wake (to re-read) only when
      // that copy says the lock is ours, or when our own key goes.
      wait: (stop) => {
        const left = new Map(ahead.map((k) => [k.key, k]));
        const dirKey = Buffer.from(dir);
        return this.#watchUntil(
          { key: dirKey, range_end: prefixEnd(dirKey), start_revision: from, filters: ['Noput'] },
          (res) => {
            let changed = false;
            for (const event of res.events) {
              const gone = event.kv.key.toString();
              if (gone === key) return true;
              if (left.delete(gone)) changed = true;
            }
            return changed && grantedCount([...left.values(), me]) > left.size;
          },
          stop,
        );
      },
    };
  }

  /** Who holds the lock now, for a message (a plain lock: its first key; else the evaluated holders). */
  async #holdersNow(dir: string, plain: boolean): Promise<QueueKey[]> {
    if (plain) {
      const holder = await this.#firstInQueue(dir, 'Ascend', {});
      return holder === undefined ? [] : [holder];
    }
    const all = await this.#rpc('read the lock queue', undefined, () =>
      this.#client.kv.range(this.#queueRange(dir, 'Ascend', { limit: 0 })),
    );
    const queue = this.#queueKeys(dir, all.kvs);
    return queue.slice(0, grantedCount(queue));
  }

  /**
   * Resolves when `wakes` says so about a response of the watch `request`, or the watch
   * fails, or RECHECK_MS passes, or stop fires; the caller then re-reads.
   */
  async #watchUntil(
    request: IWatchCreateRequest,
    wakes: (res: IWatchResponse) => boolean,
    stop: AbortSignal,
  ): Promise<void> {
    if (stop.aborted) return;
    const stream = await this.#client.watchClient.watch().catch(() => undefined);
    if (stream === undefined) return sleep(RETRY_MS, stop);
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
        if (wakes(res)) done(false);
      });
      // The error listener stays for the stream's life: cancel() itself emits CANCELLED.
      watch.on('error', () => done(true));
      watch.on('end', () => done(true));
      watch.write({ create_request: request });
    });
  }

  // ---- refresh / release helpers ------------------------------------------------------------

  /** The queue key of `leaseId` on lock `name` if it holds the lock; else the precise refusal. */
  async #holder(name: string, leaseId: string, what: 'refresh' | 'release', signal: AbortSignal): Promise<QueueKey> {
    if (!LEASE_HEX.test(leaseId)) {
      throw new NotHolderError(
        `lease ${leaseId} does not hold lock "${name}": etcd lease ids are lowercase hex; send the lease_id that Acquire returned`,
      );
    }
    const dir = this.#dir(name);
    const key = dir + leaseId;
    const firstPage = this.#queueRange(dir, 'Ascend');
    const txn = await this.#rpc(what, signal, () =>
      this.#client.kv.txn({
        compare: [],
        success: [{ request_range: { key: Buffer.from(key) } }, { request_range: firstPage }],
      }),
    );
    const own = this.#queueKeys(dir, txn.responses[0]!.response_range.kvs)[0];
    let holders: readonly QueueKey[];
    if (own === undefined || (own.mode === 'EXCLUSIVE' && own.limit === 1)) {
      // A plain lock holds when its key is the first.
      const holder = await this.#firstInQueue(dir, 'Ascend', {}, txn.responses[1]!.response_range);
      if (own !== undefined && holder?.key === own.key) return own;
      holders = holder === undefined ? [] : [holder];
    } else {
      // Anything else is judged on every key before it.
      const before = this.#queueRange(dir, 'Ascend', { maxCreate: own.createRevision - 1n, limit: 0 });
      const ahead = this.#queueKeys(dir, (await this.#rpc(what, signal, () => this.#client.kv.range(before))).kvs);
      if (grantedCount([...ahead, own]) > ahead.length) return own;
      holders = ahead.slice(0, grantedCount(ahead));
    }
    const current = holders.length === 0 ? 'it is not held' : `it is held by ${describeHolders(holders)}`;
    if (own !== undefined) {
      // A waiter's lease (e.g. a latchkey or etcdctl waiter): it is queued, not holding.
      throw new NotHolderError(`lease ${leaseId} is waiting for lock "${name}", not holding it: ${current}`);
    }
    const info = await this.#rpc(what, signal, () =>
      this.#client.leaseClient.leaseTimeToLive({ ID: hexToDec(leaseId) }),
    ).catch((err: unknown) => {
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
            stream.on('end', () =>
              reject(new GRPCUnavailableError('etcd closed the keepalive stream without answering')),
            );
            stream.write({ ID: leaseDec });
          });
        });
        return { ttlS, sentAt };
      } catch (err) {
        if (attempt >= this.#hostCount || !(err instanceof BackendUnavailableError) || signal?.aborted) throw err;
      }
    }
  }

  /** #dropKey, awaited for LEAVE_WAIT_MS at most; the rest goes on in the background, tracked for close(). */
  async #leaveQueue(key: string, leaseDec: string): Promise<void> {
    const leaving = this.#dropKey(key, leaseDec);
    this.#inflight.add(leaving);
    void leaving.then(() => this.#inflight.delete(leaving));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([leaving, new Promise<void>((resolve) => (timer = setTimeout(resolve, LEAVE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** Takes a key out of the queue and frees its lease (best effort: a failure leaves it to the TTL). */
  async #dropKey(key: string, leaseDec: string): Promise<void> {
    // Deleting the key is what frees the successor; revoking the lease would delete it too,
    // but the key goes first so that a failed revoke cannot leave it queued.
    await this.#rpc('leave the queue', undefined, () => this.#client.kv.deleteRange({ key: Buffer.from(key) })).catch(
      () => {},
    );
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
  #queueRange(
    dir: string,
    order: 'Ascend' | 'Descend',
    bounds: { minCreate?: bigint; maxCreate?: bigint; limit?: number } = {},
  ): IRangeRequest {
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
      keys.push({ key, leaseDec: kv.lease, createRevision: BigInt(kv.create_revision), ...decodeValue(kv.value) });
    }
    return keys;
  }

  /**
   * The first key of our layout in `order` within `bounds` that `match`es, paging past other
   * locks' keys (see #queueKeys). `page`, if given, is the first page of that search, or a
   * wider one (ascending from the queue's start: keys past maxCreate are skipped).
   */
  async #firstInQueue(
    dir: string,
    order: 'Ascend' | 'Descend',
    bounds: { maxCreate?: bigint },
    page?: IRangeResponse,
    match: (key: QueueKey) => boolean = () => true,
  ): Promise<QueueKey | undefined> {
    let next: { minCreate?: bigint; maxCreate?: bigint } = bounds;
    const within = (k: QueueKey) => bounds.maxCreate === undefined || k.createRevision <= bounds.maxCreate;
    for (;;) {
      const range = this.#queueRange(dir, order, next);
      page ??= await this.#rpc('read the lock queue', undefined, () => this.#client.kv.range(range));
      const first = this.#queueKeys(dir, page.kvs).find((k) => within(k) && match(k));
      if (first !== undefined || !page.more || page.kvs.length === 0) return first;
      const edge = BigInt(page.kvs.at(-1)!.create_revision);
      if (order === 'Ascend' && bounds.maxCreate !== undefined && edge >= bounds.maxCreate) return undefined;
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
    const reason = () =>
      signal.reason instanceof LatchkeyError ? signal.reason : new CancelledError('call cancelled');
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
    if (err instanceof ClientClosedError)
      return new ShuttingDownError(`server is shutting down (its etcd client is closed); retry on another server`, {
        cause: err,
      });
    if (err instanceof EtcdLeaseInvalidError)
      return new LeaseExpiredError(`etcd lease not found (${what})`, { cause: err });
    // Transport failures (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, "no leader", ...): etcd3
    // marks exactly these recoverable.
    if (err instanceof Error && isRecoverableError(err)) {
      return new BackendUnavailableError(
        `etcd at ${this.#endpoints} is unavailable (${what}): ${err.message}; retry when it is back`,
        { cause: err },
      );
    }
    return err;
  }

  #throwIfClosed(): void {
    if (this.#closing.signal.aborted) throw new ShuttingDownError('server is shutting down; retry on another server');
  }
}
