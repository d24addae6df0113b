// File lock backend: one proper-lockfile lock per lock name, in a directory on this host's
// filesystem. It excludes every latchkey server using the same directory, and any other
// process that locks the same path with proper-lockfile. Fencing tokens are persisted beside
// each lock, so they keep increasing across restarts. The only file that imports
// proper-lockfile.
//
// Files for a lock name (see lockFilePath for how the name becomes <base>):
//   <base>        the lock target: a JSON record of the current holder (owner, token, expiry),
//                 so Describe and busy messages can name a holder in another process
//   <base>.lock   proper-lockfile's lock (a directory, created by an atomic mkdir)
//   <base>.token  the fencing-token counter, JSON {name, token}; written only while locked
//   *.tmp         temporary files of atomic writes (write, fsync, rename)
//   sessions/<ref>.json  a lock session's lease record (its expiry, renewed by each keepalive),
//                 which the holder records of its locks name, so another server's Describe
//                 sees the session's current expiry without one write per lock per keepalive
//
// Lock sessions: one lease record and one timer per session in this process, and one
// session file, however many locks it holds. The file locks themselves stay one per name
// (that is what proper-lockfile locks), kept fresh by this process as any lock is. A file
// session is this process's: it can be resumed only through this server (acrossHosts is
// false), and it dies with it (close() releases its locks; a crash leaves them to go stale).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, realpathSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { check as checkLock, lock as lockFile } from 'proper-lockfile';
import { systemClock, type Clock, type Timer } from '../clock.js';
import {
  BackendUnavailableError,
  FailedPreconditionError,
  LatchkeyError,
  NotHolderError,
  SessionExpiredError,
  ShuttingDownError,
  throwIfAborted,
  type Logger,
} from '../errors.js';
import type {
  AcquireOptions,
  Capabilities,
  ExpiryListener,
  Lease,
  LeaseRef,
  LockBackend,
  LockSession,
  LockState,
  SessionAcquireOptions,
  SessionExpiryListener,
  SessionOptions,
} from './backend.js';
import { lineLogger } from '../log.js';
import { EndedLeases, hasRunOut, newLeaseId } from './leases.js';
import { singleHolderState } from './lock-state.js';
import { busy, cancelledWhileWaiting, describeHolder, notGrantedInTime, notHolder } from './refusals.js';
import { SessionLease, SessionRegistry } from './session-lease.js';

// NOTE: acrossHosts is false on purpose. proper-lockfile's exclusion rests on mkdir being
// atomic and on the lock directory's mtime being kept fresh by its holder; network
// filesystems (NFS above all: attribute caching, clock skew between hosts) give neither
// reliably, so a lock dir shared between hosts is not trusted.
// fifo is false because waiting is polling (POLL_FIRST_MS..POLL_MAX_MS below): waiters in
// one server are queued and handed the lock in order, but which process's poll wins against
// another process is up to the scheduler.
export const fileCapabilities: Capabilities = {
  acrossHosts: false,
  fencing: true,
  fifo: false,
  autoRelease: true,
  semaphore: false,
  shared: false,
  watch: false,
  sessions: true,
  elections: false,
};

/**
 * Waiting for a lock held by another process polls, because proper-lockfile cannot notify:
 * the first retry comes after POLL_FIRST_MS, each next one after twice the last, never more
 * than POLL_MAX_MS. So a waiter notices a foreign release within POLL_MAX_MS (plus one
 * attempt, an mkdir). A release inside this server hands off directly, without polling.
 */
export const POLL_FIRST_MS = 10;
export const POLL_MAX_MS = 100;

/** proper-lockfile's default: a lock whose mtime is not refreshed for this long is taken over. */
export const DEFAULT_STALE_MS = 10_000;

export interface FileLockBackendOptions {
  /**
   * Directory holding the lock files; created (with parents) if missing, else the
   * constructor throws BackendUnavailableError. Every server that locks the same names
   * against each other uses the same one (on one host: see acrossHosts above).
   */
  readonly dir: string;
  /** Time source for lease expiry and wait timers; default the system clock. */
  readonly clock?: Clock;
  /**
   * proper-lockfile's `stale`, in ms: a lock whose directory mtime has not been refreshed for
   * this long is considered abandoned and taken over. It bounds how long a crashed server's
   * locks stay held (its leases' TTLs cannot: nobody is left to enforce them). The holder
   * refreshes the mtime every staleMs / 2. Default 10_000; values below 2000 (0 included)
   * are raised to 2000, as proper-lockfile does. Every process sharing a lock dir must use
   * the same value. Independent of lease TTLs: a lease shorter than staleMs still expires
   * at its TTL while this server runs.
   */
  readonly staleMs?: number;
  /**
   * Where background failures go (a lock dir that cannot be removed, a lost lock); default plain
   * lines on stderr.
   */
  readonly log?: Logger;
  /** Told of every lease of this server that runs out of TTL (see ExpiryListener), a session's locks included. Default none. */
  readonly onExpire?: ExpiryListener;
  /** Told of every session of this server that runs out of TTL (see SessionExpiryListener). Default none. */
  readonly onSessionExpire?: SessionExpiryListener;
}

const SLUG_MAX_CHARS = 40;

/**
 * The lock target file for a lock name: `<dir>/<slug>.<sha256>`, where slug is the name with
 * every character outside [A-Za-z0-9_-] replaced by `_`, cut to 40 characters (there only
 * to make `ls` readable), and sha256 is the lowercase hex SHA-256 of the name's UTF-8 bytes.
 *
 * NOTE: why not a reversible encoding: a 250-byte name is 500 hex or 334 base64url
 * characters, over the 255-byte NAME_MAX of common filesystems, before our suffixes. The
 * hash is what makes the file unique; the slug can never contain `/`, `\`, `.` or `..`, so
 * the path is always a direct child of dir; the basename is at most 105 bytes, leaving room
 * for `.token.<hex>.tmp`. Hex, not base64url, so names that differ only in case stay distinct
 * on case-insensitive filesystems. The full name is stored in the token file and checked on
 * every grant, so even a SHA-256 collision would be refused rather than share a lock.
 */
export function lockFilePath(dir: string, name: string): string {
  const slug = name.replace(/[^A-Za-z0-9_-]/gu, '_').slice(0, SLUG_MAX_CHARS);
  const hash = createHash('sha256').update(name, 'utf8').digest('hex');
  return join(dir, `${slug}.${hash}`);
}

/** The holder record in the lock target file. No lease id: it would let any reader release. */
interface HolderRecord {
  readonly name: string;
  readonly held: boolean;
  readonly owner: string;
  readonly token: string;
  readonly expiresAtMs: number;
  readonly pid: number;
  readonly host: string;
  /** A session's lock: the ref of the session whose record (sessions/<ref>.json) has the current expiry. */
  readonly session?: string;
}

/** A session's lease record in sessions/<ref>.json. */
interface SessionRecord {
  readonly session: string;
  readonly expiresAtMs: number;
  readonly ttlMs: number;
  readonly pid: number;
  readonly host: string;
}

/** One proper-lockfile lock we took; possibly carried over several leases by hand-off. */
interface FileLock {
  release: () => Promise<void>;
  /** Set by onCompromised: the lock is no longer ours (never write under it again). */
  compromised: Error | undefined;
}

interface Holder {
  /** For a session's lock, expiresAtMs is the grant's: the session's own is the one that counts. */
  readonly lease: Lease;
  readonly lock: FileLock;
  /** The lease's expiry timer; undefined for a session's lock (the session's timer covers it). */
  readonly timer: Timer | undefined;
  readonly session: FileSession | undefined;
}

interface FileSession extends LockSession {
  readonly lease: SessionLease;
  /** Its locks by lease id, in grant order. */
  readonly holders: Map<string, { readonly entry: Entry; readonly holder: Holder }>;
  /** The names it holds or waits for: a session asks for a name at most once. */
  readonly names: Map<string, 'held' | 'waiting'>;
  readonly recordPath: string;
  /** Session-record writes run in issue order, so a slow one never overwrites a newer expiry. */
  writes: Promise<void>;
}

interface Waiter {
  readonly owner: string;
  readonly ttlMs: number;
  readonly session: FileSession | undefined;
  /** wait_ms = 0: fails as soon as one attempt finds the lock held. */
  readonly tryOnce: boolean;
  /** Granted, failed, cancelled or timed out; a grant in flight checks it before granting. */
  done: boolean;
  /** Leaves the queue (idempotent); reject() or grant() then settles the caller's promise. */
  leave(): void;
  reject(err: Error): void;
  grant(lease: Lease): void;
}

interface Entry {
  readonly name: string;
  readonly path: string;
  holder: Holder | undefined;
  /** Insertion-ordered: local waiters are served FIFO. */
  waiters: Set<Waiter>;
  /** The waiter a grant is being written for (its token and record), out of the queue. */
  granting: Waiter | undefined;
  /** A lock attempt or a grant/hand-off is in flight; nothing else may take the file lock. */
  busy: boolean;
  poll: Timer | undefined;
  pollDelayMs: number;
  /** The lock target file has been created (once per entry; see #attempt). */
  targetReady: boolean;
  /** Holder-record writes run in issue order, so a slow write never overwrites a newer one. */
  writes: Promise<void>;
  pendingWrites: number;
}

const noop = () => {};

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export class FileLockBackend implements LockBackend {
  readonly kind = 'file';
  get location(): string {
    return `lock dir ${this.dir}`;
  }
  readonly capabilities = fileCapabilities;
  /** The lock directory, absolute and with symlinks resolved. */
  readonly dir: string;
  readonly #clock: Clock;
  readonly #staleMs: number;
  readonly #log: Logger;
  readonly #onSessionExpire: SessionExpiryListener | undefined;
  readonly #sessions = new SessionRegistry<FileSession>('file');
  /** sessions/ exists and old records were swept (once, at the first session). */
  #sessionsDir: Promise<string> | undefined;
  readonly #host = hostname();
  readonly #locks = new Map<string, Entry>();
  readonly #ended: EndedLeases;
  /** Lock attempts and hand-offs in flight; close() waits for them so no lock is left behind. */
  readonly #inflight = new Set<Promise<void>>();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: FileLockBackendOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#staleMs = Math.max(options.staleMs ?? DEFAULT_STALE_MS, 2000);
    this.#log = options.log ?? lineLogger((line) => process.stderr.write(`latchkey: ${line}\n`));
    this.#ended = new EndedLeases(options.onExpire);
    this.#onSessionExpire = options.onSessionExpire;
    try {
      mkdirSync(options.dir, { recursive: true });
      this.dir = realpathSync(options.dir);
    } catch (err) {
      throw new BackendUnavailableError(
        `file lock backend: cannot create lock dir "${options.dir}": ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /** The lock target file of a name in this backend's dir (proper-lockfile locks `${path}.lock`). */
  pathOf(name: string): string {
    return lockFilePath(this.dir, name);
  }

  acquire(options: AcquireOptions): Promise<Lease> {
    return this.#acquire(options, undefined);
  }

  async #acquire(
    { name, ttlMs, waitMs, owner, signal }: AcquireOptions,
    session: FileSession | undefined,
  ): Promise<Lease> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const entry = this.#entry(name);
    const tryOnce = waitMs <= 0;
    // A try-once never jumps the local queue: if anyone here holds, waits or is being
    // granted the lock, it is busy without touching the filesystem.
    if (tryOnce && (entry.holder !== undefined || entry.busy || entry.waiters.size > 0))
      throw busy(name, await this.#holdersText(entry));
    return new Promise<Lease>((resolve, reject) => {
      let timer: Timer | undefined;
      const waiter: Waiter = {
        owner,
        ttlMs,
        session,
        tryOnce,
        done: false,
        leave: () => {
          waiter.done = true;
          entry.waiters.delete(waiter);
          timer?.cancel();
          signal.removeEventListener('abort', onAbort);
        },
        reject: (err) => {
          waiter.leave();
          reject(err);
        },
        grant: (lease) => {
          waiter.leave();
          resolve(lease);
        },
      };
      // A session that expires or is lost says so; any other abort is the caller going away.
      const onAbort = () => {
        if (waiter.done) return;
        waiter.reject(
          signal.reason instanceof SessionExpiredError || signal.reason instanceof ShuttingDownError
            ? signal.reason
            : cancelledWhileWaiting(name),
        );
        this.#forgetIfIdle(entry);
      };
      entry.waiters.add(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
      if (!tryOnce) {
        timer = this.#clock.schedule(waitMs, () => {
          if (waiter.done) return;
          waiter.leave();
          this.#forgetIfIdle(entry);
          void this.#holdersText(entry).then((who) => reject(notGrantedInTime(name, who, waitMs)));
        });
      }
      this.#pump(entry);
    });
  }

  async refresh({ name, leaseId, signal }: LeaseRef, ttlMs: number): Promise<Lease> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const found = this.#holderOf(name, leaseId);
    if (found === undefined) return this.#notHolder(name, leaseId);
    const { entry, holder } = found;
    // The lock dir vanishing (deleted by hand) is caught here at once; a takeover by another
    // process is caught by proper-lockfile's mtime check within staleMs / 2 (onCompromised).
    let stillLocked: boolean;
    try {
      stillLocked = await checkLock(entry.path, { stale: this.#staleMs, realpath: false });
    } catch (err) {
      throw this.#translate(err, `checking lock "${name}"`);
    }
    if (entry.holder !== holder) return this.#notHolder(name, leaseId);
    if (!stillLocked) {
      this.#lose(entry, holder, new Error(`its lock directory ${entry.path}.lock is gone or stale`));
      return this.#notHolder(name, leaseId);
    }
    holder.timer?.cancel();
    const ttl = ttlMs > 0 ? ttlMs : holder.lease.ttlMs;
    const lease: Lease = { ...holder.lease, ttlMs: ttl, expiresAtMs: this.#clock.now() + ttl };
    entry.holder = { lease, lock: holder.lock, timer: this.#expiryTimer(entry, lease), session: undefined };
    // The record only informs other servers; the lease itself lives here. A failed write is
    // logged, not turned into a failed refresh that did in fact extend the lease.
    await this.#writeRecord(entry, this.#recordOf(lease)).catch((err) =>
      this.#log.warn(
        { event: 'lock.file_warning', backend: 'file', name, err: String(err) },
        `file lock backend: cannot update the holder record of lock "${name}"`,
      ),
    );
    return lease;
  }

  async release({ name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const entry = this.#locks.get(name);
    const held = entry?.holder;
    const session = held?.lease.leaseId === leaseId ? held.session : undefined;
    if (
      entry !== undefined &&
      held !== undefined &&
      session !== undefined &&
      !(session.state === 'live' && session.lease.due)
    ) {
      // NOTE: released behind the session's back (an operator with the lease id): the session
      // can no longer vouch for its locks, so it is lost. Its holder hears it at once on an
      // attached stream, or when it next resumes; its other locks stay until it expires.
      this.#dropFromSession(session, leaseId);
      session.lease.lose(`its lock "${name}" was released from outside the session (Locks/Release of its lease)`);
      await this.#handOff(entry, held);
      return;
    }
    const found = this.#holderOf(name, leaseId);
    if (found === undefined) return this.#notHolder(name, leaseId);
    // Waits for the hand-off or the unlock, so that once Release returns, another server can
    // acquire at once.
    await this.#handOff(found.entry, found.holder);
  }

  async describe(name: string, signal: AbortSignal): Promise<LockState> {
    throwIfAborted(signal);
    const entry = this.#locks.get(name);
    let waiters = 0;
    for (const w of entry?.waiters ?? []) if (!w.tryOnce) waiters++;
    if (entry?.holder !== undefined) return singleHolderState(this.#current(entry.holder), waiters);
    const path = this.pathOf(name);
    let held: boolean;
    try {
      held = await checkLock(path, { stale: this.#staleMs, realpath: false });
    } catch (err) {
      throw this.#translate(err, `checking lock "${name}"`);
    }
    if (!held) return singleHolderState(undefined, waiters);
    // Held by another process: a latchkey server's record names it; anything else is anonymous.
    const record = await this.#readRecord(name, path);
    if (record?.held)
      return singleHolderState(
        { owner: record.owner, fencingToken: BigInt(record.token), expiresAtMs: await this.#recordExpiry(record) },
        waiters,
      );
    return singleHolderState({ owner: '', fencingToken: 0n, expiresAtMs: 0 }, waiters);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      const unlocks: Promise<void>[] = [];
      for (const entry of this.#locks.values()) {
        entry.poll?.cancel();
        entry.poll = undefined;
        const failure = () => new ShuttingDownError();
        for (const waiter of [...entry.waiters]) waiter.reject(failure());
        if (entry.granting !== undefined && !entry.granting.done) entry.granting.reject(failure());
        const holder = entry.holder;
        if (holder !== undefined) {
          // NOTE: the file locks must go now, not with the process: a server restarted on
          // the same dir would otherwise find them held until they go stale.
          holder.timer?.cancel();
          entry.holder = undefined;
          this.#ended.remember(
            holder.lease.leaseId,
            `lease ${holder.lease.leaseId} on lock "${entry.name}" was released when the server shut down`,
          );
          unlocks.push(this.#unlock(entry, holder.lock));
        }
      }
      const records: Promise<void>[] = [];
      for (const session of this.#sessions.values()) {
        session.lease.close(new ShuttingDownError('server is shutting down; its lock sessions ended with it'));
        records.push(this.#removeSessionRecord(session));
      }
      this.#sessions.clear();
      // In-flight attempts and hand-offs find no waiter left and unlock (see #grantNext).
      await Promise.all([...unlocks, ...records, ...this.#inflight]);
    })();
    return this.#closing;
  }

  async openSession({ ttlMs, signal }: SessionOptions): Promise<LockSession> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const dir = await this.#prepareSessionsDir();
    const { id, ref } = this.#sessions.newId();
    const lease = new SessionLease(this.#clock, id, ref, ttlMs, () => this.#expireSession(session));
    const session = this.#newSession(lease, join(dir, `${ref}.json`));
    try {
      await this.#writeSessionRecord(session);
    } catch (err) {
      lease.close(new ShuttingDownError('session not opened'));
      throw this.#translate(err, `writing the record of a new session`);
    }
    if (this.#closed) {
      lease.close(new ShuttingDownError('server is shutting down'));
      await this.#removeSessionRecord(session);
      this.#throwIfClosed();
    }
    this.#sessions.add(session);
    return session;
  }

  async resumeSession(id: string, signal: AbortSignal): Promise<LockSession> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    const session = this.#sessions.find(id);
    session.lease.checkLive();
    return session;
  }

  #newSession(lease: SessionLease, recordPath: string): FileSession {
    const holders: FileSession['holders'] = new Map();
    const names: FileSession['names'] = new Map();
    const session: FileSession = {
      lease,
      holders,
      names,
      recordPath,
      writes: Promise.resolve(),
      id: lease.id,
      ref: lease.ref,
      ttlMs: lease.ttlMs,
      get expiresAtMs() {
        return lease.expiresAtMs;
      },
      get state() {
        return lease.state;
      },
      signal: lease.signal,
      get lockCount() {
        return names.size;
      },
      acquire: (options) => this.#sessionAcquire(session, options),
      release: (ref) => this.#sessionRelease(session, ref),
      keepAlive: async (signal) => {
        throwIfAborted(signal);
        const renewed = lease.renew();
        // The record only informs other servers; the lease itself lives here. So the keepalive
        // is answered at once, not after a disk write: under load a write can take longer
        // than the client's keepalive margin. Writes stay in order (see #writeSessionRecord).
        void this.#track(
          this.#writeSessionRecord(session).catch((err) =>
            this.#log.warn(
              { event: 'lock.file_warning', backend: 'file', session: lease.ref, err: String(err) },
              `file lock backend: cannot update the record of session ${lease.ref}`,
            ),
          ),
        );
        return renewed;
      },
      end: () => this.#endSession(session),
      leases: () => [...holders.values()].map(({ holder }) => this.#current(holder)),
    };
    return session;
  }

  async #sessionAcquire(session: FileSession, options: SessionAcquireOptions): Promise<Lease> {
    const { name, signal } = options;
    throwIfAborted(signal);
    this.#throwIfClosed();
    session.lease.checkLive();
    const had = session.names.get(name);
    if (had !== undefined)
      throw new FailedPreconditionError(
        `this session already ${had === 'held' ? 'holds' : 'waits for'} lock "${name}"; a session holds a name at most once: release it first, or take it in another session`,
      );
    session.names.set(name, 'waiting');
    // The waiter leaves when its caller goes away or when the session stops being live.
    const both = new AbortController();
    const onCaller = () => both.abort(signal.reason);
    const onSession = () => both.abort(session.signal.reason);
    signal.addEventListener('abort', onCaller, { once: true });
    session.signal.addEventListener('abort', onSession, { once: true });
    try {
      return await this.#acquire({ ...options, ttlMs: session.ttlMs, signal: both.signal }, session);
    } catch (err) {
      if (session.names.get(name) === 'waiting') session.names.delete(name);
      throw err;
    } finally {
      signal.removeEventListener('abort', onCaller);
      session.signal.removeEventListener('abort', onSession);
    }
  }

  async #sessionRelease(session: FileSession, { name, leaseId, signal }: LeaseRef): Promise<void> {
    throwIfAborted(signal);
    this.#throwIfClosed();
    // A due session has expired, whether or not its timer has fired: its locks expired.
    if (session.state === 'live' && session.lease.due) this.#expireSession(session);
    if (session.state === 'expired' || session.state === 'ended') throw session.signal.reason;
    const mine = session.holders.get(leaseId);
    if (mine === undefined || mine.entry.name !== name || mine.entry.holder !== mine.holder) {
      this.#ended.throwIfEnded(leaseId);
      const entry = this.#locks.get(name);
      const who =
        entry?.holder !== undefined
          ? `it is held by ${describeHolder(this.#current(entry.holder), this.#clock.now())}`
          : 'this server does not hold it';
      throw new NotHolderError(`lease ${leaseId || '(empty)'} is not a lock of this session on lock "${name}": ${who}`);
    }
    this.#dropFromSession(session, leaseId);
    await this.#handOff(mine.entry, mine.holder);
  }

  #dropFromSession(session: FileSession, leaseId: string): void {
    const mine = session.holders.get(leaseId);
    if (mine === undefined) return;
    session.holders.delete(leaseId);
    session.names.delete(mine.entry.name);
  }

  async #endSession(session: FileSession): Promise<void> {
    if (session.state === 'expired' || session.state === 'ended') return;
    const reason = session.lease.end();
    // Waiters left as the signal aborted (synchronously, above); now every lock, at once.
    const handOffs = [...session.holders.values()].map(({ entry, holder }) => {
      this.#ended.remember(
        holder.lease.leaseId,
        `lease ${holder.lease.leaseId} on lock "${entry.name}" was released: ${reason.message}`,
      );
      return this.#handOff(entry, holder);
    });
    session.holders.clear();
    session.names.clear();
    this.#sessions.forget(session, reason.message);
    await Promise.all([...handOffs, this.#removeSessionRecord(session)]);
  }

  /** The session's TTL ran out: each lock expires as a lease would, then the session. */
  #expireSession(session: FileSession): void {
    if (session.state === 'expired' || session.state === 'ended') return;
    const locks = session.holders.size;
    const reason = session.lease.expire();
    for (const { entry, holder } of session.holders.values()) {
      const lease = this.#current(holder);
      this.#ended.expired(lease);
      void this.#handOff(entry, holder);
    }
    session.holders.clear();
    session.names.clear();
    this.#sessions.forget(session, reason.message);
    void this.#track(this.#removeSessionRecord(session));
    this.#onSessionExpire?.({ ref: session.ref, ttlMs: session.ttlMs, locks });
  }

  /** The holder's lease as it stands: a session's lock expires with its session. */
  #current(holder: Holder): Lease {
    return holder.session === undefined
      ? holder.lease
      : { ...holder.lease, expiresAtMs: holder.session.lease.expiresAtMs };
  }

  /**
   * Creates sessions/ and, once per process, removes the records of sessions that are over
   * for sure: past their expiry by more than staleMs, so every lock of theirs has expired or
   * gone stale (their server crashed, or was killed before it could remove them).
   */
  #prepareSessionsDir(): Promise<string> {
    this.#sessionsDir ??= (async () => {
      const dir = join(this.dir, 'sessions');
      try {
        await mkdir(dir, { recursive: true });
      } catch (err) {
        this.#sessionsDir = undefined;
        throw this.#translate(err, 'creating the sessions directory');
      }
      void this.#track(this.#sweepSessionRecords(dir));
      return dir;
    })();
    return this.#sessionsDir;
  }

  async #sweepSessionRecords(dir: string): Promise<void> {
    try {
      const horizon = this.#clock.now() - this.#staleMs;
      for (const file of await readdir(dir)) {
        if (!file.endsWith('.json')) continue;
        const path = join(dir, file);
        const record = await readFile(path, 'utf8')
          .then((text) => JSON.parse(text) as Partial<SessionRecord>)
          .catch(() => undefined);
        if (typeof record?.expiresAtMs === 'number' && record.expiresAtMs < horizon) await rm(path, { force: true });
      }
    } catch (err) {
      this.#log.warn(
        { event: 'lock.file_warning', backend: 'file', err: String(err) },
        `file lock backend: cannot sweep old session records in ${dir}`,
      );
    }
  }

  #writeSessionRecord(session: FileSession): Promise<void> {
    const record: SessionRecord = {
      session: session.ref,
      expiresAtMs: session.lease.expiresAtMs,
      ttlMs: session.ttlMs,
      pid: process.pid,
      host: this.#host,
    };
    const write = session.writes.then(() => writeAtomic(session.recordPath, `${JSON.stringify(record)}\n`, false));
    session.writes = write.then(noop, noop);
    return write;
  }

  /** Removes the session's record after any write in flight. Never rejects (failures are logged). */
  async #removeSessionRecord(session: FileSession): Promise<void> {
    await session.writes;
    await rm(session.recordPath, { force: true }).catch((err) =>
      this.#log.warn(
        { event: 'lock.file_warning', backend: 'file', session: session.ref, err: String(err) },
        `file lock backend: cannot remove ${session.recordPath}`,
      ),
    );
  }

  /** The expiry a holder record stands for: its session's current one, if it names a session with a record. */
  async #recordExpiry(record: HolderRecord): Promise<number> {
    if (record.session === undefined || !/^[0-9a-f]{16}$/.test(record.session)) return record.expiresAtMs;
    try {
      const text = await readFile(join(this.dir, 'sessions', `${record.session}.json`), 'utf8');
      const session = JSON.parse(text) as Partial<SessionRecord>;
      return typeof session.expiresAtMs === 'number' ? session.expiresAtMs : record.expiresAtMs;
    } catch {
      return record.expiresAtMs;
    }
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new ShuttingDownError();
  }

  #entry(name: string): Entry {
    let entry = this.#locks.get(name);
    if (entry === undefined) {
      entry = {
        name,
        path: this.pathOf(name),
        holder: undefined,
        waiters: new Set(),
        granting: undefined,
        busy: false,
        poll: undefined,
        pollDelayMs: POLL_FIRST_MS,
        targetReady: false,
        writes: Promise.resolve(),
        pendingWrites: 0,
      };
      this.#locks.set(name, entry);
    }
    return entry;
  }

  /** Forgets an entry nobody uses any more (no holder, waiter, attempt, timer or write). */
  #forgetIfIdle(entry: Entry): void {
    const idle =
      entry.holder === undefined &&
      entry.waiters.size === 0 &&
      entry.granting === undefined &&
      !entry.busy &&
      entry.poll === undefined &&
      entry.pendingWrites === 0;
    if (idle && this.#locks.get(entry.name) === entry) this.#locks.delete(entry.name);
  }

  #track(work: Promise<void>): Promise<void> {
    this.#inflight.add(work);
    const done = () => void this.#inflight.delete(work);
    work.then(done, done);
    return work;
  }

  /** If the lock is free here and someone waits, try to take the file lock for them. */
  #pump(entry: Entry): void {
    if (this.#closed || entry.holder !== undefined || entry.busy) return;
    entry.poll?.cancel();
    entry.poll = undefined;
    if (entry.waiters.size === 0) return this.#forgetIfIdle(entry);
    entry.busy = true;
    void this.#track(this.#attempt(entry));
  }

  async #attempt(entry: Entry): Promise<void> {
    const fileLock: FileLock = { release: async () => {}, compromised: undefined };
    try {
      if (!entry.targetReady) {
        // proper-lockfile's default (realpath: true) needs the target to exist; creating it
        // lets other processes lock our paths with default options. Flag 'a' never truncates.
        await (await open(entry.path, 'a')).close();
        entry.targetReady = true;
      }
      fileLock.release = await lockFile(entry.path, {
        stale: this.#staleMs,
        realpath: false,
        retries: 0,
        // NOTE: the default onCompromised throws inside proper-lockfile's timer, which kills
        // the process. A compromised lock (its dir deleted or touched by someone else, or not
        // refreshed within staleMs) only loses the lease that held it.
        onCompromised: (err) => this.#compromised(entry, fileLock, err),
      });
    } catch (err) {
      entry.busy = false;
      if (errnoCode(err) === 'ELOCKED') return this.#stillLocked(entry);
      const failure = this.#translate(err, `locking "${entry.name}"`);
      for (const waiter of [...entry.waiters]) waiter.reject(failure);
      return this.#forgetIfIdle(entry);
    }
    entry.pollDelayMs = POLL_FIRST_MS;
    await this.#grantNext(entry, fileLock);
  }

  /** Another process holds the lock: fail the try-once callers, poll again for the others. */
  async #stillLocked(entry: Entry): Promise<void> {
    const tryOnce = [...entry.waiters].filter((w) => w.tryOnce);
    for (const waiter of tryOnce) waiter.leave();
    if (entry.waiters.size > 0 && !this.#closed) {
      const delay = entry.pollDelayMs;
      entry.pollDelayMs = Math.min(delay * 2, POLL_MAX_MS);
      entry.poll = this.#clock.schedule(delay, () => {
        entry.poll = undefined;
        this.#pump(entry);
      });
    }
    if (tryOnce.length > 0) {
      const who = await this.#holdersText(entry);
      for (const waiter of tryOnce) waiter.reject(busy(entry.name, who));
    }
    this.#forgetIfIdle(entry);
  }

  /**
   * We hold the file lock (fresh, or carried over from a lease that ended) and entry.busy is
   * set: grant it to the first local waiter, or unlock it if there is none. Never rejects.
   *
   * NOTE: handing off without unlocking means a steady stream of waiters in this server can
   * keep the lock away from other servers' pollers; unlocking first would not help (a local
   * retry wins the race against a poll almost always). Cross-process fairness needs a shared
   * queue, which proper-lockfile does not have; hence fifo: false.
   */
  async #grantNext(entry: Entry, fileLock: FileLock): Promise<void> {
    try {
      for (;;) {
        if (fileLock.compromised !== undefined) return;
        const next = this.#closed ? undefined : entry.waiters.values().next();
        if (next === undefined || next.done) return await this.#unlock(entry, fileLock);
        const waiter = next.value;
        entry.waiters.delete(waiter);
        entry.granting = waiter;
        let lease: Lease;
        try {
          // NOTE: the token is persisted (fsync'd, renamed, dir fsync'd) before anyone sees
          // it, so no crash or power loss can make a later grant reuse it.
          const fencingToken = await this.#bumpToken(entry);
          lease = {
            name: entry.name,
            leaseId: newLeaseId(),
            fencingToken,
            expiresAtMs: waiter.session?.lease.expiresAtMs ?? this.#clock.now() + waiter.ttlMs,
            ttlMs: waiter.ttlMs,
            owner: waiter.owner,
            mode: 'EXCLUSIVE',
            limit: 1,
          };
          await this.#writeRecord(entry, this.#recordOf(lease, lease.name, waiter.session?.ref));
        } catch (err) {
          entry.granting = undefined;
          if (!waiter.done) waiter.reject(this.#translate(err, `granting lock "${entry.name}"`));
          return await this.#unlock(entry, fileLock);
        }
        entry.granting = undefined;
        if (fileLock.compromised !== undefined) {
          // Lost while writing: the waiter goes back to the head of the queue and polls.
          if (!waiter.done) entry.waiters = new Set([waiter, ...entry.waiters]);
          return;
        }
        if (waiter.done) continue; // cancelled or timed out meanwhile: the next one, same lock
        const session = waiter.session;
        if (session === undefined) {
          entry.holder = { lease, lock: fileLock, timer: this.#expiryTimer(entry, lease), session };
        } else {
          // NOTE: a session that stopped being live has withdrawn its waiters (waiter.done above).
          const holder: Holder = { lease, lock: fileLock, timer: undefined, session };
          entry.holder = holder;
          session.holders.set(lease.leaseId, { entry, holder });
          session.names.set(entry.name, 'held');
          lease = this.#current(holder);
        }
        waiter.grant(lease);
        return;
      }
    } catch (err) {
      this.#log.error(
        { event: 'internal_error', backend: 'file', name: entry.name, err },
        'internal error: file lock backend, handing off a lock',
      );
    } finally {
      entry.busy = false;
      if (entry.holder === undefined) this.#pump(entry);
      this.#forgetIfIdle(entry);
    }
  }

  /** Ends a holder's lease and passes its file lock on (or unlocks it). */
  #handOff(entry: Entry, holder: Holder): Promise<void> {
    holder.timer?.cancel();
    entry.holder = undefined;
    entry.busy = true;
    return this.#track(this.#grantNext(entry, holder.lock));
  }

  /** Clears the holder record, then removes the lock dir. Never rejects (failures are logged). */
  async #unlock(entry: Entry, fileLock: FileLock): Promise<void> {
    if (fileLock.compromised !== undefined) return;
    await this.#writeRecord(entry, this.#recordOf(undefined, entry.name)).catch((err) =>
      this.#log.warn(
        { event: 'lock.file_warning', backend: 'file', name: entry.name, err: String(err) },
        `file lock backend: cannot clear the holder record of lock "${entry.name}"`,
      ),
    );
    try {
      await fileLock.release();
    } catch (err) {
      // The mtime is no longer refreshed, so the lock goes stale and is free after staleMs.
      if (errnoCode(err) !== 'ERELEASED') {
        this.#log.warn(
          { event: 'lock.file_warning', backend: 'file', name: entry.name, err: String(err) },
          `file lock backend: cannot remove ${entry.path}.lock; it is free once stale, after ${this.#staleMs} ms`,
        );
      }
    }
  }

  #expiryTimer(entry: Entry, lease: Lease): Timer {
    return this.#clock.schedule(lease.expiresAtMs - this.#clock.now(), () => {
      const holder = entry.holder;
      if (holder?.lease !== lease) return;
      this.#ended.expired(lease);
      void this.#handOff(entry, holder);
    });
  }

  /** proper-lockfile's onCompromised, called from its timer: must not throw. */
  #compromised(entry: Entry, fileLock: FileLock, err: Error): void {
    if (fileLock.compromised !== undefined) return; // already lost (Refresh found its dir gone)
    fileLock.compromised = err;
    const holder = entry.holder;
    if (holder?.lock === fileLock) this.#lose(entry, holder, err);
    else
      this.#log.warn(
        { event: 'lock.compromised', backend: 'file', name: entry.name, err: err.message },
        `file lock backend: lock "${entry.name}" was compromised before it was granted`,
      );
  }

  /** The holder's file lock is no longer ours: its lease is lost, waiters poll again. */
  #lose(entry: Entry, holder: Holder, cause: Error): void {
    holder.lock.compromised ??= cause;
    holder.timer?.cancel();
    entry.holder = undefined;
    const lease = holder.lease;
    if (holder.session !== undefined) {
      // One lock of the session is gone: the session can no longer vouch for its locks, so
      // it is lost (no more keepalives); its other locks stay until it expires.
      this.#dropFromSession(holder.session, lease.leaseId);
      holder.session.lease.lose(`its lock "${entry.name}" was compromised (${cause.message})`);
    }
    this.#ended.remember(
      lease.leaseId,
      `lease ${lease.leaseId} on lock "${entry.name}" was lost at ${new Date(this.#clock.now()).toISOString()}: the lock file was compromised (${cause.message}); another process may hold the lock now; acquire it again`,
    );
    this.#log.warn(
      {
        event: 'lock.compromised',
        backend: 'file',
        name: entry.name,
        owner: lease.owner,
        fencingToken: lease.fencingToken.toString(),
        err: cause.message,
      },
      `file lock backend: lock "${entry.name}" was compromised; its lease is lost`,
    );
    this.#pump(entry);
    this.#forgetIfIdle(entry);
  }

  #holderOf(name: string, leaseId: string): { entry: Entry; holder: Holder } | undefined {
    const entry = this.#locks.get(name);
    const holder = entry?.holder;
    if (entry === undefined || holder === undefined || holder.lease.leaseId !== leaseId) return undefined;
    if (holder.session !== undefined) {
      if (!(holder.session.state === 'live' && holder.session.lease.due))
        throw new FailedPreconditionError(
          `lease ${leaseId} of lock "${name}" belongs to a lock session: its session's keepalive renews it (Locks/Session)`,
        );
      // A due session expires here, as a lease would; its locks are remembered as expired.
      this.#expireSession(holder.session);
      return undefined;
    }
    if (!hasRunOut(holder.lease, this.#clock)) return { entry, holder };
    this.#ended.expired(holder.lease);
    void this.#handOff(entry, holder);
    return undefined;
  }

  async #notHolder(name: string, leaseId: string): Promise<never> {
    this.#ended.throwIfEnded(leaseId);
    const entry = this.#locks.get(name);
    const held =
      entry?.holder !== undefined
        ? `it is held by ${describeHolder(this.#current(entry.holder), this.#clock.now())}`
        : 'this server does not hold it';
    throw notHolder(name, leaseId, held);
  }

  /** Who holds the lock, for busy messages: this server's holder, or another process's record. */
  async #holdersText(entry: Entry): Promise<string> {
    const now = this.#clock.now();
    if (entry.holder !== undefined) return describeHolder(this.#current(entry.holder), now);
    if (entry.granting !== undefined) return `${entry.granting.owner || 'an unnamed owner'} (being granted it now)`;
    try {
      const record = await this.#readRecord(entry.name, entry.path);
      if (record?.held) {
        const holder = { owner: record.owner, mode: 'EXCLUSIVE', fencingToken: BigInt(record.token) } as const;
        return `${describeHolder({ ...holder, expiresAtMs: await this.#recordExpiry(record) }, now)} on another latchkey server (pid ${record.pid} on ${record.host})`;
      }
      return `another process (no latchkey holder recorded in ${entry.path})`;
    } catch (err) {
      return `another process (its holder record is unreadable: ${(err as Error).message})`;
    }
  }

  #recordOf(lease: Lease | undefined, name = lease?.name ?? '', session?: string): HolderRecord {
    return {
      name,
      held: lease !== undefined,
      owner: lease?.owner ?? '',
      token: (lease?.fencingToken ?? 0n).toString(),
      expiresAtMs: lease?.expiresAtMs ?? 0,
      pid: process.pid,
      host: this.#host,
      ...(session === undefined ? {} : { session }),
    };
  }

  /** The holder record, or undefined when there is none (never locked, or not by latchkey). */
  async #readRecord(name: string, path: string): Promise<HolderRecord | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw this.#translate(err, `reading the holder record of lock "${name}"`);
    }
    try {
      const record = JSON.parse(text) as Partial<HolderRecord>;
      const valid =
        record.name === name &&
        typeof record.held === 'boolean' &&
        typeof record.owner === 'string' &&
        /^\d+$/.test(String(record.token)) &&
        typeof record.expiresAtMs === 'number';
      return valid ? (record as HolderRecord) : undefined;
    } catch {
      return undefined; // empty (just created) or not ours
    }
  }

  #writeRecord(entry: Entry, record: HolderRecord): Promise<void> {
    const write = entry.writes.then(() => writeAtomic(entry.path, `${JSON.stringify(record)}\n`, false));
    entry.writes = write.then(noop, noop);
    entry.pendingWrites++;
    void entry.writes.then(() => {
      entry.pendingWrites--;
      this.#forgetIfIdle(entry);
    });
    return write;
  }

  /** Reads, increments and durably writes the name's token counter. Call only holding the lock. */
  async #bumpToken(entry: Entry): Promise<bigint> {
    const path = `${entry.path}.token`;
    let last = 0n;
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    if (text !== undefined) {
      let stored: { name?: unknown; token?: unknown } | undefined;
      try {
        stored = JSON.parse(text) as { name?: unknown; token?: unknown };
      } catch {
        stored = undefined;
      }
      if (typeof stored?.token !== 'string' || !/^\d+$/.test(stored.token)) {
        // NOTE: never guess: restarting at 1 would hand out tokens already used.
        throw new BackendUnavailableError(
          `file lock backend: token file ${path} of lock "${entry.name}" is corrupt; refusing to grant, as fencing tokens could go backwards (restore it, or write a token above any issued)`,
        );
      }
      if (stored.name !== entry.name) {
        throw new LatchkeyError(
          `file lock backend: locks "${entry.name}" and "${String(stored.name)}" map to the same file ${entry.path} (a SHA-256 collision?); refusing to share it`,
        );
      }
      last = BigInt(stored.token);
    }
    const next = last + 1n;
    await writeAtomic(path, `${JSON.stringify({ name: entry.name, token: next.toString() })}\n`, true);
    return next;
  }

  #translate(err: unknown, what: string): Error {
    if (err instanceof LatchkeyError) return err;
    const code = errnoCode(err);
    if (code !== undefined) {
      return new BackendUnavailableError(
        `file lock backend: ${what} in ${this.dir} failed (${code}): ${(err as Error).message}`,
        { cause: err },
      );
    }
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** Replaces path's content all at once: readers see the old or the new file, never a part. */
async function writeAtomic(path: string, data: string, durable: boolean): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const file = await open(tmp, 'wx');
    try {
      await file.writeFile(data, 'utf8');
      if (durable) await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(noop);
    throw err;
  }
  // The rename itself is durable only once the directory is synced.
  if (durable && process.platform !== 'win32') {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
