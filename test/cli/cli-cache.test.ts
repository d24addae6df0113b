// `latchkey cache ...` as child processes against a real server: binary values through stdin
// and stdout, every documented exit code, and the --json shapes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect, type LatchkeyClient } from '../../client/index.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { isOneLine, runCli, type CliOptions, type CliResult } from '../cli/support.js';
import { startServer, type TestServer } from '../support/server.js';

let server: TestServer;
let client: LatchkeyClient;
let env: Record<string, string>;

before(async () => {
  server = await startServer({ lruMaxEntries: 10_000 });
  client = connect(server.address);
  env = { LATCHKEY_ADDRESS: server.address };
});

after(async () => {
  await client.close();
  await server[Symbol.asyncDispose]();
});

const cli = (args: string[], options: CliOptions = {}) =>
  runCli(['cache', ...args], { ...options, env: { ...env, ...options.env } });
const out = (r: CliResult) => r.stdout.toString();
const json = (r: CliResult) => {
  assert.ok(isOneLine(out(r)), `not one line of JSON: ${JSON.stringify(out(r))}`);
  return JSON.parse(out(r)) as Record<string, unknown>;
};

function expectExit(r: CliResult, code: number, stderr?: RegExp): void {
  assert.deepEqual({ code: r.code, signal: r.signal }, { code, signal: null }, r.stderr);
  if (stderr === undefined) return;
  assert.ok(isOneLine(r.stderr), `not one line: ${JSON.stringify(r.stderr)}`);
  assert.match(r.stderr, stderr);
}

const ALL_BYTES = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));

describe('latchkey cache', () => {
  test('binary values round-trip through stdin and stdout, byte for byte', async () => {
    const [viaStdin, viaDash] = await Promise.all([
      cli(['set', 'bin'], { input: ALL_BYTES }),
      cli(['set', 'bin-dash', '-', '--ttl-ms', '60000'], { input: ALL_BYTES }),
    ]);
    expectExit(viaStdin, 0);
    expectExit(viaDash, 0);
    assert.match(out(viaStdin), /^STORED cas=\d+\n$/);
    const [get, getDash, getJson] = await Promise.all([
      cli(['get', 'bin']),
      cli(['get', 'bin-dash']),
      cli(['get', 'bin', '--json']),
    ]);
    expectExit(get, 0);
    // A pipe gets the exact bytes: no newline added.
    assert.deepEqual(get.stdout, ALL_BYTES);
    assert.deepEqual(getDash.stdout, ALL_BYTES);
    const item = json(getJson);
    assert.deepEqual(Buffer.from(item.valueBase64 as string, 'base64'), ALL_BYTES);
    assert.equal(item.cas, (await client.cache().get('bin'))!.cas.toString());
    assert.deepEqual(item.found, true);

    // A VALUE argument is stored as UTF-8, and comes back without a newline.
    expectExit(await cli(['set', 'text', 'héllo ✓']), 0);
    assert.equal(out(await cli(['get', 'text'])), 'héllo ✓');
    // A value that looks like an option goes after --; an empty stdin stores an empty value.
    expectExit(await cli(['set', 'dashy', '--', '--not-an-option']), 0);
    assert.equal((await client.cache().get('dashy'))!.value.toString(), '--not-an-option');
    expectExit(await cli(['set', 'empty'], { input: '' }), 0);
    assert.equal((await client.cache().get('empty'))!.value.length, 0);
  });

  test('get: a miss exits 3 (one stderr line; with --json {"found":false} on stdout)', async () => {
    const [miss, missJson] = await Promise.all([cli(['get', 'absent']), cli(['get', 'absent', '--json'])]);
    expectExit(miss, EXIT.notFound, /^latchkey: key "absent" not found$/m);
    assert.equal(miss.stdout.length, 0);
    expectExit(missJson, EXIT.notFound);
    assert.deepEqual(json(missJson), { key: 'absent', found: false });
    assert.equal(missJson.stderr, '');
  });

  test('cas: STORED 0, a stale cas EXISTS 4, an absent key NOT_FOUND 3', async () => {
    const cache = client.cache();
    const old = await cache.set('c', 'one');
    const current = await cache.set('c', 'two');
    const [stale, absent, staleJson] = await Promise.all([
      cli(['cas', 'c', 'three', '--cas', String(old)]),
      cli(['cas', 'c-absent', 'x', '--cas', '7']),
      cli(['cas', 'c', 'three', '--cas', String(old), '--json']),
    ]);
    expectExit(stale, EXIT.exists, /^latchkey: cas of key "c" refused: EXISTS/);
    expectExit(absent, EXIT.notFound, /^latchkey: cas of key "c-absent" refused: NOT_FOUND/);
    expectExit(staleJson, EXIT.exists);
    const conflict = json(staleJson);
    assert.deepEqual({ ...conflict, cas: typeof conflict.cas }, { key: 'c', outcome: 'EXISTS', cas: 'string' });
    assert.equal((await cache.get('c'))!.value.toString(), 'two');

    const stored = await cli(['cas', 'c', '--cas', String(current), '--json'], { input: 'three' });
    expectExit(stored, 0);
    const res = json(stored);
    assert.equal(res.outcome, 'STORED');
    const now = await cache.get('c');
    assert.equal(now!.value.toString(), 'three');
    assert.equal(res.cas, now!.cas.toString());
    // --cas is required, and 0 is no cas.
    const [missing, zero] = await Promise.all([cli(['cas', 'c', 'x']), cli(['cas', 'c', 'x', '--cas', '0'])]);
    expectExit(missing, EXIT.usage, /--cas N is required/);
    expectExit(zero, EXIT.usage, /--cas must not be 0/);
  });

  test('add: STORED 0, an existing key EXISTS 4', async () => {
    const first = await cli(['add', 'a', 'one', '--json']);
    expectExit(first, 0);
    assert.equal(json(first).outcome, 'STORED');
    const again = await cli(['add', 'a', 'two']);
    expectExit(again, EXIT.exists, /^latchkey: add of key "a" refused: EXISTS/);
    assert.equal((await client.cache().get('a'))!.value.toString(), 'one');
  });

  test('delete: DELETED 0, absent NOT_FOUND 3, a stale --cas EXISTS 4', async () => {
    const cache = client.cache();
    const old = await cache.set('d', 'one');
    await cache.set('d', 'two');
    const [stale, absent] = await Promise.all([
      cli(['delete', 'd', '--cas', String(old)]),
      cli(['delete', 'd-absent', '--json']),
    ]);
    expectExit(stale, EXIT.exists, /^latchkey: delete of key "d" refused: EXISTS/);
    expectExit(absent, EXIT.notFound);
    assert.deepEqual(json(absent), { key: 'd-absent', outcome: 'NOT_FOUND' });
    const deleted = await cli(['delete', 'd']);
    expectExit(deleted, 0);
    assert.equal(out(deleted), 'DELETED\n');
    assert.equal(await cache.get('d'), undefined);
  });

  test('touch: TOUCHED 0, absent NOT_FOUND 3, --ttl-ms required', async () => {
    await client.cache().set('t', 'v');
    const [touched, absent, noTtl] = await Promise.all([
      cli(['touch', 't', '--ttl-ms', '60000', '--json']),
      cli(['touch', 't-absent', '--ttl-ms', '1']),
      cli(['touch', 't']),
    ]);
    expectExit(touched, 0);
    assert.deepEqual(json(touched), { key: 't', outcome: 'TOUCHED' });
    expectExit(absent, EXIT.notFound, /^latchkey: touch of key "t-absent": NOT_FOUND/);
    expectExit(noTtl, EXIT.usage, /--ttl-ms N is required/);
  });

  test('incr: prints the new value, takes a negative DELTA and --initial; a non-number exits 8', async () => {
    const created = await cli(['incr', 'n', '5', '--initial', '10']);
    expectExit(created, 0);
    assert.equal(out(created), '10\n');
    const down = await cli(['incr', 'n', '-3', '--json']);
    expectExit(down, 0);
    const res = json(down);
    assert.equal(res.value, '7');
    assert.match(res.cas as string, /^\d+$/);
    // 64-bit values print exactly, as decimal strings in JSON.
    const big = await cli(['incr', 'big', '1', '--initial', '18446744073709551615', '--json']);
    assert.equal(json(big).value, '18446744073709551615');

    await client.cache().set('word', 'abc');
    expectExit(await cli(['incr', 'word', '1']), EXIT.precondition, /^latchkey: .*not a decimal number/);
    expectExit(await cli(['incr', 'n', 'lots']), EXIT.usage, /DELTA must be a whole number/);
  });

  test('--fenced writes under the lock `latchkey lock` passes in the environment; an older token exits 8', async () => {
    const older = await client.lock('fence-lock');
    const olderToken = older.fencingToken;
    await older.release();
    await using newer = await client.lock('fence-lock');
    const lockEnv = (token: bigint) => ({
      LATCHKEY_LOCK_NAME: 'fence-lock',
      LATCHKEY_LOCK_BACKEND: newer.backend,
      LATCHKEY_FENCING_TOKEN: String(token),
    });
    expectExit(await cli(['set', 'fenced', 'new', '--fenced'], { env: lockEnv(newer.fencingToken) }), 0);
    const [set, del, noEnv] = await Promise.all([
      cli(['set', 'fenced', 'old', '--fenced'], { env: lockEnv(olderToken) }),
      cli(['delete', 'fenced', '--fenced', '--json'], { env: lockEnv(olderToken) }),
      cli(['set', 'fenced', 'x', '--fenced']),
    ]);
    expectExit(set, EXIT.precondition);
    assert.ok(isOneLine(set.stderr), set.stderr);
    expectExit(del, EXIT.precondition);
    assert.equal((JSON.parse(del.stderr) as { error: string }).error, 'FencedOutError');
    expectExit(
      noEnv,
      EXIT.usage,
      /--fenced needs LATCHKEY_LOCK_NAME \(or LATCHKEY_ELECTION\) and LATCHKEY_FENCING_TOKEN/,
    );
    assert.equal((await client.cache().get('fenced'))!.value.toString(), 'new');
  });

  test('usage errors and INVALID_ARGUMENT exit 2; an unreachable server exits 7', async () => {
    const results = await Promise.all([
      cli(['get', 'k', '--bogus']),
      cli(['get']),
      cli(['get', 'k', 'extra']),
      cli(['frobnicate', 'k']),
      cli(['set', 'k', 'v', '--ttl-ms', '-1']),
      cli(['get', 'has space']),
      cli(['get', 'k', '--store', 'nope']),
      cli(['get', 'k', '--deadline-ms', '0']),
      runCli(['cache', 'get', 'k', '--address', '127.0.0.1:1']),
    ]);
    const expected: [number, RegExp][] = [
      [EXIT.usage, /unknown option "--bogus"/],
      [EXIT.usage, /missing KEY/],
      [EXIT.usage, /unexpected argument "extra"/],
      [EXIT.usage, /unknown cache command "frobnicate"/],
      [EXIT.usage, /--ttl-ms must be a whole number, got "-1"/],
      [EXIT.usage, /key contains character U\+0020/],
      [EXIT.usage, /store "nope" is not enabled/],
      [EXIT.usage, /--deadline-ms must be between 1 and/],
      [EXIT.unavailable, /^latchkey: latchkey server at 127\.0\.0\.1:1 is unavailable/],
    ];
    results.forEach((r, i) => expectExit(r, expected[i]![0], expected[i]![1]));
    // With --json, a usage error is JSON on stderr too.
    const jsonUsage = await cli(['get', 'k', '--json', '--bogus']);
    expectExit(jsonUsage, EXIT.usage);
    assert.deepEqual(JSON.parse(jsonUsage.stderr), {
      error: 'UsageError',
      exitCode: EXIT.usage,
      message: 'unknown option "--bogus" (see latchkey cache get --help)',
    });
  });

  test('--json on every command prints one parseable line', async () => {
    const set = json(await cli(['set', 'j', 'v', '--json']));
    assert.deepEqual(Object.keys(set), ['key', 'outcome', 'cas']);
    assert.equal(set.outcome, 'STORED');
    const get = json(await cli(['get', 'j', '--json']));
    assert.deepEqual(get, { key: 'j', found: true, cas: set.cas, valueBase64: Buffer.from('v').toString('base64') });
    const touch = json(await cli(['touch', 'j', '--ttl-ms', '0', '--json']));
    assert.deepEqual(touch, { key: 'j', outcome: 'TOUCHED' });
    const del = json(await cli(['delete', 'j', '--cas', set.cas as string, '--json']));
    assert.deepEqual(del, { key: 'j', outcome: 'DELETED' });
    // Before the command works as well as after it.
    const leading = await runCli(['--json', '--address', server.address, 'cache', 'add', 'j', 'w']);
    assert.equal(json(leading).outcome, 'STORED');
  });
});
