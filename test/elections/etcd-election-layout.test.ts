// The etcd election layout without etcd: which keys are candidates, who leads, what an
// Observe reports for each revision, and the campaign session id codec.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  campaignSessionId,
  candidatesOf,
  ElectionMirror,
  leaderOf,
  leaseOfSessionId,
} from '../../src/locks/etcd/election-layout.js';
import type { StoredKeyValue } from '../../src/locks/etcd/layout.js';

const P = 'latchkey/elections/jobs/';
const kv = (key: string, value: string, create: number): StoredKeyValue => ({
  key: Buffer.from(key),
  value: Buffer.from(value),
  lease: '1',
  create_revision: String(create),
});

test('candidates are the keys ending in a bare lease id, oldest first; the oldest leads with its create revision', () => {
  const candidates = candidatesOf(P, [
    kv(`${P}2b`, 'second', 9),
    kv(`${P}sub/3c`, 'a nested election', 5),
    kv(`${P}1a`, 'first', 7),
    kv(`${P}not-a-lease`, 'x', 1),
  ]);
  assert.deepEqual(
    candidates.map((c) => [c.value, c.createRevision]),
    [
      ['first', 7n],
      ['second', 9n],
    ],
  );
  assert.deepEqual(leaderOf('jobs', candidates), {
    name: 'jobs',
    elected: true,
    value: 'first',
    fencingToken: 7n,
    candidates: 2,
  });
  assert.deepEqual(leaderOf('jobs', []), { name: 'jobs', elected: false, value: '', fencingToken: 0n, candidates: 0 });
});

test('Observe reports a new leader, a proclaim (even of the same value) and nobody leading, but not a candidate joining', () => {
  const mirror = new ElectionMirror('jobs', P, candidatesOf(P, [kv(`${P}1a`, 'a', 7)]));
  assert.equal(mirror.apply([{ type: 'put', kv: kv(`${P}2b`, 'b', 9) }]), false, 'a candidate joins');
  assert.equal(mirror.apply([{ type: 'put', kv: kv(`${P}1a`, 'a', 7) }]), true, 'the leader proclaims its value again');
  assert.equal(
    mirror.apply([{ type: 'put', kv: kv(`${P}2b`, 'b2', 9) }]),
    false,
    'a waiting candidate rewrites its key',
  );
  assert.equal(mirror.apply([{ type: 'put', kv: kv(`${P}1a`, 'a2', 7) }]), true);
  assert.equal(mirror.state.value, 'a2');
  assert.equal(mirror.apply([{ type: 'delete', key: `${P}1a` }]), true, 'the leader resigns');
  assert.deepEqual([mirror.state.value, mirror.state.fencingToken], ['b2', 9n]);
  assert.equal(mirror.apply([{ type: 'delete', key: `${P}2b` }]), true);
  assert.equal(mirror.state.elected, false);
});

test('one revision is one change: a lease revoked with the leader and the next candidate reports only who leads after it', () => {
  const mirror = new ElectionMirror(
    'jobs',
    P,
    candidatesOf(P, [kv(`${P}1a`, 'a', 7), kv(`${P}2b`, 'b', 9), kv(`${P}3c`, 'c', 11)]),
  );
  assert.equal(
    mirror.apply([
      { type: 'delete', key: `${P}1a` },
      { type: 'delete', key: `${P}2b` },
    ]),
    true,
  );
  assert.deepEqual([mirror.state.value, mirror.state.fencingToken, mirror.state.candidates], ['c', 11n, 1]);
  // Keys of another election under the prefix change nothing.
  assert.equal(mirror.apply([{ type: 'put', kv: kv(`${P}sub/4d`, 'nested', 13) }]), false);
});

test('campaign session ids carry the lease, and nothing else passes for one', () => {
  assert.equal(campaignSessionId('47e3a2311a679605'), 'etcd.campaign.47e3a2311a679605');
  assert.equal(leaseOfSessionId('etcd.campaign.47e3a2311a679605'), '47e3a2311a679605');
  for (const id of ['etcd.campaign.', 'etcd.campaign.XYZ', 'etcd.47e3a2311a679605', 'memory.campaign.1a', ''])
    assert.equal(leaseOfSessionId(id), undefined, id);
});
