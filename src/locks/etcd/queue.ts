// Reading one lock's queue from etcd: range requests in create-revision order, the paging
// past other locks' keys, the state Describe and Watch show, and waiting for a change to it
// (key.go's waitDelete / waitDeletes). The recipes (mutex.ts, semaphore.ts) decide what to
// read; this file knows how.
import type { IRangeRequest, IRangeResponse, IWatchCreateRequest, IWatchResponse } from 'etcd3';
import type { HolderInfo, LockState } from '../backend.js';
import { type EtcdConnection, RETRY_MS } from './connection.js';
import { grantedCount, prefixEnd, type QueueKey, queueKeysOf, queueLimit, queuePrefixOf } from './layout.js';

/** Keys per range page while looking for the first key of our layout (see first()). */
const PAGE = 16;
/** Lease reads at a time for Describe: a read lock can have many holders. */
const LEASE_READS = 16;
/**
 * A waiter re-checks its turn at least this often even without a watch event.
 * NOTE: insurance only. The watch is what hands the lock over; the re-check bounds the
 * damage if an event were ever lost (a stream that died silently, a library bug).
 */
const RECHECK_MS = 10_000;

export interface CreateBounds {
  readonly minCreate?: bigint;
  readonly maxCreate?: bigint;
  /** Keys per page; 0 = every key. Default PAGE. */
  readonly limit?: number;
}

/** The queue of lock `name`: every key under prefix + name + '/' in our layout. */
export class LockQueue {
  readonly name: string;
  /** prefix + name + '/': where the lock's keys live. */
  readonly keyPrefix: string;
  readonly conn: EtcdConnection;

  constructor(conn: EtcdConnection, prefix: string, name: string) {
    this.conn = conn;
    this.name = name;
    this.keyPrefix = queuePrefixOf(prefix, name);
  }

  /** The own key of an etcd lease (hex lease id) in this queue. */
  ownKey(leaseId: string): string {
    return this.keyPrefix + leaseId;
  }

  /** A range over the queue, by create revision. */
  range(order: 'Ascend' | 'Descend', bounds: CreateBounds = {}): IRangeRequest {
    const key = Buffer.from(this.keyPrefix);
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

  /** The range over every key of the queue. */
  whole(bounds: Omit<CreateBounds, 'limit'> = {}): IRangeRequest {
    return this.range('Ascend', { ...bounds, limit: 0 });
  }

  keysOf(response: Pick<IRangeResponse, 'kvs'>): QueueKey[] {
    return queueKeysOf(this.keyPrefix, response.kvs);
  }

  /** One range read. */
  read(what: string, range: IRangeRequest, signal?: AbortSignal): Promise<IRangeResponse> {
    return this.conn.call(what, signal, (client) => client.kv.range(range));
  }

  /** Every key of the queue, oldest first, and the revision they were read at. */
  async readAll(what: string, signal?: AbortSignal): Promise<{ keys: QueueKey[]; revision: bigint }> {
    const all = await this.read(what, this.whole(), signal);
    return { keys: this.keysOf(all), revision: BigInt(all.header.revision) };
  }

  /** Several ranges in one consistent read (one transaction), and the revision it was at. */
  async readTogether(
    what: string,
    ranges: readonly IRangeRequest[],
    signal?: AbortSignal,
  ): Promise<{ pages: IRangeResponse[]; revision: bigint }> {
    const txn = await this.conn.call(what, signal, (client) =>
      client.kv.txn({ compare: [], success: ranges.map((range) => ({ request_range: range })) }),
    );
    return { pages: txn.responses.map((r) => r.response_range), revision: BigInt(txn.header.revision) };
  }

  /**
   * The first key of our layout in `order` within `bounds` that `match`es, paging past other
   * locks' keys (see queueKeysOf). `page`, if given, is the first page of that search, or a
   * wider one (ascending from the queue's start: keys past maxCreate are skipped).
   */
  async first(
    order: 'Ascend' | 'Descend',
    bounds: { maxCreate?: bigint },
    page?: IRangeResponse,
    match: (key: QueueKey) => boolean = () => true,
  ): Promise<QueueKey | undefined> {
    let next: CreateBounds = bounds;
    const within = (k: QueueKey) => bounds.maxCreate === undefined || k.createRevision <= bounds.maxCreate;
    for (;;) {
      const range = this.range(order, next);
      page ??= await this.conn.call('read the lock queue', undefined, (client) => client.kv.range(range));
      const found = this.keysOf(page).find((k) => within(k) && match(k));
      if (found !== undefined || !page.more || page.kvs.length === 0) return found;
      const edge = BigInt(page.kvs.at(-1)!.create_revision);
      if (order === 'Ascend' && bounds.maxCreate !== undefined && edge >= bounds.maxCreate) return undefined;
      next = order === 'Ascend' ? { ...next, minCreate: edge + 1n } : { ...next, maxCreate: edge - 1n };
      page = undefined;
    }
  }

  /** A queue (oldest key first) as Describe and Watch's STATE show it. */
  async stateOf(keys: readonly QueueKey[], signal: AbortSignal): Promise<LockState> {
    const granted = grantedCount(keys);
    const holders: HolderInfo[] = [];
    for (let i = 0; i < granted; i += LEASE_READS) {
      const batch = keys.slice(i, Math.min(granted, i + LEASE_READS));
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
    const head = holders[0];
    return {
      held: head !== undefined,
      owner: head?.owner ?? '',
      fencingToken: head?.fencingToken ?? 0n,
      expiresAtMs: head?.expiresAtMs ?? 0,
      waiters: keys.length - granted,
      holders,
      queue: keys.slice(granted).map((k) => ({ owner: k.owner, mode: k.mode })),
      limit: queueLimit(keys),
    };
  }

  /** The earliest a key's lease can expire (0: no lease; now: gone already). */
  async #expiresAt(key: QueueKey, signal: AbortSignal): Promise<number> {
    if (key.leaseDec === '0') return 0;
    const now = this.conn.clock.now();
    const info = await this.conn.timeToLive("read a holder's lease", key.leaseDec, signal);
    // etcd reports whole seconds left, rounded down: this is the earliest it can expire.
    return now + Math.max(0, Number(info.TTL)) * 1000;
  }

  /**
   * Resolves when `wakes` says so about a response of the watch `request`, or the watch
   * fails, or RECHECK_MS passes, or stop fires; the caller then re-reads.
   */
  async waitForChange(
    request: IWatchCreateRequest,
    wakes: (res: IWatchResponse) => boolean,
    stop: AbortSignal,
  ): Promise<void> {
    if (stop.aborted) return;
    const conn = this.conn;
    const stream = await conn.client.watchClient.watch().catch(() => undefined);
    if (stream === undefined) return conn.sleep(RETRY_MS, stop);
    const watch = stream;
    await new Promise<void>((resolve) => {
      let settled = false;
      const recheck = conn.clock.schedule(RECHECK_MS, () => done(false));
      function done(failed: boolean) {
        if (settled) return;
        settled = true;
        recheck.cancel();
        stop.removeEventListener('abort', onStop);
        // NOTE: end() before cancel(). etcd3 reports an error on a still-writable stream as a
        // host failure (it resets all of that host's connections); our own CANCELLED is not one.
        watch.end();
        watch.cancel();
        // A failed stream (etcd gone): pause before the caller re-checks, so an outage is
        // not a busy loop.
        if (failed && !stop.aborted) void conn.sleep(RETRY_MS, stop).then(resolve);
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
}
