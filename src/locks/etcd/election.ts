// Leader election on etcd: etcd's election recipe (client/v3/concurrency/election.go), the one
// `etcdctl elect` runs, in the layout of election-layout.ts. Campaign puts the candidate's key
// on its session's lease and waits until no key created before it is left (the wait of the
// plain lock: mutex.ts's check, on the key just before one's own); Proclaim rewrites the key
// only while it is still the one that won (its create revision is the token); Resign deletes
// it the same way. Observe follows the prefix: a snapshot, then every revision after it.
// No server keeps state about a campaign it answered: the session id and the election name
// find the key, so Proclaim, KeepAlive and Resign work through any server on the same etcd.
//
// A candidate's lease is its session's (election-session.ts): a campaign session's own (a
// unary Campaign, one etcd lease revoked on resign), or a client's lock session's. Resigning
// from a lock session deletes the key only; the session goes on. The campaign itself (the put
// and the wait for one's turn) is election-campaign.ts.
import { FailedPreconditionError, LeaseExpiredError, NotLeaderError, throwIfAborted } from '../../errors.js';
import { quoted } from '../../validate.js';
import type { SessionOptions } from '../backend.js';
import type {
  CampaignOptions,
  CandidateSession,
  ElectionBackend,
  LeaderState,
  Leadership,
  LeadershipRef,
} from '../election.js';
import { sessionRef } from '../session-lease.js';
import type { EtcdConnection } from './connection.js';
import { type CandidateKey, candidatesOf, ElectionMirror, type KeyChange, leaderOf } from './election-layout.js';
import { leaseIdToDec } from './layout.js';
import { EtcdLockSession } from './lock-session.js';
import { watchPrefix } from './prefix-watch.js';
import { LockQueue } from './queue.js';
import { EtcdSession } from './session.js';
import { campaign } from './election-campaign.js';
import { CampaignSession, candidateLeaseOf, leaseOfSession } from './election-session.js';

const leaderText = (state: LeaderState) =>
  state.elected ? `it is led by ${quoted(state.value)} (fencing token ${state.fencingToken})` : 'nobody leads it';

export interface EtcdElectionsOptions {
  readonly conn: EtcdConnection;
  /** Every election's keys live under prefix + name + '/'. */
  readonly prefix: string;
  /** Registers work that close() must let finish (a campaign leaving its key) before the client closes. */
  readonly track: <T>(work: Promise<T>) => Promise<T>;
  /** The lock backend's resumeSession: this server's copy of a lock session, brought up to date from etcd. */
  readonly findSession: (id: string, signal: AbortSignal) => Promise<unknown>;
}

export class EtcdElections implements ElectionBackend {
  readonly #conn: EtcdConnection;
  readonly #prefix: string;
  readonly #track: <T>(work: Promise<T>) => Promise<T>;
  readonly #findSession: EtcdElectionsOptions['findSession'];

  constructor(options: EtcdElectionsOptions) {
    this.#conn = options.conn;
    this.#prefix = options.prefix;
    this.#track = options.track;
    this.#findSession = options.findSession;
  }

  async findSession(id: string, signal: AbortSignal): Promise<CandidateSession> {
    const session = await this.#findSession(id, signal);
    if (!(session instanceof EtcdLockSession))
      throw new FailedPreconditionError(`session ${sessionRef(id)} is not a lock session of the etcd backend`);
    return session;
  }

  async openSession({ ttlMs, signal }: SessionOptions): Promise<CandidateSession> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    return new CampaignSession(await EtcdSession.open(this.#conn, { ttlMs, purpose: 'open a campaign session' }));
  }

  hold(session: CandidateSession): Disposable {
    if (session instanceof CampaignSession) return session.etcd.keepAlive();
    // A lock session is kept alive by its client, never by the server on its own.
    return { [Symbol.dispose]() {} };
  }

  campaign(session: CandidateSession, options: CampaignOptions): Promise<Leadership> {
    throwIfAborted(options.signal);
    this.#conn.throwIfClosed();
    return this.#track(campaign(this.#conn, this.#queue(options.name), candidateLeaseOf(session), session.id, options));
  }

  async proclaim(ref: LeadershipRef, value: string): Promise<Leadership> {
    const { queue, key, leaseId } = this.#refKey(ref);
    const leaseDec = leaseIdToDec(leaseId);
    const txn = await this.#conn
      .call(`proclaim in election "${ref.name}"`, ref.signal, (client) =>
        client.kv.txn({
          compare: [{ key, target: 'Create', result: 'Equal', create_revision: ref.fencingToken.toString() }],
          success: [{ request_put: { key, value: Buffer.from(value), lease: leaseDec } }],
        }),
      )
      .catch((err: unknown) => {
        // The put names a lease that is gone: so is the key.
        if (err instanceof LeaseExpiredError) return undefined;
        throw err;
      });
    if (txn === undefined || !txn.succeeded) throw await this.#notLeader(ref, queue, 'proclaim');
    const info = await this.#conn.timeToLive('read the leader lease', leaseDec, ref.signal);
    return this.#leadership(
      ref,
      value,
      Number(info.grantedTTL) * 1000,
      // etcd reports whole seconds left, rounded down: the earliest the lease can expire.
      this.#conn.clock.now() + Math.max(0, Number(info.TTL)) * 1000,
    );
  }

  async keepAlive(ref: LeadershipRef): Promise<Leadership> {
    const { queue, leaseId } = this.#refKey(ref);
    const { keys } = await this.#readCandidates(queue, 'keep the leadership alive', ref.signal);
    const leader = keys[0];
    if (leader === undefined || leader.key !== queue.ownKey(leaseId) || leader.createRevision !== ref.fencingToken)
      throw await this.#notLeader(ref, queue, 'keep alive');
    const { ttlS, sentAtMs } = await this.#conn.keepAliveOnce(leaseIdToDec(leaseId), { signal: ref.signal });
    if (ttlS <= 0)
      throw new NotLeaderError(
        `cannot keep alive: the leadership of election "${ref.name}" is gone: its etcd lease ${leaseId} expired`,
      );
    return this.#leadership(ref, leader.value, ttlS * 1000, sentAtMs + ttlS * 1000);
  }

  async resign(ref: LeadershipRef): Promise<void> {
    const { queue, key, leaseId, campaignOnly } = this.#refKey(ref);
    const txn = await this.#conn.call(`resign from election "${ref.name}"`, ref.signal, (client) =>
      client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: ref.fencingToken.toString() }],
        success: [{ request_delete_range: { key } }],
      }),
    );
    if (!txn.succeeded) throw await this.#notLeader(ref, queue, 'resign');
    // A campaign session was this campaign's alone; revoking it spares etcd tracking it until
    // its TTL. A lock session's lease carries the session's locks: it stays.
    if (campaignOnly) await this.#conn.revoke(leaseIdToDec(leaseId)).catch(() => {});
  }

  async leader(name: string, signal: AbortSignal): Promise<LeaderState> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const { keys } = await this.#readCandidates(this.#queue(name), `read the leader of election "${name}"`, signal);
    return leaderOf(name, keys);
  }

  async *observe(name: string, signal: AbortSignal): AsyncIterable<LeaderState> {
    throwIfAborted(signal);
    this.#conn.throwIfClosed();
    const queue = this.#queue(name);
    let snapshot: { keys: CandidateKey[]; revision: bigint };
    try {
      snapshot = await this.#readCandidates(queue, `observe election "${name}"`, signal);
    } catch (err) {
      if (signal.aborted || this.#conn.closing.aborted) return;
      throw err;
    }
    const mirror = new ElectionMirror(name, queue.keyPrefix, snapshot.keys);
    yield mirror.state;
    for await (const { events } of watchPrefix(
      this.#conn,
      queue.keyPrefix,
      snapshot.revision + 1n,
      signal,
      `observe of election "${name}"`,
    )) {
      const changes: KeyChange[] = events.map((e) =>
        e.type === 'Delete' ? { type: 'delete', key: e.kv.key.toString() } : { type: 'put', kv: e.kv },
      );
      if (mirror.apply(changes)) yield mirror.state;
    }
  }

  #queue(name: string): LockQueue {
    return new LockQueue(this.#conn, this.#prefix, name);
  }

  /** Every candidate, oldest first, in one read, and the revision it was at. */
  async #readCandidates(
    queue: LockQueue,
    what: string,
    signal: AbortSignal,
  ): Promise<{ keys: CandidateKey[]; revision: bigint }> {
    const all = await queue.read(what, queue.whole(), signal);
    return { keys: candidatesOf(queue.keyPrefix, all.kvs), revision: BigInt(all.header.revision) };
  }

  /** The key a leadership names, from its session id. */
  #refKey(ref: LeadershipRef): { queue: LockQueue; key: Buffer; leaseId: string; campaignOnly: boolean } {
    throwIfAborted(ref.signal);
    this.#conn.throwIfClosed();
    const lease = leaseOfSession(ref.sessionId);
    if (lease === undefined)
      throw new NotLeaderError(
        `leadership.session_id is not a session of the etcd backend: election "${ref.name}" is not led through it; send the Leadership that Campaign answered, as it came`,
      );
    const queue = this.#queue(ref.name);
    return { queue, key: Buffer.from(queue.ownKey(lease.leaseId)), ...lease };
  }

  /** Why `ref` is not the current leadership, saying who leads. */
  async #notLeader(ref: LeadershipRef, queue: LockQueue, what: string): Promise<NotLeaderError> {
    const state = await this.#readCandidates(queue, `read the leader of election "${ref.name}"`, ref.signal)
      .then(({ keys }) => leaderText(leaderOf(ref.name, keys)))
      .catch(() => 'its leader could not be read');
    return new NotLeaderError(
      `cannot ${what}: fencing token ${ref.fencingToken} is not the current leadership of election "${ref.name}" (its candidate resigned, or its session expired): ${state}`,
    );
  }

  #leadership(ref: LeadershipRef, value: string, ttlMs: number, expiresAtMs: number): Leadership {
    return { name: ref.name, value, fencingToken: ref.fencingToken, sessionId: ref.sessionId, ttlMs, expiresAtMs };
  }
}
