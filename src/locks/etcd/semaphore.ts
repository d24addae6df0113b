// The queue recipe for every request that is not a plain lock: a semaphore (EXCLUSIVE with
// limit N > 1) and a read lock (SHARED), on the plain lock's key layout and create-revision
// order (Curator's and etcd's recipes). Whether a key holds is grantedCount over every key
// before it (layout.ts), so a request reads the whole queue with its put.
// Waiting: any deletion before the key may be the one that lets it in, so a waiter watches
// the deletes under the lock's prefix, keeps the keys before it in memory, and re-reads the
// queue only when that copy says its turn has come: every release reaches every such waiter
// as a watch event, but costs no reads.
import { grantedCount, limitMismatch, prefixEnd } from './layout.js';
import type { LockRecipe } from './recipe.js';

export const semaphoreRecipe: LockRecipe = {
  putRange: (queue) => queue.whole(),

  async holdersAfterPut(queue, own, page) {
    const ahead = queue.keysOf(page).filter((k) => k.createRevision < own.createRevision);
    const firstExclusive = ahead.find((k) => k.mode === 'EXCLUSIVE');
    if (own.mode === 'EXCLUSIVE' && firstExclusive !== undefined && firstExclusive.limit !== own.limit)
      throw limitMismatch(queue.name, firstExclusive.limit, own.limit);
    if (grantedCount([...ahead, own]) > ahead.length) return [];
    return ahead.slice(0, grantedCount(ahead));
  },

  async holdCheck(queue, own, _firstPage, what, signal) {
    const ahead = queue.keysOf(await queue.read(what, queue.whole({ maxCreate: own.createRevision - 1n }), signal));
    if (grantedCount([...ahead, own]) > ahead.length) return { holds: true };
    return { holds: false, holders: ahead.slice(0, grantedCount(ahead)) };
  },

  async check(queue, own) {
    const { pages, revision } = await queue.readTogether('wait for the lock', [
      { key: Buffer.from(own.key), count_only: true },
      queue.whole({ maxCreate: own.createRevision - 1n }),
    ]);
    const ahead = queue.keysOf(pages[1]!);
    return {
      ownKeyExists: Number(pages[0]!.count) > 0,
      holds: grantedCount([...ahead, own]) > ahead.length,
      // Follow every deletion under the lock from right after the read, in a copy of the keys
      // before ours, and wake (to re-read) only when that copy says the lock is ours, or
      // when our own key goes.
      waitForChange: (stop) => {
        const stillAhead = new Map(ahead.map((k) => [k.key, k]));
        const keyPrefix = Buffer.from(queue.keyPrefix);
        return queue.waitForChange(
          {
            key: keyPrefix,
            range_end: prefixEnd(keyPrefix),
            start_revision: (revision + 1n).toString(),
            filters: ['Noput'],
          },
          (res) => {
            let changed = false;
            for (const event of res.events) {
              const gone = event.kv.key.toString();
              if (gone === own.key) return true;
              if (stillAhead.delete(gone)) changed = true;
            }
            return changed && grantedCount([...stillAhead.values(), own]) > stillAhead.size;
          },
          stop,
        );
      },
    };
  },

  async holdersNow(queue) {
    const { keys } = await queue.readAll('read the lock queue');
    return keys.slice(0, grantedCount(keys));
  },
};
