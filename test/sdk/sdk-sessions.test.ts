// The SDK's lock sessions against real servers over real gRPC: what goes over the stream,
// close() releasing every lock at once, the fallback to unary calls, a broken stream resumed
// (through the same server, and through the next address of the list), a server restarted
// with the session forgotten, a SIGSTOPped client process, a file-backend session whose
// server died or stopped (it cannot resume elsewhere), and (on etcd, once its backend declares
// sessions) the resume through another server.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  CancelledError,
  connect,
  InvalidArgumentError,
  LatchkeyError,
  LeaseLostError,
  LockBusyError,
  type ConnectOptions,
  type LatchkeyClient,
  type LockHandle,
} from '../../client/index.js';
import { loadProto } from '../../src/proto.js';
import { etcdMissing, startEtcd } from '../support/etcd.js';
import { FAST_RECONNECT, spawnOnPort, until } from '../support/faults.js';
import { freePort } from '../support/ports.js';
import { runScript } from '../support/script.js';
import { startServer, type TestServer } from '../support/server.js';
import { spawnServer, type SpawnedServer } from '../support/spawn.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

const serve = (config: Parameters<typeof startServer>[0] = {}) => startServer({ lruMaxEntries: 10_000, ...config });
const HOLDER_SCRIPT = join('test', 'support', 'lock-holder.ts');

/** What a client sends, seen by an outer interceptor: the calls it starts, and its Session messages. */
function observe(): { calls: string[]; sessionMessages: () => number; channelOptions: grpc.ChannelOptions } {
  const calls: string[] = [];
  let sessionMessages = 0;
  const interceptor: grpc.Interceptor = (options, next) => {
    const method = options.method_definition.path.split('/').pop()!;
    calls.push(method);
    const requester = new grpc.RequesterBuilder()
      .withSendMessage((message, send) => {
        if (method === 'Session') sessionMessages++;
        send(message);
      })
      .build();
    return new grpc.InterceptingCall(next(options), requester);
  };
  return { calls, sessionMessages: () => sessionMessages, channelOptions: { interceptors: [interceptor] } };
}

/** Resolves with the signal's reason once it aborts; fails the test after withinMs. */
function aborted(signal: AbortSignal, withinMs: number): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`signal not aborted within ${withinMs} ms`)), withinMs);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(signal.reason);
    });
  });
}

async function heldBy(observer: LatchkeyClient, locks: readonly LockHandle[], backend?: string): Promise<void> {
  for (const lock of locks) {
    const state = await observer.describe(lock.name, backend === undefined ? {} : { backend });
    assert.equal(state.held, true, `${lock.name} is no longer held`);
    assert.equal(state.fencingToken, lock.fencingToken, `${lock.name} is held by another grant`);
  }
}

/**
 * A grpc-js server that serves Locks' unary methods only (by forwarding them to `target`),
 * like a latchkey server from before sessions: Locks/Session is UNIMPLEMENTED.
 */
async function unaryOnlyServer(target: TestServer): Promise<{ address: string } & AsyncDisposable> {
  const server = new grpc.Server();
  const stub = target.locks as unknown as Record<string, Function>;
  const forward =
    (method: string) =>
    (call: grpc.ServerUnaryCall<object, unknown>, callback: grpc.sendUnaryData<unknown>): void =>
      void stub[method]!.call(target.locks, call.request, (err: grpc.ServiceError | null, response: unknown) =>
        callback(err, response),
      );
  server.addService(loadProto().latchkey.v1.Locks.service, {
    Acquire: forward('Acquire'),
    Refresh: forward('Refresh'),
    Release: forward('Release'),
    Describe: forward('Describe'),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      server.forceShutdown();
    },
  };
}

/** Resolves once the kernel reports the process stopped (state T), so timing starts from a real stop. */
async function stopped(pid: number): Promise<void> {
  await until(
    `process ${pid} to stop`,
    5_000,
    () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'T' ? true : undefined;
    },
    5,
  );
}

describe('SDK lock sessions', () => {
  it('50 locks taken at once go out in a few frames of one stream; close() releases all 50 at once', async () => {
    await using s = await serve();
    const { calls, sessionMessages, channelOptions } = observe();
    const client = connect(s.address, { channelOptions });
    await using other = connect(s.address, { sessions: false });
    const names = Array.from({ length: 50 }, (_, i) => `fifty/${i}`);
    const locks = await Promise.all(names.map((name) => client.lock(name, { ttlMs: 10_000, owner: 'fifty' })));
    // open, then the ops queued in the same turn: far fewer messages than locks.
    assert.ok(sessionMessages() <= 5, `${sessionMessages()} Session messages for 50 acquires`);
    assert.deepEqual(calls, ['Session']);
    for (const name of names) assert.equal((await other.describe(name)).owner, 'fifty');

    const before = sessionMessages();
    await client.close();
    // No release op: one `end` message ended the session and the server released everything.
    assert.equal(sessionMessages(), before + 1);
    for (const lock of locks) {
      assert.equal(lock.state, 'released');
      assert.ok(lock.signal.reason instanceof CancelledError);
    }
    const states = await Promise.all(names.map((name) => other.describe(name)));
    assert.deepEqual(
      states.filter((state) => state.held).map((state) => state.name),
      [],
      'locks still held after close()',
    );
    assert.deepEqual(calls, ['Session']);
  });

  it('a second holder of a name (a semaphore’s other slot) goes through a second session of the client', async () => {
    await using s = await serve();
    const { calls, channelOptions } = observe();
    await using client = connect(s.address, { channelOptions });
    const a = await client.lock('slots', { limit: 2, ttlMs: 5_000 });
    const b = await client.lock('slots', { limit: 2, ttlMs: 5_000 });
    await using c = await client.lock('other', { ttlMs: 5_000 });
    assert.deepEqual(calls, ['Session', 'Session']);
    assert.ok(b.fencingToken > a.fencingToken);
    assert.equal((await client.describe('slots')).holders.length, 2);
    assert.deepEqual([await a.release(), await b.release(), c.state], ['released', 'released', 'held']);
  });

  it('a TTL the server refuses: the same InvalidArgumentError as unary, and other TTLs keep their session', async () => {
    await using s = await serve();
    const { calls, channelOptions } = observe();
    await using client = connect(s.address, { channelOptions });
    await using unary = connect(s.address, { sessions: false });
    const viaSession = await client.lock('ttl', { ttlMs: 5 }).catch((err: unknown) => err);
    const viaUnary = await unary.lock('ttl', { ttlMs: 5 }).catch((err: unknown) => err);
    assert.ok(viaSession instanceof InvalidArgumentError, String(viaSession));
    assert.equal(viaSession.message, (viaUnary as Error).message);
    await using fine = await client.lock('ttl', { ttlMs: 5_000 });
    assert.equal(fine.state, 'held');
    assert.deepEqual(calls, ['Session', 'Acquire', 'Session']);
  });

  it('falls back to unary calls, for good, against a server without Locks/Session', async () => {
    await using s = await serve();
    await using old = await unaryOnlyServer(s);
    const { calls, channelOptions } = observe();
    await using client = connect(old.address, { channelOptions });
    const lock = await client.lock('old/a', { ttlMs: 1_000, owner: 'old' });
    // Past a third of the TTL: the handle refreshes its own lease.
    await sleep(600);
    assert.equal(lock.state, 'held');
    const state = await client.describe('old/a');
    assert.deepEqual([state.owner, state.fencingToken], ['old', lock.fencingToken]);
    await using b = await client.lock('old/b', { ttlMs: 1_000 });
    await assert.rejects(client.lock('old/a'), LockBusyError);
    assert.equal(await lock.release(), 'released');
    assert.equal(calls.filter((m) => m === 'Session').length, 1, `one Session attempt only: ${calls.join(',')}`);
    assert.equal(calls[0], 'Session');
    assert.ok(calls.includes('Refresh') && calls.includes('Release'), calls.join(','));
    assert.equal(b.state, 'held');
  });

  it('a broken stream releases nothing: the session resumes through the same server and keeps every lock', async () => {
    await using s = await serve();
    await using proxy = await startTcpProxy(s.address);
    await using client = connect(proxy.address, { channelOptions: FAST_RECONNECT });
    await using other = connect(s.address, { sessions: false });
    const ttlMs = 1_000;
    const locks = await Promise.all(['cut/a', 'cut/b', 'cut/c'].map((name) => client.lock(name, { ttlMs })));
    // One more, waiting behind another client's lock when the stream breaks.
    const blocker = await other.lock('cut/wait', { ttlMs: 10_000, owner: 'blocker' });
    const waiting = client.lock('cut/wait', { ttlMs, waitMs: 10_000, owner: 'waiter' });
    await until(
      'the waiter to queue',
      2_000,
      async () => ((await other.describe('cut/wait')).waiters === 1 ? true : undefined),
      5,
    );

    proxy.cut();
    // Longer than the TTL: only keepalives through the resumed session keep the locks.
    await sleep(ttlMs * 1.5);
    assert.equal(proxy.accepted, 2, 'one new connection, for the resume');
    for (const lock of locks) {
      assert.equal(lock.state, 'held');
      assert.equal(lock.signal.aborted, false);
    }
    await heldBy(other, locks);
    await assert.rejects(other.lock('cut/a'), LockBusyError);

    // The acquire the break withdrew was asked again: it is granted when the blocker lets go.
    assert.equal((await other.describe('cut/wait')).waiters, 1);
    await blocker.release();
    await using granted = await waiting;
    assert.equal(granted.owner, 'waiter');
    assert.ok(granted.fencingToken > blocker.fencingToken);
    for (const lock of locks) assert.equal(await lock.release(), 'released');
  });

  it('moves to the next address when its server goes away, resumes there and keeps every lock', async () => {
    await using s = await serve();
    await using a = await startTcpProxy(s.address);
    await using b = await startTcpProxy(s.address);
    await using client = connect(` ${a.address}, ${b.address}`, { channelOptions: FAST_RECONNECT });
    assert.deepEqual(client.addresses, [a.address, b.address]);
    await using other = connect(s.address, { sessions: false });
    const ttlMs = 1_000;
    const locks = await Promise.all(['next/a', 'next/b'].map((name) => client.lock(name, { ttlMs })));
    assert.deepEqual([a.accepted, b.accepted], [1, 0]);

    await a.close();
    await sleep(ttlMs * 1.5);
    assert.equal(b.accepted, 1);
    for (const lock of locks) assert.equal(lock.state, 'held');
    await heldBy(other, locks);
    // Everything else goes there too.
    await client.cache().set('next/key', 'v');
    assert.equal((await other.cache().get('next/key'))?.value.toString(), 'v');
    await using more = await client.lock('next/c', { ttlMs });
    assert.equal((await client.describe('next/c')).fencingToken, more.fencingToken);
    assert.equal(b.accepted, 1);
  });

  it('connect() takes an array or a comma-separated list; an empty entry is InvalidArgumentError', () => {
    assert.deepEqual(connect(['127.0.0.1:1', ' 127.0.0.1:2 ']).addresses, ['127.0.0.1:1', '127.0.0.1:2']);
    assert.equal(connect('127.0.0.1:1,127.0.0.1:2').address, '127.0.0.1:1,127.0.0.1:2');
    for (const bad of ['127.0.0.1:1,', ',127.0.0.1:1', '', []])
      assert.throws(() => connect(bad as string), InvalidArgumentError, JSON.stringify(bad));
  });

  it('a server restarted on the same port has forgotten the session: every handle aborts saying so, and new locks open a new session', async () => {
    const args = ['--listen', `127.0.0.1:${await freePort()}`];
    let server: SpawnedServer = await spawnOnPort(args);
    try {
      await using client = connect(server.address, { channelOptions: FAST_RECONNECT });
      const ttlMs = 30_000;
      const locks = await Promise.all(['gone/a', 'gone/b', 'gone/c'].map((name) => client.lock(name, { ttlMs })));
      const killedAt = performance.now();
      assert.deepEqual(await server.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
      server = await spawnOnPort(args);
      const reasons = await Promise.all(locks.map((lock) => aborted(lock.signal, 15_000)));
      // The server said so: long before the handles would have given up on their own.
      assert.ok(performance.now() - killedAt < ttlMs / 2);
      for (const [i, reason] of reasons.entries()) {
        assert.ok(reason instanceof LeaseLostError, String(reason));
        assert.match(reason.message, new RegExp(`lock "${locks[i]!.name}" was lost: its session expired or ended`));
        assert.ok(reason.cause instanceof LatchkeyError && reason.cause.code === grpc.status.FAILED_PRECONDITION);
        assert.equal(locks[i]!.state, 'lost');
      }
      await using fresh = await client.lock('gone/a', { ttlMs });
      assert.equal(fresh.state, 'held');
      assert.equal(await locks[0]!.release(), 'lost');
    } finally {
      await server.stop('SIGTERM');
    }
  });

  for (const path of ['sessions', 'unary'] as const) {
    it(`a SIGSTOPped client process (${path}): its lock goes to another only after the TTL, and resumed, its handle has aborted`, async (t) => {
      await using s = await serve();
      const ttlMs = 1_500;
      const name = `stopped-${path}`;
      await using holder = runScript(HOLDER_SCRIPT, [s.address, name, 'memory', String(ttlMs), path]);
      const held = await holder.waitFor((m) => typeof m.token === 'string', 'the lock');
      await using client = connect(s.address);
      let grantedAt: number | undefined;
      const waiting = client.lock(name, { ttlMs: 10_000, waitMs: 20_000, owner: 'next' }).then((lock) => {
        grantedAt = performance.now();
        return lock;
      });
      waiting.catch(() => {});
      // Past its TTL the holder still holds: it keeps the lock alive.
      await sleep(ttlMs + 300);
      assert.equal(grantedAt, undefined, 'granted while the holder was alive');
      assert.equal((await client.describe(name)).fencingToken, BigInt(held.token as string));

      holder.kill('SIGSTOP');
      await stopped(holder.pid);
      const stoppedAt = performance.now();
      await using lock = await waiting;
      const tookMs = grantedAt! - stoppedAt;
      t.diagnostic(`${path}: SIGSTOP to grant ${tookMs.toFixed(0)} ms (TTL ${ttlMs} ms)`);
      // Its last renewal came at most TTL / 3 before the stop; TTL / 3 more is slack for late timers.
      assert.ok(tookMs >= ttlMs / 3, `granted ${tookMs.toFixed(0)} ms after the stop, before the TTL could run out`);
      assert.ok(tookMs <= ttlMs + 1_000, `granted ${tookMs.toFixed(0)} ms after the stop, over TTL + 1 s`);

      holder.kill('SIGCONT');
      const seen = await holder.waitFor(
        (m) => typeof m.aborted === 'string',
        'the holder to see its lock lost',
        10_000,
      );
      assert.match(seen.aborted as string, /^LeaseLostError: lock "stopped-/);
      assert.equal((await client.describe(name)).fencingToken, lock.fencingToken);
    });
  }
});

/**
 * A client of two latchkey servers on one shared backend: the server its session is on is
 * SIGKILLed, and the session resumes through the other within the TTL, keeping its locks
 * (which nobody else is granted meanwhile).
 */
async function resumesThroughAnotherServer(
  t: TestContext,
  backend: string,
  servers: readonly [SpawnedServer, SpawnedServer],
): Promise<void> {
  const [a, b] = servers;
  const options: ConnectOptions = { channelOptions: FAST_RECONNECT };
  await using client = connect([a.address, b.address], options);
  await using observer = connect(b.address, { sessions: false });
  if (!(await observer.describe('probe', { backend })).capabilities.sessions) {
    t.skip(`the ${backend} backend does not declare sessions yet`);
    return;
  }
  const ttlMs = 3_000;
  const names = ['moved/a', 'moved/b', 'moved/c'].map((n) => `${n}-${process.pid}`);
  const locks = await Promise.all(names.map((name) => client.lock(name, { backend, ttlMs, owner: 'mover' })));
  let stolen = false;
  const waiting = observer.lock(names[0]!, { backend, ttlMs, waitMs: 20_000, owner: 'thief' }).then((lock) => {
    stolen = true;
    return lock;
  });
  waiting.catch(() => {});

  const killedAt = performance.now();
  assert.deepEqual(await a.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
  await sleep(ttlMs * 1.5);
  t.diagnostic(`${backend}: ${(performance.now() - killedAt).toFixed(0)} ms after the SIGKILL, still held`);
  assert.equal(stolen, false, 'granted to another client while the session was resuming');
  for (const lock of locks) {
    assert.equal(lock.state, 'held');
    assert.equal(lock.signal.aborted, false);
  }
  await heldBy(observer, locks, backend);
  await client.close();
  await using next = await waiting;
  assert.ok(next.fencingToken > locks[0]!.fencingToken);
}

describe('SDK lock sessions on the file backend', () => {
  it('a session resumes only through its own server: through another, its handles abort at once, and nobody gets its locks before', async (t) => {
    const lockDir = await mkdtemp(join(tmpdir(), 'latchkey-sdk-sessions-'));
    const started = await Promise.all([
      spawnServer(['--lock-dir', lockDir, '--backend', 'file']),
      spawnServer(['--lock-dir', lockDir, '--backend', 'file']),
    ]);
    try {
      const [a, b] = started;
      await using client = connect([a.address, b.address], { channelOptions: FAST_RECONNECT });
      await using observer = connect(b.address, { sessions: false });
      const ttlMs = 3_000;
      const lock = await client.lock('own-server', { ttlMs });
      let granted = false;
      const stop = new AbortController();
      const waiting = observer.lock('own-server', { ttlMs, waitMs: 20_000, signal: stop.signal }).then((next) => {
        granted = true;
        return next.release();
      });
      waiting.catch(() => {});
      const killedAt = performance.now();
      assert.deepEqual(await a.stop('SIGKILL'), { code: null, signal: 'SIGKILL' });
      const reason = await aborted(lock.signal, ttlMs);
      t.diagnostic(`SIGKILL to abort ${(performance.now() - killedAt).toFixed(0)} ms (TTL ${ttlMs} ms)`);
      assert.ok(reason instanceof LeaseLostError, String(reason));
      assert.match(reason.message, /its session expired or ended/);
      assert.ok(performance.now() - killedAt < ttlMs - 500, 'aborted by the refused resume, not by the TTL');
      // Released nothing: the lock is still the session's, as another server sees it.
      assert.equal(granted, false, 'granted to another while the handle still said held');
      const state = await observer.describe('own-server');
      assert.deepEqual([state.held, state.fencingToken], [true, lock.fencingToken]);
      stop.abort();
    } finally {
      await Promise.all(started.map((server) => server.stop('SIGTERM')));
      await rm(lockDir, { recursive: true, force: true });
    }
  });

  it('a stopped server (SIGSTOP): an unanswered keepalive moves the session to the next server, which cannot resume it: the handle aborts long before the TTL', async (t) => {
    const lockDir = await mkdtemp(join(tmpdir(), 'latchkey-sdk-sessions-'));
    const started = await Promise.all([
      spawnServer(['--lock-dir', lockDir, '--backend', 'file']),
      spawnServer(['--lock-dir', lockDir, '--backend', 'file']),
    ]);
    const [a, b] = started;
    try {
      await using client = connect([a.address, b.address], { channelOptions: FAST_RECONNECT });
      const ttlMs = 3_000;
      const lock = await client.lock('stuck-server', { ttlMs });
      a.child.kill('SIGSTOP');
      await stopped(a.pid);
      const stoppedAt = performance.now();
      const reason = await aborted(lock.signal, ttlMs);
      const tookMs = performance.now() - stoppedAt;
      t.diagnostic(`SIGSTOP of its server to abort ${tookMs.toFixed(0)} ms (TTL ${ttlMs} ms)`);
      assert.ok(reason instanceof LeaseLostError, String(reason));
      // The other server refused the resume (a file session resumes only through its own): the
      // session got there before its TTL ran out, not "may have expired" from waiting on A.
      assert.match(reason.message, /its session expired or ended/);
      assert.ok(tookMs < ttlMs, `aborted ${tookMs.toFixed(0)} ms after the stop`);
      await using fresh = await client.lock('stuck-server/other', { ttlMs });
      assert.equal(fresh.state, 'held');
    } finally {
      a.child.kill('SIGCONT');
      await Promise.all(started.map((server) => server.stop('SIGTERM')));
      await rm(lockDir, { recursive: true, force: true });
    }
  });
});

describe('SDK lock sessions on etcd', { skip: etcdMissing() }, () => {
  it('resume through another latchkey server on the same etcd keeps every lock', async (t) => {
    await using etcd = await startEtcd();
    const args = ['--etcd-endpoints', etcd.endpoint, '--etcd-prefix', `latchkey-sdk-sessions-${process.pid}/`];
    const started = await Promise.all([spawnServer(args), spawnServer(args)]);
    try {
      await resumesThroughAnotherServer(t, 'etcd', [started[0], started[1]]);
    } finally {
      await Promise.all(started.map((server) => server.stop('SIGTERM')));
    }
  });
});
