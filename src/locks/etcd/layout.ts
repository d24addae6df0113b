// The etcd backend's data layout, pure (no etcd, no I/O): key and value format, the lease-id
// codec and the grant rule. etcd's concurrency/key.go and mutex.go define the plain lock;
// semaphores and read/write locks extend it on the same create-revision order (Curator's and
// etcd's recipes). Every server, Describe and Watch evaluate a queue with these functions
// alike, so no server keeps state of its own about a lock.
//
// Layout (the same as `etcdctl lock`, so the two interoperate):
//   key   = prefix + name + '/' + lowercase hex of the etcd lease id   (the "own key")
//   value = the owner, for a plain lock (EXCLUSIVE, limit 1): exactly what etcdctl expects;
//           etcdctl lock itself writes an empty value, which reads as a plain lock too.
//           Anything else (SHARED, or a semaphore's limit N > 1, or an owner that starts
//           with NUL) is VALUE_TAG + JSON {"owner":…,"mode":"EXCLUSIVE"|"SHARED","limit":N},
//           e.g. "\u0000latchkey:{"owner":"r1","mode":"SHARED","limit":1}". A value that
//           does not parse as that reads as a plain lock held by its text: an unknown key is
//           taken for the strictest kind, as etcdctl takes every key.
//   lease = an etcd lease with TTL ⌈ttl_ms / 1000⌉ s that the own key is attached to
// Every key of a name, whatever its mode, is in one queue, in create-revision order (FIFO).
// Which keys hold the lock is grantedCount below. Walking from the oldest key, a key holds
// the lock while every key before it does and
//   SHARED:          no EXCLUSIVE key is before it;
//   EXCLUSIVE, N:    no SHARED key is before it and fewer than N EXCLUSIVE keys are (N = 1:
//                    it is the first key, etcd's mutex), and N is the limit of the first
//                    EXCLUSIVE key (else it is a request being refused: see queueLimit).
// The first key that does not hold stops the walk: later keys never pass it, which keeps a
// writer queued behind readers ahead of readers that came after it. Once a key holds, only
// deleting keys before it changes what is before it, so it holds until its own key goes.
// The fencing token is the own key's create revision: etcd's revision is cluster-wide and
// only grows, and grants follow create order, so tokens strictly increase per grant.
//
// lease_id (what clients hold): the lowercase hex etcd lease id, i.e. the own key's last
// segment. With the lock name the request carries, it is all any server needs (the key is
// prefix + name + '/' + lease_id), so Refresh and Release work through any latchkey server
// on the same etcd.
//
// Lock sessions (client-session.ts, lock-session.ts): one etcd lease for all of a client's
// locks, the same own keys on it (so `etcdctl lock` contends with them as with any other).
// Besides those:
//   session id  = 'etcd.' + lease id (hex) + '.' + 32 hex characters of secret: all any
//                 server on the same etcd needs to resume the session, and a capability
//   mark key    = prefix + NUL + 'sessions/' + lease id + '/' + digest of the secret, on the
//                 lease: the session's mark. A resume must find it among the lease's keys
//                 (the id is then genuine and the lease a session's), and unary Refresh and
//                 Release, finding it, refuse to touch a session's lease. NUL cannot occur in
//                 a lock name, so the mark is in no lock's queue.
//   lease_id of a session's lock = lease id (hex) + '.' + the own key's create revision +
//                 '.' + 8 hex digits of a digest of the name: unique per lock (one lease holds
//                 many, and the locks of one lease put in one Txn share a create revision:
//                 txn-batch.ts), and not a bare lease id, so a unary Release knows it for a
//                 session's without asking etcd.
import { createHash } from 'node:crypto';
import type { LockMode } from '../backend.js';
import { agreedLimit } from '../lock-state.js';
import { describeHolder as describeHolderText, describeHolders as describeHolderTexts } from '../refusals.js';

/** What one key of a queue asks for: decoded from its value. */
export interface Claim {
  readonly owner: string;
  readonly mode: LockMode;
  /** 1 for SHARED keys. */
  readonly limit: number;
}

/** A key of one lock's queue in our (and etcdctl's) layout: it ends in a hex lease id. */
export interface QueueKey extends Claim {
  readonly key: string;
  /** The etcd lease the key is attached to, decimal as etcd3 sends it ('0' = none). */
  readonly leaseDec: string;
  readonly createRevision: bigint;
}

/** The fields of an etcd key-value that the layout reads (etcd3's IKeyValue has them). */
export interface StoredKeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly lease: string;
  readonly create_revision: string;
}

/** A plain lock (EXCLUSIVE, limit 1) is etcd's mutex exactly: it holds when its key is the first. */
export const isPlain = (claim: Claim): boolean => claim.mode === 'EXCLUSIVE' && claim.limit === 1;

/** A claim as stored: a SHARED claim's limit is always 1. */
export const claimOf = (owner: string, mode: LockMode, limit: number): Claim => ({
  owner,
  mode,
  limit: mode === 'SHARED' ? 1 : limit,
});

// ---- lease ids ------------------------------------------------------------------------------

// Go prints lease ids with %x: lowercase, no leading zeros; a positive int64 (etcd's ids).
const LEASE_HEX = /^(?:[1-9a-f][0-9a-f]{0,14}|[1-7][0-9a-f]{15})$/;

/** Whether `text` is a lease id as clients hold it (and as it ends an own key). */
export const isLeaseId = (text: string): boolean => LEASE_HEX.test(text);
/** A client's lease id (hex) → etcd's lease id as etcd3 sends it (decimal). */
export const leaseIdToDec = (leaseId: string): string => BigInt(`0x${leaseId}`).toString();
/** etcd's lease id (decimal) → the lease id clients hold (hex). */
export const leaseIdFromDec = (leaseDec: string): string => BigInt(leaseDec).toString(16);

// ---- lock sessions -----------------------------------------------------------------------------

const SESSION_ID = /^etcd\.((?:[1-9a-f][0-9a-f]{0,14}|[1-7][0-9a-f]{15}))\.([0-9a-f]{32})$/;
const SESSION_LOCK_ID = /^((?:[1-9a-f][0-9a-f]{0,14}|[1-7][0-9a-f]{15}))\.([1-9][0-9]{0,18})(?:\.([0-9a-f]{8}))?$/;

/** A session id: the backend's name, the session's lease id and its secret (32 hex). */
export const sessionIdOf = (leaseId: string, secret: string): string => `etcd.${leaseId}.${secret}`;

/** The lease id and secret of a session id; undefined for text that is not one. */
export function parseSessionId(id: string): { readonly leaseId: string; readonly secret: string } | undefined {
  const m = SESSION_ID.exec(id);
  return m === null ? undefined : { leaseId: m[1]!, secret: m[2]! };
}

/** Where the marks of the session on lease `leaseId` live (one, if it is a session's). */
export const sessionMarkPrefixOf = (prefix: string, leaseId: string): string => `${prefix}\u0000sessions/${leaseId}/`;

/** The mark key of a session: on its lease, named by a digest of its secret (never the secret). */
export function sessionMarkOf(prefix: string, leaseId: string, secret: string): string {
  const digest = createHash('sha256').update(secret).digest('hex').slice(0, 32);
  return sessionMarkPrefixOf(prefix, leaseId) + digest;
}

/**
 * 8 hex digits naming a lock name in its session's lock ids: FNV-1a (32 bits) over the name's
 * UTF-16 code units. Two locks of one session put in one Txn share a create revision; this
 * keeps their ids apart (txn-batch.ts never batches two of one lease whose digests are equal).
 */
export function nameDigestOf(name: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** What no two own keys in one Txn may share: a lease and a name digest (one lock id). */
export const lockIdConflict = (leaseId: string, name: string): string => `\u0000${leaseId}.${nameDigestOf(name)}`;

/**
 * The lease_id of a session's lock: its session's lease id, its own key's create revision
 * and the digest of its name.
 */
export const sessionLockIdOf = (leaseId: string, createRevision: bigint, name: string): string =>
  `${leaseId}.${createRevision}.${nameDigestOf(name)}`;

/**
 * The parts of a session lock's lease_id; undefined for anything else (a unary lease id
 * included). An id without the digest (as servers before it answered) has none to check.
 */
export function parseSessionLockId(
  text: string,
): { readonly leaseId: string; readonly createRevision: bigint; readonly nameDigest?: string } | undefined {
  const m = SESSION_LOCK_ID.exec(text);
  if (m === null) return undefined;
  return m[3] === undefined
    ? { leaseId: m[1]!, createRevision: BigInt(m[2]!) }
    : { leaseId: m[1]!, createRevision: BigInt(m[2]!), nameDigest: m[3] };
}

/** Whether a parsed session lock id names this grant: its create revision, and its name if it says. */
export const sessionLockIdMatches = (
  id: { readonly createRevision: bigint; readonly nameDigest?: string },
  name: string,
  own: QueueKey,
): boolean =>
  id.createRevision === own.createRevision && (id.nameDigest === undefined || id.nameDigest === nameDigestOf(name));

/**
 * The lock names among the keys of lease `leaseId` (LeaseTimeToLive lists them): own keys,
 * prefix + name + '/' + lease id. Other keys (the session's mark, anything put outside the
 * prefix) are no lock's.
 */
export function lockNamesOnLease(prefix: string, leaseId: string, keys: readonly Buffer[]): string[] {
  const suffix = `/${leaseId}`;
  const names: string[] = [];
  for (const raw of keys) {
    const key = raw.toString();
    if (!key.startsWith(prefix) || !key.endsWith(suffix)) continue;
    const name = key.slice(prefix.length, key.length - suffix.length);
    if (name !== '' && !name.startsWith('\u0000')) names.push(name);
  }
  return names;
}

// ---- keys -----------------------------------------------------------------------------------

/** Where lock `name`'s keys live: prefix + name + '/'. */
export const queuePrefixOf = (prefix: string, name: string): string => `${prefix}${name}/`;

/** range_end for "every key starting with prefix": the prefix with its last byte + 1. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * The keys of one lock's queue among `kvs`, in their order. NOTE: lock "a" owns the keys
 * "a/<hex>", but a prefix range over "a/" also returns lock "a/b"'s keys ("a/b/<hex>");
 * etcdctl lock has the same overlap. Only a key whose remainder is a bare lease id belongs
 * to this lock.
 */
export function queueKeysOf(queuePrefix: string, kvs: readonly StoredKeyValue[]): QueueKey[] {
  const keys: QueueKey[] = [];
  for (const kv of kvs) {
    const key = kv.key.toString();
    if (!key.startsWith(queuePrefix) || !isLeaseId(key.slice(queuePrefix.length))) continue;
    keys.push({ key, leaseDec: kv.lease, createRevision: BigInt(kv.create_revision), ...decodeValue(kv.value) });
  }
  return keys;
}

// ---- values ---------------------------------------------------------------------------------

/** Starts every value that is not a plain lock's owner; NUL keeps it apart from any owner text. */
export const VALUE_TAG = '\u0000latchkey:';

/** The value of an own key: the bare owner for a plain lock (as etcdctl lock), else tagged JSON. */
export function encodeValue(claim: Claim): Buffer {
  // An owner that starts with NUL could pass for a tagged value: tag it, so it reads back as itself.
  if (isPlain(claim) && !claim.owner.startsWith('\u0000')) return Buffer.from(claim.owner);
  return Buffer.from(
    VALUE_TAG +
      JSON.stringify({ owner: claim.owner, mode: claim.mode, limit: claim.mode === 'SHARED' ? 1 : claim.limit }),
  );
}

/**
 * Reads any value found in the queue. NOTE: never throws: a key we cannot read (another tool's,
 * a newer format, damage) is a plain lock held by the value's text, the strictest reading,
 * which is also how `etcdctl lock` treats every key.
 */
export function decodeValue(value: Buffer): Claim {
  const text = value.toString('utf8');
  if (text.startsWith(VALUE_TAG)) {
    try {
      const parsed: unknown = JSON.parse(text.slice(VALUE_TAG.length));
      if (typeof parsed === 'object' && parsed !== null) {
        const { owner, mode, limit } = parsed as Record<string, unknown>;
        if (
          typeof owner === 'string' &&
          (mode === 'EXCLUSIVE' || mode === 'SHARED') &&
          typeof limit === 'number' &&
          Number.isSafeInteger(limit) &&
          limit >= 1
        ) {
          return claimOf(owner, mode, limit);
        }
      }
    } catch {
      // Not JSON: read as a plain lock, below.
    }
  }
  return { owner: text, mode: 'EXCLUSIVE', limit: 1 };
}

// ---- the grant rule -------------------------------------------------------------------------

/**
 * How many keys of a queue (oldest first) hold the lock: they are always its first keys. The
 * same rule as the memory backend's (one FIFO queue across modes, the head never passed):
 * a SHARED key holds while no EXCLUSIVE key does; an EXCLUSIVE key while no SHARED key does
 * and fewer than its limit of EXCLUSIVE keys do. An EXCLUSIVE key whose limit differs from
 * the first EXCLUSIVE key's is a request being refused for it: it never holds, and stops
 * the walk until its owner removes it (`etcdctl lock`'s key behind a semaphore's waits so
 * until it is first, as etcdctl itself does).
 */
export function grantedCount(queue: readonly Pick<QueueKey, 'mode' | 'limit'>[]): number {
  let exclusive = 0;
  let shared = 0;
  let limit = 0;
  for (let i = 0; i < queue.length; i++) {
    const key = queue[i]!;
    if (key.mode === 'SHARED') {
      if (exclusive > 0) return i;
      shared++;
      continue;
    }
    if (limit === 0) limit = key.limit;
    if (key.limit !== limit || shared > 0 || exclusive >= limit) return i;
    exclusive++;
  }
  return queue.length;
}

/**
 * The limit in force: the first EXCLUSIVE key's (agreedLimit); 1 with only SHARED keys; 0 for
 * no keys. Limits: a request checks, after putting its key, the first EXCLUSIVE key before
 * it; a different limit is refused with limitMismatch (refusals.ts: worded as every backend
 * words it) and its key removed. `etcdctl lock` waits until its key is the first, so it is
 * always safe; a semaphore request behind an etcdctl key (limit 1) is refused, as for any
 * other limit 1 holder.
 */
export function queueLimit(queue: readonly Pick<QueueKey, 'mode' | 'limit'>[]): number {
  return agreedLimit(queue) || (queue.length > 0 ? 1 : 0);
}

// ---- holders in messages --------------------------------------------------------------------

/** One holder as refusals name it (refusals.ts describeHolder), by its etcd key; etcd tells no expiry without a read. */
export function describeHolder(holder: QueueKey): string {
  const owner = holder.owner === '' ? 'an unnamed owner (e.g. `etcdctl lock`)' : holder.owner;
  return describeHolderText({ ...holder, owner, fencingToken: holder.createRevision }, 0, `etcd key ${holder.key}`);
}

/** The holders of a queue for a message: the first three, and how many more. */
export function describeHolders(holders: readonly QueueKey[]): string {
  return describeHolderTexts(holders.map(describeHolder));
}
