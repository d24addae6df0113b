// Structured logs: `latchkey serve` writes one JSON line per event on stderr; debug adds a
// line per lock grant and lease expiry; internal errors are logged with their stack; and no
// auth token, cache value or lease id ever appears in the log.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output } from '../../client/common/index.js';
import type { CacheStore } from '../../src/cache/store.js';
import { toStatus } from '../../src/errors.js';
import { createLogger, lineLogger } from '../../src/log.js';
import { loadProto } from '../../src/proto.js';
import { startServer } from '../support/server.js';
import { spawnServer } from '../support/spawn.js';

const proto = loadProto();

interface LogLine {
  readonly level: string;
  readonly time: string;
  readonly msg: string;
  readonly event?: string;
  readonly [field: string]: unknown;
}

/** Every stderr line, each of which must be one JSON object with level, time and msg. */
function parseLog(stderr: string): LogLine[] {
  return stderr
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        return assert.fail(`not a JSON line: ${line}`);
      }
      assert.equal(typeof parsed.level, 'string', line);
      assert.ok(!Number.isNaN(Date.parse(parsed.time)), line);
      assert.equal(typeof parsed.msg, 'string', line);
      return parsed;
    });
}

function unary<Res>(
  client: grpc.Client,
  method: string,
  request: object,
  metadata = new grpc.Metadata(),
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!;
    fn.call(client, request, metadata, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

const bearer = (token: string) => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
};

describe('latchkey serve logs (spawned)', () => {
  test('--log-level debug: JSON lines for start, each grant, each expiry, a token reload and shutdown; never a token, a cache value or a lease id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-logging-'));
    const TOKEN = 'tok-never-logged-5a1f0c3e9b';
    const WRONG = 'tok-wrong-never-logged-77e2d9';
    const VALUE = 'cache-value-never-logged-3c9d';
    const tokens = join(dir, 'tokens');
    writeFileSync(tokens, `${TOKEN}\n`);
    try {
      await using server = await spawnServer(['--log-level', 'debug', '--auth-tokens-file', tokens]);
      const locks = new proto.latchkey.v1.Locks(server.address, grpc.credentials.createInsecure());
      const cache = new proto.latchkey.v1.Cache(server.address, grpc.credentials.createInsecure());
      const md = bearer(TOKEN);
      let expiring: Lease__Output;
      let released: Lease__Output;
      try {
        expiring = await unary<Lease__Output>(
          locks,
          'Acquire',
          { name: 'log/expiring', owner: 'log-owner', ttl_ms: 200, limit: 2 },
          md,
        );
        released = await unary<Lease__Output>(locks, 'Acquire', { name: 'log/released', owner: 'log-owner-2' }, md);
        await unary(locks, 'Release', { name: 'log/released', lease_id: released.lease_id }, md);
        // A refused release carries its lease id in the error message to the caller, not to the log.
        await assert.rejects(unary(locks, 'Release', { name: 'log/released', lease_id: released.lease_id }, md));
        await unary(cache, 'Set', { key: 'log/key', value: Buffer.from(VALUE) }, md);
        assert.equal((await unary<{ value: Buffer }>(cache, 'Get', { key: 'log/key' }, md)).value.toString(), VALUE);
        await assert.rejects(
          unary(cache, 'Get', { key: 'log/key' }, bearer(WRONG)),
          (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED,
        );
      } finally {
        locks.close();
        cache.close();
      }
      await server.waitForStderr(/"event":"lock\.expire"/);
      process.kill(server.pid, 'SIGHUP');
      await server.waitForStderr(/"event":"auth\.reload"/);
      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null }, server.stderr());

      const stderr = server.stderr();
      const lines = parseLog(stderr);
      const find = (event: string, fields: Record<string, unknown> = {}) =>
        lines.filter((l) => l.event === event && Object.entries(fields).every(([k, v]) => l[k] === v));

      assert.equal(find('listening', { level: 'info', address: server.address }).length, 1, stderr);
      const grant = find('lock.grant', { level: 'debug', name: 'log/expiring' });
      assert.deepEqual(
        grant.map(({ backend, owner, fencingToken, ttlMs, mode, limit }) => ({
          backend,
          owner,
          fencingToken,
          ttlMs,
          mode,
          limit,
        })),
        [
          {
            backend: 'memory',
            owner: 'log-owner',
            fencingToken: expiring.fencing_token,
            ttlMs: 200,
            mode: 'EXCLUSIVE',
            limit: 2,
          },
        ],
        stderr,
      );
      assert.equal(find('lock.grant', { name: 'log/released', owner: 'log-owner-2' }).length, 1, stderr);
      const expire = find('lock.expire', { level: 'debug', name: 'log/expiring' });
      assert.deepEqual(
        expire.map(({ backend, owner, fencingToken, mode, limit }) => ({ backend, owner, fencingToken, mode, limit })),
        [{ backend: 'memory', owner: 'log-owner', fencingToken: expiring.fencing_token, mode: 'EXCLUSIVE', limit: 2 }],
        stderr,
      );
      assert.equal(find('lock.expire', { name: 'log/released' }).length, 0, 'a released lease does not expire');
      assert.equal(find('auth.reload', { level: 'info', tokens: 1 }).length, 1, stderr);
      assert.equal(find('shutdown', { level: 'info', signal: 'SIGTERM' }).length, 1, stderr);
      assert.equal(find('stopped', { level: 'info' }).length, 1, stderr);
      assert.equal(lines.filter((l) => l.level === 'error').length, 0, stderr);

      for (const secret of [
        TOKEN,
        WRONG,
        VALUE,
        Buffer.from(VALUE).toString('base64'),
        expiring.lease_id,
        released.lease_id,
      ]) {
        assert.ok(!stderr.includes(secret), `the log contains ${secret}:\n${stderr}`);
      }
      assert.doesNotMatch(stderr, /lease_?id/i);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('at the default level (info) a grant is not logged', async () => {
    await using server = await spawnServer();
    const locks = new proto.latchkey.v1.Locks(server.address, grpc.credentials.createInsecure());
    try {
      await unary(locks, 'Acquire', { name: 'quiet' });
    } finally {
      locks.close();
    }
    await server.stop('SIGTERM');
    const lines = parseLog(server.stderr());
    assert.deepEqual(
      lines.map((l) => l.event),
      ['listening', 'shutdown', 'stopped'],
    );
  });
});

describe('internal errors', () => {
  test('are logged at error level as JSON with the stack; the caller sees only INTERNAL', async () => {
    const written: string[] = [];
    const logger = createLogger('info', { write: (line) => written.push(line) });
    const broken: CacheStore = {
      kind: 'broken',
      get: async () => {
        throw new TypeError('boom from the broken store');
      },
      set: async () => 1n,
      cas: async () => ({ outcome: 'NOT_FOUND', cas: 0n }),
      add: async () => ({ outcome: 'EXISTS', cas: 0n }),
      delete: async () => 'NOT_FOUND',
      incr: async () => ({ value: 0n, cas: 1n }),
      touch: async () => undefined,
      close: async () => {},
    };
    await using s = await startServer({}, { logger, stores: [broken] });
    const err = await s.call(s.cache, 'Get', { store: 'broken', key: 'k' }).then(
      () => assert.fail('expected INTERNAL'),
      (e: grpc.ServiceError) => e,
    );
    assert.equal(err.code, grpc.status.INTERNAL);
    assert.doesNotMatch(err.details, /boom/);
    const lines = written.map(
      (line) => JSON.parse(line) as LogLine & { err: { type: string; message: string; stack: string } },
    );
    const internal = lines.filter((l) => l.event === 'internal_error');
    assert.equal(internal.length, 1, written.join(''));
    assert.equal(internal[0]!.level, 'error');
    assert.equal(internal[0]!.msg, 'internal error');
    assert.equal(internal[0]!.err.type, 'TypeError');
    assert.match(internal[0]!.err.stack, /^TypeError: boom from the broken store\n\s+at /);
  });

  test('the line form reads "internal error: <stack>", which test/support/server.ts looks for', () => {
    const lines: string[] = [];
    toStatus(
      new RangeError('off the end'),
      lineLogger((line) => lines.push(line)),
    );
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^internal error: RangeError: off the end\n\s+at /);
    // Below the logger's level, nothing is written (and the hot path can ask first).
    const quiet = lineLogger((line) => lines.push(line), 'warn');
    quiet.info({}, 'not written');
    assert.equal(quiet.isLevelEnabled('debug'), false);
    assert.equal(lines.length, 1);
  });
});
