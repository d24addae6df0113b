// A lock session's one lease record, as the backends that keep their own TTLs (memory, file)
// hold it: id, TTL, expiry, one timer and the signal that reports the session's end; and the
// registry that finds a live session by id (resume) and remembers why a gone one is gone.
// The backends own the locks; this file owns only the lease's lifetime.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { Clock, Timer } from '../clock.js';
import { InvalidArgumentError, type LatchkeyError, SessionExpiredError } from '../errors.js';
import type { SessionLeaseInfo, SessionState } from './backend.js';

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * One session's lease: it expires `ttlMs` after it was opened or last renewed, and calls
 * `onDue` then (once). The backend's onDue frees the session's locks and calls expire().
 *
 * NOTE: a timer can fire late (a busy event loop); the lease's own expiry time is what
 * counts. checkLive() runs onDue itself when the time has passed but the timer has not
 * fired, so a late keepalive can never revive a session that is already due.
 */
export class SessionLease {
  readonly id: string;
  readonly ref: string;
  readonly ttlMs: number;
  readonly #clock: Clock;
  readonly #onDue: () => void;
  readonly #controller = new AbortController();
  #expiresAtMs: number;
  #timer: Timer;
  #state: SessionState = 'live';

  constructor(clock: Clock, id: string, ref: string, ttlMs: number, onDue: () => void) {
    this.#clock = clock;
    this.id = id;
    this.ref = ref;
    this.ttlMs = ttlMs;
    this.#onDue = onDue;
    // Every acquire of the session listens to its signal while it runs: many are normal.
    setMaxListeners(0, this.#controller.signal);
    this.#expiresAtMs = clock.now() + ttlMs;
    this.#timer = this.#arm();
  }

  get expiresAtMs(): number {
    return this.#expiresAtMs;
  }

  get state(): SessionState {
    return this.#state;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The TTL has run out (whether or not the timer has fired yet). */
  get due(): boolean {
    return this.#clock.now() >= this.#expiresAtMs;
  }

  /** Throws why the session is not live (running onDue first if it is due). */
  checkLive(): void {
    if (this.#state === 'live' && this.due) this.#fire();
    if (this.#state !== 'live') throw this.#controller.signal.reason;
  }

  /** Renews the lease from now (checkLive first). */
  renew(): SessionLeaseInfo {
    this.checkLive();
    this.#timer.cancel();
    this.#expiresAtMs = this.#clock.now() + this.ttlMs;
    this.#timer = this.#arm();
    return { ttlMs: this.ttlMs, expiresAtMs: this.#expiresAtMs };
  }

  /**
   * The backend lost part of what the lease stands for: no keepalive from now on, but the
   * timer stays, so the session's locks stay held until it runs out (the holder, counting
   * from its last keepalive, knows that time; nobody may get them sooner).
   */
  lose(cause: string): void {
    if (this.#state !== 'live') return;
    this.#state = 'lost';
    this.#controller.abort(
      new SessionExpiredError(
        `session ${this.ref} was lost at ${iso(this.#clock.now())}: ${cause}; it can no longer be kept alive, and its other locks stay held until it expires at ${iso(this.#expiresAtMs)}: open a new session`,
      ),
    );
  }

  /** The TTL ran out: called by the backend's onDue once it has freed the locks' records. */
  expire(): SessionExpiredError {
    return this.#finish(
      'expired',
      new SessionExpiredError(
        `session ${this.ref} expired at ${iso(this.#expiresAtMs)} (no keepalive within its TTL of ${this.ttlMs} ms); its locks were released: open a new session`,
      ),
    );
  }

  /** end(): the session's locks are released. */
  end(): SessionExpiredError {
    return this.#finish(
      'ended',
      new SessionExpiredError(
        `session ${this.ref} ended at ${iso(this.#clock.now())}; its locks were released: open a new session`,
      ),
    );
  }

  /** The backend is closing: the session goes with it. */
  close(reason: LatchkeyError): void {
    this.#finish('ended', reason);
  }

  #finish(state: 'expired' | 'ended', reason: LatchkeyError): SessionExpiredError {
    this.#timer.cancel();
    this.#state = state;
    // A lost session keeps its 'lost' reason on the signal (already aborted): abort is once.
    this.#controller.abort(reason);
    return reason instanceof SessionExpiredError ? reason : new SessionExpiredError(reason.message);
  }

  #fire(): void {
    if (this.#state === 'live' || this.#state === 'lost') this.#onDue();
  }

  #arm(): Timer {
    return this.#clock.schedule(this.#expiresAtMs - this.#clock.now(), () => this.#fire());
  }
}

/** How many gone session ids to remember, so a resume can say precisely why it cannot. */
const GONE_MEMORY = 10_000;

const INSTANCE = /^[0-9a-f]{16}$/;
const SECRET = /^[0-9a-f]{32}$/;

/**
 * The sessions of one backend instance. Ids are `<kind>.<instance>.<secret>`: the instance
 * (random per backend object, so per server process) lets a resume on another server, or
 * after a restart, be told apart from a mistyped id; the secret (122 random bits) is what
 * makes the id a capability.
 */
export class SessionRegistry<S extends { readonly lease: SessionLease }> {
  readonly #kind: string;
  readonly #instance = randomBytes(8).toString('hex');
  readonly #live = new Map<string, S>();
  readonly #gone = new Map<string, string>();

  constructor(kind: string) {
    this.#kind = kind;
  }

  /** A fresh id, and its public ref (a digest: logs and records never carry the id). */
  newId(): { id: string; ref: string } {
    const id = `${this.#kind}.${this.#instance}.${randomUUID().replaceAll('-', '')}`;
    return { id, ref: sessionRef(id) };
  }

  add(session: S): void {
    this.#live.set(session.lease.id, session);
  }

  get size(): number {
    return this.#live.size;
  }

  values(): IterableIterator<S> {
    return this.#live.values();
  }

  /** The live (or lost) session with this id; throws why there is none. */
  find(id: string): S {
    const [kind, instance, secret, ...rest] = id.split('.');
    if (kind !== this.#kind || !INSTANCE.test(instance ?? '') || !SECRET.test(secret ?? '') || rest.length > 0)
      throw new InvalidArgumentError(
        `resume_id is not a ${this.#kind} session id: send the session_id of an opened message as it came`,
      );
    const ref = sessionRef(id);
    if (instance !== this.#instance)
      throw new SessionExpiredError(
        `session ${ref} was opened by another latchkey server process (or by this one before it restarted); ${this.#kind} sessions live in the server that opened them (the ${this.#kind} backend does not declare acrossHosts): open a new session`,
      );
    const session = this.#live.get(id);
    if (session !== undefined) return session;
    throw new SessionExpiredError(
      this.#gone.get(id) ?? `session ${ref} is unknown here: it ended or expired long ago; open a new session`,
    );
  }

  /** The session is gone for good (expired or ended): resumes get `why`. */
  forget(session: S, why: string): void {
    if (this.#live.get(session.lease.id) !== session) return;
    this.#live.delete(session.lease.id);
    this.#gone.set(session.lease.id, why);
    if (this.#gone.size > GONE_MEMORY) this.#gone.delete(this.#gone.keys().next().value!);
  }

  clear(): void {
    this.#live.clear();
  }
}

/** The public name of a session id: not reversible, so it can be logged and written in records. */
export function sessionRef(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 16);
}
