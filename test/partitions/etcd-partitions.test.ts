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
// The session scenarios put a client of lock sessions on a host of its own (c2, the SDK with
// both servers' addresses: test/support/session-client.ts) and cut it off while it holds
// locks that contenders on c1 wait for: from a only (its session moves to b and keeps its
// locks, confirmed all along), or from both until past its TTL (its handles abort before the
// session's stated expiry, the contenders are granted only after it, its late fenced writes
// are refused, and it locks again once healed). Its history, on the same clock, joins theirs;
// its own calls must answer within their deadlines (the SDK's bound: a call queued while its
// session resumes waits for the resume, past wait_ms + margin when that takes a while).
// The election scenario puts a leader on c2 (test/support/election-client.ts: it campaigns in
// its lock session, holds a lock in the same session to see the session's stated expiry, and
// makes fenced writes with its leadership's token) and two candidates on c1 that queue behind
// it and, once they lead, take turns (300 ms terms, fenced writes, Resign). c2 is cut off from
// both servers until a candidate leads, then healed: the leader's signals abort before its
// session's last stated expiry, the first new leader is elected at or after it (and soon
// after), and the old leader's late fenced write, after the heal, is refused; the merged
// history passes the checker's election rules, and mutated copies of it do not.
// Skips where network namespaces or etcd are missing (fails under LATCHKEY_REQUIRE_ALL_SUITES).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test, type TestContext } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { LockEvent__Output, LockState__Output } from '../../client/common/index.js';
import { ACQUIRE_ANSWER_MARGIN_MS } from '../../src/locks/service.js';
import { checkLocks, formatViolations, type LockInput, type LockOp, type LockOutput } from '../support/checker.js';
import { etcdMissing } from '../support/etcd.js';
import { History, monotonicMs, opsFromJson, unaryCall } from '../support/history.js';
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
import { runScript } from '../support/script.js';
import type { ElectionClientConfig, ElectionClientReport } from '../support/election-client.js';
import type { SessionClientConfig, SessionClientReport } from '../support/session-client.js';
import { recordAcquire, runLockWorkload, tallyOutcomes, type Endpoint } from '../support/workloads.js';

const skip = netnsMissing() || etcdMissing();
/** wait_ms of every Acquire: the issue's case (an Acquire with 5 s through a server cut off). */
const WAIT_MS = 5_000;
const TTL_MS = 3_000;
/** How long each fault lasts: longer than WAIT_MS, so some waits start and end inside it. */
const FAULT_MS = 6_500;
/** The session client's session TTL. */
const SESSION_TTL_MS = 3_000;
/** Its calls' deadline. */
const SESSION_CALL_DEADLINE_MS = 2_000;
/** wait_ms of the contenders for the session's locks. */
const CONTEND_WAIT_MS = 2_000;
/**
 * How soon after a session's stated expiry others must hold its locks: etcd drops an expired
 * lease on a 500 ms check, and a waiter is granted through its watch.
 */
const GRANT_AFTER_TTL_MS = 2_000;
const SESSION_CLIENT = join('test', 'support', 'session-client.ts');
const ELECTION_CLIENT = join('test', 'support', 'election-client.ts');
/** A candidate's term in the election scenario, before it resigns: the candidates take turns. */
const ELECTION_TERM_MS = 300;

describe('partitions under the etcd backend: 3 members, servers a and b, clients on c1 and c2', { skip }, () => {
  let world: World;
  let a: Endpoint;
  let b: Endpoint;

  before(async () => {
    world = await startWorld({ etcd: 3, servers: ['a', 'b'], clients: ['c1', 'c2'] });
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

  /**
   * The session client (test/support/session-client.ts) on host c2, holding the locks `names`
   * in one session through a (the first of its two addresses), with fenced writes through b.
   */
  async function startSessionClient(label: string, sessions = true) {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-session-partition-'));
    const config: SessionClientConfig = {
      client: 's',
      addresses: [world.servers.get('a')!.address, world.servers.get('b')!.address],
      fencedAddress: world.servers.get('b')!.address,
      fencedVia: 'b',
      names: ['x', 'y'].map((n) => `${label}-${n}`),
      probe: `${label}-probe`,
      ttlMs: SESSION_TTL_MS,
      waitMs: WAIT_MS,
      deadlineMs: SESSION_CALL_DEADLINE_MS,
      writeEveryMs: 100,
      probeEveryMs: 100,
      historyFile: join(dir, 'history.jsonl'),
      sessions,
    };
    const script = runScript(SESSION_CLIENT, [JSON.stringify(config)], world.net.host('c2').launch);
    try {
      await script.waitFor((m) => m.ready === true, 'the session client to hold its locks');
    } catch (err) {
      await script[Symbol.asyncDispose]();
      throw err;
    }
    /** The client's operations so far. */
    const ops = (): LockOp[] =>
      existsSync(config.historyFile)
        ? opsFromJson<LockInput, LockOutput>(readFileSync(config.historyFile, 'utf8'))
        : [];
    /** Ends the client's loops and reads what it measured. */
    const stop = async (): Promise<SessionClientReport> => {
      script.send('stop');
      const report = (await script.waitFor(
        (m) => m.done === true,
        'the session client to stop',
        10_000,
      )) as unknown as SessionClientReport;
      await script.exited();
      return report;
    };
    return {
      config,
      script,
      ops,
      stop,
      [Symbol.asyncDispose]: async () => {
        await script[Symbol.asyncDispose]();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  /** Contenders on c1 for the session's names, through both servers (2 s waits, so many Acquires are checked). */
  const contend = (history: History<LockInput, LockOutput>, names: readonly string[]) => (signal: AbortSignal) =>
    runLockWorkload({
      history,
      clients: Array.from({ length: 4 }, (_, i) => ({ name: `k${i}`, endpoints: i % 2 === 0 ? [a, b] : [b, a] })),
      names,
      ttlMs: TTL_MS,
      waitMs: CONTEND_WAIT_MS,
      acquireMarginMs: ACQUIRE_ANSWER_MARGIN_MS,
      deadlineSlackMs: 3_000,
      callDeadlineMs: 2_000,
      holdMs: 20,
      fencedVia: b,
      signal,
    });

  /**
   * What every session scenario checks on the merged history (the contenders' and the
   * session client's): the checker's rules, the answer-time rule on the contenders'
   * Acquires, every call of the SDK client answered within its deadline, and mutated copies
   * rejected. Returns the merged operations.
   */
  function checkSessionHistory(t: TestContext, contenders: readonly LockOp[], session: readonly LockOp[]) {
    const ops = [...contenders, ...session].sort((x, y) => x.invokeMs - y.invokeMs).map((op, id) => ({ ...op, id }));
    const { violations, stats } = checkLocks(ops);
    assert.deepEqual(violations, [], formatViolations(violations));
    const late = acquireAnswerViolations(contenders, /etcd/);
    assert.deepEqual(late, [], formatViolations(late));
    // The SDK bounds its own calls: an Acquire by its wait plus the deadline, the rest by the deadline.
    const slow = session.filter(
      (op) =>
        op.returnMs! - op.invokeMs >
        (op.input.op === 'acquire' ? op.input.waitMs : 0) + SESSION_CALL_DEADLINE_MS + ANSWER_SLACK_MS,
    );
    assert.deepEqual(
      slow,
      [],
      `session client calls answered past their deadline: ${JSON.stringify(slow, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`,
    );
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
    t.diagnostic(
      `checked: ${JSON.stringify(stats)}; session client ops ${session.length}, contender ops ${contenders.length}`,
    );
    return ops;
  }

  /** The first grant to someone other than the session client of each name, invoked after fromMs. */
  const firstGrants = (ops: readonly LockOp[], names: readonly string[], fromMs: number) =>
    names.map(
      (name) =>
        ops
          .filter(
            (op) =>
              op.input.op === 'acquire' &&
              op.input.name === name &&
              op.client !== 's' &&
              op.outcome?.status === 'ok' &&
              op.returnMs! > fromMs,
          )
          .sort((x, y) => x.returnMs! - y.returnMs!)[0],
    );

  const ms = (x: number) => `${x.toFixed(0)} ms`;

  for (const [kind, sessions] of [
    ['session locks', true],
    ['unary locks (each handle refreshing its own lease)', false],
  ] as const)
    test(`a client cut off from its server while holding ${kind}: it moves to the other server, and keeps its locks`, {
      timeout: 90_000,
    }, async (t) => {
      await using client = await startSessionClient(sessions ? 'moved' : 'moved-unary', sessions);
      const names = client.config.names;
      const history = new History<LockInput, LockOutput>();
      let cutMs = 0;
      let releaseMs = 0;
      const times = await runScenario({
        workloads: [contend(history, names)],
        warmupMs: 1_000,
        fault: async () => {
          await world.net.partition(['c2'], ['la']);
          cutMs = monotonicMs();
          // Two TTLs: to hold its locks still, the session must have moved to b and been kept alive there.
          await sleep(2 * SESSION_TTL_MS);
          // Released through b, while still cut off from a.
          releaseMs = monotonicMs();
          client.script.send('release');
          const released = await client.script.waitFor((m) => Array.isArray(m.released), 'the release', 10_000);
          assert.deepEqual(
            released.released,
            names.map(() => 'released'),
          );
          await world.net.heal();
        },
        settleMs: 2_000,
      });
      const report = await client.stop();
      const session = client.ops();
      const ops = checkSessionHistory(t, history.completed(), session);

      // The signals abort at the release (CancelledError), never before it.
      const early = report.aborts.filter((x) => x.atMs < releaseMs);
      assert.deepEqual(early, [], 'a handle aborted before its release');
      // Confirmed without a gap: each new expiry was stated before the last one ran out.
      const held = report.expiries.filter((e) => e.atMs < releaseMs);
      for (let i = 1; i < held.length; i++)
        assert.ok(
          held[i]!.atMs < held[i - 1]!.expiresAtMs,
          `the lease went unconfirmed past its stated expiry: ${JSON.stringify(held.slice(i - 1, i + 1))}`,
        );
      // The first confirmation after the cut came through b: a keepalive (or Refresh) through a
      // has to go unanswered a third of the TTL first.
      const resumed = held.find((e) => e.atMs > cutMs + 50);
      assert.ok(resumed !== undefined, 'the lease was not confirmed again after the cut');
      const lastBefore = [...held].reverse().find((e) => e.atMs <= cutMs + 50)!;
      assert.ok(
        resumed.atMs - cutMs >= SESSION_TTL_MS / 3 - 100,
        `confirmed ${ms(resumed.atMs - cutMs)} after the cut: the client was not on a`,
      );
      // Nobody else held the names before the release; others did after it.
      const grants = firstGrants(ops, names, times.startMs);
      for (const [i, grant] of grants.entries()) {
        assert.ok(grant !== undefined, `nobody was granted ${names[i]} after the release`);
        assert.ok(grant.returnMs! > releaseMs, `${names[i]} granted to ${grant.client} before the client let go`);
      }
      const probes = session.filter((op) => op.input.op === 'acquire' && op.client === 's-probe');
      const probeAfter = probes.find((op) => op.invokeMs > cutMs && op.outcome?.status === 'ok');
      t.diagnostic(
        `cut c2 from la; last confirmation through a at ${ms(lastBefore.atMs - cutMs)} from the cut (stated expiry ${ms(lastBefore.expiresAtMs - cutMs)} after it); confirmed through b ${ms(resumed.atMs - cutMs)} after the cut, ${ms(lastBefore.expiresAtMs - resumed.atMs)} before that expiry (TTL ${SESSION_TTL_MS} ms); first probe lock after the cut granted ${probeAfter === undefined ? 'never' : ms(probeAfter.returnMs! - cutMs)} after it; handles aborted before the release: none; first grants to others ${grants.map((g) => ms(g!.returnMs! - releaseMs)).join(', ')} after the release; run ${ms(times.endMs - times.startMs)}`,
      );
    });

  test('a client cut off from both servers past its session TTL: its handles abort before the TTL ends, others get its locks only after, its late fenced writes are refused, and it locks again once healed', {
    timeout: 90_000,
  }, async (t) => {
    await using client = await startSessionClient('expired');
    const names = client.config.names;
    const history = new History<LockInput, LockOutput>();
    let cutMs = 0;
    let healMs = 0;
    let late: unknown;
    const times = await runScenario({
      workloads: [contend(history, names)],
      warmupMs: 1_000,
      fault: async () => {
        await world.net.partition(['c2'], ['la', 'lb']);
        cutMs = monotonicMs();
        // Until others hold every name (after the session's TTL), bounded.
        const by = cutMs + SESSION_TTL_MS + GRANT_AFTER_TTL_MS + 2_000;
        while (firstGrants(history.ops, names, cutMs).some((g) => g === undefined)) {
          assert.ok(monotonicMs() < by, `not every name was granted to others within ${ms(by - cutMs)} of the cut`);
          await sleep(50);
        }
        await world.net.heal();
        healMs = monotonicMs();
        // The client locks again once it can: a probe granted after the heal.
        const back = healMs + 10_000;
        while (
          !client.ops().some((op) => op.client === 's-probe' && op.invokeMs > healMs && op.outcome?.status === 'ok')
        ) {
          assert.ok(monotonicMs() < back, 'no probe lock granted to the client within 10 s of the heal');
          await sleep(50);
        }
        client.script.send('late');
        late = (await client.script.waitFor((m) => Array.isArray(m.late), 'the late writes', 20_000)).late;
      },
      settleMs: 1_000,
    });
    const report = await client.stop();
    const session = client.ops();
    const ops = checkSessionHistory(t, history.completed(), session);

    // The TTL's end: the session's expiry as the server last stated it before the cut.
    const ttlEndMs = Math.max(...report.expiries.filter((e) => e.atMs <= cutMs).map((e) => e.expiresAtMs));
    assert.ok(
      report.expiries.every((e) => e.atMs <= cutMs + 50),
      `the session was confirmed after the cut: ${JSON.stringify(report.expiries.filter((e) => e.atMs > cutMs))}`,
    );
    assert.deepEqual(report.aborts.map((x) => x.name).sort(), [...names].sort(), 'not every handle aborted');
    for (const abort of report.aborts) {
      assert.match(abort.reason, /^LeaseLostError/);
      assert.ok(
        abort.atMs < ttlEndMs,
        `the handle of ${abort.name} aborted ${ms(abort.atMs - ttlEndMs)} after the TTL ended`,
      );
    }
    const grants = firstGrants(ops, names, cutMs);
    for (const [i, grant] of grants.entries())
      assert.ok(
        grant!.returnMs! >= ttlEndMs,
        `${names[i]} granted to ${grant!.client} ${ms(ttlEndMs - grant!.returnMs!)} before the session's TTL ended`,
      );
    assert.ok(
      Math.max(...grants.map((g) => g!.returnMs!)) < ttlEndMs + GRANT_AFTER_TTL_MS,
      'the locks were not free soon after the TTL: something kept the session alive',
    );
    // Every late write with an old token was answered, refused (the others wrote with newer
    // tokens); an attempt left unanswered by a connection not yet back is the checker's to judge.
    assert.deepEqual(
      late,
      names.map(() => 'ok'),
    );
    const lateWrites = session.filter((op) => op.input.op === 'fenced-write' && op.input.value.includes('late'));
    const answered = lateWrites.filter((op) => op.outcome?.status === 'ok');
    assert.equal(answered.length, names.length);
    for (const op of answered)
      assert.deepEqual(op.outcome, { status: 'ok', value: { op: 'fenced-write', stored: false } });
    const probeBack = session.find(
      (op) => op.client === 's-probe' && op.invokeMs > healMs && op.outcome?.status === 'ok',
    )!;
    t.diagnostic(
      `cut c2 from la and lb; the session's stated expiry ${ms(ttlEndMs - cutMs)} after the cut (TTL ${SESSION_TTL_MS} ms); handles aborted ${report.aborts.map((x) => ms(ttlEndMs - x.atMs)).join(', ')} before it; first grants to others ${grants.map((g) => ms(g!.returnMs! - ttlEndMs)).join(', ')} after it; healed ${ms(healMs - cutMs)} after the cut; first probe lock after the heal granted ${ms(probeBack.returnMs! - healMs)} after it; late fenced writes refused ${answered.length} (attempts ${lateWrites.length}); run ${ms(times.endMs - times.startMs)}`,
    );
  });

  /**
   * An election client (test/support/election-client.ts) on host `host`: the leader, or a
   * candidate; sessions on, both servers' addresses, fenced writes through b.
   */
  function startElectionClient(role: ElectionClientConfig['role'], name: string, host: string, election: string) {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-election-partition-'));
    const config: ElectionClientConfig = {
      role,
      client: name,
      addresses: [world.servers.get('a')!.address, world.servers.get('b')!.address],
      fencedAddress: world.servers.get('b')!.address,
      fencedVia: 'b',
      election,
      key: `fenced-${election}`,
      witness: `${election}-witness`,
      ttlMs: SESSION_TTL_MS,
      deadlineMs: SESSION_CALL_DEADLINE_MS,
      writeEveryMs: 50,
      leadMs: ELECTION_TERM_MS,
      historyFile: join(dir, 'history.jsonl'),
    };
    const script = runScript(ELECTION_CLIENT, [JSON.stringify(config)], world.net.host(host).launch);
    const ops = (): LockOp[] =>
      existsSync(config.historyFile)
        ? opsFromJson<LockInput, LockOutput>(readFileSync(config.historyFile, 'utf8'))
        : [];
    const stop = async (): Promise<ElectionClientReport> => {
      script.send('stop');
      const report = (await script.waitFor(
        (m) => m.done === true,
        `${name} to stop`,
        10_000,
      )) as unknown as ElectionClientReport;
      await script.exited();
      return report;
    };
    return {
      config,
      script,
      ops,
      stop,
      [Symbol.asyncDispose]: async () => {
        await script[Symbol.asyncDispose]();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  test("elections: the leader's host cut off from both servers: its signals abort before its session's stated expiry, a new leader only at or after it, the old leader's late fenced writes refused", {
    timeout: 90_000,
  }, async (t) => {
    const election = 'elect';
    // All three start at once (tsx compiles each on start); the leader campaigns first.
    await using leader = startElectionClient('leader', 'L', 'c2', election);
    await using p = startElectionClient('candidate', 'p', 'c1', election);
    await using q = startElectionClient('candidate', 'q', 'c1', election);
    const ready = await leader.script.waitFor((m) => m.ready === true, 'the leader to lead');
    for (const c of [p, q]) await c.script.waitFor((m) => m.ready === true, `candidate ${c.config.client} to start`);
    for (const c of [p, q]) c.script.send('campaign');
    const startMs = monotonicMs();
    // The candidates queue behind the leader, and the leader's fenced writes are stored meanwhile.
    await sleep(1_000);
    const wins = () =>
      [p, q].flatMap((c) =>
        c.script
          .messages()
          .filter((m) => typeof m.leading === 'string')
          .map((m) => ({ client: c.config.client, token: BigInt(m.leading as string), atMs: m.atMs as number })),
      );
    assert.deepEqual(wins(), [], 'a candidate led while the leader was reachable');

    await world.net.partition(['c2'], ['la', 'lb']);
    const cutMs = monotonicMs();
    // Until another leads (after the old leader's session expired), bounded.
    const by = cutMs + SESSION_TTL_MS + GRANT_AFTER_TTL_MS + 2_000;
    while (wins().length === 0) {
      assert.ok(monotonicMs() < by, `no candidate led within ${ms(by - cutMs)} of the cut`);
      await sleep(20);
    }
    // And has written with its token, so that the old leader's late write has a newer one to meet.
    const newerStored = () =>
      [p, q].some((c) =>
        c
          .ops()
          .some(
            (op) =>
              op.input.op === 'fenced-write' &&
              op.input.token > BigInt(ready.token as string) &&
              op.outcome?.status === 'ok' &&
              op.outcome.value.op === 'fenced-write' &&
              op.outcome.value.stored,
          ),
      );
    while (!newerStored()) {
      assert.ok(monotonicMs() < by + 2_000, 'the new leader stored no fenced write');
      await sleep(20);
    }
    await world.net.heal();
    const healMs = monotonicMs();
    leader.script.send('late');
    const late = (await leader.script.waitFor((m) => Array.isArray(m.late), 'the late writes', 20_000)).late;
    const lateMs = monotonicMs();
    // The candidates go on taking turns a while after the heal.
    await sleep(1_000);
    const report = await leader.stop();
    for (const c of [p, q]) await c.stop();
    const endMs = monotonicMs();

    const ops = [...leader.ops(), ...p.ops(), ...q.ops()]
      .sort((x, y) => x.invokeMs - y.invokeMs)
      .map((op, id) => ({ ...op, id }));
    const { violations, stats } = checkLocks(ops);
    assert.deepEqual(violations, [], formatViolations(violations));
    // Every leadership was answered with an expiry still ahead: else its hold is empty, and
    // the checker's overlap rule has nothing to hold it to.
    const stale = ops.filter(
      (op) =>
        op.input.op === 'campaign' &&
        op.outcome?.status === 'ok' &&
        op.outcome.value.op === 'campaign' &&
        op.outcome.value.validUntilMs <= op.returnMs!,
    );
    assert.deepEqual(
      stale.map((op) => op.client),
      [],
      'leaderships won with an expiry already past',
    );
    // The checker bites on this very history: two leaders at once, terms out of order.
    for (const [what, mutate, rule] of [
      ['overlapping leaders', overlappingHolders, 'overlap'],
      ['swapped tokens', swappedTokens, 'token order'],
    ] as const) {
      const mutated = mutate(ops, 'election');
      assert.ok(mutated !== undefined, `no spot for ${what} in the history`);
      assert.ok(
        checkLocks(mutated).violations.some((v) => v.rule === rule && v.message.startsWith(`election "${election}"`)),
        `${what} accepted`,
      );
    }

    // The session's end: its expiry as last stated before the cut; none stated after it.
    const ttlEndMs = Math.max(...report.expiries.filter((e) => e.atMs <= cutMs).map((e) => e.expiresAtMs));
    assert.ok(
      report.expiries.every((e) => e.atMs <= cutMs + 50),
      `the session was confirmed after the cut: ${JSON.stringify(report.expiries.filter((e) => e.atMs > cutMs))}`,
    );
    // The leadership's and the witness lock's signals aborted, with LeaseLostError, before it.
    assert.deepEqual(report.aborts.map((x) => x.name).sort(), ['leadership', 'witness'], 'not every handle aborted');
    for (const abort of report.aborts) {
      assert.match(abort.reason, /^LeaseLostError/);
      assert.ok(abort.atMs > cutMs, `the ${abort.name} handle aborted before the cut: ${abort.reason}`);
      assert.ok(
        abort.atMs < ttlEndMs,
        `the ${abort.name} handle aborted ${ms(abort.atMs - ttlEndMs)} after the session's stated expiry`,
      );
    }
    // The new leader: elected at or after that expiry, with a newer token, and soon after it.
    const first = wins().sort((x, y) => x.atMs - y.atMs)[0]!;
    assert.ok(
      first.atMs >= ttlEndMs,
      `${first.client} led ${ms(ttlEndMs - first.atMs)} before the old leader's session expired`,
    );
    assert.ok(
      first.atMs < ttlEndMs + GRANT_AFTER_TTL_MS,
      `${first.client} led only ${ms(first.atMs - ttlEndMs)} after the old leader's session expired: something kept it alive`,
    );
    assert.ok(first.token > BigInt(ready.token as string), `the new leader's token ${first.token} is not newer`);
    // The old leader's late write, answered after the heal: refused (the candidates wrote with newer tokens).
    assert.deepEqual(late, ['ok']);
    const lateWrites = leader
      .ops()
      .filter((op) => op.input.op === 'fenced-write' && op.input.value.includes('late') && op.invokeMs >= healMs);
    const answered = lateWrites.filter((op) => op.outcome?.status === 'ok');
    assert.equal(answered.length, 1);
    assert.deepEqual(answered[0]!.outcome, { status: 'ok', value: { op: 'fenced-write', stored: false } });
    // And the leader's writes while it led were stored.
    const stored = leader
      .ops()
      .filter(
        (op) =>
          op.input.op === 'fenced-write' &&
          op.outcome?.status === 'ok' &&
          op.outcome.value.op === 'fenced-write' &&
          op.outcome.value.stored,
      );
    assert.ok(stored.length > 0, 'no fenced write of the leader was stored while it led');
    const terms = ops.filter((op) => op.input.op === 'campaign' && op.outcome?.status === 'ok').length;
    // The leader's writes made while cut off, before its signals aborted: unknown, or, when
    // the partition held them until after a new leader wrote, refused by the fence.
    const inFlight = leader
      .ops()
      .filter((op) => op.input.op === 'fenced-write' && op.invokeMs >= cutMs && op.invokeMs < healMs);
    t.diagnostic(
      `checked: ${JSON.stringify(stats)}; leaderships ${terms}; the leader's writes made while cut off: ${inFlight
        .map((op) =>
          op.outcome?.status === 'ok' && op.outcome.value.op === 'fenced-write'
            ? op.outcome.value.stored
              ? 'stored'
              : `refused ${ms(op.returnMs! - healMs)} after the heal`
            : `${op.outcome?.status} ${op.outcome?.status === 'ok' ? '' : op.outcome?.code}`,
        )
        .join(', ')}`,
    );
    t.diagnostic(
      `cut c2 from la and lb; the session's stated expiry ${ms(ttlEndMs - cutMs)} after the cut (TTL ${SESSION_TTL_MS} ms); signals aborted ${report.aborts.map((x) => `${x.name} ${ms(ttlEndMs - x.atMs)}`).join(', ')} before it; ${first.client} led ${ms(first.atMs - ttlEndMs)} after it (token ${ready.token as string} → ${first.token}); healed ${ms(healMs - cutMs)} after the cut; the late fenced write refused ${ms(answered[0]!.returnMs! - healMs)} after the heal (attempts ${lateWrites.length}, ${ms(lateMs - healMs)}); run ${ms(endMs - startMs)}`,
    );
  });

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
