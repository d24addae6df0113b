// The lease bookkeeping shared by the backends that keep their own leases (memory, file):
// how a lease id is made, the rule that a lease's expiry time (not its timer) decides, and
// the memory of ended leases that lets Refresh and Release say "expired" or "lost" instead
// of a bare "not the holder".
//
// Vocabulary: a lease *ends* by being released, by *expiring* (its TTL ran out), by being
// *lost* (its lock was taken behind its back), or by the server shutting down. Only expiries
// are reported to the ExpiryListener.
import { randomFillSync } from 'node:crypto';
import type { Clock } from '../clock.js';
import { LeaseExpiredError } from '../errors.js';
import type { ExpiryListener, Lease } from './backend.js';

/** Random bytes for 256 lease ids, refilled from the CSPRNG when used up. */
const ID_POOL = Buffer.alloc(16 * 256);
let idPoolAt = ID_POOL.length;

/**
 * A new lease id: 32 lowercase hex characters, unguessable (128 random bits), as a lease id
 * must be: it is what lets a caller refresh and release.
 * NOTE: from a pool of CSPRNG bytes, as randomUUID draws its own: randomBytes(16) made a
 * getrandom call per grant (~5% of the server's CPU in a lock cycle), and
 * randomUUID().replaceAll('-', '') took 4 times as long as hex from the pool. Each id's
 * bytes are used once.
 */
export function newLeaseId(): string {
  if (idPoolAt === ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolAt = 0;
  }
  const id = ID_POOL.toString('hex', idPoolAt, idPoolAt + 16);
  idPoolAt += 16;
  return id;
}

/**
 * Whether the lease has run out by now.
 * NOTE: an expiry timer can fire late (a busy event loop, a slow disk in between); the
 * lease's own expiry time is what counts, so an operation on a lease checks this before it
 * trusts the lease, and ends the lease itself when the timer has not yet.
 */
export function hasRunOut(lease: Pick<Lease, 'expiresAtMs'>, clock: Clock): boolean {
  return clock.now() >= lease.expiresAtMs;
}

/** How many ended lease ids a backend remembers (the oldest are forgotten first). */
export const ENDED_LEASES_REMEMBERED = 10_000;

/**
 * The leases that ended other than by a release, with the message a later Refresh or
 * Release of each gets (LeaseExpiredError). Bounded: past ENDED_LEASES_REMEMBERED, the
 * oldest is forgotten, and its Refresh or Release gets NotHolderError instead.
 */
export class EndedLeases {
  readonly #why = new Map<string, string>();
  readonly #onExpire: ExpiryListener | undefined;

  /** onExpire is told of each expiry, once (see ExpiryListener). */
  constructor(onExpire?: ExpiryListener) {
    this.#onExpire = onExpire;
  }

  /** The lease ran out of TTL: reported to the listener and remembered. */
  expired(lease: Lease): void {
    this.#onExpire?.(lease);
    this.remember(
      lease.leaseId,
      `lease ${lease.leaseId} on lock "${lease.name}" expired at ${new Date(lease.expiresAtMs).toISOString()}; acquire the lock again`,
    );
  }

  /** The lease ended some other way (lost, or released at shutdown); `why` is the whole message. */
  remember(leaseId: string, why: string): void {
    this.#why.set(leaseId, why);
    if (this.#why.size > ENDED_LEASES_REMEMBERED) this.#why.delete(this.#why.keys().next().value!);
  }

  /** Throws LeaseExpiredError, saying why, if the lease is remembered as ended. */
  throwIfEnded(leaseId: string): void {
    const why = this.#why.get(leaseId);
    if (why !== undefined) throw new LeaseExpiredError(why);
  }
}
