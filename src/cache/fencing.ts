// Fenced writes: each key remembers the lock and fencing token of its last fenced write, and
// a fenced write with a lower token is refused. The check and the write are one atomic step
// on every store: a CAS loop (read, check, compare-and-swap on the cas just read), so a write
// that raced in between makes the loop read and check again.
//
// The fence record travels with the value, in one item, so no second key can drift from it.
// Values written with a fence are stored as an envelope marked by memcached client flags
// FENCED_FLAGS ("LKF1"):
//
//   "LKF1" | kind (1: 0 = value, 1 = tombstone) | token (8, big-endian) |
//   backend length (1) | backend | lock length (2, big-endian) | lock | value bytes
//
// Items with any other flags are plain bytes. A fenced Delete leaves a tombstone (reads as a
// miss) that keeps the fence, so an older holder cannot write the key back.
import { AbortedError, FencedOutError } from '../errors.js';
import type { CacheStore, Item } from './store.js';

export const FENCED_FLAGS = 0x4c4b4631;
const MAGIC = Buffer.from('LKF1');
/**
 * An election's fence names it after this prefix in the envelope's lock field: no lock name
 * holds a space, so election "x" and lock "x" stay two fences.
 */
const ELECTION_FENCE = 'election ';
/** Largest envelope header: magic, kind, token, backend (≤ 255), lock (≤ 250, or an election fence). */
export const MAX_ENVELOPE_OVERHEAD = 4 + 1 + 8 + 1 + 255 + 2 + ELECTION_FENCE.length + 250;
/** How many times a fenced write re-reads after losing a race before giving up. */
const MAX_ATTEMPTS = 64;

export interface Fence {
  readonly backend: string;
  readonly lock: string;
  readonly token: bigint;
}

/** The fence of a leadership of `election`: a leader fences its writes as a lock holder does. */
export function electionFence(backend: string, election: string, token: bigint): Fence {
  return { backend, lock: ELECTION_FENCE + election, token };
}

/** A fence's lock or election, as messages name it. */
function fenceText(fence: Fence): string {
  return fence.lock.startsWith(ELECTION_FENCE)
    ? `election "${fence.lock.slice(ELECTION_FENCE.length)}"`
    : `lock "${fence.lock}"`;
}

/** What a key holds, as callers see it: a value or nothing, and the fence of its last fenced write. */
export interface View {
  /** undefined for a tombstone. */
  readonly value: Buffer | undefined;
  readonly fence: Fence | undefined;
}

export function encode(fence: Fence, value: Buffer | undefined): Buffer {
  const backend = Buffer.from(fence.backend);
  const lock = Buffer.from(fence.lock);
  const header = Buffer.alloc(4 + 1 + 8 + 1 + backend.length + 2 + lock.length);
  let at = MAGIC.copy(header, 0);
  at = header.writeUInt8(value === undefined ? 1 : 0, at);
  at = header.writeBigUInt64BE(fence.token, at);
  at = header.writeUInt8(backend.length, at);
  at += backend.copy(header, at);
  at = header.writeUInt16BE(lock.length, at);
  lock.copy(header, at);
  return value === undefined ? header : Buffer.concat([header, value]);
}

/** Reads an item; anything that is not a well-formed envelope is plain bytes. */
export function decode(item: Item): View {
  const bytes = item.value;
  if (item.flags !== FENCED_FLAGS || bytes.length < 16 || !bytes.subarray(0, 4).equals(MAGIC))
    return { value: bytes, fence: undefined };
  const kind = bytes.readUInt8(4);
  const token = bytes.readBigUInt64BE(5);
  const backendLength = bytes.readUInt8(13);
  const lockAt = 14 + backendLength;
  if (bytes.length < lockAt + 2) return { value: bytes, fence: undefined };
  const lockLength = bytes.readUInt16BE(lockAt);
  const valueAt = lockAt + 2 + lockLength;
  if (bytes.length < valueAt || kind > 1) return { value: bytes, fence: undefined };
  const fence = {
    backend: bytes.toString('utf8', 14, lockAt),
    lock: bytes.toString('utf8', lockAt + 2, valueAt),
    token,
  };
  return { value: kind === 1 ? undefined : bytes.subarray(valueAt), fence };
}

function checkFence(key: string, last: Fence | undefined, fence: Fence): void {
  if (last === undefined) return;
  if (last.lock !== fence.lock || last.backend !== fence.backend) {
    throw new FencedOutError(
      `fenced write to key "${key}" refused: the key is fenced by ${fenceText(last)} (backend ${last.backend}), not ${fenceText(fence)} (backend ${fence.backend}); fence with that one, or delete the key without a fence to reset it`,
    );
  }
  if (fence.token < last.token) {
    throw new FencedOutError(
      `fenced write to key "${key}" refused: it was last written under ${fenceText(fence)} with fencing token ${last.token}, and this write carries ${fence.token}; a newer holder has written, so this holder's ${fence.lock.startsWith(ELECTION_FENCE) ? 'leadership' : 'lock'} is stale`,
    );
  }
}

type Step<R> =
  | { readonly done: R }
  | { readonly write: Buffer | undefined; readonly ttlMs: number; readonly result: (cas: bigint) => R };

/**
 * The CAS loop: reads the key, checks the fence, asks `decide` what to do with what is
 * there, and writes the envelope only if the key is unchanged since the read.
 */
async function fencedStep<R>(
  store: CacheStore,
  key: string,
  fence: Fence,
  signal: AbortSignal,
  decide: (view: View | undefined, item: Item | undefined) => Step<R>,
): Promise<R> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const item = await store.get(key, signal);
    const view = item === undefined ? undefined : decode(item);
    checkFence(key, view?.fence, fence);
    const step = decide(view, item);
    if ('done' in step) return step.done;
    const bytes = encode(fence, step.write);
    const written =
      item === undefined
        ? await store.add(key, bytes, FENCED_FLAGS, step.ttlMs, signal)
        : await store.cas(key, bytes, FENCED_FLAGS, item.cas, step.ttlMs, signal);
    if (written.outcome === 'STORED') return step.result(written.cas);
    // EXISTS or NOT_FOUND: another write landed between the read and ours. Read again.
  }
  throw new AbortedError(
    `fenced write to key "${key}" lost the race ${MAX_ATTEMPTS} times to concurrent writers; retry`,
  );
}

export function fencedSet(
  store: CacheStore,
  key: string,
  value: Buffer,
  ttlMs: number,
  fence: Fence,
  signal: AbortSignal,
): Promise<bigint> {
  return fencedStep(store, key, fence, signal, () => ({ write: value, ttlMs, result: (cas) => cas }));
}

export function fencedCas(
  store: CacheStore,
  key: string,
  value: Buffer,
  cas: bigint,
  ttlMs: number,
  fence: Fence,
  signal: AbortSignal,
) {
  type Result = { outcome: 'STORED' | 'EXISTS' | 'NOT_FOUND'; cas: bigint };
  return fencedStep<Result>(store, key, fence, signal, (view, item) => {
    if (view?.value === undefined) return { done: { outcome: 'NOT_FOUND', cas: 0n } };
    if (item!.cas !== cas) return { done: { outcome: 'EXISTS', cas: 0n } };
    return { write: value, ttlMs, result: (newCas) => ({ outcome: 'STORED', cas: newCas }) };
  });
}

export function fencedAdd(
  store: CacheStore,
  key: string,
  value: Buffer,
  ttlMs: number,
  fence: Fence,
  signal: AbortSignal,
) {
  type Result = { outcome: 'STORED' | 'EXISTS'; cas: bigint };
  return fencedStep<Result>(store, key, fence, signal, (view) => {
    if (view?.value !== undefined) return { done: { outcome: 'EXISTS', cas: 0n } };
    return { write: value, ttlMs, result: (cas) => ({ outcome: 'STORED', cas }) };
  });
}

export function fencedDelete(store: CacheStore, key: string, cas: bigint, fence: Fence, signal: AbortSignal) {
  type Result = 'DELETED' | 'NOT_FOUND' | 'EXISTS';
  return fencedStep<Result>(store, key, fence, signal, (view, item) => {
    if (view?.value !== undefined && cas !== 0n && item!.cas !== cas) return { done: 'EXISTS' };
    // A tombstone even where nothing was: the fence must outlive the value.
    const outcome = view?.value === undefined ? 'NOT_FOUND' : 'DELETED';
    return { write: undefined, ttlMs: 0, result: () => outcome };
  });
}
