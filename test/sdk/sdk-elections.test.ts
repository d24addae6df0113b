// The SDK's election API (campaign, leader, observe, Leadership) against a real in-process
// server over real gRPC.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import {
  AbortError,
  connect,
  type ConnectOptions,
  FailedPreconditionError,
  FencedOutError,
  InvalidArgumentError,
  type Leader,
  LeaseLostError,
  NotElectedError,
  NotLeaderError,
} from '../../client/index.js';
import type { Leadership__Output } from '../../client/common/index.js';
import { startServer } from '../support/server.js';

const serve = (config: Parameters<typeof startServer>[0] = {}) => startServer({ lruMaxEntries: 10_000, ...config });

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

async function until(what: string, check: () => Promise<boolean>, withinMs = 5_000): Promise<void> {
  const end = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A client interceptor that keeps every Campaign answer (the wire Leadership, session id and all). */
function capturing(): { options: ConnectOptions; won: Leadership__Output[] } {
  const won: Leadership__Output[] = [];
  const interceptor: grpc.Interceptor = (options, next) =>
    new grpc.InterceptingCall(next(options), {
      start(metadata, _listener, start) {
        start(metadata, {
          onReceiveMessage(message, pass) {
            if (options.method_definition.path.endsWith('/Campaign')) won.push(message as Leadership__Output);
            pass(message);
          },
        });
      },
    });
  return { options: { channelOptions: { interceptors: [interceptor] } }, won };
}

describe('SDK elections', () => {
  it('campaign leads at once when nobody else does; leader() and a disposal that resigns', async () => {
    await using s = await serve();
    await using client = connect(s.address);
    await using other = connect(s.address);
    assert.deepEqual(await client.leader('jobs'), {
      election: 'jobs',
      backend: 'memory',
      elected: false,
      value: '',
      fencingToken: 0n,
      candidates: 0,
    } satisfies Leader);
    let first: bigint;
    {
      await using leadership = await client.campaign('jobs', 'node-a', { ttlMs: 5_000 });
      first = leadership.fencingToken;
      assert.equal(leadership.election, 'jobs');
      assert.equal(leadership.backend, 'memory');
      assert.equal(leadership.value, 'node-a');
      assert.equal(leadership.state, 'leading');
      assert.equal(leadership.ttlMs, 5_000);
      assert.ok(leadership.expiresAt.getTime() > Date.now());
      const seen = await other.leader('jobs');
      assert.deepEqual([seen.elected, seen.value, seen.fencingToken], [true, 'node-a', first]);
    }
    assert.equal((await other.leader('jobs')).elected, false);
    await using next = await other.campaign('jobs', 'node-b');
    assert.ok(next.fencingToken > first);
  });

  it('a waiting candidate leads when the leader resigns; observe() sees each change in order', async () => {
    await using s = await serve();
    await using a = connect(s.address);
    await using b = connect(s.address);
    const stop = new AbortController();
    const seen: Leader[] = [];
    const following = (async () => {
      for await (const leader of a.observe('sched', { signal: stop.signal })) seen.push(leader);
    })();
    const aLeads = await a.campaign('sched', 'a-1');
    const bCampaign = b.campaign('sched', 'b-1');
    await until('b to queue', async () => (await a.leader('sched')).candidates === 2);
    await aLeads.proclaim('a-2');
    assert.equal(aLeads.value, 'a-2');
    assert.equal(await aLeads.resign(), 'resigned');
    assert.equal(aLeads.signal.aborted, true);
    const bLeads = await bCampaign;
    assert.ok(bLeads.fencingToken > aLeads.fencingToken);
    await bLeads.resign();
    await until('5 observed changes', async () => seen.length >= 5);
    stop.abort();
    await following;
    assert.deepEqual(
      seen.map((l) => [l.elected, l.value, l.fencingToken]),
      [
        [false, '', 0n],
        [true, 'a-1', aLeads.fencingToken],
        [true, 'a-2', aLeads.fencingToken],
        [true, 'b-1', bLeads.fencingToken],
        [false, '', 0n],
      ],
    );
  });

  it('keeps a 1 s leadership across 3× its TTL, and another candidate never leads meanwhile', async () => {
    await using s = await serve();
    await using a = connect(s.address);
    await using b = connect(s.address);
    await using leadership = await a.campaign('kept', 'a', { ttlMs: 1_000 });
    let bLed = false;
    const bCampaign = b.campaign('kept', 'b', { ttlMs: 1_000 });
    void bCampaign.then(() => (bLed = true)).catch(() => {});
    await sleep(3_000);
    assert.equal(leadership.state, 'leading');
    assert.equal(bLed, false);
    await leadership.resign();
    await using bLeads = await bCampaign;
    assert.equal(bLeads.state, 'leading');
  });

  it('leadership.signal aborts when the leadership is lost; proclaim then fails, resign reports it', async () => {
    await using s = await serve();
    const { options, won } = capturing();
    await using client = connect(s.address, options);
    const leadership = await client.campaign('lost', 'a', { ttlMs: 1_000 });
    // Behind its back: resign it with a raw Resign, as another process holding the id could.
    await s.call(s.elections, 'Resign', { leadership: won[0] });
    const reason = await aborted(leadership.signal, 2_000);
    assert.ok(reason instanceof LeaseLostError);
    assert.match((reason as Error).message, /leadership of election "lost" was lost/);
    assert.equal(leadership.state, 'lost');
    await assert.rejects(leadership.proclaim('again'), InvalidArgumentError);
    assert.equal(await leadership.resign(), 'lost');
  });

  it('proclaim of a deposed leadership rejects with NotLeaderError and loses it', async () => {
    await using s = await serve();
    const { options, won } = capturing();
    await using client = connect(s.address, options);
    const leadership = await client.campaign('deposed', 'a', { ttlMs: 10_000 });
    await s.call(s.elections, 'Resign', { leadership: won[0] });
    await assert.rejects(leadership.proclaim('b'), NotLeaderError);
    assert.equal(leadership.state, 'lost');
    assert.equal(leadership.signal.aborted, true);
  });

  it('waitMs ends a campaign with NotElectedError naming the leader; a signal withdraws it', async () => {
    await using s = await serve();
    await using a = connect(s.address);
    await using b = connect(s.address);
    await using leadership = await a.campaign('busy', 'the-leader');
    const err = await b.campaign('busy', 'b', { waitMs: 300 }).catch((e: unknown) => e);
    assert.ok(err instanceof NotElectedError, String(err));
    assert.match(err.message, /"the-leader"/);
    const stop = new AbortController();
    const waiting = b.campaign('busy', 'b', { signal: stop.signal });
    await until('b to queue', async () => (await a.leader('busy')).candidates === 2);
    stop.abort();
    await assert.rejects(waiting, AbortError);
    await until('b to leave', async () => (await a.leader('busy')).candidates === 1);
    await leadership.resign();
    assert.equal((await a.leader('busy')).elected, false);
  });

  it('a leadership fences cache writes: the deposed leader is FencedOutError once the next leader wrote', async () => {
    await using s = await serve();
    await using a = connect(s.address);
    await using b = connect(s.address);
    const aLeads = await a.campaign('fenced', 'a');
    await a.cache().set('fenced/state', 'from-a', { fence: aLeads });
    const bCampaign = b.campaign('fenced', 'b');
    await until('b to queue', async () => (await a.leader('fenced')).candidates === 2);
    // a's resign stands in for a deposition a never heard of: its handle keeps its token.
    const stale = { election: aLeads.election, backend: aLeads.backend, fencingToken: aLeads.fencingToken };
    await aLeads.resign();
    await using bLeads = await bCampaign;
    await b.cache().set('fenced/state', 'from-b', { fence: bLeads });
    await assert.rejects(a.cache().set('fenced/state', 'late-a', { fence: stale }), FencedOutError);
    assert.equal((await b.cache().get('fenced/state'))?.value.toString(), 'from-b');
  });

  it('close() resigns the leaderships still held; a backend without elections is FailedPreconditionError', async () => {
    const lockDir = mkdtempSync(join(tmpdir(), 'latchkey-sdk-elections-'));
    after(() => rmSync(lockDir, { recursive: true, force: true }));
    await using s = await serve({ lockDir });
    await using other = connect(s.address);
    const client = connect(s.address);
    const leadership = await client.campaign('closing', 'a');
    await client.close();
    assert.equal(leadership.state, 'resigned');
    assert.equal((await other.leader('closing')).elected, false);
    await assert.rejects(other.campaign('x', 'v', { backend: 'file' }), FailedPreconditionError);
  });
});
