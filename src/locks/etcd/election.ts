// Leader election on etcd: etcd's election recipe (client/v3/concurrency/election.go), the one
// `etcdctl elect` runs, in the layout of election-layout.ts. Campaign puts the candidate's key
// on its session's lease and waits until no key created before it is left (the wait of the
// plain lock: mutex.ts's check, on the key just before one's own); Proclaim rewrites the key
// only while it is still the one that won (its create revision is the token); Resign deletes
// it the same way. Observe follows the prefix: a snapshot, then every revision after it.
// No server keeps state about a campaign it answered: the session id and the election name
// find the key, so Proclaim, KeepAlive and Resign work through any server on the same etcd.
//
// A candidate's lease is its session's: a campaign session's own (a unary Campaign, one etcd
// lease revoked on resign), or a client's lock session's (lock-session.ts), the lease every
// lock of that session lives on, as etcd's concurrency.Session carries mutexes and elections
// alike. Resigning from a lock session deletes the key only; the session goes on.
import { setMaxListeners } from 'node:events';
import {
  AbortedError,
  BackendUnavailableError,
  CancelledError,
  FailedPreconditionError,
  type LatchkeyError,
  LeaseExpiredError,
  NotLeaderError,
  SessionExpiredError,
  throwIfAborted,
} from '../../errors.js';
import { quoted } from '../../validate.js';
import type { SessionOptions, SessionState } from '../backend.js';
import type {
  CampaignOptions,
  CandidateSession,
  ElectionBackend,
  LeaderState,
  Leadership,
  LeadershipRef,
} from '../election.js';
import { sessionRef } from '../session-lease.js';
import { type EtcdConnection, raceStop, RETRY_MS } from './connection.js';
import {
  type CandidateKey,
  campaignSessionId,
  candidatesOf,
  ElectionMirror,
  type KeyChange,
  leaderOf,
  leaseOfSessionId,
} from './election-layout.js';
import { leaseIdToDec, parseSessionId, type QueueKey } from './layout.js';
import { EtcdLockSession } from './lock-session.js';
import { mutexRecipe } from './mutex.js';
import { watchPrefix } from './prefix-watch.js';
import { LockQueue } from './queue.js';
import { EtcdSession } from './session.js';

const leaderText = (state: LeaderState) =>
  state.elected ? `it is led by ${quoted(state.value)} (fencing token ${state.fencingToken})` : 'nobody leads it';

/** A campaign's own session: one etcd lease, as a CandidateSession. */
class CampaignSession implements CandidateSession {
  readonly id: string;
  readonly ref: string;
  readonly etcd: EtcdSession;

  constructor(etcd: EtcdSession) {
    this.etcd = etcd;
    this.id = campaignSessionId(etcd.leaseId);
    this.ref = sessionRef(this.id);
  }

  get ttlMs(): number {
    return this.etcd.ttlMs;
  }

  get expiresAtMs(): number {
    return this.etcd.expiresAtMs;
  }

  get state(): SessionState {
    return this.etcd.signal.aborted ? 'expired' : 'live';
  }

  get signal(): AbortSignal {
    return this.etcd.signal;
  }

  async keepAlive(signal: AbortSignal) {
    const expiresAtMs = await this.etcd.renew({ signal });
    return { ttlMs: this.etcd.ttlMs, expiresAtMs };
  }

  async end(): Promise<void> {
    await this.etcd.revoke();
  }
}

/** What a candidacy needs of its session: the etcd lease its key lives on, and the session's end. */
interface CandidateLease {
  readonly leaseId: string;
  readonly leaseDec: string;
  readonly ttlMs: number;
  /** The session's expiry as this server last saw it stated (read at each use: it moves). */
  readonly expiresAtMs: number;
  /**
   * A lock session: its client renews it with its own keepalives, maybe through another
   * server, so this server's view of its expiry can lag (see #campaign).
   */
  readonly keptByClient: boolean;
  /** Aborted when the session stops being live: a waiting campaign ends with it. */
  readonly signal: AbortSignal;
}

/** Where a leadership's key lives: which session kind, and its lease. */
interface SessionLeaseOf {
  readonly leaseId: string;
  /** A campaign session is the campaign's alone: resign revokes it. */
  readonly campaignOnly: boolean;
}

/** The lease a session id names: a campaign session's or a lock session's; undefined if neither. */
function leaseOfSession(sessionId: string): SessionLeaseOf | undefined {
  const campaign = leaseOfSessionId(sessionId);
  if (campaign !== undefined) return { leaseId: campaign, campaignOnly: true };
  const lock = parseSessionId(sessionId);
  return lock === undefined ? undefined : { leaseId: lock.leaseId, campaignOnly: false };
}

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
    return this.#track(this.#campaign(this.#etcdOf(session), session.id, options));
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

  #etcdOf(session: CandidateSession): CandidateLease {
    if (session instanceof CampaignSession) {
      const { etcd } = session;
      return {
        leaseId: etcd.leaseId,
        leaseDec: etcd.leaseDec,
        ttlMs: etcd.ttlMs,
        get expiresAtMs() {
          return etcd.expiresAtMs;
        },
        keptByClient: false,
        signal: etcd.signal,
      };
    }
    if (session instanceof EtcdLockSession) {
      // NOTE: this server's copy of a session served by a stream elsewhere may step aside
      // (AbortedError: another server serves it) while the session lives on: that must not
      // end a campaign still waiting through this server. The session's real end still does:
      // etcd deletes the candidate's key with its lease, which the wait's check finds
      // (ownKeyExists).
      const ended = new AbortController();
      const onEnd = () => {
        if (!(session.signal.reason instanceof AbortedError)) ended.abort(session.signal.reason);
      };
      if (session.signal.aborted) onEnd();
      else session.signal.addEventListener('abort', onEnd, { once: true });
      return {
        leaseId: session.leaseId,
        leaseDec: leaseIdToDec(session.leaseId),
        ttlMs: session.ttlMs,
        // NOTE: a getter, not a copy: a campaign waits while the session's keepalives move it.
        get expiresAtMs() {
          return session.expiresAtMs;
        },
        keptByClient: true,
        signal: ended.signal,
      };
    }
    throw new FailedPreconditionError(
      `session ${session.ref} is not a session of the etcd backend: campaign in a Locks/Session session of it, or without session_id, with ttl_ms`,
    );
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

  async #campaign(
    session: CandidateLease,
    sessionId: string,
    { name, value, signal }: CampaignOptions,
  ): Promise<Leadership> {
    const queue = this.#queue(name);
    const key = Buffer.from(queue.ownKey(session.leaseId));
    // election.go Campaign: put our key only if it does not exist yet, on the session's lease.
    // NOTE: not raced against the signal: abandoning a write mid-flight could leave a key
    // behind that we do not know about. It is bounded by opTimeoutMs.
    const txn = await this.#conn
      .call(`campaign in election "${name}"`, undefined, (client) =>
        client.kv.txn({
          compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [{ request_put: { key, value: Buffer.from(value), lease: session.leaseDec } }],
        }),
      )
      .catch((err: unknown) => {
        if (err instanceof LeaseExpiredError)
          throw new SessionExpiredError(
            `campaign in election "${name}" failed: its ${session.ttlMs / 1000} s etcd lease expired before etcd took the candidate; campaign again, or with a longer ttl_ms`,
          );
        throw err;
      });
    if (!txn.succeeded)
      throw new FailedPreconditionError(
        `this session already campaigns for election "${name}"; a session campaigns for an election at most once: resign first, or campaign in another session`,
      );
    const createRevision = BigInt(txn.header.revision);
    const own: QueueKey = {
      key: queue.ownKey(session.leaseId),
      leaseDec: session.leaseDec,
      createRevision,
      owner: value,
      mode: 'EXCLUSIVE',
      limit: 1,
    };
    let won = false;
    try {
      await this.#waitForTurn(session, queue, own, signal);
      won = true;
    } finally {
      if (!won) {
        // Withdrawn (cancelled, lost, closing, failed): our key leaves at once, so nobody
        // waits behind a candidate whose caller is gone (election.go resigns likewise).
        await this.#conn
          .call('withdraw the candidate', undefined, (client) =>
            client.kv.txn({
              compare: [{ key, target: 'Create', result: 'Equal', create_revision: createRevision.toString() }],
              success: [{ request_delete_range: { key } }],
            }),
          )
          .catch(() => {});
      }
    }
    return {
      name,
      value,
      fencingToken: createRevision,
      sessionId,
      ttlMs: session.ttlMs,
      expiresAtMs: session.keptByClient ? await this.#expiryOf(session, name) : session.expiresAtMs,
    };
  }

  /**
   * The expiry to state with a win in a lock session: the later of this server's view and
   * etcd's (whole seconds left, rounded down: the earliest the lease can expire). Both are
   * lower bounds of the real expiry.
   * NOTE: the session's keepalives renewed it while the campaign waited, and when they go
   * through another server (the client's stream is there) this server's copy never sees
   * them: its expiry is then the one of when the campaign began, long past after a wait.
   * A leadership answered with an expiry already gone tells its holder it may have lost it.
   */
  async #expiryOf(session: CandidateLease, name: string): Promise<number> {
    const known = session.expiresAtMs;
    try {
      const info = await this.#conn.timeToLive(`read the lease of the leader of election "${name}"`, session.leaseDec);
      return Math.max(known, this.#conn.clock.now() + Math.max(0, Number(info.TTL)) * 1000);
    } catch {
      // Unreadable now: the win stands, with what this server knows; the leader's first
      // KeepAlive states the expiry anew.
      return known;
    }
  }

  /**
   * election.go waitDeletes: until no candidate key created before ours is left, waiting each
   * time for the one just before ours to go (one deletion wakes one candidate).
   */
  async #waitForTurn(session: CandidateLease, queue: LockQueue, own: QueueKey, signal: AbortSignal): Promise<void> {
    const conn = this.#conn;
    const stop = new AbortController();
    setMaxListeners(0, stop.signal);
    const onAbort = () => stop.abort(new CancelledError(`campaign for election "${queue.name}" cancelled`));
    const onClose = () => stop.abort(conn.closing.reason);
    const onLost = () =>
      stop.abort(
        new SessionExpiredError(
          `campaign for election "${queue.name}" ended: the candidate's ${(session.signal.reason as LatchkeyError).message}; campaign again`,
        ),
      );
    signal.addEventListener('abort', onAbort, { once: true });
    conn.closing.addEventListener('abort', onClose, { once: true });
    session.signal.addEventListener('abort', onLost, { once: true });
    if (signal.aborted) onAbort();
    if (conn.closing.aborted) onClose();
    if (session.signal.aborted) onLost();
    try {
      for (;;) {
        if (stop.signal.aborted) throw stop.signal.reason;
        let check: Awaited<ReturnType<typeof mutexRecipe.check>>;
        try {
          check = await raceStop(mutexRecipe.check(queue, own), stop.signal);
        } catch (err) {
          if (stop.signal.aborted) throw stop.signal.reason;
          if (!(err instanceof BackendUnavailableError)) throw err;
          // etcd unreachable: try again soon; hold() keeps the lease alive meanwhile, and its
          // loss (signal) ends the wait.
          await conn.sleep(RETRY_MS, stop.signal);
          continue;
        }
        if (!check.ownKeyExists)
          throw new SessionExpiredError(
            `campaign for election "${queue.name}" ended: the candidate's etcd lease ${session.leaseId} or its key was removed while it waited; campaign again`,
          );
        // The service restarts a campaign session's TTL at the win (one keepalive).
        if (check.holds) return;
        await check.waitForChange(stop.signal);
      }
    } finally {
      if (!stop.signal.aborted) stop.abort(null);
      signal.removeEventListener('abort', onAbort);
      conn.closing.removeEventListener('abort', onClose);
      session.signal.removeEventListener('abort', onLost);
    }
  }
}
