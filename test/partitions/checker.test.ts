// The history checkers (test/support/checker.ts) are themselves tested: hand-made legal
// histories pass and hand-made illegal ones are rejected with the rule they break; histories
// recorded from a real server (in this process, memory locks and the LRU store, some calls
// cut short by their deadline so their outcome is unknown) pass, and mutated copies of them —
// a stale read, a lost write, two overlapping holders, swapped tokens, a fenced write refused
// without cause — are rejected.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { connect } from '../../client/index.js';
import { ACQUIRE_ANSWER_MARGIN_MS } from '../../src/locks/service.js';
import {
  checkCache,
  checkLocks,
  formatViolations,
  linearizable,
  type CacheInput,
  type CacheOp,
  type CacheOutput,
  type LockInput,
  type LockOp,
  type LockOutput,
} from '../support/checker.js';
import { runCandidate } from '../support/election-workload.js';
import { History, type Outcome } from '../support/history.js';
import { lostWrite, overlappingHolders, refusedWithoutCause, staleRead, swappedTokens } from '../support/mutations.js';
import { startServer } from '../support/server.js';
import { runCacheWorkload, runLockWorkload, type Endpoint } from '../support/workloads.js';

let ids = 0;
/** A hand-made operation: [invoke, return] in ms; return Infinity with an unknown outcome. */
function op<I, O>(client: string, input: I, invokeMs: number, returnMs: number, outcome: Outcome<O>) {
  return { id: ids++, client, input, invokeMs, returnMs, outcome };
}
const ok = <O>(value: O): Outcome<O> => ({ status: 'ok', value });
const unknown: Outcome<never> = { status: 'unknown', code: 'UNAVAILABLE', message: 'memcached unavailable' };
const c = (input: CacheInput, from: number, to: number, outcome: Outcome<CacheOutput>): CacheOp =>
  op('c', input, from, outcome.status === 'unknown' ? Infinity : to, outcome);

describe('cache checker: hand-made histories', () => {
  const legal: Record<string, CacheOp[]> = {
    'a get overlapping a set sees the new value before the set returns': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'k', value: 'b' }, 2, 10, ok({ cas: 2n })),
      c({ op: 'get', key: 'k' }, 3, 4, ok({ found: true, value: 'b', cas: 2n })),
      c({ op: 'get', key: 'k' }, 5, 6, ok({ found: true, value: 'b', cas: 2n })),
    ],
    'a set of unknown outcome takes effect late': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'k', value: 'b' }, 2, 3, unknown),
      c({ op: 'get', key: 'k' }, 20, 21, ok({ found: true, value: 'a', cas: 1n })),
      c({ op: 'get', key: 'k' }, 30, 31, ok({ found: true, value: 'b', cas: 9n })),
      c({ op: 'cas', key: 'k', value: 'c', cas: 9n }, 32, 33, ok({ outcome: 'STORED', cas: 10n })),
      c({ op: 'get', key: 'k' }, 34, 35, ok({ found: true, value: 'c', cas: 10n })),
    ],
    'a set of unknown outcome never takes effect': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'k', value: 'b' }, 2, 3, unknown),
      c({ op: 'get', key: 'k' }, 20, 21, ok({ found: true, value: 'a', cas: 1n })),
    ],
    'cas, add and delete answers': [
      c({ op: 'add', key: 'k', value: 'a' }, 0, 1, ok({ outcome: 'STORED', cas: 5n })),
      c({ op: 'add', key: 'k', value: 'b' }, 2, 3, ok({ outcome: 'EXISTS' })),
      c({ op: 'cas', key: 'k', value: 'c', cas: 4n }, 4, 5, ok({ outcome: 'EXISTS' })),
      c({ op: 'delete', key: 'k', cas: 4n }, 6, 7, ok({ outcome: 'EXISTS' })),
      c({ op: 'delete', key: 'k', cas: 5n }, 8, 9, ok({ outcome: 'DELETED' })),
      c({ op: 'cas', key: 'k', value: 'd', cas: 5n }, 10, 11, ok({ outcome: 'NOT_FOUND' })),
      c({ op: 'get', key: 'k' }, 12, 13, ok({ found: false })),
    ],
    'incr with an unknown incr applied': [
      c({ op: 'incr', key: 'n', delta: 1n, initial: 10n }, 0, 1, ok({ value: '10', cas: 1n })),
      c({ op: 'incr', key: 'n', delta: 2n, initial: 10n }, 2, 3, unknown),
      c({ op: 'incr', key: 'n', delta: 1n, initial: 10n }, 4, 5, ok({ value: '13', cas: 3n })),
    ],
    'incr with an unknown incr not applied': [
      c({ op: 'incr', key: 'n', delta: 1n, initial: 10n }, 0, 1, ok({ value: '10', cas: 1n })),
      c({ op: 'incr', key: 'n', delta: 2n, initial: 10n }, 2, 3, unknown),
      c({ op: 'incr', key: 'n', delta: 1n, initial: 10n }, 4, 5, ok({ value: '11', cas: 3n })),
      c({ op: 'get', key: 'n' }, 6, 7, ok({ found: true, value: '11', cas: 3n })),
    ],
    'fenced sets: an older token refused, the same token stored': [
      c({ op: 'set', key: 'f', value: 'a', fence: 5n }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'f', value: 'b', fence: 3n }, 2, 3, ok({ refused: true })),
      c({ op: 'set', key: 'f', value: 'c', fence: 5n }, 4, 5, ok({ cas: 2n })),
      c({ op: 'get', key: 'f' }, 6, 7, ok({ found: true, value: 'c', cas: 2n })),
    ],
    'a refusal explained by a fenced set of unknown outcome': [
      c({ op: 'set', key: 'f', value: 'a', fence: 9n }, 0, 1, unknown),
      c({ op: 'set', key: 'f', value: 'b', fence: 3n }, 2, 3, ok({ refused: true })),
    ],
  };
  for (const [name, ops] of Object.entries(legal))
    test(`legal: ${name}`, () => {
      const { violations } = checkCache(ops);
      assert.deepEqual(violations, [], formatViolations(violations));
    });

  const illegal: Record<string, CacheOp[]> = {
    'a stale read after a newer write returned': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'k', value: 'b' }, 2, 3, ok({ cas: 2n })),
      c({ op: 'get', key: 'k' }, 4, 5, ok({ found: true, value: 'a', cas: 1n })),
    ],
    'a value read back after a later value was read': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'k', value: 'b' }, 2, 3, unknown),
      c({ op: 'get', key: 'k' }, 20, 21, ok({ found: true, value: 'b', cas: 9n })),
      c({ op: 'get', key: 'k' }, 30, 31, ok({ found: true, value: 'a', cas: 1n })),
    ],
    'an unknown write seen with the cas of another write': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'k', value: 'b' }, 2, 3, unknown),
      c({ op: 'get', key: 'k' }, 20, 21, ok({ found: true, value: 'b', cas: 1n })),
    ],
    'a value nobody wrote': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'get', key: 'k' }, 2, 3, ok({ found: true, value: 'z', cas: 1n })),
    ],
    'an incr applied twice': [
      c({ op: 'incr', key: 'n', delta: 1n, initial: 10n }, 0, 1, ok({ value: '10', cas: 1n })),
      c({ op: 'incr', key: 'n', delta: 1n, initial: 10n }, 2, 3, ok({ value: '11', cas: 2n })),
      c({ op: 'get', key: 'n' }, 4, 5, ok({ found: true, value: '12', cas: 2n })),
    ],
    'a cas stored with a stale unique': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'k', value: 'b' }, 2, 3, ok({ cas: 2n })),
      c({ op: 'cas', key: 'k', value: 'c', cas: 1n }, 4, 5, ok({ outcome: 'STORED', cas: 3n })),
    ],
    'a fenced set refused with no newer token written': [
      c({ op: 'set', key: 'f', value: 'a', fence: 5n }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'f', value: 'b', fence: 6n }, 2, 3, ok({ refused: true })),
    ],
    'a fenced set stored after a newer token': [
      c({ op: 'set', key: 'f', value: 'a', fence: 5n }, 0, 1, ok({ cas: 1n })),
      c({ op: 'set', key: 'f', value: 'b', fence: 4n }, 2, 3, ok({ cas: 2n })),
    ],
    'a delete forgotten': [
      c({ op: 'set', key: 'k', value: 'a' }, 0, 1, ok({ cas: 1n })),
      c({ op: 'delete', key: 'k', cas: 0n }, 2, 3, ok({ outcome: 'DELETED' })),
      c({ op: 'get', key: 'k' }, 4, 5, ok({ found: true, value: 'a', cas: 1n })),
    ],
  };
  for (const [name, ops] of Object.entries(illegal))
    test(`illegal: ${name}`, () => {
      const { violations } = checkCache(ops);
      assert.equal(violations.length, 1, `accepted: ${name}`);
      assert.equal(violations[0]!.rule, 'linearizable', violations[0]!.message);
    });

  test('a search past its bound is reported, not passed', () => {
    // Twelve concurrent sets of unknown outcome and reads that fit no order: every subset and
    // order is tried before the search can say no.
    const ops: CacheOp[] = [];
    for (let i = 0; i < 12; i++) ops.push(c({ op: 'set', key: 'k', value: `v${i}` }, 0, 1, unknown));
    ops.push(c({ op: 'get', key: 'k' }, 2, 3, ok({ found: true, value: 'none of them', cas: 1n })));
    const result = linearizable(ops, 1_000);
    assert.equal(result.ok, false);
    assert.equal(result.inconclusive, true);
    const { violations } = checkCache(ops, 1_000);
    assert.equal(violations[0]?.rule, 'search bound');
  });
});

const l = (client: string, input: LockInput, from: number, to: number, outcome: Outcome<LockOutput>): LockOp =>
  op(client, input, from, to, outcome);
const acquire = (name: string) => ({ op: 'acquire', name, waitMs: 1_000, ttlMs: 1_000, via: 'a' }) as const;
const grant = (leaseId: string, token: bigint, validUntilMs: number) =>
  ok<LockOutput>({ op: 'acquire', leaseId, token, validUntilMs });
const release = (name: string, leaseId: string) => ({ op: 'release', name, leaseId, via: 'a' }) as const;
const released = ok<LockOutput>({ op: 'release' });
const write = (key: string, token: bigint) =>
  ({ op: 'fenced-write', key, lock: 'x', token, value: `v${token}`, via: 'a' }) as const;
const stored = (yes: boolean) => ok<LockOutput>({ op: 'fenced-write', stored: yes });

describe('lock checker: hand-made histories', () => {
  test('legal: holds in turn, a handover at expiry, overlapping calls, a stale write refused', () => {
    const ops = [
      l('p', acquire('x'), 0, 1, grant('1', 10n, 1_001)),
      l('p', write('fx', 10n), 2, 3, stored(true)),
      l('p', release('x', '1'), 4, 5, released),
      // q's Acquire overlaps p's whole hold: it was granted after p released.
      l('q', acquire('x'), 0.5, 6, grant('2', 11n, 1_006)),
      l('q', write('fx', 11n), 7, 8, stored(true)),
      // p's late write with its old token is refused: q wrote with a newer one.
      l('p', write('fx', 10n), 9, 10, stored(false)),
      // q never releases: r is granted after q's lease ran out.
      l('r', acquire('x'), 20, 1_010, grant('3', 12n, 2_010)),
      l('r', release('x', '3'), 1_011, 1_012, released),
      // A refused Acquire and one of unknown outcome hold nothing.
      l('s', acquire('x'), 1_020, 1_021, { status: 'fail', code: 'ABORTED', message: 'held' }),
      l('s', acquire('x'), 1_030, 1_040, { status: 'unknown', code: 'UNAVAILABLE', message: 'etcd' }),
    ];
    const { violations, stats } = checkLocks(ops);
    assert.deepEqual(violations, [], formatViolations(violations));
    assert.equal(stats.grants, 3);
    assert.equal(stats.fencedRefused, 1);
  });

  const illegal: Record<string, [string, LockOp[]]> = {
    'two holders at once': [
      'overlap',
      [
        l('p', acquire('x'), 0, 1, grant('1', 10n, 1_001)),
        l('q', acquire('x'), 2, 3, grant('2', 11n, 1_003)),
        l('p', release('x', '1'), 4, 5, released),
      ],
    ],
    'a token lower than one granted before': [
      'token order',
      [
        l('p', acquire('x'), 0, 1, grant('1', 11n, 1_001)),
        l('p', release('x', '1'), 2, 3, released),
        l('q', acquire('x'), 4, 5, grant('2', 10n, 1_005)),
      ],
    ],
    'a token granted twice': [
      'token reuse',
      [
        l('p', acquire('x'), 0, 1, grant('1', 10n, 1_001)),
        l('p', release('x', '1'), 2, 3, released),
        l('q', acquire('y'), 0, 1, grant('3', 7n, 1_001)),
        l('q', acquire('x'), 4, 10, grant('2', 10n, 1_010)),
      ],
    ],
    'a lease gone before its stated expiry': [
      'lease lost',
      [
        l('p', acquire('x'), 0, 1, grant('1', 10n, 1_001)),
        l('p', release('x', '1'), 100, 101, { status: 'fail', code: 'FAILED_PRECONDITION', message: 'expired' }),
      ],
    ],
    'a fenced write refused with no newer token written': [
      'fencing',
      [l('p', write('fx', 10n), 0, 1, stored(true)), l('q', write('fx', 11n), 2, 3, stored(false))],
    ],
    'a fenced write stored after a newer one': [
      'fencing',
      [l('p', write('fx', 11n), 0, 1, stored(true)), l('q', write('fx', 10n), 2, 3, stored(true))],
    ],
  };
  for (const [name, [rule, ops]] of Object.entries(illegal))
    test(`illegal: ${name}`, () => {
      const { violations } = checkLocks(ops);
      assert.ok(violations.length > 0, `accepted: ${name}`);
      assert.ok(
        violations.some((v) => v.rule === rule),
        `not rejected for ${rule}: ${formatViolations(violations)}`,
      );
    });
});

const campaign = (election: string) => ({ op: 'campaign', election, ttlMs: 1_000, via: 'a' }) as const;
const won = (sessionId: string, token: bigint, validUntilMs: number) =>
  ok<LockOutput>({ op: 'campaign', sessionId, token, validUntilMs });
const resign = (election: string, sessionId: string, token: bigint) =>
  ({ op: 'resign', election, sessionId, token, via: 'a' }) as const;
const resigned = ok<LockOutput>({ op: 'resign' });
const leaderWrite = (key: string, token: bigint) =>
  ({ op: 'fenced-write', key, election: 'e', token, value: `v${token}`, via: 'a' }) as const;

describe('election checker: hand-made histories', () => {
  test('legal: leaders in turn, a session leading twice, a handover at expiry, a deposed leader refused; a lock of the same name apart', () => {
    const ops = [
      l('p', campaign('e'), 0, 1, won('s1', 10n, 1_001)),
      l('p', leaderWrite('fe', 10n), 2, 3, stored(true)),
      l('p', resign('e', 's1', 10n), 4, 5, resigned),
      // q waited through p's term, and led once p resigned.
      l('q', campaign('e'), 0.5, 6, won('s2', 11n, 1_006)),
      l('q', leaderWrite('fe', 11n), 7, 8, stored(true)),
      // p's late write with its old token is refused: q wrote with a newer one.
      l('p', leaderWrite('fe', 10n), 9, 10, stored(false)),
      // p campaigns again in the same session; q's session expires, and p leads after it.
      l('p', campaign('e'), 11, 1_010, won('s1', 12n, 2_010)),
      l('p', resign('e', 's1', 12n), 1_011, 1_012, resigned),
      // A lock "e" is another thing: held at the same time as the leadership.
      l('r', acquire('e'), 2, 3, grant('1', 5n, 1_003)),
      // A campaign that was withdrawn leads nothing.
      l('s', campaign('e'), 1_020, 1_040, { status: 'unknown', code: 'CANCELLED', message: 'withdrawn' }),
    ];
    const { violations, stats } = checkLocks(ops);
    assert.deepEqual(violations, [], formatViolations(violations));
    assert.deepEqual([stats.campaigns, stats.elected, stats.resigns, stats.grants], [4, 3, 2, 1]);
  });

  const illegal: Record<string, [string, LockOp[]]> = {
    'two leaders at once': [
      'overlap',
      [
        l('p', campaign('e'), 0, 1, won('s1', 10n, 1_001)),
        l('q', campaign('e'), 0.5, 3, won('s2', 11n, 1_003)),
        l('p', resign('e', 's1', 10n), 4, 5, resigned),
      ],
    ],
    "a new leader while the old one's session was still valid": [
      'overlap',
      [l('p', campaign('e'), 0, 1, won('s1', 10n, 1_001)), l('q', campaign('e'), 0.5, 900, won('s2', 11n, 1_900))],
    ],
    'a new leader with a lower token': [
      'token order',
      [
        l('p', campaign('e'), 0, 1, won('s1', 11n, 1_001)),
        l('p', resign('e', 's1', 11n), 2, 3, resigned),
        l('q', campaign('e'), 4, 5, won('s2', 10n, 1_005)),
      ],
    ],
    "a Resign refused before the session's stated expiry": [
      'lease lost',
      [
        l('p', campaign('e'), 0, 1, won('s1', 10n, 1_001)),
        l('p', resign('e', 's1', 10n), 100, 101, {
          status: 'fail',
          code: 'FAILED_PRECONDITION',
          message: 'not leader',
        }),
      ],
    ],
    "a leader's fenced write refused with no newer token written": [
      'fencing',
      [l('p', leaderWrite('fe', 10n), 0, 1, stored(true)), l('q', leaderWrite('fe', 11n), 2, 3, stored(false))],
    ],
  };
  for (const [name, [rule, ops]] of Object.entries(illegal))
    test(`illegal: ${name}`, () => {
      const { violations } = checkLocks(ops);
      assert.ok(
        violations.some((v) => v.rule === rule && v.message.startsWith(rule === 'fencing' ? 'key' : 'election "e"')),
        `not rejected for ${rule}: ${formatViolations(violations)}`,
      );
    });
});

describe('histories recorded from a real server pass, and their mutated copies do not', () => {
  type Recorded = { locks: LockOp[]; cache: CacheOp[]; elections: LockOp[] };
  let recorded: Recorded | undefined;
  /**
   * One recording for the tests below: a short run of the lock, cache and election workloads
   * on memory locks and the LRU store (the candidates through the SDK, in lock sessions).
   */
  async function record(): Promise<Recorded> {
    if (recorded !== undefined) return recorded;
    await using server = await startServer({ backend: 'memory', store: 'lru' });
    const endpoint: Endpoint = { name: 'a', locks: server.locks, cache: server.cache };
    const lockHistory = new History<LockInput, LockOutput>();
    const cacheHistory = new History<CacheInput, CacheOutput>();
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), 1_500);
    const electionOps: Omit<LockOp, 'id'>[] = [];
    const candidates = ['p', 'q', 'r'].map(() => connect(server.address, { deadlineMs: 1_000 }));
    await Promise.all([
      ...candidates.map((client, i) =>
        runCandidate({
          client,
          cache: client.cache(),
          name: `candidate-${i}`,
          election: 'e',
          backend: 'memory',
          ttlMs: 3_000,
          via: 'session',
          fencedVia: 'a',
          key: 'fe',
          leadMs: 30,
          writeEveryMs: 5,
          deadlineMs: 1_000,
          record: (op) => electionOps.push(op),
          signal: stop.signal,
        }),
      ),
      runLockWorkload({
        history: lockHistory,
        clients: ['p', 'q', 'r', 's'].map((name) => ({ name, endpoints: [endpoint] })),
        names: ['x', 'y'],
        ttlMs: 3_000,
        waitMs: 2_000,
        deadlineSlackMs: 2_000,
        callDeadlineMs: 1_000,
        holdMs: 5,
        fencedVia: endpoint,
        acquireMarginMs: ACQUIRE_ANSWER_MARGIN_MS,
        signal: stop.signal,
      }),
      runCacheWorkload({
        history: cacheHistory,
        clients: ['p', 'q', 'r', 's'].map((name) => ({ name, endpoint })),
        keys: ['k0', 'k1', 'k2', 'k3'],
        counters: ['n0', 'n1'],
        store: '',
        // One call in ten with a deadline too short for its answer: an unknown outcome.
        deadlineMs: () => (Math.random() < 0.1 ? 1 : 2_000),
        opsPerKey: 60,
        pauseMs: 2,
        signal: new AbortController().signal,
      }),
    ]);
    clearTimeout(timer);
    await Promise.all(candidates.map((client) => client.close()));
    const elections = electionOps.sort((x, y) => x.invokeMs - y.invokeMs).map((op, id) => ({ ...op, id }));
    recorded = { locks: lockHistory.completed(), cache: cacheHistory.completed(), elections };
    return recorded;
  }

  test('the recorded histories pass', { timeout: 30_000 }, async (t) => {
    const { locks, cache, elections } = await record();
    const lockCheck = checkLocks(locks);
    assert.deepEqual(lockCheck.violations, [], formatViolations(lockCheck.violations));
    const electionCheck = checkLocks(elections);
    assert.deepEqual(electionCheck.violations, [], formatViolations(electionCheck.violations));
    assert.ok(electionCheck.stats.elected > 5, `only ${electionCheck.stats.elected} leaderships`);
    assert.ok(electionCheck.stats.fencedStored > 5, `only ${electionCheck.stats.fencedStored} fenced writes stored`);
    const cacheCheck = checkCache(cache);
    assert.deepEqual(cacheCheck.violations, [], formatViolations(cacheCheck.violations));
    assert.ok(lockCheck.stats.grants > 20, `only ${lockCheck.stats.grants} grants`);
    assert.ok(lockCheck.stats.fencedRefused > 0, 'no fenced write refused: the run did not test refusals');
    assert.ok(cacheCheck.stats.unknown > 0, 'no call of unknown outcome: the run did not test them');
    t.diagnostic(
      `locks: ${JSON.stringify(lockCheck.stats)}; elections: ${JSON.stringify(electionCheck.stats)}; cache: ${JSON.stringify(cacheCheck.stats)}`,
    );
  });

  const mutations: [string, string, (h: Recorded) => unknown[] | undefined, 'locks' | 'cache'][] = [
    ['a stale read', 'linearizable', (h) => staleRead(h.cache), 'cache'],
    ['a lost write', 'linearizable', (h) => lostWrite(h.cache), 'cache'],
    ['two overlapping holders', 'overlap', (h) => overlappingHolders(h.locks), 'locks'],
    ['swapped tokens', 'token order', (h) => swappedTokens(h.locks), 'locks'],
    ['two overlapping leaders', 'overlap', (h) => overlappingHolders(h.elections, 'election'), 'locks'],
    ["swapped leaders' tokens", 'token order', (h) => swappedTokens(h.elections, 'election'), 'locks'],
    ['a fenced write refused without cause', 'fencing', (h) => refusedWithoutCause(h.locks), 'locks'],
  ];
  for (const [name, rule, mutate, kind] of mutations)
    test(`rejected: ${name}`, { timeout: 30_000 }, async () => {
      const mutated = mutate(await record());
      assert.ok(mutated !== undefined, `the recording has no spot for ${name}`);
      const { violations } = kind === 'cache' ? checkCache(mutated as CacheOp[]) : checkLocks(mutated as LockOp[]);
      assert.ok(
        violations.some((v) => v.rule === rule),
        `${name} accepted: ${formatViolations(violations)}`,
      );
    });
});
