// `latchkey elect NAME -- CMD`, `latchkey elect observe` and `latchkey elect leader` as child
// processes against a real server: one CMD at a time across processes, CMD's status and
// environment, --wait-ms, a lost leadership, signals while waiting, and what observe prints.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type LatchkeyClient } from '../../client/index.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { isOneLine, runCli, startCli, until } from '../cli/support.js';
import { startServer, type TestServer } from '../support/server.js';

let server: TestServer;
let client: LatchkeyClient;
let dir: string;
let env: Record<string, string>;

before(async () => {
  server = await startServer({ lruMaxEntries: 10_000 });
  client = connect(server.address);
  dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-elect-'));
  env = { LATCHKEY_ADDRESS: server.address };
});

after(async () => {
  await client.close();
  await server[Symbol.asyncDispose]();
  rmSync(dir, { recursive: true, force: true });
});

const file = (name: string) => join(dir, name);
const read = (name: string) => (existsSync(file(name)) ? readFileSync(file(name), 'utf8') : '');
const candidates = (name: string, n: number) =>
  until(`${n} candidates for election "${name}"`, async () => (await client.leader(name)).candidates === n);

describe('latchkey elect NAME -- CMD', () => {
  test('candidates in three processes: exactly one CMD runs at a time, in campaign order, with increasing tokens', async () => {
    const log = file('one-at-a-time.log');
    // The test leads first, so every CLI has started and queued before any CMD runs.
    const gate = await client.campaign('one-at-a-time', 'gate', { ttlMs: 60_000 });
    const script = `echo "start $(date +%s%N) $LATCHKEY_FENCING_TOKEN $LATCHKEY_ELECTION_VALUE" >> '${log}'; sleep 0.2; echo "end $(date +%s%N) $LATCHKEY_FENCING_TOKEN $LATCHKEY_ELECTION_VALUE" >> '${log}'`;
    const runs = [];
    for (const who of ['p1', 'p2', 'p3']) {
      runs.push(startCli(['elect', 'one-at-a-time', '--value', who, '--', 'sh', '-c', script], { env }));
      await candidates('one-at-a-time', runs.length + 1);
    }
    assert.equal(await gate.resign(), 'resigned');
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
      const [startWord, startNs, startToken, startWho] = lines[i]!;
      const [endWord, endNs, endToken] = lines[i + 1]!;
      assert.deepEqual([startWord, endWord, endToken], ['start', 'end', startToken], lines.join('\n'));
      assert.equal(startWho, `p${i / 2 + 1}`, 'they lead in the order they campaigned');
      assert.ok(BigInt(startNs!) >= lastEnd, `run ${i / 2} started before the previous one ended`);
      assert.ok(BigInt(startToken!) > lastToken, `token ${startToken} after ${lastToken}`);
      lastEnd = BigInt(endNs!);
      lastToken = BigInt(startToken!);
    }
    assert.equal((await client.leader('one-at-a-time')).elected, false);
  });

  test("CMD gets the election's environment and fences cache writes with it; its exit status is latchkey's", async () => {
    const script = `echo "$LATCHKEY_ELECTION|$LATCHKEY_ELECTION_BACKEND|$LATCHKEY_ELECTION_VALUE|$LATCHKEY_FENCING_TOKEN|$LATCHKEY_LOCK_NAME"; latchkey_set() { node --import tsx src/cli.ts cache set elect-env/key "$1" --fenced; }; latchkey_set from-cmd || exit 99; exit 7`;
    const r = await runCli(['elect', 'elect-env', '--value', 'node-7:8080', '--', 'sh', '-c', script], {
      env: { ...env, LATCHKEY_LOCK_NAME: 'stale-outer-lock' },
    });
    assert.equal(r.code, 7, r.stderr);
    const [name, backend, value, token, lockName] = r.stdout.toString().trim().split('\n')[0]!.split('|');
    assert.deepEqual([name, backend, value, lockName], ['elect-env', 'memory', 'node-7:8080', '']);
    assert.ok(BigInt(token!) > 0n);
    // The write was fenced by the election: a lock fence of the same name is refused now.
    await assert.rejects(
      client
        .cache()
        .set('elect-env/key', 'by-lock', { fence: { name: 'elect-env', backend: 'memory', fencingToken: 10n ** 12n } }),
      /fenced by election "elect-env"/,
    );
    assert.equal((await client.cache().get('elect-env/key'))?.value.toString(), 'from-cmd');
    assert.equal((await client.leader('elect-env')).elected, false, 'resigned once CMD exited');
  });

  test('--wait-ms: not leading by then is exit 5 with one line naming the leader, and CMD does not run', async () => {
    await using leadership = await client.campaign('elect-busy', 'the-leader-7f3');
    const marker = file('busy-ran');
    const r = await runCli(['--json', 'elect', 'elect-busy', '--wait-ms', '300', '--', 'touch', marker], { env });
    assert.equal(r.code, EXIT.lockBusy, r.stderr);
    assert.ok(isOneLine(r.stderr), r.stderr);
    const error = JSON.parse(r.stderr);
    assert.equal(error.error, 'NotElectedError');
    assert.match(error.message, /the-leader-7f3/);
    assert.equal(existsSync(marker), false, 'CMD ran without leading');
    assert.equal(leadership.state, 'leading');
  });

  test('SIGTERM while waiting withdraws the candidacy: exit 143, CMD never runs', async () => {
    await using leadership = await client.campaign('elect-wait', 'holder');
    const marker = file('wait-ran');
    const run = startCli(['elect', 'elect-wait', '--', 'touch', marker], { env });
    await candidates('elect-wait', 2);
    process.kill(run.pid, 'SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 143, r.stderr);
    await candidates('elect-wait', 1);
    assert.equal(existsSync(marker), false);
    assert.equal(leadership.state, 'leading');
  });

  test('a lost leadership (its server gone past the TTL): CMD gets SIGTERM, latchkey exits 6 with one line saying so', async () => {
    await using doomed = await startServer({ lruMaxEntries: 1_000 });
    const termFile = file('lost-term');
    const startedFile = file('lost-started');
    const script = `trap "echo TERM > '${termFile}'; exit 0" TERM; touch '${startedFile}'; while :; do sleep 0.05; done`;
    const run = startCli(['elect', 'elect-lost', '--ttl-ms', '1000', '--', 'sh', '-c', script], {
      env: { LATCHKEY_ADDRESS: doomed.address },
    });
    await until('CMD to start', async () => existsSync(startedFile), 30_000);
    await doomed.server.shutdown(0);
    const r = await run.done;
    assert.equal(r.code, EXIT.leaseLost, r.stderr);
    assert.equal(read('lost-term'), 'TERM\n');
    assert.ok(isOneLine(r.stderr), r.stderr);
    assert.match(
      r.stderr,
      /^latchkey: leadership of election "elect-lost" lost while CMD ran: .*sending CMD \(pid \d+\) SIGTERM/,
    );
  });
});

describe('latchkey elect observe / leader', () => {
  test('observe prints the leader now, then ELECTED, PROCLAIMED and VACANT lines; --json parses', async () => {
    const [human, json] = [
      startCli(['elect', 'observe', 'elect-obs'], { env }),
      startCli(['--json', 'elect', 'observe', 'elect-obs'], { env }),
    ];
    await until('both observers to print the current leader', async () =>
      [human, json].every((r) => r.stdout().toString().includes('\n')),
    );
    const a = await client.campaign('elect-obs', 'a:1');
    await a.proclaim('a:2');
    await a.resign();
    await until('4 lines each', async () =>
      [human, json].every((r) => r.stdout().toString().trim().split('\n').length >= 4),
    );
    process.kill(human.pid, 'SIGINT');
    process.kill(json.pid, 'SIGTERM');
    const [h, j] = await Promise.all([human.done, json.done]);
    assert.equal(h.code, 0, h.stderr);
    assert.equal(j.code, 0, j.stderr);
    const lines = h.stdout.toString().trim().split('\n');
    assert.match(lines[0]!, /^\S+Z CURRENT +nobody leads$/);
    assert.match(lines[1]!, new RegExp(`^\\S+Z ELECTED +"a:1" \\(fencing token ${a.fencingToken}\\)$`));
    assert.match(lines[2]!, new RegExp(`^\\S+Z PROCLAIMED +"a:2" \\(fencing token ${a.fencingToken}\\)$`));
    assert.match(lines[3]!, /^\S+Z VACANT +nobody leads$/);
    const records = j.stdout
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      records.map((r) => [r.change, r.election, r.elected, r.value, r.fencingToken]),
      [
        ['CURRENT', 'elect-obs', false, '', '0'],
        ['ELECTED', 'elect-obs', true, 'a:1', String(a.fencingToken)],
        ['PROCLAIMED', 'elect-obs', true, 'a:2', String(a.fencingToken)],
        ['VACANT', 'elect-obs', false, '', '0'],
      ],
    );
  });

  test('leader prints who leads, or that nobody does', async () => {
    await using leadership = await client.campaign('elect-who', 'node-9:80');
    const [text, json, none] = await Promise.all([
      runCli(['elect', 'leader', 'elect-who'], { env }),
      runCli(['--json', 'elect', 'leader', 'elect-who'], { env }),
      runCli(['elect', 'leader', 'elect-nobody'], { env }),
    ]);
    for (const r of [text, json, none]) assert.equal(r.code, 0, r.stderr);
    assert.equal(
      text.stdout.toString(),
      `election "elect-who" (backend memory): led by "node-9:80" (fencing token ${leadership.fencingToken}), 1 candidate\n`,
    );
    assert.deepEqual(JSON.parse(json.stdout.toString()), {
      election: 'elect-who',
      backend: 'memory',
      elected: true,
      value: 'node-9:80',
      fencingToken: String(leadership.fencingToken),
      candidates: 1,
    });
    assert.equal(none.stdout.toString(), 'election "elect-nobody" (backend memory): nobody leads\n');
  });
});
