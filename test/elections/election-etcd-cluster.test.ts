// Elections on a 3-member etcd with etcd's own leader SIGKILLed mid-run: the latchkey leader
// (a candidate in its own process) keeps its leadership through etcd's election, nobody else
// leads meanwhile, and when the latchkey leader is then SIGKILLed its successor leads within
// TTL + 1 s, with a higher fencing token.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../client/index.js';
import { type EtcdCluster, etcdMissing, findLeader, startEtcdCluster } from '../support/etcd.js';
import { runScript } from '../support/script.js';
import { startServer, type TestServer } from '../support/server.js';

/**
 * Room within one TTL for etcd's election (500 ms timeouts in the test cluster) and for the
 * sessions' streams to come back through it, on a loaded machine. NOTE: 3 s was too little
 * for the successor under the full suite: its session (through the other server) went
 * unconfirmed for a TTL while the members elected and the stream resumed, and it lost its
 * candidacy, as it must once its session cannot be vouched for.
 */
const TTL_MS = 5_000;
const LEAD_WITHIN_MS = TTL_MS + 1_000;
const CANDIDATE = join('test', 'support', 'election-candidate.ts');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('elections on a 3-member etcd, its leader killed mid-run', { skip: etcdMissing() }, () => {
  let cluster: EtcdCluster;
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    cluster = await startEtcdCluster(3);
    const config = {
      etcdEndpoints: cluster.endpoints,
      etcdPrefix: `latchkey-election-cluster-${process.pid}/locks/`,
      etcdElectionPrefix: `latchkey-election-cluster-${process.pid}/elections/`,
    };
    a = await startServer(config);
    b = await startServer(config);
  });
  after(async () => {
    await a?.[Symbol.asyncDispose]();
    await b?.[Symbol.asyncDispose]();
    await cluster?.[Symbol.asyncDispose]();
  });

  test("the leader keeps its leadership through etcd's election; SIGKILLed, its successor leads within TTL + 1 s", {
    timeout: 60_000,
  }, async (t) => {
    const name = `cluster-failover-${process.pid}`;
    await using leader = runScript(CANDIDATE, [a.address, name, 'etcd', String(TTL_MS), 'on', 'the-leader']);
    const led = await leader.waitFor((m) => typeof m.leading === 'string', 'the leadership');
    await using client = connect(b.address);
    let ledAt: number | undefined;
    const next = client.campaign(name, 'successor', { backend: 'etcd', ttlMs: TTL_MS }).then((l) => {
      ledAt = performance.now();
      return l;
    });
    next.catch(() => {});

    const etcdLeader = await findLeader(cluster);
    t.diagnostic(
      `killing ${etcdLeader.isLeader ? "etcd's leader" : 'a member'} ${etcdLeader.member.name} ${etcdLeader.note}`,
    );
    await etcdLeader.member.kill9();
    // Well past a TTL: the leader's KeepAlives reach the members left once they have elected.
    await sleep(TTL_MS + 1_000);
    assert.equal(ledAt, undefined, "the successor led while the leader was alive (through etcd's election)");
    assert.equal(
      leader.messages().some((m) => m.lost !== undefined),
      false,
      'the leader lost its leadership',
    );
    const state = await client.leader(name, { backend: 'etcd' });
    assert.deepEqual([state.value, state.fencingToken], ['the-leader', BigInt(led.leading as string)]);

    const killedAt = performance.now();
    leader.kill('SIGKILL');
    const leadership = await next;
    const tookMs = ledAt! - killedAt;
    t.diagnostic(
      `etcd cluster: leader SIGKILLed after etcd's leader died; successor led ${tookMs.toFixed(0)} ms later (TTL ${TTL_MS} ms, bound ${LEAD_WITHIN_MS} ms)`,
    );
    assert.ok(tookMs <= LEAD_WITHIN_MS, `the successor led ${tookMs.toFixed(0)} ms after the kill, over TTL + 1 s`);
    assert.ok(
      tookMs >= TTL_MS / 3,
      `the successor led ${tookMs.toFixed(0)} ms after the kill, before the dead leader's session could have expired`,
    );
    assert.ok(leadership.fencingToken > BigInt(led.leading as string));
    assert.equal(await leadership.resign(), 'resigned');
  });
});
