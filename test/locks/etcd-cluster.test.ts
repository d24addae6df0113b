// Scale-out on etcd, all real: a 3-member etcd cluster, 3 `latchkey serve` processes on it,
// and 6 worker processes (test/support/lock-worker.ts), each with its own SDK client on one of
// the servers, taking turns on one lock through its lock session (one stream, one etcd lease
// for all its cycles). The critical section increments a counter file non-atomically and
// logs its fencing token, so a double grant shows as a lost increment or a token out of
// order. The second run kills etcd's leader with SIGKILL halfway through. Every Acquire and
// Release the workers make is recorded, and the history passes the lock checker
// (test/support/checker.ts): no two holders with valid leases at once, tokens in grant order.
// That the workers' cycles went through sessions is read from etcd's own /metrics: a unary
// cycle grants a lease, a session grants one for all of its cycles.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { etcdMissing, findLeader, startEtcdCluster, type EtcdCluster, type EtcdMember } from '../support/etcd.js';
import { checkLocks, formatViolations, type LockInput, type LockOp, type LockOutput } from '../support/checker.js';
import { opsFromJson } from '../support/history.js';
import type { WorkerConfig, WorkerReport } from '../support/lock-worker.js';
import { runScript, type Script } from '../support/script.js';
import { spawnServer, type SpawnedServer } from '../support/spawn.js';

const SERVERS = 3;
const WORKERS = 6;
const PREFIX = `latchkey-cluster-test-${process.pid}/`;
const WORKER_SCRIPT = join('test', 'support', 'lock-worker.ts');
/** A bound on one whole run, far above what it takes (seconds), so a stuck run fails, not hangs. */
const RUN_BUDGET_MS = 90_000;
/** Cycles per worker: 300 in all, in each run. */
const CYCLES_EACH = 50;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Grant {
  readonly token: bigint;
  readonly atMs: number;
  readonly worker: number;
}

interface RunResult {
  readonly cycles: number;
  readonly wallMs: number;
  readonly counter: number;
  readonly grants: readonly Grant[];
  readonly reports: readonly WorkerReport[];
  /** Every Acquire and Release of the run, as the workers recorded them. */
  readonly history: readonly LockOp[];
}

async function readGrants(logFile: string): Promise<Grant[]> {
  const text = await readFile(logFile, 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [token, atMs, worker] = line.split(' ');
      return { token: BigInt(token!), atMs: Number(atMs), worker: Number(worker) };
    });
}

/** LeaseGrant calls the live members of the cluster have handled (etcd's grpc_server_handled_total, every code). */
async function leaseGrants(cluster: EtcdCluster): Promise<number> {
  let grants = 0;
  for (const member of cluster.members) {
    if (member.pid === undefined) continue;
    const text = await (await fetch(`http://${member.endpoint}/metrics`)).text();
    for (const m of text.matchAll(/^grpc_server_handled_total\{[^}]*grpc_method="LeaseGrant"[^}]*\} (\S+)$/gm))
      grants += Number(m[1]);
  }
  return grants;
}

describe('scale-out through lock sessions: 3 latchkey servers on a 3-member etcd cluster, 6 worker processes', {
  skip: etcdMissing(),
}, () => {
  let cluster: EtcdCluster;
  let servers: SpawnedServer[] = [];
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-scale-'));
    cluster = await startEtcdCluster(3);
    const started = await Promise.allSettled(
      Array.from({ length: SERVERS }, () =>
        spawnServer(['--backend', 'etcd', '--etcd-endpoints', cluster.endpoints, '--etcd-prefix', PREFIX]),
      ),
    );
    servers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop('SIGTERM')));
    await cluster?.[Symbol.asyncDispose]();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /**
   * Runs WORKERS workers, worker i on server i mod SERVERS, for cyclesEach cycles each on a
   * fresh lock. `during` runs alongside (with the number of grants logged so far); its signal
   * aborts when the run ends, however it ends.
   */
  async function run(
    label: string,
    cyclesEach: number,
    during?: (logged: () => Promise<number>, signal: AbortSignal) => Promise<void>,
    sessions = true,
  ): Promise<RunResult> {
    const lockName = `${label}-${Date.now()}`;
    const counterFile = join(dir, `${label}.counter`);
    const logFile = join(dir, `${label}.log`);
    const historyFile = join(dir, `${label}.history`);
    await writeFile(counterFile, '0');
    await writeFile(logFile, '');
    await writeFile(historyFile, '');
    const workers: Script[] = [];
    const ended = new AbortController();
    let side: Promise<void> | undefined;
    try {
      for (let id = 0; id < WORKERS; id++) {
        const config: WorkerConfig = {
          id,
          address: servers[id % SERVERS]!.address,
          lockName,
          backend: 'etcd',
          cycles: cyclesEach,
          counterFile,
          logFile,
          historyFile,
          ttlMs: 3_000,
          waitMs: 3_000,
          budgetMs: RUN_BUDGET_MS,
          sessions,
        };
        workers.push(runScript(WORKER_SCRIPT, [JSON.stringify(config)]));
      }
      await Promise.all(workers.map((w) => w.waitFor((m) => m.ready === true, 'ready')));
      const started = Date.now();
      for (const worker of workers) worker.send('go');
      const finished = Promise.all(
        workers.map((w) => w.waitFor((m) => m.done === true, 'its report', RUN_BUDGET_MS + 5_000)),
      );
      side = during?.(async () => (await readGrants(logFile)).length, ended.signal);
      side?.catch(() => {}); // awaited below; not unhandled if a worker fails first
      const reports = (await finished) as unknown as WorkerReport[];
      const wallMs = Date.now() - started;
      await side;
      for (const worker of workers) assert.deepEqual(await worker.exited(), { code: 0, signal: null }, worker.stderr());
      return {
        cycles: WORKERS * cyclesEach,
        wallMs,
        counter: Number(await readFile(counterFile, 'utf8')),
        grants: await readGrants(logFile),
        reports,
        history: opsFromJson<LockInput, LockOutput>(await readFile(historyFile, 'utf8')),
      };
    } finally {
      ended.abort();
      await side?.catch(() => {});
      await Promise.all(workers.map((w) => w[Symbol.asyncDispose]()));
    }
  }

  /** No double grant: not one increment lost, one log line per cycle, tokens strictly increasing in grant order. */
  function assertExclusive(result: RunResult): void {
    assert.equal(
      result.counter,
      result.cycles,
      `counter ${result.counter} after ${result.cycles} cycles: increments were lost, so two workers held the lock at once`,
    );
    assert.equal(result.grants.length, result.cycles);
    for (let i = 1; i < result.grants.length; i++) {
      const [prev, next] = [result.grants[i - 1]!, result.grants[i]!];
      assert.ok(
        prev.token < next.token,
        `grant ${i}: token ${next.token} (worker ${next.worker}) after ${prev.token} (worker ${prev.worker})`,
      );
    }
    assert.equal(
      result.reports.reduce((sum, r) => sum + r.cycles, 0),
      result.cycles,
    );
    const { violations } = checkLocks(result.history);
    assert.deepEqual(violations, [], formatViolations(violations));
  }

  function report(t: TestContext, result: RunResult): void {
    const sum = (pick: (r: WorkerReport) => Record<string, number>) =>
      result.reports.reduce<Record<string, number>>((all, r) => {
        for (const [k, v] of Object.entries(pick(r))) all[k] = (all[k] ?? 0) + v;
        return all;
      }, {});
    const perServer = Array.from(
      { length: SERVERS },
      (_, s) => result.grants.filter((g) => g.worker % SERVERS === s).length,
    );
    t.diagnostic(
      `${result.cycles} cycles in ${result.wallMs} ms = ${((result.cycles * 1000) / result.wallMs).toFixed(1)} cycles/s; grants per server ${perServer.join('/')}`,
    );
    t.diagnostic(
      `acquire retries ${JSON.stringify(sum((r) => r.retries))}, abandoned ${result.reports.reduce((n, r) => n + r.abandoned, 0)}, release outcomes other than released ${JSON.stringify(sum((r) => r.releaseOutcomes))}`,
    );
    t.diagnostic(`history checked: ${JSON.stringify(checkLocks(result.history).stats)}`);
    for (const r of result.reports) for (const error of r.errors) t.diagnostic(`worker ${r.id}: ${error}`);
  }

  test(`${WORKERS} workers through ${SERVERS} servers do 300 lock cycles on one lock with no overlap`, {
    timeout: 150_000,
  }, async (t) => {
    const grantsBefore = await leaseGrants(cluster);
    const result = await run('scale', CYCLES_EACH, undefined);
    const grants = (await leaseGrants(cluster)) - grantsBefore;
    assertExclusive(result);
    report(t, result);
    t.diagnostic(`etcd LeaseGrant calls during the run: ${grants} for ${result.cycles} cycles`);
    // Unary, every cycle grants a lease; through sessions, each worker's session one for all.
    assert.ok(grants <= WORKERS * 3, `${grants} lease grants for ${result.cycles} cycles: not through sessions`);
  });

  test(`the same ${WORKERS * CYCLES_EACH} cycles through unary calls (a lease per cycle): no overlap`, {
    timeout: 150_000,
  }, async (t) => {
    const grantsBefore = await leaseGrants(cluster);
    const result = await run('unary', CYCLES_EACH, undefined, false);
    const grants = (await leaseGrants(cluster)) - grantsBefore;
    assertExclusive(result);
    report(t, result);
    t.diagnostic(`etcd LeaseGrant calls during the run: ${grants} for ${result.cycles} cycles`);
    assert.ok(grants >= result.cycles, `${grants} lease grants for ${result.cycles} unary cycles`);
  });

  test("failover: etcd's leader is killed with SIGKILL mid-run; no double grant, and the run completes", {
    timeout: 150_000,
  }, async (t) => {
    let killed: { member: EtcdMember; isLeader: boolean; note: string; atMs: number; grantsBefore: number } | undefined;
    const result = await run('failover', CYCLES_EACH, async (logged, signal) => {
      // Wait until a third of the cycles are done (or the run ended without), then kill.
      while ((await logged()) < (WORKERS * CYCLES_EACH) / 3) {
        if (signal.aborted) return;
        await sleep(20);
      }
      const { member, isLeader, note } = await findLeader(cluster);
      const grantsBefore = await logged();
      const atMs = Date.now();
      await member.kill9();
      killed = { member, isLeader, note, atMs, grantsBefore };
    });
    assert.ok(killed !== undefined, 'the run never got a third of the way');
    assert.equal(killed.member.pid, undefined, 'the killed member is down');
    assertExclusive(result);
    const after = result.grants.filter((g) => g.atMs >= killed!.atMs);
    assert.ok(after.length > 0, 'work went on after the kill');
    // The longest pause between two grants from the kill on: how long the failover stalled locks.
    let stall = after[0]!.atMs - killed.atMs;
    for (let i = 1; i < after.length; i++) stall = Math.max(stall, after[i]!.atMs - after[i - 1]!.atMs);
    if (!killed.isLeader) t.diagnostic(`${killed.note}; killed a member that may be a follower`);
    t.diagnostic(
      `killed ${killed.isLeader ? 'the leader' : 'a member'} ${killed.member.name} after ${killed.grantsBefore} grants; ${after.length} grants after the kill; longest pause between grants from the kill on ${stall} ms`,
    );
    report(t, result);
  });
});
