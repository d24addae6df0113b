// Group commit for the lock path's writes: the transactions that put an own key (acquire) or
// delete one (release) in one turn of the event loop go to etcd as one Txn, so a server
// serving many locks at once pays one etcd round trip, one raft entry and one fsync for all
// of them instead of one each. A transaction alone in its turn goes as it is: the same Txn,
// the same etcd call, as without the batch.
//
// A batch is the conjunction of its members' compares and the concatenation of their
// success ops; every member's compare guards only its own keys, so in the usual case (all
// hold) the batch does exactly what the members would have done one by one. When any
// compare fails, etcd applies nothing and each member runs again as its own Txn (with its
// own failure branch), which is what it would have met alone; so does each member of a
// batch etcd refused unapplied for what may be one member's fault.
//
// NOTE: what must never share a batch, since one Txn writes at one revision:
// - two writes to one lock's queue: two own keys put together would have one create
//   revision, and the mutex recipe (lowest create revision holds) would grant both;
// - two own keys of one lease whose lock ids would be equal (layout.ts sessionLockIdOf:
//   lease, create revision and a digest of the name).
// A member names these as its `conflicts`; a member that conflicts with the batch being
// gathered goes into another one, sent in the same turn (two Txns etcd orders as it would
// any two calls).
// A batch is one etcd request, so one span (tracing.ts), in the trace of the member whose
// submit scheduled the flush.
import type { ITxnRequest, ITxnResponse } from 'etcd3';

/**
 * etcd's --max-txn-ops default is 128 per branch; a batch stays well under it. An etcd started
 * with a lower limit refuses bigger batches (InvalidArgument): each member then runs alone,
 * correct but a round trip slower.
 */
const MAX_OPS = 96;

export interface TxnMember {
  readonly request: ITxnRequest;
  /** Keys of what must not share a batch with another member naming one of them (see the top). */
  readonly conflicts: readonly string[];
}

interface Pending extends TxnMember {
  resolve(txn: ITxnResponse): void;
  reject(err: unknown): void;
}

/** Runs one Txn against etcd; its errors are etcd3's (each member's caller translates them). */
export type SendTxn = (request: ITxnRequest) => Promise<ITxnResponse>;

/**
 * Gathers the Txns submitted in one turn and sends them as few Txns as the conflicts allow.
 *
 * @example
 * const batch = new TxnBatcher((req) => etcd.kv.txn(req), (err) => err instanceof EtcdLeaseInvalidError);
 * const [a, b] = await Promise.all([batch.submit(putA), batch.submit(putB)]); // one Txn
 */
export class TxnBatcher {
  readonly #send: SendTxn;
  /**
   * Whether etcd refused a batch without applying any of it, for what may be one member's
   * fault (a lease gone, an argument it takes for invalid): each member then runs alone.
   */
  readonly #refusedUnapplied: (err: unknown) => boolean;
  #pending: Pending[] = [];

  constructor(send: SendTxn, refusedUnapplied: (err: unknown) => boolean) {
    this.#send = send;
    this.#refusedUnapplied = refusedUnapplied;
  }

  submit(member: TxnMember): Promise<ITxnResponse> {
    return new Promise<ITxnResponse>((resolve, reject) => {
      // NOTE: setImmediate, not a microtask: the ops of one incoming frame (and of every frame
      // read in the same poll) reach here after a few awaits each; the check phase comes right
      // after the poll, so a lone write waits for nothing but the callbacks already due.
      if (this.#pending.length === 0) setImmediate(() => this.#flush());
      this.#pending.push({ ...member, resolve, reject });
    });
  }

  #flush(): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const batch of partition(pending)) {
      if (batch.length === 1) this.#alone(batch[0]!);
      else void this.#together(batch);
    }
  }

  #alone(member: Pending): void {
    this.#send(member.request).then(member.resolve, member.reject);
  }

  async #together(batch: readonly Pending[]): Promise<void> {
    let txn: ITxnResponse;
    try {
      txn = await this.#send({
        compare: batch.flatMap((m) => m.request.compare ?? []),
        success: batch.flatMap((m) => m.request.success ?? []),
      });
    } catch (err) {
      // A refusal that may be one member's fault, with nothing applied: each runs alone for
      // its own answer. NOTE: any other failure (etcd unreachable, a timeout, a lost leader)
      // fails every member with it, never sent again: the batch may have been applied, and a
      // release sent again would find its key gone. A call alone answers such a failure so.
      if (this.#refusedUnapplied(err)) for (const m of batch) this.#alone(m);
      else for (const m of batch) m.reject(err);
      return;
    }
    if (!txn.succeeded) {
      for (const m of batch) this.#alone(m);
      return;
    }
    let at = 0;
    for (const m of batch) {
      const n = m.request.success?.length ?? 0;
      m.resolve({ header: txn.header, succeeded: true, responses: txn.responses.slice(at, at + n) });
      at += n;
    }
  }
}

/** Greedy, in submission order: each member joins the first batch it has no conflict with and room in. */
function partition(members: readonly Pending[]): Pending[][] {
  const batches: { members: Pending[]; taken: Set<string>; ops: number }[] = [];
  for (const m of members) {
    const ops = Math.max(m.request.compare?.length ?? 0, m.request.success?.length ?? 0);
    let batch = batches.find((b) => b.ops + ops <= MAX_OPS && !m.conflicts.some((c) => b.taken.has(c)));
    if (batch === undefined) batches.push((batch = { members: [], taken: new Set(), ops: 0 }));
    batch.members.push(m);
    batch.ops += ops;
    for (const c of m.conflicts) batch.taken.add(c);
  }
  return batches.map((b) => b.members);
}
