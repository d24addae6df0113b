// `npm run bench -- --quick` as a child process: every scenario runs briefly against real
// servers and the run exits 0. It checks that the benchmarks work, never how fast anything
// is. Scenarios that need etcd or memcached are skipped by the bench itself when the binary
// is missing (the harness's checks, so LATCHKEY_REQUIRE_ALL_SUITES makes that a failure).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SCENARIO_IDS } from '../../bench/scenarios.js';
import { REPO_ROOT } from '../support/spawn.js';

/** Well above the ~30 s a quick run takes on a busy 2-core machine. */
const RUN_TIMEOUT_MS = 120_000;

interface QuickReport {
  readonly quick: boolean;
  readonly scenarios: readonly {
    id: string;
    skipped?: string;
    error?: string;
    cells: readonly { concurrency: number; error?: string }[];
  }[];
}

test('npm run bench -- --quick runs every scenario once and exits 0', {
  timeout: RUN_TIMEOUT_MS + 30_000,
}, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'latchkey-bench-quick-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { ...process.env };
  // NOTE: a child that inherits node --test's marker would talk the runner's protocol.
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--import', 'tsx', join('bench', 'run.ts'), '--quick', '--out', out], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    // The bench stops its servers on SIGTERM; SIGKILL if that does not end it.
    process.kill(child.pid!, 'SIGTERM');
    setTimeout(
      () => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'),
      10_000,
    ).unref();
  }, RUN_TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  const output = `--- stdout:\n${stdout}\n--- stderr:\n${stderr}`;
  assert.equal(timedOut, false, `the quick run took longer than ${RUN_TIMEOUT_MS} ms\n${output}`);
  assert.equal(code, 0, `the quick run exited ${code}\n${output}`);

  const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as QuickReport;
  assert.equal(report.quick, true);
  assert.deepEqual(
    report.scenarios.map((s) => s.id),
    SCENARIO_IDS,
    'the JSON lists every scenario, in order',
  );
  for (const s of report.scenarios) {
    if (s.skipped !== undefined) {
      t.diagnostic(`${s.id} skipped: ${s.skipped}`);
      continue;
    }
    assert.equal(s.error, undefined, `${s.id}: ${s.error}`);
    assert.ok(s.cells.length > 0, `${s.id} measured nothing`);
    for (const c of s.cells) assert.equal(c.error, undefined, `${s.id} c=${c.concurrency}: ${c.error}`);
  }
  assert.match(readFileSync(join(out, 'latest.md'), 'utf8'), /\| scenario \| c \| throughput \|/);
});
