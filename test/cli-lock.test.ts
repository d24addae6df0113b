// `latchkey lock NAME -- CMD` and `latchkey lock describe` as child processes against a real
// server: exclusion between processes, CMD's status and environment, busy and lost leases,
// signals.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type LatchkeyClient } from '../client/index.js';
import { EXIT } from '../src/cli/exit-codes.js';
import { isOneLine, runCli, startCli, until } from './cli-support.js';
import { startServer, type TestServer } from './support/server.js';

let server: TestServer;
let client: LatchkeyClient;
let dir: string;
let env: Record<string, string>;

before(async () => {
  server = await startServer({ lruMaxEntries: 10_000 });
  client = connect(server.address);
  dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-lock-'));
  env = { LATCHKEY_ADDRESS: server.address };
});

after(async () => {
  await client.close();
  await server[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const file = (name: string) => join(dir, name);
const read = (name: string) => (existsSync(file(name)) ? readFileSync(file(name), 'utf8') : '');

async function releaseBehindBack(name: string, leaseId: string): Promise<void> {
  await server.call(server.locks, 'Release', { name, lease_id: leaseId }).catch(() => {});
}

async function waiters(name: string, count: number): Promise<void> {
  await until(`${count} waiters on lock "${name}"`, async () => (await client.describe(name)).waiters === count);
}

describe('latchkey lock NAME -- CMD', () => {
  test('processes locking one name never overlap, and their fencing tokens increase in run order', async () => {
    const log = file('mutex.log');
    // The test holds the lock first, so every CLI has started and queued before any CMD runs:
    // the runs below really contend instead of merely following each other.
    const gate = await client.lock('mutex', { ttlMs: 60_000 });
    const script = `echo "start $(date +%s%N) $LATCHKEY_FENCING_TOKEN" >> '${log}'; sleep 0.2; echo "end $(date +%s%N) $LATCHKEY_FENCING_TOKEN" >> '${log}'`;
    const runs = [1, 2, 3].map(() => startCli(['lock', 'mutex', '--', 'sh', '-c', script], { env }));
    await waiters('mutex', 3);
    assert.equal(await gate.release(), 'released');
    const results = await Promise.all(runs.map((r) => r.done));
    for (const r of results) assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, r.stderr);

    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
    assert.equal(lines.length, 6, lines.join('\n'));
    let lastEnd = 0n;
    let lastToken = gate.fencingToken;
    for (let i = 0; i < lines.length; i += 2) {
      const [startWord, startNs, startToken] = lines[i]!;
      const [endWord, endNs, endToken] = lines[i + 1]!;
      // Each run's end comes right after its own start: no other run started in between.
      assert.deepEqual([startWord, endWord, endToken], ['start', 'end', startToken], lines.join('\n'));
      assert.ok(BigInt(startNs!) >= lastEnd, `run ${i / 2} started before the previous one ended`);
      assert.ok(BigInt(startToken!) > lastToken, `token ${startToken} after ${lastToken}`);
      lastEnd = BigInt(endNs!);
      lastToken = BigInt(startToken!);
    }
    assert.equal((await client.describe('mutex')).held, false);
  });

  test("CMD gets the lock's environment, and its exit status is latchkey's", async () => {
    const r = await runCli(['lock', 'env-x', '--', 'sh', '-c', 'printf "%s|%s|%s|%s|%s" "$LATCHKEY_LOCK_NAME" "$LATCHKEY_FENCING_TOKEN" "$LATCHKEY_LEASE_ID" "$LATCHKEY_ADDRESS" "$LATCHKEY_LOCK_BACKEND"; exit 42'], { env });
    assert.equal(r.code, 42, r.stderr);
    assert.equal(r.stderr, '');
    const [name, token, leaseId, address, backend] = r.stdout.toString().split('|');
    assert.equal(name, 'env-x');
    assert.match(token!, /^[1-9]\d*$/);
    assert.ok(leaseId!.length > 0);
    assert.equal(address, server.address);
    assert.equal(backend, 'memory');
    // Released once CMD exited.
    assert.equal((await client.describe('env-x')).held, false);
  });

  test('a CMD killed by a signal gives 128+N; a missing CMD gives 127', async () => {
    const [term, kill, missing] = await Promise.all([
      runCli(['lock', 'sig-a', '--', 'sh', '-c', 'kill -TERM $$'], { env }),
      runCli(['lock', 'sig-b', '--', 'sh', '-c', 'kill -KILL $$'], { env }),
      runCli(['lock', 'sig-c', '--', 'latchkey-no-such-command'], { env }),
    ]);
    assert.equal(term.code, 128 + 15, term.stderr);
    assert.equal(kill.code, 128 + 9, kill.stderr);
    assert.equal(missing.code, 127);
    assert.ok(isOneLine(missing.stderr), missing.stderr);
    assert.match(missing.stderr, /^latchkey: cannot run "latchkey-no-such-command"/);
    for (const name of ['sig-a', 'sig-b', 'sig-c']) assert.equal((await client.describe(name)).held, false, name);
  });

  test('a held lock: exit 5 with one line naming the holder, and CMD does not run', async () => {
    await using held = await client.lock('busy', { ttlMs: 60_000, owner: 'holder-7f3' });
    const marker = file('busy-ran');
    const [once, waited, json] = await Promise.all([
      runCli(['lock', 'busy', '--wait-ms', '0', '--', 'touch', marker], { env }),
      runCli(['lock', 'busy', '--wait-ms', '300', '--', 'touch', marker], { env }),
      runCli(['lock', 'busy', '--wait-ms', '0', '--json', '--', 'touch', marker], { env }),
    ]);
    for (const r of [once, waited]) {
      assert.equal(r.code, EXIT.lockBusy, r.stderr);
      assert.ok(isOneLine(r.stderr), r.stderr);
      assert.match(r.stderr, /^latchkey: lock "busy" .*holder-7f3/);
      assert.equal(r.stdout.length, 0);
    }
    assert.equal(json.code, EXIT.lockBusy);
    const error = JSON.parse(json.stderr) as { error: string; exitCode: number; message: string };
    assert.equal(error.error, 'LockBusyError');
    assert.equal(error.exitCode, EXIT.lockBusy);
    assert.match(error.message, /holder-7f3/);
    assert.equal(existsSync(marker), false, 'CMD ran without the lock');
    assert.equal(held.state, 'held');
  });

  test('a lost lease: CMD gets SIGTERM, latchkey exits 6 with one line saying so', async () => {
    const [leaseFile, termFile] = [file('lost-lease'), file('lost-term')];
    const script = `echo "$LATCHKEY_LEASE_ID" > '${leaseFile}'; trap "echo TERM > '${termFile}'; exit 0" TERM; while :; do sleep 0.05; done`;
    const run = startCli(['lock', 'lost', '--ttl-ms', '3000', '--', 'sh', '-c', script], { env });
    await until('CMD to write its lease id', () => read('lost-lease').endsWith('\n'));
    // Behind the CLI's back: release its lease with a raw Release. Its next Refresh (every
    // TTL/3) is answered "not holder". (Should a starved machine have let the lease lapse
    // already, Release fails, and the CLI must still end the same way.)
    await releaseBehindBack('lost', read('lost-lease').trim());
    const r = await run.done;
    assert.equal(r.code, EXIT.leaseLost, r.stderr);
    assert.equal(read('lost-term'), 'TERM\n');
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.match(r.stderr, /^latchkey: lease on lock "lost" lost while CMD ran: .*sending CMD \(pid \d+\) SIGTERM/);
  });

  test('a lost lease and a CMD that ignores SIGTERM: SIGKILL after --kill-grace-ms', async () => {
    const leaseFile = file('stubborn-lease');
    const script = `echo "$LATCHKEY_LEASE_ID" > '${leaseFile}'; trap "" TERM; while :; do sleep 0.05; done`;
    const run = startCli(['lock', 'stubborn', '--ttl-ms', '3000', '--kill-grace-ms', '300', '--', 'sh', '-c', script], { env });
    await until('CMD to write its lease id', () => read('stubborn-lease').endsWith('\n'));
    await releaseBehindBack('stubborn', read('stubborn-lease').trim());
    const r = await run.done;
    assert.equal(r.code, EXIT.leaseLost, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[0]!, /^latchkey: lease on lock "stubborn" lost/);
    assert.match(lines[1]!, /still running 300 ms after SIGTERM; sending SIGKILL/);
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} to latchkey goes to CMD; the lock is released after CMD exits`, async () => {
      const name = `fwd-${signal}`;
      const [ready, got] = [file(`${name}-ready`), file(`${name}-got`)];
      const trapped = signal.slice(3);
      const script = `trap "echo ${trapped} > '${got}'; exit 9" ${trapped}; echo ready > '${ready}'; while :; do sleep 0.05; done`;
      const run = startCli(['lock', name, '--', 'sh', '-c', script], { env });
      await until('CMD to start', () => read(`${name}-ready`) === 'ready\n');
      // The default --owner names this process, for busy messages and describe.
      const { owner } = await client.describe(name);
      assert.ok(owner.endsWith(`${hostname()} (pid ${run.pid})`), owner);
      process.kill(run.pid, signal);
      const r = await run.done;
      assert.equal(r.code, 9, r.stderr);
      assert.equal(read(`${name}-got`), `${trapped}\n`);
      assert.equal((await client.describe(name)).held, false);
    });
  }

  test('SIGTERM while waiting gives up the wait: exit 143, CMD never runs', async () => {
    await using held = await client.lock('waiting', { ttlMs: 60_000 });
    const marker = file('waiting-ran');
    const run = startCli(['lock', 'waiting', '--', 'touch', marker], { env });
    await waiters('waiting', 1);
    process.kill(run.pid, 'SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 128 + 15, r.stderr);
    await waiters('waiting', 0);
    assert.equal(existsSync(marker), false);
    assert.equal(held.state, 'held');
  });

  test("without --wait-ms it waits as long as it takes, in rounds of the server's --max-wait-ms", async () => {
    await using short = await startServer({ lruMaxEntries: 10_000, maxWaitMs: 200 });
    await using shortClient = connect(short.address);
    const held = await shortClient.lock('rounds', { ttlMs: 60_000 });
    const run = startCli(['lock', 'rounds', '--', 'sh', '-c', 'echo ran'], { env: { LATCHKEY_ADDRESS: short.address } });
    await until('the CLI to queue', async () => (await shortClient.describe('rounds')).waiters === 1);
    // Several 200 ms Acquires time out before the holder lets go.
    await sleep(1_000);
    assert.equal(await held.release(), 'released');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'ran\n');
  });

  test('usage errors exit 2 with one line', async () => {
    const cases: [string[], RegExp][] = [
      [['lock', 'x'], /missing "-- CMD/],
      [['lock', '--', 'true'], /missing NAME/],
      [['lock', 'x', '--ttl-ms', 'soon', '--', 'true'], /--ttl-ms must be a whole number, got "soon"/],
      [['lock', 'x', '--nope', '--', 'true'], /unknown option "--nope"/],
      [['lock', 'x', '--address', 'localhost', '--', 'true'], /--address must be host:port/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, { env })));
    results.forEach((r, i) => {
      assert.equal(r.code, EXIT.usage, `${cases[i]![0].join(' ')}: ${r.stderr}`);
      assert.ok(isOneLine(r.stderr), r.stderr);
      assert.match(r.stderr, cases[i]![1]);
    });
  });

  test('an unreachable server: exit 7', async () => {
    const r = await runCli(['lock', 'x', '--address', '127.0.0.1:1', '--wait-ms', '0', '--', 'true']);
    assert.equal(r.code, EXIT.unavailable, r.stderr);
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.match(r.stderr, /^latchkey: latchkey server at 127\.0\.0\.1:1 is unavailable/);
  });
});

describe('latchkey lock describe', () => {
  test('prints holder, token, expiry, waiters and capabilities; --json parses', async () => {
    // A TTL long enough that no Refresh moves expiresAt while the test runs.
    await using held = await client.lock('desc', { ttlMs: 600_000, owner: 'desc-owner' });
    const [human, json, free, leading] = await Promise.all([
      runCli(['lock', 'describe', 'desc'], { env }),
      runCli(['lock', 'describe', 'desc', '--json'], { env }),
      runCli(['lock', 'describe', 'desc-free', '--backend', 'memory', '--json'], { env }),
      // Client options before the command, and --address instead of the environment.
      runCli(['--json', '--address', server.address, 'lock', 'describe', 'desc']),
    ]);
    assert.equal(human.code, 0, human.stderr);
    const text = human.stdout.toString();
    assert.match(text, /^lock "desc" \(backend memory\): held\n/);
    assert.match(text, /holder +desc-owner\n/);
    assert.match(text, new RegExp(`fencing token +${held.fencingToken}\\n`));
    assert.match(text, /expires +\d{4}-\d\d-\d\dT\S+Z \(in \d+ ms\)\n/);
    assert.match(text, /waiters +0\n/);
    assert.match(text, /capabilities +acrossHosts=no fencing=yes fifo=yes autoRelease=yes\n/);

    for (const r of [json, leading]) {
      assert.equal(r.code, 0, r.stderr);
      assert.ok(isOneLine(r.stdout.toString()));
      const state = JSON.parse(r.stdout.toString());
      assert.deepEqual(
        { ...state, expiresAt: typeof state.expiresAt },
        {
          name: 'desc',
          backend: 'memory',
          held: true,
          owner: 'desc-owner',
          fencingToken: held.fencingToken.toString(),
          expiresAt: 'string',
          waiters: 0,
          capabilities: { acrossHosts: false, fencing: true, fifo: true, autoRelease: true },
        },
      );
      assert.equal(new Date(state.expiresAt).getTime(), held.expiresAt.getTime());
    }
    assert.equal(free.code, 0, free.stderr);
    assert.deepEqual(JSON.parse(free.stdout.toString()), {
      name: 'desc-free',
      backend: 'memory',
      held: false,
      owner: '',
      fencingToken: '0',
      expiresAt: null,
      waiters: 0,
      capabilities: { acrossHosts: false, fencing: true, fifo: true, autoRelease: true },
    });
  });

  test('an unknown backend is the server saying INVALID_ARGUMENT: exit 2', async () => {
    const r = await runCli(['lock', 'describe', 'x', '--backend', 'nope'], { env });
    assert.equal(r.code, EXIT.usage, r.stderr);
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.match(r.stderr, /backend "nope" is not enabled/);
  });
});
