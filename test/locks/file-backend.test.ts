// The file lock backend beyond the contract: exclusion between processes (a second latchkey
// server, a plain proper-lockfile user), the name → path mapping, fencing tokens across a
// restart, and a compromised lock. Real servers, real child processes, temp dirs.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output, LockState__Output, LocksClient } from '../../client/common/index.js';
import { ConfigError, parseConfig, resolveConfig } from '../../src/config.js';
import { FileLockBackend, lockFilePath, POLL_MAX_MS } from '../../src/locks/file.js';
import { loadProto } from '../../src/proto.js';
import { lineLogger } from '../../src/log.js';
import { startServer } from '../support/server.js';
import { rejection } from '../support/assertions.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const scratch = mkdtempSync(join(tmpdir(), 'latchkey-file-backend-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
/** A fresh lock dir (not created: the backend must create it). */
const freshDir = () => join(scratch, `case-${dirs++}`, 'locks');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function call<Res>(
  client: grpc.Client,
  method: string,
  request: object,
  options: grpc.CallOptions = {},
): Promise<Res> & { call?: grpc.ClientUnaryCall } {
  let handle: grpc.ClientUnaryCall | undefined;
  const promise = new Promise<Res>((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!;
    handle = fn.call(client, request, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  }) as Promise<Res> & { call?: grpc.ClientUnaryCall };
  promise.call = handle;
  return promise;
}

/** Resolves with the promise's value, or fails the test after ms. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)),
  );
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Settles to 'pending' if the promise has not settled after ms. */
async function stillPending(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const marker = Symbol('pending');
  const result = await Promise.race([
    promise.then(
      () => undefined,
      () => undefined,
    ),
    sleep(ms).then(() => marker),
  ]);
  return result === marker;
}

/** A Locks client speaking the file backend, with the calls the tests use. */
function fileLocks(address: string) {
  const client: LocksClient = new (loadProto().latchkey.v1.Locks)(address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  return {
    client,
    acquire: (name: string, fields: object = {}, options?: grpc.CallOptions) =>
      call<Lease__Output>(client, 'Acquire', { name, backend: 'file', ttl_ms: 30_000, ...fields }, options),
    release: (lease: Lease__Output) =>
      call<{ released: boolean }>(client, 'Release', { name: lease.name, backend: 'file', lease_id: lease.lease_id }),
    refresh: (lease: Lease__Output) =>
      call<Lease__Output>(client, 'Refresh', {
        name: lease.name,
        backend: 'file',
        lease_id: lease.lease_id,
        ttl_ms: 0,
      }),
    describe: (name: string) => call<LockState__Output>(client, 'Describe', { name, backend: 'file' }),
    close: () => client.close(),
  };
}

/** Lines of a child's stdout, awaited one at a time. */
function lines(child: ChildProcess) {
  const queue: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const next = waiting.shift();
    if (next) next(line);
    else queue.push(line);
  });
  return (what: string, ms = 20_000): Promise<string> => {
    const line = queue.shift();
    if (line !== undefined) return Promise.resolve(line);
    return within(
      ms,
      `${what} (child stderr: ${stderr.trim() || 'empty'})`,
      new Promise<string>((resolve) => waiting.push(resolve)),
    );
  };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await within(15_000, `child ${child.pid} to exit`, exited).catch(async (err) => {
    child.kill('SIGKILL');
    await exited;
    throw err;
  });
}

/** A latchkey server in its own process (the CLI), on a free port. */
async function spawnFileServer(lockDir: string): Promise<{ address: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli.ts',
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--backend',
      'file',
      '--lock-dir',
      lockDir,
      '--shutdown-grace-ms',
      '0',
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const next = lines(child);
  try {
    const banner = await next('the server to listen', 30_000);
    const address = /listening on (\S+)/.exec(banner)?.[1];
    assert.ok(address, `unexpected banner: ${banner}`);
    return { address, child };
  } catch (err) {
    await stop(child);
    throw err;
  }
}

// A plain proper-lockfile user in another Node process, with default options: `hold` locks
// the path, says "locked", and unlocks on a line from stdin; `probe` tries once and prints
// "acquired" or the error code.
const FOREIGN = `
const fs = require('node:fs');
const lockfile = require('proper-lockfile');
const [file, mode] = process.argv.slice(1);
fs.closeSync(fs.openSync(file, 'a'));
(async () => {
  if (mode === 'probe') {
    try { await (await lockfile.lock(file))(); console.log('acquired'); } catch (err) { console.log(err.code); }
    return;
  }
  const release = await lockfile.lock(file);
  console.log('locked');
  process.stdin.once('data', async () => { await release(); console.log('unlocked'); process.exit(0); });
})().catch((err) => { console.error(err); process.exit(1); });
`;

function foreign(file: string, mode: 'hold' | 'probe') {
  const child = spawn(process.execPath, ['-e', FOREIGN, file, mode], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  return { child, next: lines(child) };
}

describe('configuration', () => {
  test('--backend file needs --lock-dir; the flag and LATCHKEY_LOCK_DIR set it', () => {
    assert.throws(
      () => parseConfig(['--backend', 'file'], {}),
      (err: unknown) => err instanceof ConfigError && /--lock-dir/.test(err.message),
    );
    assert.throws(() => resolveConfig({ backend: 'file' }), ConfigError);
    assert.equal(
      parseConfig(['--backend', 'file', '--lock-dir', '/var/lib/latchkey'], {}).lockDir,
      '/var/lib/latchkey',
    );
    assert.equal(parseConfig([], { LATCHKEY_LOCK_DIR: '/srv/locks' }).lockDir, '/srv/locks');
    assert.equal(parseConfig([], {}).lockDir, '', 'the file backend is off by default');
  });

  test('the server creates a missing lock dir and serves the file backend', async () => {
    const lockDir = freshDir();
    assert.equal(existsSync(lockDir), false);
    await using server = await startServer({ lockDir });
    assert.ok(existsSync(lockDir));
    const locks = fileLocks(server.address);
    const state = await locks.describe('anything');
    assert.equal(state.backend, 'file');
    assert.equal(state.held, false);
    locks.close();
  });
});

describe('name → path', () => {
  const dir = '/var/lib/latchkey/locks';
  const long = `${'\u{1F512}'.repeat(62)}ab`; // 250 bytes of UTF-8
  const names = [
    '.',
    '..',
    '/',
    '//',
    '../../etc/passwd',
    '..\\..\\windows\\system32',
    'a/b',
    'a_b',
    'a\\b',
    'a.b',
    'A',
    'a',
    'lock.lock',
    'x.token',
    'ключ/замок',
    long,
    `${long.slice(0, -1)}c`,
    'n'.repeat(250),
    'n'.repeat(249),
  ];

  test('every name maps to one direct child of the dir, within NAME_MAX with room for suffixes', () => {
    assert.equal(Buffer.byteLength(long), 250);
    for (const name of names) {
      const path = lockFilePath(dir, name);
      assert.equal(dirname(path), dir, `${name} → ${path} escapes the dir`);
      const base = basename(path);
      assert.ok(!['.', '..'].includes(base) && !/[/\\]/.test(base), `${name} → ${base}`);
      assert.match(base, /^[A-Za-z0-9_-]{1,40}\.[0-9a-f]{64}$/);
      // The longest suffix the backend adds: `.token.<12 hex>.tmp`, and proper-lockfile's `.lock`.
      assert.ok(Buffer.byteLength(`${base}.token.000000000000.tmp`) <= 255, `${base} too long`);
      assert.equal(lockFilePath(dir, name), path, 'the mapping is deterministic');
    }
  });

  test('distinct names map to distinct paths, even on a case-insensitive filesystem', () => {
    const paths = names.map((name) => lockFilePath(dir, name).toLowerCase());
    assert.equal(new Set(paths).size, names.length);
  });

  test('hostile names create files only inside the lock dir', async () => {
    const lockDir = freshDir();
    const parent = dirname(lockDir);
    await using server = await startServer({ lockDir });
    const locks = fileLocks(server.address);
    const leases = [];
    for (const name of names) leases.push(await locks.acquire(name, { owner: `owner of ${name}` }));
    for (const name of names) assert.equal((await locks.describe(name)).owner, `owner of ${name}`);
    assert.deepEqual(readdirSync(parent), ['locks'], 'something was created beside the lock dir');
    const bases = new Set(names.map((name) => basename(lockFilePath(lockDir, name))));
    for (const file of readdirSync(lockDir)) {
      const base = file.replace(/\.(lock|token)$/, '');
      assert.ok(bases.has(base), `unexpected file ${file}`);
    }
    // A target, a .lock dir and a .token per name: nothing shared between names.
    assert.equal(readdirSync(lockDir).length, names.length * 3);
    for (const lease of leases) await locks.release(lease);
    assert.equal(readdirSync(lockDir).filter((f) => f.endsWith('.lock')).length, 0, 'a lock dir survived its release');
    assert.equal(relative(lockDir, lockFilePath(lockDir, '../../etc/passwd')).includes('..'), false);
    locks.close();
  });
});

describe('exclusion between processes', () => {
  test("two servers on one lock dir exclude each other and name each other's holders", async () => {
    const lockDir = freshDir();
    await using a = await startServer({ backend: 'file', lockDir });
    const b = await spawnFileServer(lockDir);
    const onA = fileLocks(a.address);
    const onB = fileLocks(b.address);
    try {
      const name = 'shared/job-42';
      const held = await onA.acquire(name, { owner: 'worker-on-a', ttl_ms: 60_000 });

      const busy = await rejection(onB.acquire(name, { owner: 'worker-on-b', wait_ms: 0 }));
      assert.equal(busy.code, grpc.status.ABORTED);
      assert.match(busy.details, /worker-on-a/);
      assert.match(busy.details, /another latchkey server/);

      const seenFromB = await onB.describe(name);
      assert.equal(seenFromB.held, true);
      assert.equal(seenFromB.owner, 'worker-on-a');
      assert.equal(seenFromB.fencing_token, held.fencing_token);
      assert.equal(seenFromB.expires_at_ms, held.expires_at_ms);
      assert.equal(seenFromB.waiters, 0);

      const waiting = onB.acquire(name, { owner: 'worker-on-b', wait_ms: 20_000 });
      assert.ok(await stillPending(waiting, 300), 'B was granted a lock A holds');
      assert.equal((await onB.describe(name)).waiters, 1);

      await onA.release(held);
      const granted = await within(5_000, 'B to acquire after A released', waiting);
      assert.equal(granted.owner, 'worker-on-b');
      assert.ok(BigInt(granted.fencing_token) > BigInt(held.fencing_token));

      const busyOnA = await rejection(onA.acquire(name, { wait_ms: 0 }));
      assert.equal(busyOnA.code, grpc.status.ABORTED);
      assert.match(busyOnA.details, /worker-on-b/);
      assert.equal((await onA.describe(name)).owner, 'worker-on-b');

      await onB.release(granted);
      const again = await onA.acquire(name, { wait_ms: 0 });
      assert.ok(BigInt(again.fencing_token) > BigInt(granted.fencing_token));
      await onA.release(again);
    } finally {
      onA.close();
      onB.close();
      await stop(b.child);
    }
  });

  test('a plain proper-lockfile holder in another process blocks acquire until it unlocks', async () => {
    const lockDir = freshDir();
    await using server = await startServer({ backend: 'file', lockDir });
    const locks = fileLocks(server.address);
    const name = 'shared/with-a-script';
    const holder = foreign(lockFilePath(lockDir, name), 'hold');
    try {
      assert.equal(await holder.next('the foreign lock'), 'locked');

      const busy = await rejection(locks.acquire(name, { wait_ms: 0 }));
      assert.equal(busy.code, grpc.status.ABORTED);
      assert.match(busy.details, /another process/);
      const state = await locks.describe(name);
      assert.equal(state.held, true);
      assert.equal(state.owner, '');

      // A wait that runs out names the holder and leaves; a cancelled one leaves at once.
      const timedOut = await rejection(locks.acquire(name, { wait_ms: 250 }));
      assert.equal(timedOut.code, grpc.status.ABORTED);
      assert.match(timedOut.details, /another process/);
      const cancelled = locks.acquire(name, { wait_ms: 20_000 });
      await sleep(50);
      const cancelledAt = Date.now();
      cancelled.call!.cancel();
      assert.equal((await rejection(cancelled)).code, grpc.status.CANCELLED);
      assert.ok(Date.now() - cancelledAt < 1_000);
      assert.equal((await locks.describe(name)).waiters, 0);

      const waiting = locks.acquire(name, { owner: 'after-the-script', wait_ms: 20_000 });
      assert.ok(await stillPending(waiting, 300), 'acquired a lock another process holds');
      holder.child.stdin!.write('unlock\n');
      assert.equal(await holder.next('the foreign unlock'), 'unlocked');
      const unlockedAt = Date.now();
      const lease = await within(5_000, 'the acquire after the foreign unlock', waiting);
      // Polling backs off to POLL_MAX_MS; allow generously for a loaded machine.
      assert.ok(
        Date.now() - unlockedAt < POLL_MAX_MS + 1_500,
        `granted ${Date.now() - unlockedAt} ms after the unlock`,
      );
      assert.equal(lease.owner, 'after-the-script');

      // And the other way round: the script cannot lock what latchkey holds.
      const probe = foreign(lockFilePath(lockDir, name), 'probe');
      assert.equal(await probe.next('the foreign probe'), 'ELOCKED');
      await locks.release(lease);
      const probeAgain = foreign(lockFilePath(lockDir, name), 'probe');
      assert.equal(await probeAgain.next('the second foreign probe'), 'acquired');
    } finally {
      locks.close();
      await stop(holder.child);
    }
  });

  test('waiters in one server are served in arrival order', async () => {
    const lockDir = freshDir();
    await using server = await startServer({ backend: 'file', lockDir });
    const locks = fileLocks(server.address);
    const name = 'local/fifo';
    const held = await locks.acquire(name);
    const order: number[] = [];
    const waiters: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      waiters.push(
        locks.acquire(name, { wait_ms: 20_000 }).then(async (lease) => {
          order.push(i);
          await locks.release(lease);
        }),
      );
      const deadline = Date.now() + 10_000;
      while ((await locks.describe(name)).waiters !== i + 1) {
        assert.ok(Date.now() < deadline, `waiter ${i} never queued`);
        await sleep(10);
      }
    }
    await locks.release(held);
    await within(10_000, 'all waiters', Promise.all(waiters));
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    locks.close();
  });
});

describe('fencing tokens and restarts', () => {
  test('tokens keep increasing across a server restart, and a lease held at shutdown is freed', async () => {
    const lockDir = freshDir();
    const name = 'restart/counter';
    let last = 0n;
    {
      await using server = await startServer({ backend: 'file', lockDir });
      const locks = fileLocks(server.address);
      for (let i = 0; i < 3; i++) {
        const lease = await locks.acquire(name);
        assert.ok(BigInt(lease.fencing_token) > last);
        last = BigInt(lease.fencing_token);
        await locks.release(lease);
      }
      // Still held when the server shuts down: close() must unlock it.
      const kept = await locks.acquire(name, { ttl_ms: 600_000 });
      last = BigInt(kept.fencing_token);
      locks.close();
    }
    assert.equal(existsSync(`${lockFilePath(lockDir, name)}.lock`), false, 'shutdown left the lock held');
    {
      await using server = await startServer({ backend: 'file', lockDir });
      const locks = fileLocks(server.address);
      for (let i = 0; i < 2; i++) {
        const lease = await locks.acquire(name, { wait_ms: 0 });
        assert.ok(
          BigInt(lease.fencing_token) > last,
          `token ${lease.fencing_token} after restart, last before ${last}`,
        );
        last = BigInt(lease.fencing_token);
        await locks.release(lease);
      }
      locks.close();
    }
    assert.equal(last, 6n);
  });
});

describe('a compromised lock', () => {
  // staleMs 2000 (proper-lockfile's floor) makes it check its lock every second.
  async function setup() {
    const lockDir = freshDir();
    const logs: string[] = [];
    const backend = new FileLockBackend({ dir: lockDir, staleMs: 2_000, log: lineLogger((line) => logs.push(line)) });
    const server = await startServer({}, { lockBackends: [backend] });
    return { lockDir, server, logs, locks: fileLocks(server.address) };
  }

  test('a lock dir touched by someone else loses the lease (FAILED_PRECONDITION), process alive', async () => {
    const { lockDir, server, logs, locks } = await setup();
    await using _ = server;
    const name = 'compromised/touched';
    const lease = await locks.acquire(name, { owner: 'doomed', ttl_ms: 600_000 });
    // A fresh mtime that is not the holder's: the dir is neither gone nor stale (for 5 s), so
    // only proper-lockfile's own check (every 1 s: "is the mtime still ours?") can see it.
    const touchedAt = Date.now();
    const mtime = new Date(touchedAt + 3_000);
    utimesSync(`${lockFilePath(lockDir, name)}.lock`, mtime, mtime);
    let err: grpc.ServiceError | undefined;
    while (err === undefined) {
      assert.ok(Date.now() < touchedAt + 4_000, 'the lease was not marked lost before the touched dir went stale');
      err = await locks.refresh(lease).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      if (err === undefined) await sleep(100);
    }
    assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
    assert.match(err.details, /compromised/);
    assert.equal((await rejection(locks.release(lease))).code, grpc.status.FAILED_PRECONDITION);
    assert.ok(
      logs.some((line) => /compromised/.test(line)),
      'the lost lock was not logged',
    );
    // Nobody refreshes the touched dir, so it goes stale and the lock is free again.
    const next = await locks.acquire(name, { wait_ms: 15_000 });
    assert.ok(BigInt(next.fencing_token) > BigInt(lease.fencing_token));
    await locks.release(next);
    locks.close();
  });

  test('a lock dir deleted out from under the holder loses the lease; the lock is free at once', async () => {
    const { lockDir, server, locks } = await setup();
    await using _ = server;
    const name = 'compromised/deleted';
    const lease = await locks.acquire(name, { owner: 'doomed', ttl_ms: 600_000 });
    rmdirSync(`${lockFilePath(lockDir, name)}.lock`);
    // Past proper-lockfile's next check (1 s): its default onCompromised would throw here.
    await sleep(1_500);
    const err = await rejection(locks.refresh(lease));
    assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
    assert.match(err.details, /compromised/);
    const next = await locks.acquire(name, { wait_ms: 0, owner: 'successor' });
    assert.equal((await locks.describe(name)).owner, 'successor');
    assert.equal((await rejection(locks.release(lease))).code, grpc.status.FAILED_PRECONDITION);
    await locks.release(next);
    locks.close();
  });
});
