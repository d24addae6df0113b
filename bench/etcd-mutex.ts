// Baseline: etcd's mutex recipe (client/v3/concurrency/mutex.go, as `etcdctl lock` runs it)
// driven directly with etcd3, in the same key layout as src/locks/etcd/layout.ts:
//   key = prefix + name + '/' + hex lease id, attached to the lease
// lock:   one txn puts the own key (if absent) and reads the lowest create revision under
//         the lock's prefix; ours is lowest → held. Otherwise watch the key just before ours
//         until it is deleted, and look again.
// unlock: delete the own key.
// The lease is a session's: granted once per session and reused for every lock, as a Go
// concurrency.Session does; `perLockLease` grants and revokes one per cycle instead, the way
// one `etcdctl lock` process does. No fencing, no error translation, no cancellation: the
// bare recipe, as a ceiling for latchkey's etcd backend.
import { Etcd3, type IRangeRequest } from 'etcd3';

const prefixEnd = (prefix: string): Buffer => {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  return end;
};

export class DirectEtcdMutex {
  readonly #client: Etcd3;
  readonly #prefix: string;
  readonly #perLockLease: boolean;
  /** One session lease per worker: a worker is one contender, like one Go process. */
  readonly #sessions = new Map<number, Promise<{ dec: string; hex: string }>>();

  constructor(endpoints: string, options: { prefix: string; perLockLease?: boolean }) {
    this.#client = new Etcd3({ hosts: endpoints.split(',') });
    this.#prefix = options.prefix;
    this.#perLockLease = options.perLockLease ?? false;
  }

  async #lease(): Promise<{ dec: string; hex: string }> {
    const grant = await this.#client.leaseClient.leaseGrant({ TTL: 600, ID: 0 });
    return { dec: grant.ID, hex: BigInt(grant.ID).toString(16) };
  }

  #queue(dir: string, order: 'Ascend' | 'Descend', maxCreate = '0'): IRangeRequest {
    return {
      key: Buffer.from(dir),
      range_end: prefixEnd(dir),
      sort_target: 'Create',
      sort_order: order,
      limit: 1,
      max_create_revision: maxCreate,
    };
  }

  /** Resolves once `worker`'s session holds lock `name`; returns what unlock() needs. */
  async lock(name: string, worker: number): Promise<{ key: string; leaseDec: string }> {
    let session = this.#sessions.get(worker);
    if (session === undefined && !this.#perLockLease) this.#sessions.set(worker, (session = this.#lease()));
    const lease = await (session ?? this.#lease());
    const dir = `${this.#prefix}${name}/`;
    const key = dir + lease.hex;
    const own = Buffer.from(key);
    const txn = await this.#client.kv.txn({
      compare: [{ key: own, target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [
        { request_put: { key: own, value: Buffer.alloc(0), lease: lease.dec } },
        { request_range: this.#queue(dir, 'Ascend') },
      ],
      failure: [{ request_range: { key: own } }, { request_range: this.#queue(dir, 'Ascend') }],
    });
    const mine = txn.succeeded
      ? BigInt(txn.header.revision)
      : BigInt(txn.responses[0]!.response_range.kvs[0]!.create_revision);
    let first = txn.responses[1]!.response_range.kvs[0];
    if (first !== undefined && BigInt(first.create_revision) !== mine) {
      // key.go waitDeletes: wait for the key just before ours, until none is left.
      for (;;) {
        const before = await this.#client.kv.range(this.#queue(dir, 'Descend', (mine - 1n).toString()));
        first = before.kvs[0];
        if (first === undefined) break;
        const watcher = await this.#client
          .watch()
          .key(first.key.toString())
          .startRevision(before.header.revision)
          .only('delete')
          .create();
        await new Promise<void>((resolve) => {
          watcher.once('delete', () => resolve());
          watcher.once('error', () => resolve());
        });
        await watcher.cancel();
      }
    }
    return { key, leaseDec: lease.dec };
  }

  async unlock(held: { key: string; leaseDec: string }): Promise<void> {
    await this.#client.kv.deleteRange({ key: Buffer.from(held.key) });
    if (this.#perLockLease) await this.#client.leaseClient.leaseRevoke({ ID: held.leaseDec });
  }

  async close(): Promise<void> {
    for (const session of this.#sessions.values())
      await this.#client.leaseClient.leaseRevoke({ ID: (await session).dec }).catch(() => {});
    this.#client.close();
  }
}
