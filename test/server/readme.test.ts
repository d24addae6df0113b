// The README cannot rot: its generated sections match the code, and its grpcurl, SDK and
// Python examples run verbatim against a real server (only the address is swapped for the
// test server's). `grpcurl` is support/grpcurl.ts: the real buf CLI's `buf curl` under
// grpcurl's command line, and grpcurl's `describe` (which buf lacks) from the served
// descriptors. Python is Debian's, with grpcio's C core.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { PYTHON, pythonGrpcMissing } from '../support/python.js';
import { repeatableMethods } from '../../client/common/index.js';
import { README, renderReadme } from '../support/readme.js';
import { startServer } from '../support/server.js';

const run = promisify(execFile);
/**
 * NOTE: `--norc`: bash reads ~/.bashrc even for `bash -c` when its stdin is a socket (it takes
 * that for sshd) and it is a top-level shell, and node's stdio pipes are socket pairs. A
 * ~/.bashrc that puts pyenv's shims first on PATH then hides the PATH these examples run with.
 */
const BASH = ['--norc', '-c'] as const;
const ROOT = join(import.meta.dirname, '..', '..');
const readme = readFileSync(README, 'utf8');

function example(label: string): string {
  const match = new RegExp(`<!-- readme-test: ${label} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\`\`\``).exec(readme);
  assert.ok(match, `README.md has no block marked readme-test: ${label}`);
  return match[1]!;
}

test('the generated sections of README.md are up to date (npm run docs)', () => {
  assert.equal(readme, renderReadme(readme), 'README.md is stale: run `npm run docs` and commit it');
});

test('the README names the methods the .proto marks idempotent, which the SDK retries', () => {
  const named = /`option idempotency_level`: ([^)]*)\)/.exec(readme)?.[1]?.split(/,\s+/);
  const services = ['latchkey.v1.Locks', 'latchkey.v1.Cache'] as const;
  const marked = services.flatMap((service) =>
    [...repeatableMethods(service)].map((method) => `${service.slice('latchkey.v1.'.length)}/${method}`),
  );
  assert.deepEqual(named?.sort(), marked.sort());
});

test('the grpcurl examples run verbatim', async () => {
  await using server = await startServer({ lruMaxEntries: 1000 });
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-readme-'));
  try {
    const shim = join(dir, 'grpcurl');
    // tsx by URL: the examples run in a scratch directory, where a bare "tsx" would not resolve.
    writeFileSync(
      shim,
      `#!/bin/sh\nexec "${process.execPath}" --import "${import.meta.resolve('tsx')}" "${join(ROOT, 'test/support/grpcurl.ts')}" "$@"\n`,
    );
    chmodSync(shim, 0o755);
    const script = `set -euo pipefail\n${example('grpcurl').replaceAll('127.0.0.1:50051', server.address)}`;
    const { stdout, stderr } = await run('bash', [...BASH, script], {
      cwd: dir,
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
      timeout: 120_000,
    }).catch((err: { stdout: string; stderr: string; message: string }) => {
      assert.fail(`the grpcurl examples failed: ${err.message}\n${err.stdout}\n${err.stderr}`);
    });
    assert.match(
      stdout,
      /^latchkey\.v1\.Cache\nlatchkey\.v1\.Elections\nlatchkey\.v1\.Locks$/m,
      'list shows every service',
    );
    assert.match(stdout, /rpc Acquire \( \.latchkey\.v1\.AcquireRequest \) returns \( \.latchkey\.v1\.Lease \)/);
    // The .proto's own comments, as reflection serves them (source info).
    assert.match(stdout, /^ {2}\/\/ Acquire a lock\. wait_ms = 0 tries once;/m);
    assert.match(
      stdout,
      /^ {2}\/\/ Lease time-to-live; 0 = the server's default \(--default-ttl-ms\)\.\n {2}uint64 ttl_ms = 3;$/m,
    );
    assert.match(stdout, /^\{\n {2}"status": "SERVING"\n\}$/m, 'Health/Check');
    assert.match(stdout, /"leaseId": "[0-9a-f]+"/);
    assert.match(stdout, /"owner": "alice"/);
    assert.match(stderr, /Code: Aborted\n\s+Message: lock "reports\/daily" is held by alice/);
    assert.match(stdout, /"released": true/);
    assert.match(stdout, /"value": "aGVsbG8="/);
    assert.match(stdout, /"outcome": "STORED"/);
    assert.match(stdout, /"value": "100"/);
    assert.match(stdout, /"outcome": "DELETED"/);
    assert.match(stdout, /"outcome": "TOUCHED"/);
    assert.match(stdout, /"outcome": "EXISTS"/);
    assert.match(stdout, /"key": "nothing-here"/);
    assert.match(stdout, /"limit": 2/);
    assert.match(stdout, /"mode": "SHARED"/);
    assert.match(stdout, /"sessionId": "memory\.[0-9a-f.]+"/);
    assert.match(stdout, /"value": "10\.0\.0\.7:9090"/);
    assert.match(stdout, /"elected": true/);
    assert.match(stdout, /"resigned": true/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs README block `label` (TypeScript) against a fresh server; resolves with its stdout. */
async function runSdkExample(label: string): Promise<string> {
  await using server = await startServer({ lruMaxEntries: 1000 });
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-readme-'));
  try {
    const file = join(dir, 'example.mts');
    const code = example(label)
      .replaceAll("'@latchkey/client'", JSON.stringify(join(ROOT, 'client/index.ts')))
      .replaceAll('127.0.0.1:50051', server.address);
    writeFileSync(file, code);
    return (await run(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, timeout: 60_000 })).stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the SDK example of semaphores, shared locks and watch runs verbatim', async () => {
  const stdout = await runSdkExample('sdk-beyond');
  assert.match(stdout, /^reader-1\/SHARED reader-2\/SHARED true$/m);
  const events = stdout.split('\n').filter((l) => /^[A-Z_]+ /.test(l) || l === 'STATE ');
  assert.deepEqual(events.slice(0, 1), ['STATE ']);
  assert.deepEqual(events.slice(1, 3).sort(), ['ACQUIRED a', 'ACQUIRED b']);
  assert.deepEqual(events.slice(3), ['WAITER_ADDED c', 'RELEASED a', 'ACQUIRED c', 'RELEASED c']);
});

test('the SDK example of leader election runs verbatim', async () => {
  const stdout = await runSdkExample('sdk-elections');
  assert.match(stdout, /^leader 10\.0\.0\.7:8080 \(token \d+\)$/m);
  assert.match(stdout, /^leader 10\.0\.0\.7:9090 \(token \d+\)$/m);
  assert.match(stdout, /^now: 10\.0\.0\.7:9090, signal aborted: false$/m);
  assert.match(stdout, /no leader\n$/);
});

test('the SDK example runs verbatim', async () => {
  const stdout = await runSdkExample('sdk');
  assert.match(stdout, /holding reports\/daily with fencing token \d+/);
  assert.match(stdout, /visits = 1 42/);
  assert.match(stdout, /\{"rows":42\}/);
});

test('the Python example runs verbatim, with stubs from the protoc command above it', {
  skip: pythonGrpcMissing(),
}, async () => {
  await using server = await startServer({ lruMaxEntries: 1000 });
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-readme-'));
  try {
    // As in a checkout of latchkey: proto/ beside where the stubs go.
    symlinkSync(join(ROOT, 'proto'), join(dir, 'proto'));
    // NOTE: Debian's python3 first on PATH; a pyenv python3 ahead of it has no grpcio.
    const env = { ...process.env, PATH: `${join(PYTHON, '..')}:${process.env.PATH}`, PYTHONDONTWRITEBYTECODE: '1' };
    await run('bash', [...BASH, `set -euo pipefail\n${example('python-stubs')}`], { cwd: dir, env, timeout: 60_000 });
    writeFileSync(join(dir, 'example.py'), example('python').replaceAll('127.0.0.1:50051', server.address));
    const { stdout } = await run('python3', ['example.py'], { cwd: dir, env, timeout: 60_000 }).catch(
      (err: { stdout: string; stderr: string; message: string }) => {
        assert.fail(`the Python example failed: ${err.message}\n${err.stdout}\n${err.stderr}`);
      },
    );
    assert.match(stdout, /^holding reports\/daily with fencing token \d+$/m);
    assert.match(stdout, /^ABORTED LockBusyError lock "reports\/daily" still held by py-report /m);
    assert.match(stdout, /^True hello \d+$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
