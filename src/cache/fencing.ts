// Fenced writes, the format and the rule: each key remembers the lock and fencing token of its
// last fenced write, and a fenced write with a lower token (or from another lock) is refused.
// How the check and the write become one atomic step on a store is cache.ts's business.
//
// The fence record travels with the value, in one item, so no second key can drift from it.
// Values written with a fence are stored as an envelope marked by memcached client flags
// FENCED_FLAGS ("LKF1"):
//
//   "LKF1" | kind (1) | token (8, big-endian) |
//   backend length (1) | backend | lock length (2, big-endian) | lock | value bytes
//
// kind 0 = a value; 1 = a tombstone, 2 = a claim, 3 = a lease (all three without value bytes).
// A lease (leases.ts) has no lock: its backend and lock are empty and its token is the time it
// runs out, in ms since the epoch. Items with any other flags are plain bytes.
//
// A fenced Delete leaves the key absent, as memcached means it (so plain memcached clients may
// Add it), and a tombstone under its own key, tombstoneKey(key), stored beside the key (on its
// memcached server: cache.ts), that keeps the fence for the tombstone retention: an older
// holder cannot write the key back while it lasts. A claim is an item a fenced operation puts
// in the key for the few round trips it takes to check the tombstone and write; it reads as
// absent.
import { createHash } from 'node:crypto';
import { FencedOutError } from '../errors.js';
import type { Item } from './store.js';

export const FENCED_FLAGS = 0x4c4b4631;
const MAGIC = Buffer.from('LKF1');
/**
 * An election's fence names it after this prefix in the envelope's lock field: no lock name
 * holds a space, so election "x" and lock "x" stay two fences.
 */
const ELECTION_FENCE = 'election ';
/** Largest envelope header: magic, kind, token, backend (≤ 255), lock (≤ 250, or an election fence). */
export const MAX_ENVELOPE_OVERHEAD = 4 + 1 + 8 + 1 + 255 + 2 + ELECTION_FENCE.length + 250;
/** Where the tombstone of a key lives: a fixed prefix and the SHA-256 of the key's UTF-8, in hex. */
export const TOMBSTONE_PREFIX = 'latchkey:tombstone:';

export interface Fence {
  readonly backend: string;
  readonly lock: string;
  readonly token: bigint;
}

export type EnvelopeKind = 'value' | 'tombstone' | 'claim' | 'lease';
const KIND_BYTE: Record<EnvelopeKind, number> = { value: 0, tombstone: 1, claim: 2, lease: 3 };
const KINDS: readonly EnvelopeKind[] = ['value', 'tombstone', 'claim', 'lease'];

/** What one item holds: a value (plain when fence is undefined), a tombstone, a claim or a lease. */
export type View =
  | { readonly kind: 'value'; readonly value: Buffer; readonly fence: Fence | undefined }
  | { readonly kind: 'tombstone' | 'claim'; readonly value: undefined; readonly fence: Fence }
  | { readonly kind: 'lease'; readonly value: undefined; readonly fence: undefined; readonly untilMs: number };

/** The key of `key`'s tombstone (83 bytes: every cache key has room for one). */
export function tombstoneKey(key: string): string {
  return TOMBSTONE_PREFIX + createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A lease item's bytes (its flags are FENCED_FLAGS): it runs out at untilMs. */
export function encodeLease(untilMs: number): Buffer {
  return encode({ backend: '', lock: '', token: BigInt(untilMs) }, 'lease');
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

export function encode(fence: Fence, kind: EnvelopeKind, value?: Buffer): Buffer {
  const backend = Buffer.from(fence.backend);
  const lock = Buffer.from(fence.lock);
  const header = Buffer.alloc(4 + 1 + 8 + 1 + backend.length + 2 + lock.length);
  let at = MAGIC.copy(header, 0);
  at = header.writeUInt8(KIND_BYTE[kind], at);
  at = header.writeBigUInt64BE(fence.token, at);
  at = header.writeUInt8(backend.length, at);
  at += backend.copy(header, at);
  at = header.writeUInt16BE(lock.length, at);
  lock.copy(header, at);
  return kind === 'value' && value !== undefined ? Buffer.concat([header, value]) : header;
}

/** Reads an item; anything that is not a well-formed envelope is plain bytes. */
export function decode(item: Item): View {
  const bytes = item.value;
  const plain = { kind: 'value', value: bytes, fence: undefined } as const;
  if (item.flags !== FENCED_FLAGS || bytes.length < 16 || !bytes.subarray(0, 4).equals(MAGIC)) return plain;
  const kind = KINDS[bytes.readUInt8(4)];
  const token = bytes.readBigUInt64BE(5);
  const backendLength = bytes.readUInt8(13);
  const lockAt = 14 + backendLength;
  if (kind === undefined || bytes.length < lockAt + 2) return plain;
  const lockLength = bytes.readUInt16BE(lockAt);
  const valueAt = lockAt + 2 + lockLength;
  if (bytes.length < valueAt) return plain;
  const fence = {
    backend: bytes.toString('utf8', 14, lockAt),
    lock: bytes.toString('utf8', lockAt + 2, valueAt),
    token,
  };
  if (kind === 'lease') return { kind, value: undefined, fence: undefined, untilMs: Number(token) };
  return kind === 'value' ? { kind, value: bytes.subarray(valueAt), fence } : { kind, value: undefined, fence };
}

/** Throws FencedOutError unless `fence` may write a key whose last fenced write was `last`. */
export function checkFence(key: string, last: Fence | undefined, fence: Fence): void {
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
