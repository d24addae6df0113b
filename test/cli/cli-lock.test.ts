// `latchkey lock NAME -- CMD`, `latchkey lock describe` and `latchkey lock watch` as child
// processes against a real server: exclusion between processes (and --limit, --shared), CMD's
// status and environment, busy and lost leases, signals, holders and queue, events.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type LatchkeyClient } from '../../client/index.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { isOneLine, runCli, startCli, until } from '../cli/support.js';
import { startServer, type TestServer } from '../support/server.js';

const CAPABILITIES = {
  acrossHosts: false,
  fencing: true,
  fifo: true,
  autoRelease: true,
  semaphore: true,
  shared: true,
  watch: true,
  sessions: true,
  elections: true,
};

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

interface Run {
  readonly who: string;
  readonly start: bigint;
  readonly end: bigint;
}

/** A CMD that logs "start NS WHO" and "end NS WHO" around a sleep, to measure overlap. */
function timedScript(log: string, who: string, seconds: number): string[] {
  return [
    'sh',
    '-c',
    `echo "start $(date +%s%N) ${who}" >> '${log}'; sleep ${seconds}; echo "end $(date +%s%N) ${who}" >> '${log}'`,
  ];
}

function runsIn(log: string): Run[] {
  const lines = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' '));
  const starts = new Map<string, bigint>();
  const runs: Run[] = [];
  for (const [word, ns, who] of lines) {
    if (word === 'start') starts.set(who!, BigInt(ns!));
    else runs.push({ who: who!, start: starts.get(who!)!, end: BigInt(ns!) });
  }
  return runs;
}

/** The most runs in progress at one instant. */
function maxOverlap(runs: readonly Run[]): number {
  const edges = runs
    .flatMap((r) => [[r.start, 1] as const, [r.end, -1] as const])
    .sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : a[0] < b[0] ? -1 : 1));
  let now = 0;
  let most = 0;
  for (const [, delta] of edges) most = Math.max(most, (now += delta));
  return most;
}

const overlaps = (a: Run, b: Run) => a.start < b.end && b.start < a.end;

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

    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '));
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
    const r = await runCli(
      [
        'lock',
        'env-x',
        '--',
        'sh',
        '-c',
        'printf "%s|%s|%s|%s|%s" "$LATCHKEY_LOCK_NAME" "$LATCHKEY_FENCING_TOKEN" "$LATCHKEY_LEASE_ID" "$LATCHKEY_ADDRESS" "$LATCHKEY_LOCK_BACKEND"; exit 42',
      ],
      { env },
    );
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
    const run = startCli(['lock', 'stubborn', '--ttl-ms', '3000', '--kill-grace-ms', '300', '--', 'sh', '-c', script], {
      env,
    });
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
    const run = startCli(['lock', 'rounds', '--', 'sh', '-c', 'echo ran'], {
      env: { LATCHKEY_ADDRESS: short.address },
    });
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
      [['lock', 'x', '--limit', '0', '--', 'true'], /--limit must be between 1 and/],
      [['lock', 'x', '--limit', '2', '--shared', '--', 'true'], /--limit and --shared do not go together/],
      [['lock', 'watch'], /missing NAME/],
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

describe('latchkey lock --limit and --shared', () => {
  test('--limit 2: of three processes, two run CMD at once and the third waits its turn', async () => {
    const log = file('sem.log');
    // The test holds both slots first, so all three CLIs queue before any CMD runs.
    const gates = [
      await client.lock('sem', { limit: 2, ttlMs: 60_000 }),
      await client.lock('sem', { limit: 2, ttlMs: 60_000 }),
    ];
    const runs = ['a', 'b', 'c'].map((who) =>
      startCli(['lock', 'sem', '--limit', '2', '--', ...timedScript(log, who, 1.5)], { env }),
    );
    await waiters('sem', 3);
    for (const gate of gates) assert.equal(await gate.release(), 'released');
    for (const r of await Promise.all(runs.map((run) => run.done)))
      assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, r.stderr);
    const done = runsIn(log);
    assert.equal(done.length, 3);
    assert.equal(maxOverlap(done), 2, JSON.stringify(done.map((r) => [r.who, String(r.start), String(r.end)])));
    assert.equal((await client.describe('sem')).held, false);
  });

  test('a --limit other than the one in force: exit 8, and CMD does not run', async () => {
    await using held = await client.lock('sem-3', { limit: 3, ttlMs: 60_000 });
    const marker = file('sem-3-ran');
    const r = await runCli(['lock', 'sem-3', '--limit', '2', '--wait-ms', '0', '--', 'touch', marker], { env });
    assert.equal(r.code, EXIT.precondition, r.stderr);
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.match(r.stderr, /limit 3/);
    assert.equal(existsSync(marker), false);
    assert.equal(held.state, 'held');
  });

  test('--shared: two readers run CMD together; a writer queued behind them runs alone', async () => {
    const log = file('rw.log');
    const gate = await client.lock('rw', { ttlMs: 60_000 });
    const readers = ['r1', 'r2'].map((who) =>
      startCli(['lock', 'rw', '--shared', '--', ...timedScript(log, who, 1.5)], { env }),
    );
    await waiters('rw', 2);
    const writer = startCli(['lock', 'rw', '--', ...timedScript(log, 'w', 0.2)], { env });
    await waiters('rw', 3);
    assert.deepEqual(
      (await client.describe('rw')).queue.map((w) => w.mode),
      ['SHARED', 'SHARED', 'EXCLUSIVE'],
    );
    assert.equal(await gate.release(), 'released');
    for (const r of await Promise.all([...readers, writer].map((run) => run.done))) assert.equal(r.code, 0, r.stderr);
    const done = runsIn(log);
    const [r1, r2, w] = ['r1', 'r2', 'w'].map((who) => done.find((r) => r.who === who)!);
    assert.ok(overlaps(r1!, r2!), 'the readers did not run together');
    assert.ok(!overlaps(w!, r1!) && !overlaps(w!, r2!), 'the writer ran while a reader held the lock');
    assert.ok(w!.start >= r1!.end && w!.start >= r2!.end, 'the writer ran before the readers queued ahead of it');
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
    assert.match(
      text,
      new RegExp(
        `\\n  holder +desc-owner: fencing token ${held.fencingToken}, expires \\d{4}-\\d\\d-\\d\\dT\\S+Z \\(in \\d+ ms\\)\\n`,
      ),
    );
    assert.match(text, /waiters +0\n/);
    assert.match(
      text,
      /capabilities +acrossHosts=no fencing=yes fifo=yes autoRelease=yes semaphore=yes shared=yes watch=yes sessions=yes elections=yes\n/,
    );

    for (const r of [json, leading]) {
      assert.equal(r.code, 0, r.stderr);
      assert.ok(isOneLine(r.stdout.toString()));
      const state = JSON.parse(r.stdout.toString());
      assert.deepEqual(
        {
          ...state,
          expiresAt: typeof state.expiresAt,
          holders: state.holders.map((h: { expiresAt: unknown }) => ({ ...h, expiresAt: typeof h.expiresAt })),
        },
        {
          name: 'desc',
          backend: 'memory',
          held: true,
          owner: 'desc-owner',
          fencingToken: held.fencingToken.toString(),
          expiresAt: 'string',
          waiters: 0,
          holders: [
            { owner: 'desc-owner', fencingToken: held.fencingToken.toString(), expiresAt: 'string', mode: 'EXCLUSIVE' },
          ],
          queue: [],
          limit: 1,
          capabilities: CAPABILITIES,
        },
      );
      assert.equal(new Date(state.expiresAt).getTime(), held.expiresAt.getTime());
      assert.equal(state.holders[0].expiresAt, state.expiresAt);
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
      holders: [],
      queue: [],
      limit: 0,
      capabilities: CAPABILITIES,
    });
  });

  test('every holder of a semaphore or a shared lock, and the queue in order', async () => {
    const a = await client.lock('desc-sem', { limit: 2, ttlMs: 600_000, owner: 'sem-a' });
    const b = await client.lock('desc-sem', { limit: 2, ttlMs: 600_000, owner: 'sem-b' });
    const queued = client.lock('desc-sem', { limit: 2, ttlMs: 600_000, waitMs: 60_000, owner: 'sem-c' });
    const r1 = await client.lock('desc-rw', { mode: 'SHARED', ttlMs: 600_000, owner: 'reader-1' });
    const r2 = await client.lock('desc-rw', { mode: 'SHARED', ttlMs: 600_000, owner: 'reader-2' });
    await waiters('desc-sem', 1);
    const [sem, semJson, rw] = await Promise.all([
      runCli(['lock', 'describe', 'desc-sem'], { env }),
      runCli(['lock', 'describe', 'desc-sem', '--json'], { env }),
      runCli(['lock', 'describe', 'desc-rw'], { env }),
    ]);
    for (const r of [sem, semJson, rw]) assert.equal(r.code, 0, r.stderr);
    const text = sem.stdout.toString();
    assert.match(text, /^lock "desc-sem" \(backend memory\): held by 2 of 2 \(semaphore\)\n/);
    assert.match(
      text,
      new RegExp(
        `\\n  holder +sem-a: fencing token ${a.fencingToken}, .*\\n  holder +sem-b: fencing token ${b.fencingToken}, `,
      ),
    );
    assert.match(text, /\n {2}limit +2\n {2}waiters +1\n {2}queue +1\. sem-c: exclusive\n/);
    const state = JSON.parse(semJson.stdout.toString());
    assert.deepEqual(
      state.holders.map((h: { owner: string; fencingToken: string }) => [h.owner, h.fencingToken]),
      [
        ['sem-a', a.fencingToken.toString()],
        ['sem-b', b.fencingToken.toString()],
      ],
    );
    assert.deepEqual([state.queue, state.limit], [[{ owner: 'sem-c', mode: 'EXCLUSIVE' }], 2]);
    const rwText = rw.stdout.toString();
    assert.match(rwText, /^lock "desc-rw" \(backend memory\): held by 2 shared holders\n/);
    assert.match(rwText, /holder +reader-1: shared, fencing token \d+, .*\n {2}holder +reader-2: shared, /);
    await a.release();
    for (const lock of [b, await queued, r1, r2]) await lock.release();
  });

  test('an unknown backend is the server saying INVALID_ARGUMENT: exit 2', async () => {
    const r = await runCli(['lock', 'describe', 'x', '--backend', 'nope'], { env });
    assert.equal(r.code, EXIT.usage, r.stderr);
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.match(r.stderr, /backend "nope" is not enabled/);
  });
});

describe('latchkey lock watch', () => {
  const lines = (text: string) => text.split('\n').filter((l) => l !== '');

  test('--json: one line per event, STATE first, in order; SIGTERM ends it with exit 0', async () => {
    const run = startCli(['lock', 'watch', 'watched', '--json'], { env });
    await until('the STATE line', () => lines(run.stdout().toString()).length === 1);
    const alice = await client.lock('watched', { ttlMs: 60_000, owner: 'alice' });
    const bob = client.lock('watched', { ttlMs: 60_000, waitMs: 60_000, owner: 'bob' });
    await until('the ACQUIRED and WAITER_ADDED lines', () => lines(run.stdout().toString()).length === 3);
    await alice.release();
    const bobLock = await bob;
    await bobLock.release();
    await until('the rest', () => lines(run.stdout().toString()).length === 6);
    process.kill(run.pid, 'SIGTERM');
    const r = await run.done;
    assert.deepEqual({ code: r.code, signal: r.signal, stderr: r.stderr }, { code: 0, signal: null, stderr: '' });
    const events = lines(r.stdout.toString()).map((l) => JSON.parse(l));
    assert.deepEqual(
      events.map((e) => [e.type, e.owner, e.fencingToken]),
      [
        ['STATE', '', '0'],
        ['ACQUIRED', 'alice', alice.fencingToken.toString()],
        ['WAITER_ADDED', 'bob', '0'],
        ['RELEASED', 'alice', alice.fencingToken.toString()],
        ['ACQUIRED', 'bob', bobLock.fencingToken.toString()],
        ['RELEASED', 'bob', bobLock.fencingToken.toString()],
      ],
    );
    for (const e of events) {
      assert.equal(e.name, 'watched');
      assert.equal(e.mode, 'EXCLUSIVE');
      assert.equal(new Date(e.at).toISOString(), e.at);
    }
    assert.deepEqual(events[0].state, {
      name: 'watched',
      backend: 'memory',
      held: false,
      owner: '',
      fencingToken: '0',
      expiresAt: null,
      waiters: 0,
      holders: [],
      queue: [],
      limit: 0,
      capabilities: CAPABILITIES,
    });
    assert.equal('state' in events[1], false);
  });

  test('human lines; SIGINT (Ctrl-C) ends it with exit 0; a server that ends the watch: exit 7', async () => {
    await using held = await client.lock('watched-2', { ttlMs: 60_000, owner: 'holder' });
    const run = startCli(['lock', 'watch', 'watched-2'], { env });
    await until('the STATE line', () => lines(run.stdout().toString()).length === 1);
    await held.release();
    await until('the RELEASED line', () => lines(run.stdout().toString()).length === 2);
    process.kill(run.pid, 'SIGINT');
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const [state, released] = lines(r.stdout.toString());
    assert.match(
      state!,
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\dT\\S+Z STATE +lock "watched-2" \\(backend memory\\) held: holder, token ${held.fencingToken}; 0 waiting$`,
      ),
    );
    assert.match(released!, new RegExp(`^\\S+Z RELEASED +holder: exclusive, fencing token ${held.fencingToken}$`));

    const doomed = await startServer({ lruMaxEntries: 1_000 });
    try {
      const ended = startCli(['lock', 'watch', 'w', '--address', doomed.address]);
      await until('the STATE line', () => lines(ended.stdout().toString()).length === 1);
      await doomed.server.shutdown(1_000);
      const e = await ended.done;
      assert.equal(e.code, EXIT.unavailable, e.stderr);
      assert.ok(isOneLine(e.stderr), e.stderr);
      assert.match(e.stderr, /ended the watch of lock "w" \(it is shutting down\); run latchkey lock watch again/);
    } finally {
      await doomed[Symbol.asyncDispose]();
    }
  });
});
