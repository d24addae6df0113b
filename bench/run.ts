// `npm run bench [-- options]`: every scenario of bench/scenarios.ts in one run, servers as
// child processes, the load generated here; prints the table, writes latest.json and
// latest.md. Exits 1 if a scenario failed (never because of a number), 2 on a bad option.
//
//   --quick           every scenario briefly (smoke test: numbers are not meaningful)
//   --profile         each latchkey scenario on a server of its own, CPU-profiled;
//                     prints where that server's main thread spent its time
//   --only REGEX      only scenarios whose id matches (their baselines are added)
//   --duration-ms N   measured time per cell (default 2000; quick 100), split over the rounds
//   --warmup-ms N     warm-up before a cell's first round (default 500; quick 50)
//   --rounds N        rounds per cell, each scenario of a group in turn (default 3; quick 1;
//                     a group's minRounds when more, each round of duration-ms / N)
//   --out DIR         where results go (default bench/results)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Session } from 'node:inspector';
import { etcdMissing } from '../test/support/etcd.js';
import { memcachedMissing } from '../test/support/memcached.js';
import { redisMissing } from './redis.js';
import { REPO_ROOT } from '../test/support/spawn.js';
import { combine, runRound, type Cell, type Round } from './measure.js';
import { formatSummary, nowUs, summarize, type Window } from './profile.js';
import { judge, markdown, textTable, type Report, type ScenarioResult } from './report.js';
import {
  GROUPS,
  sdkPipelines,
  setMemoryProbe,
  type Env,
  type Needs,
  type Prepared,
  type Scenario,
} from './scenarios.js';
import {
  rssMb,
  startEcho,
  startEtcdChild,
  startLatchkey,
  startMemcachedChild,
  startRedisChild,
  stopAll,
  type LatchkeyChild,
} from './servers.js';

const log = (line: string) => process.stderr.write(`${line}\n`);

function options() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      only: { type: 'string' },
      'duration-ms': { type: 'string' },
      'warmup-ms': { type: 'string' },
      rounds: { type: 'string' },
      out: { type: 'string', default: join(REPO_ROOT, 'bench', 'results') },
    },
    strict: true,
  });
  const num = (raw: string | undefined, fallback: number, flag: string) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new TypeError(`${flag} must be a whole number of ms, got "${raw}"`);
    return n;
  };
  const quick = values.quick!;
  return {
    quick,
    profile: values.profile!,
    only: values.only === undefined ? undefined : new RegExp(values.only),
    rounds: Math.max(1, num(values.rounds, quick ? 1 : 3, '--rounds')),
    load: {
      durationMs: num(values['duration-ms'], quick ? 100 : 2_000, '--duration-ms'),
      warmupMs: num(values['warmup-ms'], quick ? 50 : 500, '--warmup-ms'),
    },
    out: values.out!,
  };
}

function machine() {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown CPU';
  return { nproc: availableParallelism(), cpu, node: process.version, loadavgStart: loadavg() };
}

function gitState(): string {
  const run = (args: string[]) =>
    spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
  const head = run(['rev-parse', '--short', 'HEAD']) || 'unknown commit';
  return run(['status', '--porcelain', '--untracked-files=no']) === '' ? head : `${head} + uncommitted changes`;
}

/** The scenarios to run: all, or those --only names plus the baselines they are divided by. */
function selected(only: RegExp | undefined): Set<string> {
  const all = GROUPS.flatMap((g) => g.scenarios);
  if (only === undefined) return new Set(all.map((s) => s.id));
  const ids = new Set(all.filter((s) => only.test(s.id)).map((s) => s.id));
  for (const s of all) if (ids.has(s.id) && s.baseline !== undefined) ids.add(s.baseline);
  return ids;
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof options>;
  try {
    opts = options();
  } catch (err) {
    log(`bench: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
  const ids = selected(opts.only);
  const report: Report = {
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    quick: opts.quick,
    rounds: opts.rounds,
    startedAt: new Date().toISOString(),
    machine: machine(),
    git: gitState(),
    groups: GROUPS.map((g) => ({ name: g.name, title: g.title })),
    scenarios: [],
    profiles: [],
  };
  log(
    `bench: ${report.machine.nproc} cores (${report.machine.cpu}), Node ${report.machine.node}, load average ${report.machine.loadavgStart.map((x) => x.toFixed(2)).join(' ')}`,
  );

  // The harness's checks: a missing binary skips its scenarios, with the reason; under
  // LATCHKEY_REQUIRE_ALL_SUITES they throw instead, and the run fails.
  const missing: Record<Needs, string | false> = {
    etcd: etcdMissing(),
    memcached: memcachedMissing(),
    redis: redisMissing(),
  };
  const wants = (need: Needs) => GROUPS.some((g) => g.scenarios.some((s) => ids.has(s.id) && s.needs?.includes(need)));

  const lockDir = mkdtempSync(join(tmpdir(), 'latchkey-bench-locks-'));
  const profileRoot = join(opts.out, 'profiles');
  if (opts.profile) {
    rmSync(profileRoot, { recursive: true, force: true });
    mkdirSync(profileRoot, { recursive: true });
  }
  // The client side (SDK, grpc-js client, memjs, etcd3) runs here: with --profile this
  // process samples itself too, and each scenario's windows are summarized from it.
  const self = opts.profile ? startSelfProfile() : undefined;
  const allWindows = new Map<string, Window[]>();
  try {
    log('bench: starting servers (echo, memcached, etcd, redis, latchkey)...');
    const [echo, memcached, etcd, redis] = await Promise.all([
      startEcho(),
      missing.memcached === false && wants('memcached') ? startMemcachedChild() : undefined,
      missing.etcd === false && wants('etcd') ? startEtcdChild() : undefined,
      missing.redis === false && wants('redis') ? startRedisChild() : undefined,
    ]);
    const serverArgs = ['--lock-dir', lockDir, '--etcd-prefix', 'bench/locks/'];
    if (memcached) serverArgs.push('--memcached', memcached.address);
    if (etcd) serverArgs.push('--etcd-endpoints', etcd.endpoint);
    const shared = opts.profile ? undefined : await startLatchkey(serverArgs);
    const baseEnv = {
      quick: opts.quick,
      echo: echo.address,
      memcached: memcached?.address,
      etcd: etcd?.endpoint,
      redis: redis?.address,
    };

    if (GROUPS.some((g) => g.scenarios.some((s) => ids.has(s.id) && /sdk-pipe/.test(s.id)))) {
      const probe = shared ?? (await startLatchkey(serverArgs));
      report.sdkPipeline = await sdkPipelines(probe.address).catch((err: unknown) => `probe failed: ${String(err)}`);
      if (report.sdkPipeline === false)
        report.sdkPipeline = 'the SDK sent unary calls although pipeline: true was asked for';
      if (probe !== shared) await probe.stop();
      log(`bench: SDK cache pipeline: ${report.sdkPipeline === true ? 'in effect' : report.sdkPipeline}`);
    }

    const total = GROUPS.reduce(
      (n, g) =>
        n +
        g.scenarios.filter((s) => ids.has(s.id)).reduce((m, s) => m + (s.concurrencies ?? g.concurrencies).length, 0),
      0,
    );
    let done = 0;
    const started = performance.now();

    for (const group of GROUPS) {
      const scenarios = group.scenarios.filter((s) => ids.has(s.id));
      if (scenarios.length === 0) continue;
      const groupEnv: { twin?: Env['twin'] } = {};
      const results = new Map<string, ScenarioResult>();
      for (const s of scenarios) {
        const result: ScenarioResult = {
          id: s.id,
          group: group.name,
          label: s.label,
          unit: s.unit,
          baseline: s.baseline,
          ratioOf: s.ratioOf ?? 'rps',
          target: s.target,
          cells: [],
        };
        const why = s.needs?.map((n) => missing[n]).find((m) => m !== false);
        if (why) result.skipped = why;
        results.set(s.id, result);
        report.scenarios.push(result);
      }
      const runnable = scenarios.filter((s) => results.get(s.id)!.skipped === undefined);
      // A group may ask for more rounds (each of the usual length): not in a quick run.
      const roundCount = opts.quick ? opts.rounds : Math.max(opts.rounds, group.minRounds ?? 0);
      done += scenarios
        .filter((s) => !runnable.includes(s))
        .reduce((m, s) => m + (s.concurrencies ?? group.concurrencies).length, 0);

      // A server of the group's own (memory group), or the shared one; with --profile each
      // latchkey scenario of a group without its own server gets a profiled server.
      let groupServer: LatchkeyChild | undefined;
      let twin: Promise<LatchkeyChild> | undefined;
      const windows = new Map<string, Window[]>();
      if (group.serverArgs !== undefined) {
        const args = [...serverArgs, ...group.serverArgs];
        const profileDir = opts.profile ? join(profileRoot, group.name) : undefined;
        const server = await startLatchkey(args, { profileDir, gcOnSignal: true });
        setMemoryProbe({ rssMb: () => rssMb(server.pid), gc: () => server.gc() });
        groupServer = server;
        groupEnv.twin = () => (twin ??= startLatchkey(args, { gcOnSignal: true }));
      }

      const progress = (line: string) =>
        log(`[${done}/${total} ${((performance.now() - started) / 1000).toFixed(0)}s] ${line}`);
      const track = (id: string, startUs: number) => {
        const list = windows.get(id) ?? [];
        list.push({ startUs, endUs: nowUs() });
        windows.set(id, list);
        allWindows.set(id, list);
      };
      const failure = (err: unknown) => (err instanceof Error ? err.message : String(err));

      /**
       * The cells of these scenarios at concurrency c: `rounds` rounds, each scenario in turn
       * within a round, so each is measured next to its baseline several times over. A
       * scenario with a measurement of its own (hand-off, RSS) runs once, in the first round.
       */
      const measureCells = async (
        items: readonly { s: Scenario; prepared: Prepared }[],
        c: number,
        latchkeyPid: number | undefined,
      ) => {
        const pids = { echo: echo.pid, memcached: memcached?.pid, etcd: etcd?.pid, redis: redis?.pid };
        const meter = (s: Scenario, prepared: Prepared) =>
          prepared.serverPid ?? (s.meter !== undefined ? pids[s.meter] : s.latchkey ? latchkeyPid : undefined);
        const rounds = new Map<string, Round[]>(items.map(({ s }) => [s.id, []]));
        const custom = new Map<string, Cell & { value?: number; note?: string }>();
        const failed = new Map<string, string>();
        // Every other round in reverse, so a scenario and its baseline take turns going first.
        for (let r = 0; r < roundCount; r++) {
          for (const { s, prepared } of r % 2 === 0 ? items : [...items].reverse()) {
            if (failed.has(s.id) || (prepared.run && r > 0)) continue;
            const startUs = nowUs();
            try {
              if (prepared.run) {
                custom.set(s.id, await prepared.run(c, { concurrency: c, ...opts.load }));
              } else {
                const load = {
                  concurrency: c,
                  serverPid: meter(s, prepared),
                  warmupMs: r === 0 ? opts.load.warmupMs : Math.min(opts.load.warmupMs, 150),
                  durationMs: opts.load.durationMs / opts.rounds,
                };
                const round = await runRound(prepared.op!, load);
                rounds.get(s.id)!.push(round);
                if (roundCount > 1)
                  progress(
                    `${s.id} c=${c} round ${r + 1}/${roundCount}: ${Math.round(round.rps).toLocaleString('en-US')} ${s.unit}/s`,
                  );
              }
            } catch (err) {
              failed.set(s.id, failure(err));
              log(`bench: ${s.id} c=${c}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
            }
            track(s.id, startUs);
          }
        }
        for (const { s } of items) {
          done++;
          const result = results.get(s.id)!;
          const error = failed.get(s.id);
          if (error !== undefined) {
            result.cells.push({ concurrency: c, rps: NaN, p50Ms: NaN, p99Ms: NaN, samples: 0, error });
            progress(`${s.id} c=${c}: ERROR ${error}`);
            continue;
          }
          const cell: Cell & { value?: number; note?: string } = custom.get(s.id) ?? combine(rounds.get(s.id)!);
          result.cells.push({ concurrency: c, ...cell });
          progress(
            `${s.id} c=${c}: ${s.unit === 'MB' ? `${cell.value?.toFixed(0)} MB` : `${Math.round(cell.rps).toLocaleString('en-US')} ${s.unit}/s, p50 ${cell.p50Ms.toFixed(3)} ms, p99 ${cell.p99Ms.toFixed(3)} ms`}`,
          );
        }
      };

      const prepare = async (s: Scenario, env: Env): Promise<Prepared | undefined> => {
        try {
          return await s.prepare(env);
        } catch (err) {
          results.get(s.id)!.error = `setup failed: ${err instanceof Error ? err.message : String(err)}`;
          log(`bench: ${s.id}: ${results.get(s.id)!.error}`);
          done += (s.concurrencies ?? group.concurrencies).length;
          return undefined;
        }
      };
      const levels = (s: Scenario) => s.concurrencies ?? group.concurrencies;

      if (opts.profile && groupServer === undefined) {
        // One scenario at a time, each latchkey one on a fresh profiled server.
        for (const s of runnable) {
          const server = s.latchkey
            ? await startLatchkey(serverArgs, { profileDir: join(profileRoot, s.id) })
            : undefined;
          const prepared = await prepare(s, { ...baseEnv, latchkey: server?.address ?? '' });
          if (prepared) for (const c of levels(s)) await measureCells([{ s, prepared }], c, server?.pid);
          await prepared?.close?.();
          if (server) {
            await server.stop();
            addProfile(report, s.id, server.profile!, windows.get(s.id) ?? []);
          }
        }
      } else {
        const latchkey = (groupServer ?? shared)!;
        const env: Env = { ...baseEnv, ...groupEnv, latchkey: latchkey.address };
        const prepared = new Map<string, Prepared>();
        for (const s of runnable) {
          const p = await prepare(s, env);
          if (p) prepared.set(s.id, p);
        }
        const ready = runnable.filter((s) => prepared.has(s.id)).map((s) => ({ s, prepared: prepared.get(s.id)! }));
        if (group.order === 'by-row') {
          for (const item of ready) for (const c of levels(item.s)) await measureCells([item], c, latchkey.pid);
        } else {
          for (const c of group.concurrencies)
            await measureCells(
              ready.filter((item) => levels(item.s).includes(c)),
              c,
              latchkey.pid,
            );
        }
        for (const p of prepared.values()) await p.close?.();
      }
      if (twin !== undefined) await (await twin).stop();
      if (groupServer) {
        await groupServer.stop();
        if (groupServer.profile) addProfile(report, group.name, groupServer.profile, [...windows.values()].flat());
      }
    }
  } finally {
    await stopAll();
    rmSync(lockDir, { recursive: true, force: true });
  }
  if (self !== undefined) {
    const file = join(profileRoot, 'bench-client.cpuprofile');
    writeFileSync(file, JSON.stringify(await self.stop()));
    report.windows = Object.fromEntries(allWindows);
    for (const [id, windows] of allWindows)
      report.profiles.push({
        id: `${id} (client)`,
        text: formatSummary(`${id}, client side (this process)`, summarize(file, windows)),
      });
  }

  report.machine.loadavgEnd = loadavg();
  report.finishedAt = new Date().toISOString();
  judge(report);
  process.stdout.write(`${textTable(report)}\n`);
  for (const p of report.profiles) process.stdout.write(`\n${p.text}\n`);
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(
    join(opts.out, 'latest.json'),
    `${JSON.stringify(report, (_, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`,
  );
  writeFileSync(join(opts.out, 'latest.md'), markdown(report));
  log(
    `bench: wrote ${join(opts.out, 'latest.json')} and latest.md in ${((Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000).toFixed(0)} s`,
  );
  const failed = report.scenarios.filter((s) => s.error !== undefined || s.cells.some((c) => c.error !== undefined));
  if (failed.length > 0) log(`bench: ${failed.length} scenario(s) failed: ${failed.map((s) => s.id).join(', ')}`);
  return failed.length > 0 ? 1 : 0;
}

function addProfile(report: Report, id: string, file: string, windows: Window[]): void {
  if (!existsSync(file)) {
    report.profiles.push({ id, text: `profile of ${id}: the server wrote no ${file}` });
    return;
  }
  report.profiles.push({ id, text: formatSummary(id, summarize(file, windows)) });
}

function startSelfProfile(): { stop(): Promise<object> } {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 250 });
  session.post('Profiler.start');
  return {
    stop: () =>
      new Promise((resolve, reject) =>
        session.post('Profiler.stop', (err, result) => {
          session.disconnect();
          if (err) reject(err);
          else resolve(result.profile);
        }),
      ),
  };
}

// Ctrl-C / SIGTERM: stop every child by pid, then leave.
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`bench: ${signal}: stopping servers...`);
    void stopAll().finally(() => process.exit(130));
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err: unknown) => {
    log(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    await stopAll();
    process.exitCode = 1;
  },
);
