// The etcd backend's layout, without etcd: the key and value format `etcdctl lock` shares,
// the lease-id codec, the grant rule every server evaluates alike, and the queue a Watch
// mirrors. Pure functions of src/locks/etcd/layout.ts and watch.ts's QueueMirror.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LockMode } from '../../src/locks/backend.js';
import {
  claimOf,
  decodeValue,
  encodeValue,
  grantedCount,
  isLeaseId,
  isPlain,
  leaseIdFromDec,
  leaseIdToDec,
  lockNamesOnLease,
  nameDigestOf,
  parseSessionId,
  parseSessionLockId,
  prefixEnd,
  type QueueKey,
  queueKeysOf,
  queueLimit,
  queuePrefixOf,
  sessionIdOf,
  sessionLockIdMatches,
  sessionLockIdOf,
  sessionMarkOf,
  sessionMarkPrefixOf,
  VALUE_TAG,
} from '../../src/locks/etcd/layout.js';
import { QueueMirror } from '../../src/locks/etcd/watch.js';

test('grant rule: one FIFO queue across modes, the head never passed, a misfit limit never holds', () => {
  const q = (spec: string) =>
    spec
      .split(' ')
      .map((s): { mode: LockMode; limit: number } =>
        s === 'S' ? { mode: 'SHARED', limit: 1 } : { mode: 'EXCLUSIVE', limit: Number(s.slice(1)) },
      );
  assert.equal(grantedCount([]), 0);
  assert.equal(grantedCount(q('E1 E1')), 1);
  assert.equal(grantedCount(q('E3 E3 E3 E3')), 3);
  assert.equal(grantedCount(q('S S E1 S')), 2, 'a writer waits for the readers, and later readers wait for the writer');
  assert.equal(grantedCount(q('E1 S S')), 1);
  assert.equal(
    grantedCount(q('E2 S E2')),
    1,
    'a reader behind a semaphore holder waits, and so does everyone after it',
  );
  assert.equal(grantedCount(q('S E2 E2')), 1);
  assert.equal(
    grantedCount(q('E2 E5 E2')),
    1,
    'a request with another limit (being refused) never holds, nor lets others pass',
  );
  assert.equal(grantedCount(q('E3 E1')), 1, '`etcdctl lock` (limit 1) behind a semaphore waits until it is first');
  assert.equal(grantedCount(q('E1 E3')), 1);
});

test("values: a plain lock stores the bare owner (etcdctl's layout); anything else a tagged JSON; every value reads back", () => {
  assert.equal(encodeValue({ owner: 'worker-1', mode: 'EXCLUSIVE', limit: 1 }).toString(), 'worker-1');
  const shared = encodeValue({ owner: 'r', mode: 'SHARED', limit: 1 }).toString();
  assert.ok(shared.startsWith(VALUE_TAG));
  for (const info of [
    { owner: 'r', mode: 'SHARED', limit: 1 },
    { owner: 'sem', mode: 'EXCLUSIVE', limit: 7 },
    { owner: '', mode: 'EXCLUSIVE', limit: 1 },
    { owner: `${VALUE_TAG}{"owner":"x","mode":"SHARED","limit":1}`, mode: 'EXCLUSIVE', limit: 1 },
  ] as const) {
    assert.deepEqual(decodeValue(encodeValue(info)), info);
  }
  // Damaged or foreign values read as a plain lock held by their text.
  for (const text of [
    `${VALUE_TAG}{"owner":1}`,
    `${VALUE_TAG}not json`,
    `${VALUE_TAG}{"owner":"a","mode":"SHARED","limit":0}`,
    `${VALUE_TAG}null`,
  ]) {
    assert.deepEqual(decodeValue(Buffer.from(text)), { owner: text, mode: 'EXCLUSIVE', limit: 1 });
  }
  assert.deepEqual(decodeValue(Buffer.from(`${VALUE_TAG}{"owner":"a","mode":"SHARED","limit":9}`)), {
    owner: 'a',
    mode: 'SHARED',
    limit: 1,
  });
});

test("lease ids: etcd's int64 ids as Go's %x prints them, and back", () => {
  // etcd lease ids are positive int64s; etcdctl and our keys print them in lowercase hex.
  assert.equal(leaseIdFromDec('7587863840328622852'), '694d81f5e6d1a304');
  assert.equal(leaseIdToDec('694d81f5e6d1a304'), '7587863840328622852');
  assert.equal(leaseIdFromDec('9223372036854775807'), '7fffffffffffffff');
  for (const id of ['1', 'a', '694d81f5e6d1a304', '7fffffffffffffff']) assert.ok(isLeaseId(id), id);
  for (const id of ['', '0', '01', 'A', '694D81F5E6D1A304', '8000000000000000', '1234567890abcdef0', 'xyz', '-1'])
    assert.ok(!isLeaseId(id), id);
});

test('keys: a lock owns prefix + name + "/" + lease id, never a nested lock\'s keys', () => {
  const queuePrefix = queuePrefixOf('p/', 'a');
  assert.equal(queuePrefix, 'p/a/');
  const kv = (key: string, value: string, revision: number, lease = '7') => ({
    key: Buffer.from(key),
    value: Buffer.from(value),
    lease,
    create_revision: String(revision),
  });
  const keys = queueKeysOf(queuePrefix, [
    kv('p/a/1f', 'holder', 5),
    kv('p/a/b/2f', 'nested lock', 6), // lock "a/b"
    kv('p/a/not-a-lease', 'stray', 7),
    kv('p/a/3f', `${VALUE_TAG}{"owner":"r","mode":"SHARED","limit":1}`, 8, '63'),
    kv('p/ab/4f', 'lock "ab"', 9),
  ]);
  assert.deepEqual(keys, [
    { key: 'p/a/1f', leaseDec: '7', createRevision: 5n, owner: 'holder', mode: 'EXCLUSIVE', limit: 1 },
    { key: 'p/a/3f', leaseDec: '63', createRevision: 8n, owner: 'r', mode: 'SHARED', limit: 1 },
  ]);
  // The range end of a prefix: the first key past every key that starts with it.
  assert.equal(prefixEnd(Buffer.from('p/a/')).toString(), 'p/a0');
  assert.deepEqual([...prefixEnd(Buffer.from([0x61, 0xff]))], [0x62]);
  assert.deepEqual([...prefixEnd(Buffer.from([0xff]))], [0], 'all 0xff: every key from the prefix on');
});

test('claims: SHARED always has limit 1; only EXCLUSIVE limit 1 is a plain lock; the limit in force', () => {
  assert.deepEqual(claimOf('r', 'SHARED', 5), { owner: 'r', mode: 'SHARED', limit: 1 });
  assert.ok(isPlain(claimOf('w', 'EXCLUSIVE', 1)));
  assert.ok(!isPlain(claimOf('s', 'EXCLUSIVE', 3)));
  assert.ok(!isPlain(claimOf('r', 'SHARED', 1)));
  const key = (mode: LockMode, limit: number) => ({ mode, limit });
  assert.equal(queueLimit([]), 0);
  assert.equal(queueLimit([key('SHARED', 1), key('SHARED', 1)]), 1);
  assert.equal(queueLimit([key('SHARED', 1), key('EXCLUSIVE', 4), key('EXCLUSIVE', 2)]), 4);
});

test('QueueMirror: the events a Watch reports for puts and deletes, grants recomputed after each', () => {
  let revision = 10n;
  const key = (name: string, mode: LockMode = 'EXCLUSIVE', limit = 1): QueueKey => ({
    key: `p/l/${name}`,
    leaseDec: '1',
    createRevision: revision++,
    owner: name,
    mode,
    limit,
  });
  const events = (changes: readonly (readonly [string, QueueKey])[]) =>
    changes.map(([type, k]) => `${type} ${k.owner}`);
  const [w1, r1] = [key('a1'), key('b1', 'SHARED')];
  const mirror = new QueueMirror([r1, w1].reverse());
  assert.deepEqual(
    mirror.keys.map((k) => k.owner),
    ['a1', 'b1'],
    'kept in create-revision order',
  );
  const r2 = key('c1', 'SHARED');
  assert.deepEqual(events(mirror.put(r2)), ['WAITER_ADDED c1']);
  assert.deepEqual(events(mirror.put({ ...r2, owner: 'c1' })), [], 'a key rewritten in place is no event');
  // The writer goes: both readers hold at once.
  assert.deepEqual(events(mirror.delete(w1.key)), ['RELEASED a1', 'ACQUIRED b1', 'ACQUIRED c1']);
  const w2 = key('d1');
  assert.deepEqual(events(mirror.put(w2)), ['WAITER_ADDED d1']);
  assert.deepEqual(events(mirror.delete(r1.key)), ['RELEASED b1']);
  assert.deepEqual(events(mirror.delete(w2.key)), ['WAITER_LEFT d1'], 'a waiter that gave up');
  assert.deepEqual(events(mirror.delete('p/l/unknown')), []);
  // A key recreated under the same name (a missed delete) is reported gone, then new.
  assert.deepEqual(events(mirror.put({ ...r2, createRevision: revision++ })), ['RELEASED c1', 'ACQUIRED c1']);
});

test("lock sessions: the id carries the lease id and the secret; the mark names a digest of the secret, in no lock's queue", () => {
  const secret = '0123456789abcdef0123456789abcdef';
  const id = sessionIdOf('694d7f3a1b2c', secret);
  assert.equal(id, `etcd.694d7f3a1b2c.${secret}`);
  assert.deepEqual(parseSessionId(id), { leaseId: '694d7f3a1b2c', secret });
  for (const bad of [
    'etcd.694d7f3a1b2c',
    `memory.694d7f3a1b2c.${secret}`,
    `etcd.0694d.${secret}`,
    `etcd.694d7f3a1b2c.${secret.slice(1)}`,
    `etcd.694d7f3a1b2c.${secret.toUpperCase()}`,
    `etcd.694d7f3a1b2c.${secret}.x`,
    `etcd.8000000000000000.${secret}`,
  ])
    assert.equal(parseSessionId(bad), undefined, bad);
  const mark = sessionMarkOf('locks/', '694d7f3a1b2c', secret);
  assert.ok(mark.startsWith(sessionMarkPrefixOf('locks/', '694d7f3a1b2c')));
  assert.ok(!mark.includes(secret), 'the mark does not carry the secret');
  assert.notEqual(mark, sessionMarkOf('locks/', '694d7f3a1b2c', 'f'.repeat(32)));
  assert.ok(mark.startsWith('locks/\u0000sessions/694d7f3a1b2c/'), mark);
  assert.match(mark.slice(-33), /^\/[0-9a-f]{32}$/);
  // NUL cannot be in a lock name, so no lock's queue range reaches the mark.
  const kv = { key: Buffer.from(mark), value: Buffer.from('{}'), lease: '1', create_revision: '5' };
  assert.deepEqual(queueKeysOf(queuePrefixOf('locks/', ''), [kv]), []);
});

test("lock sessions: a session lock's lease_id is the lease id, the key's create revision and the name's digest, never a bare lease id", () => {
  const id = sessionLockIdOf('694d7f3a1b2c', 1234n, 'jobs/1');
  assert.match(id, /^694d7f3a1b2c\.1234\.[0-9a-f]{8}$/);
  assert.deepEqual(parseSessionLockId(id), {
    leaseId: '694d7f3a1b2c',
    createRevision: 1234n,
    nameDigest: nameDigestOf('jobs/1'),
  });
  // Two locks of one lease put in one Txn share a create revision; their ids still differ.
  assert.notEqual(id, sessionLockIdOf('694d7f3a1b2c', 1234n, 'jobs/2'));
  assert.equal(isLeaseId(id), false, 'a unary Release knows it for a session lock by its form');
  // The form without a digest (servers before it) still parses, with nothing to check.
  assert.deepEqual(parseSessionLockId('694d7f3a1b2c.1234'), { leaseId: '694d7f3a1b2c', createRevision: 1234n });
  const bad = ['694d7f3a1b2c', '694d7f3a1b2c.', '694d7f3a1b2c.0', '694d7f3a1b2c.01', 'x.12', '.12'];
  bad.push('694d7f3a1b2c.12.', '694d7f3a1b2c.12.abc', '694d7f3a1b2c.12.ABCDEF12', '694d7f3a1b2c.12.0123456789');
  for (const text of bad) assert.equal(parseSessionLockId(text), undefined, text);
});

test('lock sessions: a lock id matches the grant of its create revision, and of its name when it carries a digest', () => {
  const own = {
    key: 'locks/jobs/1/694d',
    leaseDec: '26957',
    createRevision: 1234n,
    owner: '',
    mode: 'EXCLUSIVE',
    limit: 1,
  } as const;
  const id = parseSessionLockId(sessionLockIdOf('694d', 1234n, 'jobs/1'))!;
  assert.equal(sessionLockIdMatches(id, 'jobs/1', own), true);
  assert.equal(
    sessionLockIdMatches(id, 'jobs/2', { ...own, key: 'locks/jobs/2/694d' }),
    false,
    'another name, same Txn',
  );
  assert.equal(sessionLockIdMatches(id, 'jobs/1', { ...own, createRevision: 1300n }), false, 'a later grant');
  assert.equal(sessionLockIdMatches(parseSessionLockId('694d.1234')!, 'jobs/1', own), true);
});

test("lock sessions: the lock names among a lease's keys are its own keys' (the mark and keys outside the prefix are not)", () => {
  const secret = 'a'.repeat(32);
  const keys = [
    'locks/jobs/1/694d',
    'locks/a/b/694d',
    'locks/other/694e',
    'locks/694d',
    sessionMarkOf('locks/', '694d', secret),
    'elsewhere/x/694d',
    'locks/x/694d/extra',
  ].map((k) => Buffer.from(k));
  assert.deepEqual(lockNamesOnLease('locks/', '694d', keys), ['jobs/1', 'a/b']);
});
