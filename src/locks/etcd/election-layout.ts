// The etcd election layout, pure (no etcd, no I/O): etcd's own (client/v3/concurrency/
// election.go), which `etcdctl elect` writes, so the two contend for one leadership.
//
//   key   = prefix + name + '/' + lowercase hex of the candidate's etcd lease id
//   value = the candidate's value, as it is (what `etcdctl elect -l` prints)
//   lease = the candidate's session lease: the candidacy ends with it
// The leader is the candidate whose key has the lowest create revision; its fencing token is
// that create revision (etcd's revision only grows and candidates lead in create order, so
// each new leader's token is greater than every earlier leader's of the name). A proclaim
// rewrites the leader's own key, which keeps its create revision and so its token.
// NOTE: `etcdctl elect NAME` uses NAME itself as the prefix; latchkey election `name` is
// `etcdctl elect <prefix><name>`. As with locks, election "a"'s prefix also covers election
// "a/b"'s keys ("a/b/<hex>"): only a key whose remainder is a bare lease id is a candidate
// of "a". (etcdctl counts the others too; do not nest election names you share with it.)
//
// Session ids: a campaign made without a session (a unary Campaign) gets a session of its own
// on the etcd backend, one etcd lease, named `etcd.campaign.<lease hex>`: all any server on
// the same etcd needs to proclaim, keep alive and resign, and, since the session is the
// campaign's alone, to revoke it on resign.
import type { LeaderState } from '../election.js';
import { isLeaseId, type StoredKeyValue } from './layout.js';

const CAMPAIGN_SESSION = 'etcd.campaign.';

/** The session id of a campaign's own session on etcd lease `leaseId` (hex). */
export const campaignSessionId = (leaseId: string): string => CAMPAIGN_SESSION + leaseId;

/** The lease (hex) of a campaign session id, or undefined if `id` is not one. */
export function leaseOfSessionId(id: string): string | undefined {
  if (!id.startsWith(CAMPAIGN_SESSION)) return undefined;
  const leaseId = id.slice(CAMPAIGN_SESSION.length);
  return isLeaseId(leaseId) ? leaseId : undefined;
}

/** One candidate's key. */
export interface CandidateKey {
  readonly key: string;
  readonly createRevision: bigint;
  readonly value: string;
}

const byCreate = (a: CandidateKey, b: CandidateKey) =>
  a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0;

/** The candidates among `kvs` (keys under `keyPrefix`), oldest first. */
export function candidatesOf(keyPrefix: string, kvs: readonly StoredKeyValue[]): CandidateKey[] {
  const candidates: CandidateKey[] = [];
  for (const kv of kvs) {
    const key = kv.key.toString();
    if (!key.startsWith(keyPrefix) || !isLeaseId(key.slice(keyPrefix.length))) continue;
    candidates.push({ key, createRevision: BigInt(kv.create_revision), value: kv.value.toString('utf8') });
  }
  return candidates.sort(byCreate);
}

/** Who leads, given the candidates oldest first. */
export function leaderOf(name: string, candidates: readonly CandidateKey[]): LeaderState {
  const first = candidates[0];
  return first === undefined
    ? { name, elected: false, value: '', fencingToken: 0n, candidates: 0 }
    : { name, elected: true, value: first.value, fencingToken: first.createRevision, candidates: candidates.length };
}

/** A put or delete of a key under the election's prefix, as a watch reports it. */
export type KeyChange =
  | { readonly type: 'put'; readonly kv: StoredKeyValue }
  | { readonly type: 'delete'; readonly key: string };

/**
 * An election's candidates as an Observe follows them, from a snapshot through each
 * revision's changes. apply() says whether the revision changed what Observe reports: another
 * leader (or none), or a put of the leader's key (a proclaim, even of the same value).
 */
export class ElectionMirror {
  readonly #name: string;
  readonly #keyPrefix: string;
  #candidates: CandidateKey[];

  constructor(name: string, keyPrefix: string, snapshot: readonly CandidateKey[]) {
    this.#name = name;
    this.#keyPrefix = keyPrefix;
    this.#candidates = [...snapshot].sort(byCreate);
  }

  get state(): LeaderState {
    return leaderOf(this.#name, this.#candidates);
  }

  /** Applies one revision's changes; true if the leader, or its value, changed (or was proclaimed). */
  apply(changes: readonly KeyChange[]): boolean {
    const before = this.#candidates[0];
    let proclaimed = false;
    for (const change of changes) {
      if (change.type === 'delete') {
        this.#candidates = this.#candidates.filter((c) => c.key !== change.key);
        continue;
      }
      const [candidate] = candidatesOf(this.#keyPrefix, [change.kv]);
      if (candidate === undefined) continue;
      const at = this.#candidates.findIndex((c) => c.key === candidate.key);
      if (at >= 0) {
        if (this.#candidates[at]!.createRevision === candidate.createRevision) {
          this.#candidates[at] = candidate;
          if (at === 0) proclaimed = true;
          continue;
        }
        // Recreated under the same name (its delete was missed): the old one is gone.
        this.#candidates.splice(at, 1);
      }
      this.#candidates.push(candidate);
      this.#candidates.sort(byCreate);
    }
    const after = this.#candidates[0];
    return (
      proclaimed ||
      before?.key !== after?.key ||
      before?.createRevision !== after?.createRevision ||
      before?.value !== after?.value
    );
  }
}
