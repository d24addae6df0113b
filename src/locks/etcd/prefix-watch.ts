// Following every change under one key prefix from a revision on, without a gap: one etcd
// watch stream of our own, reopened from the next revision when it breaks, with what a
// reopened stream repeats skipped. Changes come one revision at a time (a transaction, or a
// revoked lease's keys, is one revision with several events). Lock Watch (watch.ts) and
// election Observe read it; the reasons for one stream per follower rather than etcd3's
// Watcher are given at the top of watch.ts.
import type { IEvent, IWatchCreateRequest, IWatchResponse } from 'etcd3';
import { BackendUnavailableError } from '../../errors.js';
import { type EtcdConnection, RETRY_MS } from './connection.js';
import { prefixEnd } from './layout.js';

type WatchStream = Awaited<ReturnType<EtcdConnection['client']['watchClient']['watch']>>;

/** One revision's changes under the prefix, in etcd's order. */
export interface RevisionChanges {
  readonly revision: bigint;
  readonly events: readonly IEvent[];
}

/**
 * The changes under `keyPrefix` from revision `from` on, until `stop` aborts or the
 * connection closes (the iteration then ends). Throws BackendUnavailableError if etcd has
 * compacted `from` away (the caller reads a fresh snapshot and follows again), naming `what`
 * and saying to `retry` ("watch again").
 */
export async function* watchPrefix(
  conn: EtcdConnection,
  keyPrefix: string,
  from: bigint,
  stop: AbortSignal,
  what: string,
  retry = 'follow again',
): AsyncIterable<RevisionChanges> {
  const ended = new AbortController();
  const onStop = () => ended.abort();
  stop.addEventListener('abort', onStop, { once: true });
  conn.closing.addEventListener('abort', onStop, { once: true });
  if (stop.aborted || conn.closing.aborted) ended.abort();

  const responses: IWatchResponse[] = [];
  let wake: (() => void) | undefined;
  const notify = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  let stream: WatchStream | undefined;
  let broken = true;
  const closeStream = () => {
    const current = stream;
    stream = undefined;
    if (current === undefined) return;
    // NOTE: end() before cancel(). etcd3 reports an error on a still-writable stream as a
    // host failure (it resets all of that host's connections); our own CANCELLED is not one.
    current.end();
    current.cancel();
  };
  ended.signal.addEventListener(
    'abort',
    () => {
      closeStream();
      notify();
    },
    { once: true },
  );

  /** The first revision not yet handed out. */
  let next = from;
  try {
    let opened = false;
    while (!ended.signal.aborted) {
      const res = responses.shift();
      if (res !== undefined) {
        if (res.canceled) {
          // NOTE: a compacted start revision cannot be resumed without a gap; the caller
          // starts again from a fresh snapshot. Any other cancel is resumed below.
          if (res.compact_revision !== undefined && BigInt(res.compact_revision) > 0n)
            throw new BackendUnavailableError(
              `${what} fell behind: etcd compacted its history up to revision ${res.compact_revision}; ${retry} for a fresh state`,
            );
          broken = true;
          continue;
        }
        // A resumed stream may repeat what the broken one delivered; etcd sends one revision's
        // events in one response (we ask for no fragmenting), so whole revisions are skipped.
        let batch: IEvent[] = [];
        let batchRevision = -1n;
        for (const event of res.events) {
          const revision = BigInt(event.kv.mod_revision);
          if (revision < next) continue;
          if (revision !== batchRevision && batch.length > 0) {
            yield { revision: batchRevision, events: batch };
            next = batchRevision + 1n;
            batch = [];
          }
          batchRevision = revision;
          batch.push(event);
        }
        if (batch.length > 0) {
          yield { revision: batchRevision, events: batch };
          next = batchRevision + 1n;
        }
        continue;
      }
      if (broken) {
        closeStream();
        // A stream that broke again right away (etcd unreachable): not a busy loop.
        if (opened) await conn.sleep(RETRY_MS, ended.signal);
        if (ended.signal.aborted) break;
        opened = true;
        broken = false;
        try {
          const opening = await conn.client.watchClient.watch();
          if (ended.signal.aborted) {
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
          const key = Buffer.from(keyPrefix);
          const create: IWatchCreateRequest = { key, range_end: prefixEnd(key), start_revision: next.toString() };
          opening.write({ create_request: create });
        } catch {
          broken = true;
        }
        continue;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stop.removeEventListener('abort', onStop);
    conn.closing.removeEventListener('abort', onStop);
    if (!ended.signal.aborted) ended.abort();
    closeStream();
  }
}
