// The refusals every lock backend words the same way: busy, not granted in time, cancelled
// while waiting, a limit that differs, a lease that does not hold the lock; and how a
// holder is named in them. Clients and people read these messages, so a lock busy on
// memory reads like one busy on etcd.
import { CancelledError, FailedPreconditionError, LockBusyError, NotHolderError } from '../errors.js';
import type { LockMode } from './backend.js';

/** What a refusal says about one holder. */
export interface HolderText {
  /** '' for a holder that gave no owner. */
  readonly owner: string;
  readonly mode: LockMode;
  readonly fencingToken: bigint;
  /** Absent where the backend does not know it without asking (etcd). */
  readonly expiresAtMs?: number;
}

/**
 * One holder, e.g. `shared: alice (fencing token 7, expires in 1200 ms)`. `where` comes
 * first in the parentheses (`etcd key locks/a/694d...`).
 */
export function describeHolder(holder: HolderText, now: number, where?: string): string {
  const facts = [where, `fencing token ${holder.fencingToken}`];
  if (holder.expiresAtMs !== undefined) facts.push(`expires in ${Math.max(0, holder.expiresAtMs - now)} ms`);
  const who = holder.owner || 'an unnamed owner';
  return `${holder.mode === 'SHARED' ? 'shared: ' : ''}${who} (${facts.filter((f) => f !== undefined).join(', ')})`;
}

/** Several holders (each from describeHolder, oldest grant first): the first three, and how many more. */
export function describeHolders(holders: readonly string[]): string {
  if (holders.length === 0) return 'nobody, but earlier waiters are queued';
  const shown = holders.slice(0, 3).join(', ');
  return holders.length <= 3 ? shown : `${shown} and ${holders.length - 3} more`;
}

/** A try-once (wait_ms 0) found the lock held by `holders` (describeHolders). */
export function busy(name: string, holders: string): LockBusyError {
  return new LockBusyError(`lock "${name}" is held by ${holders}; not acquired (wait_ms = 0 tries once)`);
}

/** A wait of `waitMs` ran out; `holders` (describeHolders) is who holds it now, undefined for nobody. */
export function notGrantedInTime(name: string, holders: string | undefined, waitMs: number): LockBusyError {
  const held = holders === undefined ? 'not granted' : `still held by ${holders}`;
  return new LockBusyError(`lock "${name}" ${held} after waiting ${waitMs} ms`);
}

/** The caller went away (or its deadline passed) while it waited. */
export function cancelledWhileWaiting(name: string): CancelledError {
  return new CancelledError(`acquire of lock "${name}" cancelled while waiting`);
}

/** An EXCLUSIVE request whose limit differs from the one its name's holders and waiters agreed on. */
export function limitMismatch(name: string, current: number, asked: number): FailedPreconditionError {
  return new FailedPreconditionError(
    `lock "${name}" is held or awaited with limit ${current}; this request asks for limit ${asked}: every holder of a name must use the same limit`,
  );
}

/**
 * A Refresh or Release with a lease that does not hold the lock (and did not end here: see
 * EndedLeases). `current` says how the lock stands, e.g. `it is held by ...`.
 */
export function notHolder(name: string, leaseId: string, current: string): NotHolderError {
  return new NotHolderError(`lease ${leaseId || '(empty)'} does not hold lock "${name}": ${current}`);
}
