// Candidacies in lock sessions: the SDK campaigns inside its lock session of the backend and
// TTL when sessions are on (the Campaign names the session's id, and the leadership lives on
// the session's lease, beside its locks), with a unary Campaign in a session of its own when
// they are off; on etcd the candidate's key is on the session's etcd lease, so resigning
// leaves the session's locks alone, and the session's end takes the leadership with it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import type { CampaignRequest, Leadership__Output } from '../../client/common/index.js';
import { connect, type ConnectOptions } from '../../client/index.js';
import { etcdctl, etcdMissing, type EtcdMember, startEtcd } from '../support/etcd.js';
import { startServer, type TestServer } from '../support/server.js';
import { SessionStream } from '../support/session-stream.js';

/** A client interceptor that keeps every Campaign request and answer. */
function capturing(): { options: ConnectOptions; sent: CampaignRequest[]; won: Leadership__Output[] } {
  const sent: CampaignRequest[] = [];
  const won: Leadership__Output[] = [];
  const interceptor: grpc.Interceptor = (options, next) => {
    const campaign = options.method_definition.path.endsWith('/Campaign');
    return new grpc.InterceptingCall(next(options), {
      start(metadata, _listener, start) {
        start(metadata, {
          onReceiveMessage(message, pass) {
            if (campaign) won.push(message as Leadership__Output);
            pass(message);
          },
        });
      },
      sendMessage(message, send) {
        if (campaign) sent.push(message as CampaignRequest);
        send(message);
      },
    });
  };
  return { options: { channelOptions: { interceptors: [interceptor] } }, sent, won };
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function sessionTests(backend: 'memory' | 'etcd', server: () => TestServer, etcdEndpoint?: () => string) {
  test(`${backend}: with sessions on, the campaign names the client's lock session, and its locks share it`, async () => {
    const { options, sent, won } = capturing();
    await using client = connect(server().address, options);
    const name = `in-session-${backend}-${process.pid}`;
    await using lock = await client.lock(`${name}/lock`, { backend, ttlMs: 5_000 });
    const leadership = await client.campaign(name, 'a', { backend, ttlMs: 5_000 });
    assert.equal(sent.length, 1);
    assert.notEqual(sent[0]!.session_id, '', 'the Campaign named no session');
    assert.equal(String(sent[0]!.ttl_ms), '0', 'a campaign in a session carries no TTL of its own');
    assert.equal(won[0]!.session_id, sent[0]!.session_id);
    if (backend === 'etcd') {
      // The session id is etcd.<lease hex>.<secret>; the lock's lease id <lease hex>.<revision>.
      const leaseHex = won[0]!.session_id.split('.')[1]!;
      assert.ok(lock.leaseId.startsWith(`${leaseHex}.`), `lock ${lock.leaseId} is not on lease ${leaseHex}`);
      const keys = await etcdctl(etcdEndpoint!(), ['get', '--prefix', '--keys-only', `${PREFIX}elections/${name}/`]);
      assert.deepEqual(keys.split('\n').filter(Boolean), [`${PREFIX}elections/${name}/${leaseHex}`]);
    }
    // Resigning ends the candidacy only: the session and its lock go on.
    assert.equal(await leadership.resign(), 'resigned');
    assert.equal((await client.leader(name, { backend })).elected, false);
    assert.equal(lock.signal.aborted, false);
    const state = await client.describe(`${name}/lock`, { backend });
    assert.deepEqual([state.held, state.fencingToken], [true, lock.fencingToken]);
  });

  test(`${backend}: with sessions off, the campaign is unary, in a session of its own`, async () => {
    const { options, sent } = capturing();
    await using client = connect(server().address, { ...options, sessions: false });
    await using leadership = await client.campaign(`unary-${backend}-${process.pid}`, 'a', { backend, ttlMs: 5_000 });
    assert.equal(sent[0]!.session_id, '');
    assert.equal(String(sent[0]!.ttl_ms), '5000');
    assert.equal(leadership.state, 'leading');
  });

  test(`${backend}: closing the client ends its session, which resigns its leadership: the next candidate leads at once`, async () => {
    const name = `close-${backend}-${process.pid}`;
    const first = connect(server().address);
    const leadership = await first.campaign(name, 'first', { backend, ttlMs: 10_000 });
    await using second = connect(server().address);
    const next = second.campaign(name, 'second', { backend, ttlMs: 10_000 });
    await until('the second candidate to queue', async () => (await second.leader(name, { backend })).candidates === 2);
    const closedAt = performance.now();
    await first.close();
    assert.equal(leadership.state, 'resigned');
    await using led = await next;
    const tookMs = performance.now() - closedAt;
    assert.equal(led.value, 'second');
    assert.ok(led.fencingToken > leadership.fencingToken);
    // Well before the 10 s TTL: the end of the session, not its expiry, passed the leadership on.
    assert.ok(tookMs < 3_000, `the next candidate led ${tookMs.toFixed(0)} ms after the close`);
  });

  test(`${backend}: a campaign in a lock session that waited past the TTL is answered with the session's expiry as it is at the win`, async () => {
    const name = `late-expiry-${backend}-${process.pid}`;
    await using first = connect(server().address);
    const leadership = await first.campaign(name, 'first', { backend, ttlMs: 10_000 });
    const { options, won } = capturing();
    await using second = connect(server().address, options);
    const next = second.campaign(name, 'second', { backend, ttlMs: 1_000 });
    await until('the second candidate to queue', async () => (await second.leader(name, { backend })).candidates === 2);
    // Three TTLs of waiting, the session kept alive by the client's keepalives meanwhile.
    await sleep(3_000);
    await leadership.resign();
    await using led = await next;
    const answeredAt = Date.now();
    const stated = Number(won[0]!.expires_at_ms);
    assert.ok(
      stated > answeredAt,
      `the win stated an expiry ${answeredAt - stated} ms in the past: the session's when the campaign began`,
    );
    assert.ok(led.expiresAt.getTime() > answeredAt);
  });

  test(`${backend}: two campaigns of one client for one election go through two sessions, and lead in turn`, async () => {
    await using client = connect(server().address);
    const name = `twice-${backend}-${process.pid}`;
    const first = await client.campaign(name, 'one', { backend, ttlMs: 5_000 });
    const second = client.campaign(name, 'two', { backend, ttlMs: 5_000 });
    await until('the second campaign to queue', async () => (await client.leader(name, { backend })).candidates === 2);
    await first.resign();
    await using led = await second;
    assert.equal(led.value, 'two');
  });
}

const PREFIX = `latchkey-elections-sessions-${process.pid}/`;

describe('candidacies in lock sessions, memory backend', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ lruMaxEntries: 1_000 });
  });
  after(async () => {
    await server?.[Symbol.asyncDispose]();
  });
  sessionTests('memory', () => server);
});

describe('candidacies in lock sessions, etcd backend', { skip: etcdMissing() }, () => {
  let etcd: EtcdMember;
  let server: TestServer;
  before(async () => {
    etcd = await startEtcd();
    server = await startServer({
      lruMaxEntries: 1_000,
      etcdEndpoints: etcd.endpoint,
      etcdPrefix: `${PREFIX}locks/`,
      etcdElectionPrefix: `${PREFIX}elections/`,
    });
  });
  after(async () => {
    await server?.[Symbol.asyncDispose]();
    await etcd?.[Symbol.asyncDispose]();
  });
  sessionTests(
    'etcd',
    () => server,
    () => etcd.endpoint,
  );

  test('etcd: a campaign through another server than the session stream waits past the TTL, and leads', async () => {
    await using other = await startServer({
      lruMaxEntries: 1_000,
      etcdEndpoints: etcd.endpoint,
      etcdPrefix: `${PREFIX}locks/`,
      etcdElectionPrefix: `${PREFIX}elections/`,
    });
    const name = `cross-server-${process.pid}`;
    const leader = await server.call<Leadership__Output>(server.elections, 'Campaign', {
      name,
      backend: 'etcd',
      value: 'leader',
      ttl_ms: 10_000,
    });
    const stream = await SessionStream.open(server.locks, { backend: 'etcd', ttl_ms: 1_000 });
    try {
      const waiting = other.call<Leadership__Output>(other.elections, 'Campaign', {
        name,
        backend: 'etcd',
        value: 'in-session',
        session_id: stream.opened.session_id,
      });
      waiting.catch(() => {});
      // The session's own stream (on the first server) keeps it alive for three of its TTLs,
      // while the second server's copy, unrenewed there, steps aside.
      let keptUntil = 0;
      for (let i = 0; i < 9; i++) {
        keptUntil = Number((await stream.op<{ expires_at_ms: string }>({ keepalive: {} })).expires_at_ms);
        await sleep(330);
      }
      await server.call(server.elections, 'Resign', { leadership: leader });
      const won = await waiting;
      assert.equal(won.value, 'in-session');
      assert.equal(won.session_id, stream.opened.session_id);
      // Stated from etcd, whose whole seconds left are rounded down: the other server's copy of
      // the session never saw its keepalives.
      const early = keptUntil - Number(won.expires_at_ms);
      assert.ok(early <= 1_000, `the win stated an expiry ${early} ms before the last keepalive's`);
      await other.call(other.elections, 'Resign', { leadership: won });
    } finally {
      await stream.close();
    }
  });
});
