// Real network partitions under the etcd lock backend (test/support/netns.ts): 3 etcd members
// (hosts e0-e2), latchkey servers a and b (la, lb), clients on c1 through both. Each scenario
// runs lock cycles (Acquire, fenced write through b's cache, Release; late fenced writes with
// old tokens) while a fault is applied and healed, records every call, and checks:
//   - the lock checker (test/support/checker.ts): no two holders with valid leases at once,
//     tokens in grant order, no lease lost before its stated expiry, fenced writes refused
//     exactly when an older token was carried;
//   - the answer-time rule (test/support/scenario.ts): every Acquire answered within its
//     wait_ms + ACQUIRE_ANSWER_MARGIN_MS (+ ANSWER_SLACK_MS), ABORTED or UNAVAILABLE naming
//     etcd when not granted;
//   - afterwards every lock is free again within its TTL: nothing is held by a grant nobody
//     knows of; and mutated copies of the history (overlapping holders, swapped tokens) are
//     rejected, so the checker had something to bite on.
// Skips where network namespaces or etcd are missing (fails under LATCHKEY_REQUIRE_ALL_SUITES).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test, type TestContext } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { LockEvent__Output, LockState__Output } from '../../client/common/index.js';
import { ACQUIRE_ANSWER_MARGIN_MS } from '../../src/locks/service.js';
import { checkLocks, formatViolations, type LockInput, type LockOp, type LockOutput } from '../support/checker.js';
import { etcdMissing } from '../support/etcd.js';
import { History, monotonicMs, unaryCall } from '../support/history.js';
import { overlappingHolders, swappedTokens } from '../support/mutations.js';
import { netnsMissing } from '../support/netns.js';
import { startWorld, type World } from '../support/partition-world.js';
import {
  acquireAnswerViolations,
  ANSWER_SLACK_MS,
  between,
  runScenario,
  type ScenarioTimes,
} from '../support/scenario.js';
import { recordAcquire, runLockWorkload, tallyOutcomes, type Endpoint } from '../support/workloads.js';

const skip = netnsMissing() || etcdMissing();
/** wait_ms of every Acquire: the issue's case (an Acquire with 5 s through a server cut off). */
const WAIT_MS = 5_000;
const TTL_MS = 3_000;
/** How long each fault lasts: longer than WAIT_MS, so some waits start and end inside it. */
const FAULT_MS = 6_500;

describe('partitions under the etcd backend: 3 members, servers a and b, clients on c1', { skip }, () => {
  let world: World;
  let a: Endpoint;
  let b: Endpoint;

  before(async () => {
    world = await startWorld({ etcd: 3, servers: ['a', 'b'], clients: ['c1'] });
    a = await world.endpoint('a', 'c1');
    b = await world.endpoint('b', 'c1');
  });
  after(async () => {
    await world?.[Symbol.asyncDispose]();
  });

  const describeVia = (via: Endpoint, name: string) =>
    unaryCall<LockState__Output, LockState__Output>(via.locks, 'Describe', { name }, 2_000, (s) => s);

  /**
   * Runs lock cycles on three fresh names through both servers around `fault`: six clients
   * that use either server (home a or b, moving on after an unknown outcome) and two that
   * use only a, so Acquires through a go on during a fault that touches a. Checks the
   * history and returns it.
   */
  async function lockScenario(t: TestContext, label: string, fault: () => Promise<void>) {
    const history = new History<LockInput, LockOutput>();
    const names = ['x', 'y', 'z'].map((n) => `${label}-${n}`);
    const clients = [
      ...Array.from({ length: 6 }, (_, i) => ({ name: `k${i}`, endpoints: i % 2 === 0 ? [a, b] : [b, a] })),
      { name: 'a0', endpoints: [a] },
      { name: 'a1', endpoints: [a] },
    ];
    const times = await runScenario({
      workloads: [
        (signal) =>
          runLockWorkload({
            history,
            clients,
            names,
            ttlMs: TTL_MS,
            waitMs: WAIT_MS,
            acquireMarginMs: ACQUIRE_ANSWER_MARGIN_MS,
            deadlineSlackMs: 3_000,
            callDeadlineMs: 2_000,
            holdMs: 20,
            fencedVia: b,
            signal,
          }),
      ],
      warmupMs: 1_500,
      fault,
      settleMs: 2_500,
    });
    const ops = history.completed();
    const { violations, stats } = checkLocks(ops);
    assert.deepEqual(violations, [], formatViolations(violations));
    const late = acquireAnswerViolations(ops, /etcd/);
    assert.deepEqual(late, [], formatViolations(late));

    // Nothing stays held: every lock is free again within a TTL of the last operation.
    const freeAt = monotonicMs() + TTL_MS + 3_000;
    for (const name of names)
      for (;;) {
        const state = await describeVia(b, name);
        if (state.status === 'ok' && !state.value.held) break;
        assert.ok(monotonicMs() < freeAt, `lock ${name} still held after the run: ${JSON.stringify(state)}`);
        await sleep(100);
      }

    // The checker bites on this very history.
    for (const [what, mutate, rule] of [
      ['overlapping holders', overlappingHolders, 'overlap'],
      ['swapped tokens', swappedTokens, 'token order'],
    ] as const) {
      const mutated = mutate(ops);
      assert.ok(mutated !== undefined, `no spot for ${what} in the history`);
      assert.ok(
        checkLocks(mutated).violations.some((v) => v.rule === rule),
        `${what} accepted`,
      );
    }
    report(t, ops, times, stats);
    return { ops, times };
  }

  function report(t: TestContext, ops: readonly LockOp[], times: ScenarioTimes, stats: object) {
    const acquires = ops.filter((op) => op.input.op === 'acquire');
    const during = between(acquires, times.faultMs, times.healMs);
    const slowest = Math.max(
      ...acquires.map((op) => op.returnMs! - op.invokeMs - (op.input as { waitMs: number }).waitMs),
    );
    t.diagnostic(`checked: ${JSON.stringify(stats)}`);
    t.diagnostic(
      `fault ${((times.healMs - times.faultMs) / 1000).toFixed(1)} s; Acquires during it: through a ${tallyOutcomes(
        during.filter((op) => op.input.op === 'acquire' && op.input.via === 'a'),
      )}; through b ${tallyOutcomes(during.filter((op) => op.input.op === 'acquire' && op.input.via === 'b'))}`,
    );
    t.diagnostic(
      `latest answer relative to wait_ms: ${slowest.toFixed(0)} ms (bound ${ACQUIRE_ANSWER_MARGIN_MS} + ${ANSWER_SLACK_MS} ms); run ${((times.endMs - times.startMs) / 1000).toFixed(1)} s`,
    );
  }

  const grantsDuring = (ops: readonly LockOp[], times: ScenarioTimes, via: string) =>
    between(ops, times.faultMs, times.healMs).filter(
      (op) => op.input.op === 'acquire' && op.input.via === via && op.outcome?.status === 'ok',
    ).length;

  test('minority partition: the etcd leader is cut off from the other two members', { timeout: 90_000 }, async (t) => {
    let cutOff = '';
    let newLeader = '';
    const { ops, times } = await lockScenario(t, 'minority', async () => {
      const began = monotonicMs();
      const leader = await world.etcdLeader();
      assert.ok(leader !== undefined, 'no etcd leader before the partition');
      cutOff = world.hostOf(leader);
      await world.net.partition(
        [cutOff],
        world.etcdHosts.filter((h) => h !== cutOff),
      );
      await sleep(FAULT_MS / 2);
      newLeader = (await world.etcdLeader(FAULT_MS / 2))?.name ?? 'none';
      await sleep(Math.max(0, FAULT_MS - (monotonicMs() - began)));
      await world.net.heal();
    });
    assert.notEqual(newLeader, 'none', 'the majority elected no leader');
    assert.ok(grantsDuring(ops, times, 'a') + grantsDuring(ops, times, 'b') > 0, 'no grant during the partition');
    t.diagnostic(`cut off the leader on ${cutOff}; the majority elected ${newLeader}`);
  });

  test('server a cut off from etcd, still reachable by its clients', { timeout: 90_000 }, async (t) => {
    const { ops, times } = await lockScenario(t, 'cutoff', async () => {
      await world.net.partition(['la'], world.etcdHosts);
      await sleep(FAULT_MS);
      await world.net.heal();
    });
    assert.ok(grantsDuring(ops, times, 'b') > 0, 'no grant through b while a was cut off');
    const throughA = between(ops, times.faultMs + 1_000, times.healMs).filter(
      (op) => op.input.op === 'acquire' && op.input.via === 'a',
    );
    assert.ok(throughA.length > 0, 'no Acquire through a during the cut: the answer bound was not tested');
  });

  test("one-way partition: etcd's answers to server a are dropped, its requests pass", {
    timeout: 90_000,
  }, async (t) => {
    const { ops, times } = await lockScenario(t, 'oneway', async () => {
      await world.net.cut(world.etcdHosts, ['la']);
      await sleep(FAULT_MS);
      await world.net.heal();
    });
    assert.ok(grantsDuring(ops, times, 'b') > 0, 'no grant through b during the one-way partition');
  });

  // Next, once lock sessions and elections are served (the harness has what they need):
  //   - sessions: a client process on a host of its own (startWorld clients ['c1', 'c2'],
  //     runScript(script, args, world.net.host('c2').launch)) holds session locks through a,
  //     recording with history.ts (opToJson lines; its clock is this one); world.net.partition(
  //     ['c2'], ['la']); another client's Acquires through b must not be granted before the
  //     session's TTL ends (checkLocks on the merged histories, the session's stated expiry as
  //     validUntilMs), the handles' signals must abort before it, and the client resumes
  //     through b once it can;
  //   - elections: a campaign is an Acquire of the election's name and leadership a hold, so
  //     checkLocks' overlap and token rules are "one leader at a time, terms in order"; the
  //     leader's host is cut off (world.net.partition([itsHost], others)); a new leader only
  //     after the old one's session expired; the old leader's fenced writes are refused
  //     (checkLocks' fencing rule on its late writes).
  test.todo('a client cut off from its server while holding session locks');
  test.todo("elections: the leader's host cut off");

  test('etcd answers to server a delayed past the answer margin: a grant that lands after the answer is released, long before its TTL', {
    timeout: 90_000,
  }, async (t) => {
    const DELAY_MS = 600;
    const LONG_TTL_MS = 30_000;
    const name = 'late-grant';
    const events: { type: string; owner: string; atMs: number }[] = [];
    const watch = (b.locks as unknown as { Watch(r: object): grpc.ClientReadableStream<LockEvent__Output> }).Watch({
      name,
    });
    watch.on('data', (e: LockEvent__Output) => events.push({ type: e.type, owner: e.owner, atMs: monotonicMs() }));
    watch.on('error', () => {});
    const proxy = world.etcdProxy('a');
    const history = new History<LockInput, LockOutput>();
    const landed: { owner: string; acquiredMs: number; releasedMs: number }[] = [];
    try {
      for (const e of world.etcdHosts) await proxy.delay(e, 0, DELAY_MS);
      // Each Acquire's lease grant is answered after DELAY_MS (in time: under the margin),
      // its transaction after 2 x DELAY_MS (too late): the caller is answered UNAVAILABLE
      // first, then the grant lands.
      for (let attempt = 1; attempt <= 4 && landed.length === 0; attempt++) {
        const owner = `late-${attempt}`;
        const op = await recordAcquire(
          history,
          owner,
          a,
          { name, ttlMs: LONG_TTL_MS, waitMs: 0 },
          ACQUIRE_ANSWER_MARGIN_MS + 5_000,
        );
        assert.equal(
          op.outcome?.status,
          'unknown',
          `Acquire answered after ${(op.returnMs! - op.invokeMs).toFixed(0)} ms: ${op.outcome?.status === 'ok' ? `granted, token ${op.outcome.value.op === 'acquire' ? op.outcome.value.token : '?'}` : `${op.outcome?.code} ${op.outcome?.message}`}`,
        );
        // The grant lands within a few round trips of the answer, or not at all (the
        // lease grant itself was late: the request stopped there); once it has, it must go
        // again long before its TTL.
        const answeredMs = monotonicMs();
        for (;;) {
          const acquired = events.find((e) => e.type === 'ACQUIRED' && e.owner === owner);
          const released = events.find((e) => e.type === 'RELEASED' && e.owner === owner);
          if (acquired !== undefined && released !== undefined) {
            landed.push({ owner, acquiredMs: acquired.atMs, releasedMs: released.atMs });
            break;
          }
          if (acquired === undefined && monotonicMs() > answeredMs + 5 * DELAY_MS) break;
          assert.ok(
            acquired === undefined || monotonicMs() < acquired.atMs + LONG_TTL_MS / 3,
            `the late grant of ${owner} is still held ${LONG_TTL_MS / 3} ms after it landed`,
          );
          await sleep(20);
        }
      }
    } finally {
      for (const e of world.etcdHosts) await proxy.delay(e, 0, 0);
      watch.cancel();
    }
    const late = acquireAnswerViolations(history.completed(), /etcd/);
    assert.deepEqual(late, [], formatViolations(late));
    assert.ok(landed.length > 0, `no grant landed after its answer in 4 attempts: ${tallyOutcomes(history.ops)}`);
    const held = landed[0]!.releasedMs - landed[0]!.acquiredMs;
    assert.ok(held < LONG_TTL_MS / 3, `the late grant was held ${held.toFixed(0)} ms`);
    // And the lock is free for anyone.
    const after = await recordAcquire(history, 'after', b, { name, ttlMs: TTL_MS, waitMs: 0 }, 5_000);
    assert.equal(after.outcome?.status, 'ok', tallyOutcomes([after]));
    t.diagnostic(
      `with etcd's answers to a delayed ${DELAY_MS} ms: ${history.ops.length - 1} Acquire(s) through a answered ${tallyOutcomes(history.ops.slice(0, -1))}; the grant that landed after its answer was held ${held.toFixed(0)} ms, then released (TTL ${LONG_TTL_MS} ms)`,
    );
  });
});
