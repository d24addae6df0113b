// The SDK's lock sessions on etcd, with real processes stopped under them: a client process
// SIGSTOPped while it holds a lock (its lock goes to another only after the session's TTL,
// and once it runs again its handle has aborted), and its latchkey server SIGSTOPped (the
// session moves to the next server, which on etcd can take it up: the lock stays held and
// the handle never aborts). The SIGKILLed server case is in sdk-sessions.test.ts. And the same
// for unary handles (sessions off) when a server's connection stalls as in a partition (no
// reset, no answer): their Refreshes move to the next server, so they keep their locks; and
// cache calls, unary or through the pipeline, follow them there.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, DeadlineExceededError } from '../../client/index.js';
import { etcdMissing, startEtcd, type EtcdMember } from '../support/etcd.js';
import { FAST_RECONNECT, until } from '../support/faults.js';
import { startTcpProxy } from '../support/loopback-proxy.js';
import { runScript } from '../support/script.js';
import { spawnServer, type SpawnedServer } from '../support/spawn.js';

const HOLDER_SCRIPT = join('test', 'support', 'lock-holder.ts');

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

describe('SDK lock sessions on etcd, processes stopped', { skip: etcdMissing() }, () => {
  let etcd: EtcdMember;
  let servers: SpawnedServer[] = [];

  before(async () => {
    etcd = await startEtcd();
    const args = ['--etcd-endpoints', etcd.endpoint, '--etcd-prefix', `latchkey-sdk-etcd-sessions-${process.pid}/`];
    servers = await Promise.all([spawnServer(args), spawnServer(args)]);
  });
  after(async () => {
    for (const server of servers) server.child.kill('SIGCONT');
    await Promise.all(servers.map((server) => server.stop('SIGTERM')));
    await etcd?.[Symbol.asyncDispose]();
  });

  it('a SIGSTOPped client process: its lock goes to another only after the session TTL, and resumed, its handle has aborted', async (t) => {
    const [a] = servers;
    const ttlMs = 2_000;
    const name = 'stopped-client';
    await using holder = runScript(HOLDER_SCRIPT, [a!.address, name, 'etcd', String(ttlMs)]);
    const held = await holder.waitFor((m) => typeof m.token === 'string', 'the lock');
    await using client = connect(a!.address);
    let grantedAt: number | undefined;
    const waiting = client
      .lock(name, { backend: 'etcd', ttlMs: 10_000, waitMs: 20_000, owner: 'next' })
      .then((lock) => {
        grantedAt = performance.now();
        return lock;
      });
    waiting.catch(() => {});
    // Past its TTL the holder still holds: its session's keepalives keep the lock.
    await sleep(ttlMs + 500);
    assert.equal(grantedAt, undefined, 'granted while the holder was alive');
    assert.equal((await client.describe(name, { backend: 'etcd' })).fencingToken, BigInt(held.token as string));

    holder.kill('SIGSTOP');
    await stopped(holder.pid);
    const stoppedAt = performance.now();
    await using lock = await waiting;
    const tookMs = grantedAt! - stoppedAt;
    t.diagnostic(`SIGSTOP to grant ${tookMs.toFixed(0)} ms (session TTL ${ttlMs} ms)`);
    // Its last keepalive came at most TTL / 3 before the stop; etcd drops an expired lease on
    // a 500 ms check, and reports whole seconds.
    assert.ok(tookMs >= ttlMs / 3, `granted ${tookMs.toFixed(0)} ms after the stop, before the TTL could run out`);
    assert.ok(tookMs <= ttlMs + 2_000, `granted ${tookMs.toFixed(0)} ms after the stop, over TTL + 2 s`);

    holder.kill('SIGCONT');
    const seen = await holder.waitFor((m) => typeof m.aborted === 'string', 'the holder to see its lock lost', 10_000);
    assert.match(seen.aborted as string, /^LeaseLostError: lock "stopped-client"/);
    assert.equal((await client.describe(name, { backend: 'etcd' })).fencingToken, lock.fencingToken);
  });

  it('a stalled connection to a server (a partition: no reset, no answer): unary handles move to the next server and keep their locks, and unary calls follow', async (t) => {
    const [a, b] = servers;
    await using proxy = await startTcpProxy(a!.address);
    await using client = connect([proxy.address, b!.address], { sessions: false, channelOptions: FAST_RECONNECT });
    await using cacheClient = connect([proxy.address, b!.address], {
      sessions: false,
      pipeline: false,
      retry: false,
      channelOptions: FAST_RECONNECT,
    });
    await using pipelined = connect([proxy.address, b!.address], {
      sessions: false,
      retry: false,
      channelOptions: FAST_RECONNECT,
    });
    await using observer = connect(b!.address, { sessions: false });
    const ttlMs = 3_000;
    const locks = await Promise.all(
      ['stalled/x', 'stalled/y'].map((name) => client.lock(name, { backend: 'etcd', ttlMs })),
    );
    await cacheClient.cache().set('stalled/k', 'through a');
    await pipelined.cache().set('stalled/p', 'through a');
    proxy.stall();
    try {
      const stalledAt = performance.now();
      // Two TTLs: only Refreshes through b can have kept the leases.
      await sleep(ttlMs * 2);
      for (const lock of locks) {
        assert.equal(lock.signal.aborted, false, String(lock.signal.reason));
        assert.equal(lock.state, 'held');
        const state = await observer.describe(lock.name, { backend: 'etcd' });
        assert.deepEqual([state.held, state.fencingToken], [true, lock.fencingToken]);
        // Confirmed since the stall, through b.
        assert.ok(lock.expiresAt.getTime() > Date.now() + ttlMs / 3, `stated expiry ${lock.expiresAt.toISOString()}`);
      }
      // A cache call on the stalled connection times out once; the next goes to b.
      await assert.rejects(cacheClient.cache().set('stalled/k', 'lost', { deadlineMs: 300 }), DeadlineExceededError);
      await cacheClient.cache().set('stalled/k', 'through b', { deadlineMs: 2_000 });
      // So through the pipeline: a call that waited a second on its stalled stream breaks it.
      await assert.rejects(pipelined.cache().set('stalled/p', 'lost', { deadlineMs: 1_200 }), DeadlineExceededError);
      await pipelined.cache().set('stalled/p', 'through b', { deadlineMs: 2_000 });
      assert.equal((await pipelined.cache().get('stalled/p'))?.value.toString(), 'through b');
      for (const lock of locks) assert.equal(await lock.release(), 'released');
      t.diagnostic(
        `${(performance.now() - stalledAt).toFixed(0)} ms after the stall: both handles held through b, then released`,
      );
    } finally {
      proxy.resume();
    }
  });

  it('a SIGSTOPped server: the session moves to the next server, which takes it up from etcd: the lock stays held', async (t) => {
    const [a, b] = servers;
    await using client = connect([a!.address, b!.address], { channelOptions: FAST_RECONNECT });
    await using observer = connect(b!.address, { sessions: false });
    const ttlMs = 3_000;
    const lock = await client.lock('stuck-server', { backend: 'etcd', ttlMs });
    const thief = observer.lock('stuck-server', { backend: 'etcd', ttlMs, waitMs: 20_000 });
    thief.catch(() => {});
    let stolen = false;
    void thief.then(() => (stolen = true));
    a!.child.kill('SIGSTOP');
    try {
      await stopped(a!.pid);
      // Two TTLs: the session must have moved, and been kept alive through b, to still hold.
      await sleep(ttlMs * 2);
      t.diagnostic(
        `${ttlMs * 2} ms after the server stopped: state ${lock.state}, signal aborted ${lock.signal.aborted}`,
      );
      assert.equal(lock.signal.aborted, false, String(lock.signal.reason));
      assert.equal(lock.state, 'held');
      assert.equal(stolen, false, 'granted to another while the session was moving');
      const state = await observer.describe('stuck-server', { backend: 'etcd' });
      assert.deepEqual([state.held, state.fencingToken], [true, lock.fencingToken]);
      assert.equal(await lock.release(), 'released');
      await using next = await thief;
      assert.ok(next.fencingToken > lock.fencingToken);
    } finally {
      a!.child.kill('SIGCONT');
    }
  });
});
