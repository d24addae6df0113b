// Graceful shutdown of a real `latchkey serve` process: what SIGTERM and SIGINT do to calls
// in flight, how --shutdown-grace-ms bounds the drain, and the exit code.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import type { Lease, LockState } from '../../client/common/index.js';
import { loadProto } from '../../src/proto.js';
import { spawnServer, type SpawnedServer } from '../support/spawn.js';

const CALL_TIMEOUT_MS = 30_000;
/** Headroom on top of a grace period for signal delivery, teardown and process exit on a busy machine. */
const EXIT_SLACK_MS = 8_000;

function unary<Res>(client: grpc.Client, method: string, request: object): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!;
    fn.call(client, request, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err: grpc.ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/** Polls Describe until `name` has `count` waiters; the only outside view of a queued Acquire. */
async function waitForWaiters(locks: grpc.Client, name: string, count: number, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const state = await unary<LockState>(locks, 'Describe', { name });
    if (state.waiters === count) return;
    if (Date.now() > until)
      throw new Error(`lock "${name}" has ${state.waiters} waiters after ${timeoutMs} ms, expected ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function countListening(server: SpawnedServer): number {
  return server
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('latchkey listening on ')).length;
}

function healthClient(address: string): grpc.Client {
  const definition = protoLoader.loadSync(protoPath, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
}

describe('latchkey serve shutdown', () => {
  test('SIGTERM fails a waiting Acquire with UNAVAILABLE and exits 0 without using up the grace period', async () => {
    const graceMs = 8_000;
    await using server = await spawnServer(['--shutdown-grace-ms', String(graceMs)]);
    const proto = loadProto();
    const holder = new proto.latchkey.v1.Locks(server.address, grpc.credentials.createInsecure());
    const waiter = new proto.latchkey.v1.Locks(server.address, grpc.credentials.createInsecure());
    try {
      const lease = await unary<Lease>(holder, 'Acquire', { name: 'shutdown-a', ttl_ms: 60_000, owner: 'holder' });
      assert.ok(lease.lease_id);
      const waiting = unary<Lease>(waiter, 'Acquire', {
        name: 'shutdown-a',
        ttl_ms: 60_000,
        wait_ms: 60_000,
        owner: 'waiter',
      });
      waiting.catch(() => {});
      await waitForWaiters(holder, 'shutdown-a', 1);

      const started = Date.now();
      const exited = server.stop('SIGTERM', graceMs + EXIT_SLACK_MS);
      await assert.rejects(waiting, (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNAVAILABLE, err.message);
        assert.match(err.details, /shutting down/);
        return true;
      });
      const exit = await exited;
      const elapsed = Date.now() - started;
      assert.deepEqual(exit, { code: 0, signal: null }, server.stderr());
      // Nothing was left in flight once the waiter was failed, and idle connections must not
      // hold the drain open: the process has no reason to sit out the grace period.
      assert.ok(elapsed < graceMs, `exit took ${elapsed} ms; grace is ${graceMs} ms`);
      assert.match(server.stderr(), /SIGTERM: shutting down \(grace 8000 ms\)/);
      assert.equal(countListening(server), 1, server.stdout());
    } finally {
      holder.close();
      waiter.close();
    }
  });

  test('--shutdown-grace-ms bounds the drain when a call never finishes', async () => {
    const graceMs = 1_500;
    await using server = await spawnServer(['--shutdown-grace-ms', String(graceMs)]);
    const health = healthClient(server.address);
    try {
      // A Health/Watch stream only ends when the client ends it: the canonical call that
      // never finishes on its own. Open it and see its first answer before the signal.
      const statuses: string[] = [];
      let onStatus: (() => void) | undefined;
      const stream = (health as unknown as { Watch(req: object): grpc.ClientReadableStream<{ status: string }> }).Watch(
        { service: '' },
      );
      stream.on('data', (m: { status: string }) => {
        statuses.push(m.status);
        onStatus?.();
      });
      const ended = new Promise<grpc.StatusObject | Error>((resolve) => {
        stream.on('error', resolve);
        stream.on('status', resolve);
      });
      const nextStatus = (n: number) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`no Watch message #${n} within ${CALL_TIMEOUT_MS} ms; got ${statuses.join(', ')}`)),
            CALL_TIMEOUT_MS,
          );
          onStatus = () => {
            if (statuses.length >= n) {
              clearTimeout(timer);
              resolve();
            }
          };
          onStatus();
        });
      await nextStatus(1);
      assert.deepEqual(statuses, ['SERVING']);

      const started = Date.now();
      const exited = server.stop('SIGTERM', graceMs + EXIT_SLACK_MS);
      await nextStatus(2);
      assert.deepEqual(statuses, ['SERVING', 'NOT_SERVING']);
      const exit = await exited;
      const elapsed = Date.now() - started;
      assert.deepEqual(exit, { code: 0, signal: null }, `the process needed SIGKILL or failed:\n${server.stderr()}`);
      // The open stream holds the drain for the whole grace period, and no longer.
      assert.ok(elapsed >= graceMs, `exit after ${elapsed} ms, before the ${graceMs} ms grace period was over`);
      assert.ok(elapsed < graceMs + EXIT_SLACK_MS, `exit after ${elapsed} ms; grace is ${graceMs} ms`);
      const end = await ended;
      assert.ok(!('code' in end) || end.code !== grpc.status.OK, 'the Watch stream was cut off, not finished');
      assert.equal(countListening(server), 1, server.stdout());
    } finally {
      health.close();
    }
  });

  test('SIGINT also shuts down cleanly with exit code 0', async () => {
    await using server = await spawnServer();
    const proto = loadProto();
    const cache = new proto.latchkey.v1.Cache(server.address, grpc.credentials.createInsecure());
    try {
      await unary(cache, 'Set', { key: 'shutdown-sigint', value: Buffer.from('v') });
    } finally {
      cache.close();
    }
    const exit = await server.stop('SIGINT');
    assert.deepEqual(exit, { code: 0, signal: null }, server.stderr());
    assert.match(server.stderr(), /SIGINT: shutting down/);
    assert.equal(countListening(server), 1, server.stdout());
  });
});
