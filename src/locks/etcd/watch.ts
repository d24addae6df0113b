// Watch on the etcd backend: one range read of the queue at revision R (the STATE event),
// then an etcd watch of prefix + name + '/' from R + 1, so events follow the snapshot with no
// gap, from whichever server made them. A put is WAITER_ADDED (or ACQUIRED if the key holds
// at once); a delete is RELEASED for a holder and WAITER_LEFT for a waiter, followed by
// ACQUIRED for each key the deletion let in. NOTE: etcd deletes an expired lease's keys as if
// they were released, so a TTL that ran out is reported as RELEASED (never EXPIRED); and a
// try-once that lost, or a request refused for its limit, shows as WAITER_ADDED then
// WAITER_LEFT, as its key briefly queued.
//
// Why not etcd3's resuming Watcher (client.watch()…create()): it would resume from the last
// revision as this does, but (1) it throws ClientRuntimeError from inside stream callbacks
// on a response it cannot match to a watcher (a race with detach), which here would be an
// uncaught exception in the server; (2) on a stream error it cancel()s a still-writable
// stream, which etcd3 counts as a host failure and answers by resetting every connection to
// that host (see the end()-before-cancel() NOTE in prefix-watch.ts); (3) it multiplexes every watcher on
// one stream, so one stalled member stalls every Watch and waiter; (4) its reconnects follow
// its own backoff, not the caller's signal. One stream per Watch, reopened by prefix-watch.ts,
// has none of that.
import type { LockEvent, LockEventType, LockState } from '../backend.js';
import { grantedCount, type QueueKey } from './layout.js';
import { watchPrefix } from './prefix-watch.js';
import type { LockQueue } from './queue.js';

type QueueChange = readonly [LockEventType, QueueKey];

const byCreateRevision = (a: QueueKey, b: QueueKey) =>
  a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0;

/**
 * The queue of one lock as a Watch follows it: its keys in create-revision order, and the
 * events each change makes. Grants are recomputed with grantedCount after every change.
 */
export class QueueMirror {
  #keys: QueueKey[];
  /** The keys that hold the lock, as last reported. */
  #holding: Set<string>;

  constructor(keys: readonly QueueKey[]) {
    this.#keys = [...keys].sort(byCreateRevision);
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

/** The events of lock `queue.name` from now on, until signal aborts or the connection closes. */
export async function* watchQueue(queue: LockQueue, signal: AbortSignal): AsyncIterable<LockEvent> {
  const { conn, name } = queue;
  let snapshot: { keys: QueueKey[]; revision: bigint };
  let state: LockState;
  try {
    snapshot = await queue.readAll(`watch lock "${name}"`, signal);
    state = await queue.stateOf(snapshot.keys, signal);
  } catch (err) {
    // The caller went away, or close() was called: the iteration just ends.
    if (signal.aborted || conn.closing.aborted) return;
    throw err;
  }
  const mirror = new QueueMirror(snapshot.keys);
  yield { type: 'STATE', name, owner: '', fencingToken: 0n, mode: 'EXCLUSIVE', atMs: conn.clock.now(), state };
  // From the snapshot's revision on, without a gap (a compacted one ends the watch: the
  // caller watches again and gets a fresh STATE).
  for await (const { events } of watchPrefix(
    conn,
    queue.keyPrefix,
    snapshot.revision + 1n,
    signal,
    `watch of lock "${name}"`,
    'watch again',
  )) {
    for (const event of events) {
      const changes =
        event.type === 'Delete'
          ? mirror.delete(event.kv.key.toString())
          : queue.keysOf({ kvs: [event.kv] }).flatMap((k) => mirror.put(k));
      const atMs = conn.clock.now();
      for (const [type, k] of changes) {
        const token = type === 'WAITER_ADDED' || type === 'WAITER_LEFT' ? 0n : k.createRevision;
        yield { type, name, owner: k.owner, fencingToken: token, mode: k.mode, atMs };
      }
    }
  }
}
