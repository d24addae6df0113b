// Elections on a real etcd: the election contract, `etcdctl elect` and latchkey contending for
// one leadership both ways, `etcdctl elect -l` following latchkey's leaders (and Observe
// following etcdctl's), and a leadership used through another latchkey server than the one
// that won it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { LeaderState__Output, Leadership__Output } from '../../client/common/index.js';
import { etcdCapabilities } from '../../src/locks/etcd/lock-backend.js';
import { rejection } from '../support/assertions.js';
import {
  ETCD_SKIP_REASON,
  type EtcdMember,
  etcdAvailable,
  etcdctl,
  etcdctlElect,
  etcdctlObserve,
  startEtcd,
} from '../support/etcd.js';
import { startServer, type TestServer } from '../support/server.js';
import { electionContract } from './contract.js';

const PREFIX = `latchkey-elections-${process.pid}/`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function call<Res>(server: TestServer, method: string, request: object): Promise<Res> & { call: grpc.ClientUnaryCall } {
  let started!: grpc.ClientUnaryCall;
  const promise = new Promise<Res>((resolve, reject) => {
    const fn = (server.elections as unknown as Record<string, Function>)[method]!;
    started = fn.call(server.elections, request, new grpc.Metadata(), {}, (err: Error | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
  promise.catch(() => {});
  return Object.assign(promise, { call: started });
}

if (!etcdAvailable()) {
  test('elections on etcd', { skip: ETCD_SKIP_REASON }, () => {});
} else {
  describe('elections on etcd', () => {
    let etcd: EtcdMember;
    before(async () => {
      etcd = await startEtcd();
    });
    after(async () => {
      await etcd?.[Symbol.asyncDispose]();
    });

    // etcd leases are whole seconds, and the test etcd's minimum TTL is 1 s (support/etcd.ts).
    electionContract({
      backend: 'etcd',
      capabilities: etcdCapabilities,
      shortTtlMs: 1_000,
      start: () =>
        startServer({
          backend: 'etcd',
          etcdEndpoints: etcd.endpoint,
          etcdPrefix: `${PREFIX}locks/`,
          etcdElectionPrefix: `${PREFIX}contract/`,
        }),
    });

    describe('with etcdctl and a second server', () => {
      let a: TestServer;
      let b: TestServer;
      const electionPrefix = `${PREFIX}interop/`;
      let seq = 0;
      const fresh = (label: string) => `${label}-${seq++}`;
      const campaign = (server: TestServer, name: string, value: string) =>
        call<Leadership__Output>(server, 'Campaign', { name, backend: 'etcd', value, ttl_ms: 5_000 });
      const leader = (server: TestServer, name: string) =>
        call<LeaderState__Output>(server, 'Leader', { name, backend: 'etcd' });

      before(async () => {
        const config = {
          backend: 'etcd',
          etcdEndpoints: etcd.endpoint,
          etcdPrefix: `${PREFIX}locks/`,
          etcdElectionPrefix: electionPrefix,
        };
        a = await startServer(config);
        b = await startServer(config);
      });
      after(async () => {
        await a?.[Symbol.asyncDispose]();
        await b?.[Symbol.asyncDispose]();
      });

      test('the layout is etcdctl elect\'s: "<prefix><name>/<lease hex>" holding the value, on the lease', async () => {
        const name = fresh('layout');
        const won = await campaign(a, name, 'value-1');
        const listed = await etcdctl(etcd.endpoint, ['get', '--prefix', `${electionPrefix}${name}/`, '-w', 'json']);
        const kvs = (JSON.parse(listed) as { kvs: { key: string; value: string; create_revision: number }[] }).kvs;
        assert.equal(kvs.length, 1);
        const key = Buffer.from(kvs[0]!.key, 'base64').toString();
        assert.match(key, new RegExp(`^${electionPrefix}${name}/[0-9a-f]+$`));
        assert.equal(Buffer.from(kvs[0]!.value, 'base64').toString(), 'value-1');
        assert.equal(String(kvs[0]!.create_revision), won.fencing_token, "the token is the key's create revision");
        // NOTE: JSON.parse rounds int64s past 2^53, as lease ids are: read it from the text.
        const lease = /"lease":(\d+)/.exec(listed)![1]!;
        assert.equal(BigInt(lease).toString(16), key.slice(key.lastIndexOf('/') + 1), 'the key names its lease');
        await call(a, 'Resign', { leadership: won });
        assert.equal(await etcdctl(etcd.endpoint, ['get', '--prefix', `${electionPrefix}${name}/`, '--keys-only']), '');
      });

      test('etcdctl elect leads first: latchkey sees it, waits, and leads once etcdctl resigns', async () => {
        const name = fresh('etcdctl-first');
        await using elect = etcdctlElect(etcd.endpoint, `${electionPrefix}${name}`, 'from-etcdctl');
        await elect.leads();
        const seen = await leader(a, name);
        assert.deepEqual([seen.elected, seen.value], [true, 'from-etcdctl']);
        const ours = campaign(a, name, 'from-latchkey');
        await until('latchkey to queue behind etcdctl', async () => (await leader(b, name)).candidates === 2);
        let led = false;
        void ours.then(() => (led = true));
        await sleep(300);
        assert.equal(led, false, 'latchkey leads while etcdctl does');
        await elect.stop();
        const won = await ours;
        assert.ok(BigInt(won.fencing_token) > BigInt(seen.fencing_token));
        assert.equal((await leader(b, name)).value, 'from-latchkey');
        await call(a, 'Resign', { leadership: won });
      });

      test('latchkey leads first: etcdctl elect waits and leads once latchkey resigns; etcdctl elect -l follows both', async () => {
        const name = fresh('latchkey-first');
        const won = await campaign(a, name, 'from-latchkey');
        await using observer = etcdctlObserve(etcd.endpoint, `${electionPrefix}${name}`);
        const [first] = await observer.until(1);
        assert.equal(first!.value, 'from-latchkey');
        assert.match(first!.key, new RegExp(`^${electionPrefix}${name}/[0-9a-f]+$`));
        await using elect = etcdctlElect(etcd.endpoint, `${electionPrefix}${name}`, 'from-etcdctl');
        await until('etcdctl to queue', async () => (await leader(a, name)).candidates === 2);
        await sleep(300);
        assert.equal(elect.leading(), false, 'etcdctl leads while latchkey does');
        // A proclamation through the other server: etcdctl's observer sees it.
        await call(b, 'Proclaim', { leadership: won, value: 'proclaimed' });
        await observer.until(2);
        await call(b, 'Resign', { leadership: won });
        const key = await elect.leads();
        const pairs = await observer.until(3);
        assert.deepEqual(
          pairs.map((p) => p.value),
          ['from-latchkey', 'proclaimed', 'from-etcdctl'],
        );
        assert.equal(pairs[2]!.key, key);
        await elect.stop();
      });

      test("Observe follows etcdctl's leaders as well as latchkey's", async () => {
        const name = fresh('observe');
        const stream = a.elections.Observe({ name, backend: 'etcd' });
        const seen: LeaderState__Output[] = [];
        stream.on('data', (l: LeaderState__Output) => seen.push(l));
        stream.on('error', () => {});
        try {
          await until('the first Observe message', () => seen.length >= 1);
          await using elect = etcdctlElect(etcd.endpoint, `${electionPrefix}${name}`, 'etcdctl-leader');
          await elect.leads();
          const ours = campaign(b, name, 'latchkey-leader');
          await until('latchkey to queue', async () => (await leader(a, name)).candidates === 2);
          await elect.stop();
          const won = await ours;
          await call(b, 'Proclaim', { leadership: won, value: 'latchkey-proclaimed' });
          await call(b, 'Resign', { leadership: won });
          await until('5 Observe messages', () => seen.length >= 5);
          assert.deepEqual(
            seen.map((l) => [l.elected, l.value]),
            [
              [false, ''],
              [true, 'etcdctl-leader'],
              [true, 'latchkey-leader'],
              [true, 'latchkey-proclaimed'],
              [false, ''],
            ],
          );
          assert.equal(seen[2]!.fencing_token, won.fencing_token);
        } finally {
          stream.cancel();
        }
      });

      test('a leadership won through one server is kept alive, proclaimed and resigned through another', async () => {
        const name = fresh('stateless');
        const won = await campaign(a, name, 'v1');
        const kept = await call<Leadership__Output>(b, 'KeepAlive', { leadership: won });
        assert.equal(kept.fencing_token, won.fencing_token);
        assert.ok(Number(kept.expires_at_ms) >= Number(won.expires_at_ms));
        await call(b, 'Proclaim', { leadership: won, value: 'v2' });
        assert.equal((await leader(a, name)).value, 'v2');
        const waiting = campaign(a, name, 'next');
        await until('the next candidate to queue', async () => (await leader(b, name)).candidates === 2);
        await call(b, 'Resign', { leadership: won });
        const next = await waiting;
        assert.ok(BigInt(next.fencing_token) > BigInt(won.fencing_token));
        const stale = await rejection(call(b, 'Proclaim', { leadership: won, value: 'stale' }));
        assert.equal(stale.code, grpc.status.FAILED_PRECONDITION);
        assert.match(stale.details, /it is led by "next"/);
        await call(a, 'Resign', { leadership: next });
      });
    });
  });
}
