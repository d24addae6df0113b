// The plain lock (EXCLUSIVE, limit 1): etcd's mutex recipe (client/v3/concurrency/mutex.go,
// key.go), the one `etcdctl lock` runs, so the two contend for the same locks. The key with
// the lowest create revision holds the lock; a waiter watches only the key just before its
// own (key.go waitDeletes: one deletion wakes one waiter, no thundering herd), and looks
// again when it goes, since that key may have been a waiter that gave up while others still
// precede it.
import { limitMismatch } from './layout.js';
import type { LockRecipe } from './recipe.js';

export const mutexRecipe: LockRecipe = {
  // The first page suffices: the lock holds when its key is the first.
  putRange: (queue) => queue.range('Ascend'),

  async holdersAfterPut(queue, own, page) {
    const holder = await queue.first('Ascend', {}, page);
    if (holder === undefined || holder.createRevision === own.createRevision) return [];
    // A semaphore of another limit is in force: a plain request is one of limit 1.
    const firstExclusive = await queue.first(
      'Ascend',
      { maxCreate: own.createRevision - 1n },
      page,
      (k) => k.mode === 'EXCLUSIVE',
    );
    if (firstExclusive !== undefined && firstExclusive.limit !== 1)
      throw limitMismatch(queue.name, firstExclusive.limit, 1);
    return [holder];
  },

  async holdCheck(queue, own, firstPage) {
    const holder = await queue.first('Ascend', {}, firstPage);
    if (holder?.key === own.key) return { holds: true };
    return { holds: false, holders: holder === undefined ? [] : [holder] };
  },

  async check(queue, own) {
    // key.go waitDeletes: the last key created before ours (max create revision ours - 1),
    // read together with our own key.
    const bounds = { maxCreate: own.createRevision - 1n };
    const { pages, revision } = await queue.readTogether('wait for the lock', [
      { key: Buffer.from(own.key), count_only: true },
      queue.range('Descend', bounds),
    ]);
    const predecessor = await queue.first('Descend', bounds, pages[1]!);
    return {
      ownKeyExists: Number(pages[0]!.count) > 0,
      holds: predecessor === undefined,
      // key.go waitDelete: watch the predecessor from the revision we read it at, so a
      // delete between the read and the watch is not missed.
      waitForChange: (stop) =>
        queue.waitForChange(
          { key: Buffer.from(predecessor!.key), start_revision: revision.toString(), filters: ['Noput'] },
          (res) => res.events.some((e) => e.type === 'Delete'),
          stop,
        ),
    };
  },

  async holdersNow(queue) {
    const holder = await queue.first('Ascend', {});
    return holder === undefined ? [] : [holder];
  },
};
