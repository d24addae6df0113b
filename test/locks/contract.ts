// The lock-backend contract: every backend runs this same suite through a real latchkey
// server over real gRPC, once through the unary RPCs and once through lock sessions
// (Locks/Session, see session-path.ts) where it declares `sessions`. A check that needs a
// capability the backend does not declare is skipped with the reason printed, never passed
// silently.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output, LockState__Output, LocksClient } from '../../client/common/index.js';
import type { Capabilities } from '../../src/locks/backend.js';
import { loadProto } from '../../src/proto.js';
import type { TestServer } from '../support/server.js';
import { rejection } from '../support/assertions.js';
import { SessionPath } from './session-path.js';

export interface LockContractTarget {
  /** The backend name sent in requests. */
  readonly backend: string;
  /** What the backend declares; the suite checks Describe reports exactly this. */
  readonly capabilities: Capabilities;
  /** A TTL the backend honours precisely enough to test expiry (its TTL granularity). */
  readonly shortTtlMs: number;
  /** Starts a server with the backend enabled; disposed after the suite. */
  start(): Promise<TestServer>;
}

/** Which way the suite's calls go: the unary RPCs, or tagged ops on Locks/Session streams. */
export type LockPath = 'unary' | 'session';

type Status = grpc.ServiceError;

function unary<Res>(
  client: grpc.Client,
  method: string,
  request: object,
  options: grpc.CallOptions = {},
): Promise<Res> & { call?: grpc.ClientUnaryCall } {
  let call: grpc.ClientUnaryCall | undefined;
  const promise = new Promise<Res>((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!;
    call = fn.call(client, request, new grpc.Metadata(), options, (err: Status | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  }) as Promise<Res> & { call?: grpc.ClientUnaryCall };
  promise.call = call;
  return promise;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until check() is true, failing after timeoutMs. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The contract through both paths: unary, and sessions where the backend declares them. */
export function lockBackendContract(target: LockContractTarget): void {
  runContract(target, 'unary');
  if (target.capabilities.sessions) runContract(target, 'session');
  else
    test(`lock backend contract: ${target.backend} (session)`, {
      skip: `backend "${target.backend}" does not declare sessions`,
    }, () => {});
}

function runContract(target: LockContractTarget, path: LockPath): void {
  const { backend, capabilities, shortTtlMs } = target;
  const skip = (capability: keyof Capabilities) =>
    capabilities[capability] ? false : `backend "${backend}" does not declare ${capability}`;

  describe(`lock backend contract: ${backend} (${path})`, () => {
    let server: TestServer;
    let locks: LocksClient;
    const clients: grpc.Client[] = [];
    let seq = 0;
    /** A fresh lock name per test, so tests never see each other's state. */
    const fresh = (label: string) => `contract/${backend}/${label}/${process.pid}-${Date.now()}-${seq++}`;

    const newClient = (): LocksClient => {
      const proto = loadProto();
      const client = new proto.latchkey.v1.Locks(server.address, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      });
      clients.push(client);
      return client;
    };
    // The session path: the same calls as tagged ops on Locks/Session streams (see session-path.ts).
    const sessions = new SessionPath(backend, (client, method, request) => unary(client, method, request));
    const acquire = (name: string, fields: object = {}, client: LocksClient = locks, options?: grpc.CallOptions) =>
      path === 'unary'
        ? unary<Lease__Output>(client, 'Acquire', { name, backend, ttl_ms: 10_000, ...fields }, options)
        : sessions.acquire(client, name, { ttl_ms: 10_000, ...fields }, options);
    const release = (lease: Lease__Output, client: LocksClient = locks) =>
      path === 'unary'
        ? unary<{ released: boolean }>(client, 'Release', { name: lease.name, backend, lease_id: lease.lease_id })
        : sessions.release(client, lease);
    const refresh = (lease: Lease__Output, ttlMs = 0) =>
      path === 'unary'
        ? unary<Lease__Output>(locks, 'Refresh', { name: lease.name, backend, lease_id: lease.lease_id, ttl_ms: ttlMs })
        : sessions.refresh(locks, lease, ttlMs);
    const describeLock = (name: string) =>
      path === 'unary'
        ? unary<LockState__Output>(locks, 'Describe', { name, backend })
        : sessions.describe(locks, name);

    before(async () => {
      server = await target.start();
      locks = newClient();
    });
    after(async () => {
      await sessions.close();
      for (const client of clients) client.close();
      await server[Symbol.asyncDispose]();
    });

    test('Describe reports the declared capabilities', async () => {
      const state = await describeLock(fresh('caps'));
      assert.equal(state.backend, backend);
      assert.deepEqual(state.capabilities, {
        across_hosts: capabilities.acrossHosts,
        fencing: capabilities.fencing,
        fifo: capabilities.fifo,
        auto_release: capabilities.autoRelease,
        semaphore: capabilities.semaphore,
        shared: capabilities.shared,
        watch: capabilities.watch,
        sessions: capabilities.sessions ?? false,
        elections: capabilities.elections,
      });
    });

    for (const [capability, request] of [
      ['semaphore', { limit: 3 }],
      ['shared', { mode: 'SHARED' }],
    ] as const) {
      if (capabilities[capability]) continue;
      test(`${capability} is refused with FAILED_PRECONDITION naming the capability`, async () => {
        const err = await rejection(acquire(fresh(`no-${capability}`), request));
        assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
        assert.match(err.details, new RegExp(`capability ${capability}`));
      });
    }

    test('a semaphore admits at most `limit` holders at any instant under 20 concurrent clients', {
      skip: skip('semaphore'),
    }, async () => {
      const name = fresh('semaphore');
      const limit = 3;
      let inside = 0;
      let maxInside = 0;
      const tokens = new Set<string>();
      const worker = async (client: LocksClient) => {
        for (let round = 0; round < 3; round++) {
          const lease = await acquire(name, { wait_ms: 60_000, limit }, client);
          assert.equal(lease.limit, limit);
          inside++;
          maxInside = Math.max(maxInside, inside);
          tokens.add(lease.fencing_token);
          await sleep(5);
          inside--;
          await release(lease, client);
        }
      };
      await Promise.all(Array.from({ length: 20 }, () => worker(newClient())));
      assert.ok(maxInside <= limit, `${maxInside} holders at once with limit ${limit}`);
      assert.equal(maxInside, limit, 'the semaphore never admitted more than one holder');
      assert.equal(tokens.size, 60, 'every holder gets its own fencing token');
    });

    test('a semaphore: Describe lists holders and the queue in order; a different limit is refused naming both', {
      skip: skip('semaphore'),
    }, async () => {
      const name = fresh('semaphore-describe');
      const a = await acquire(name, { limit: 2, owner: 'a' });
      const b = await acquire(name, { limit: 2, owner: 'b' });
      const waiting = [acquire(name, { limit: 2, owner: 'c', wait_ms: 30_000 }, newClient())];
      await until('c queued', async () => (await describeLock(name)).waiters === 1);
      waiting.push(acquire(name, { limit: 2, owner: 'd', wait_ms: 30_000 }, newClient()));
      await until('d queued', async () => (await describeLock(name)).waiters === 2);
      const state = await describeLock(name);
      assert.equal(state.limit, 2);
      assert.deepEqual(
        state.holders.map((h) => [h.owner, h.fencing_token]),
        [
          ['a', a.fencing_token],
          ['b', b.fencing_token],
        ],
      );
      assert.deepEqual(
        state.queue.map((w) => w.owner),
        ['c', 'd'],
      );
      const err = await rejection(acquire(name, { limit: 5, wait_ms: 0 }));
      assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
      assert.match(err.details, /limit 2/);
      assert.match(err.details, /limit 5/);
      await release(a);
      await release(b);
      for (const lease of await Promise.all(waiting)) await release(lease);
    });

    test('shared holders share; an exclusive request excludes them', { skip: skip('shared') }, async () => {
      const name = fresh('rw');
      const r1 = await acquire(name, { mode: 'SHARED', owner: 'r1' });
      const r2 = await acquire(name, { mode: 'SHARED', owner: 'r2' });
      assert.equal(r2.mode, 'SHARED');
      assert.equal((await describeLock(name)).holders.length, 2);
      assert.equal((await rejection(acquire(name, { wait_ms: 0 }))).code, grpc.status.ABORTED);
      await release(r1);
      await release(r2);
      const w = await acquire(name, { owner: 'writer' });
      assert.equal((await rejection(acquire(name, { mode: 'SHARED', wait_ms: 0 }))).code, grpc.status.ABORTED);
      await release(w);
    });

    test('a writer waiting behind readers gets in before readers that came after it', {
      skip: skip('shared'),
    }, async () => {
      const name = fresh('rw-fifo');
      const reader = await acquire(name, { mode: 'SHARED', owner: 'early-reader' });
      const order: string[] = [];
      const writer = acquire(name, { owner: 'writer', wait_ms: 30_000 }, newClient()).then(async (lease) => {
        order.push('writer');
        await sleep(20);
        order.push('writer-done');
        await release(lease);
      });
      await until('writer queued', async () => (await describeLock(name)).waiters === 1);
      // Could share with the early reader, but must not pass the waiting writer.
      const late = acquire(name, { mode: 'SHARED', owner: 'late-reader', wait_ms: 30_000 }, newClient()).then(
        async (lease) => {
          order.push('late-reader');
          await release(lease);
        },
      );
      await until('late reader queued', async () => (await describeLock(name)).waiters === 2);
      assert.deepEqual(
        (await describeLock(name)).queue.map((w) => [w.owner, w.mode]),
        [
          ['writer', 'EXCLUSIVE'],
          ['late-reader', 'SHARED'],
        ],
      );
      await release(reader);
      await Promise.all([writer, late]);
      assert.deepEqual(order, ['writer', 'writer-done', 'late-reader']);
    });

    test('Watch starts with the state and sees every grant and release in order', { skip: skip('watch') }, async () => {
      const name = fresh('watch');
      const held = await acquire(name, { owner: 'first' });
      const client = newClient();
      const stream = (
        client as unknown as {
          Watch(req: object): grpc.ClientReadableStream<{
            type: string;
            owner: string;
            fencing_token: string;
            state: LockState__Output | null;
          }>;
        }
      ).Watch({ name, backend });
      const events: { type: string; owner: string; fencing_token: string; state: LockState__Output | null }[] = [];
      stream.on('data', (event) => events.push(event));
      stream.on('error', () => {});
      await until('the STATE event', async () => events.length >= 1);
      assert.equal(events[0]!.type, 'STATE');
      assert.equal(events[0]!.state!.owner, 'first');
      const waiter = acquire(name, { owner: 'second', wait_ms: 30_000 }, newClient());
      await until('the waiter queued', async () => (await describeLock(name)).waiters === 1);
      await release(held);
      const second = await waiter;
      await release(second);
      await until('all events', async () => events.length >= 5);
      stream.cancel();
      assert.deepEqual(
        events.slice(1, 5).map((e) => [e.type, e.owner]),
        [
          ['WAITER_ADDED', 'second'],
          ['RELEASED', 'first'],
          ['ACQUIRED', 'second'],
          ['RELEASED', 'second'],
        ],
      );
      assert.equal(events[3]!.fencing_token, second.fencing_token);
    });

    test('try-once on a held lock is ABORTED and names the lock and its owner', async () => {
      const name = fresh('try-once');
      const held = await acquire(name, { owner: 'worker-a' });
      assert.equal(held.owner, 'worker-a');
      assert.equal(held.backend, backend);
      const err = await rejection(acquire(name, { owner: 'worker-b', wait_ms: 0 }));
      assert.equal(err.code, grpc.status.ABORTED);
      assert.match(err.details, new RegExp(name.replaceAll('/', '\\/')));
      assert.match(err.details, /worker-a/);
      await release(held);
    });

    test('Describe shows holder, token, expiry and waiters', async () => {
      const name = fresh('describe');
      const idle = await describeLock(name);
      assert.equal(idle.held, false);
      const held = await acquire(name, { owner: 'describer', ttl_ms: 20_000 });
      const waiting = acquire(name, { wait_ms: 20_000 }, newClient());
      await until('one waiter', async () => (await describeLock(name)).waiters === 1);
      const state = await describeLock(name);
      assert.equal(state.held, true);
      assert.equal(state.owner, 'describer');
      assert.equal(state.fencing_token, held.fencing_token);
      const expiresAt = Number(state.expires_at_ms);
      assert.ok(
        Math.abs(expiresAt - Number(held.expires_at_ms)) < 2_000,
        `expiry ${expiresAt} vs lease ${held.expires_at_ms}`,
      );
      assert.ok(expiresAt > Date.now() + 10_000);
      await release(held);
      await release(await waiting);
    });

    test('mutual exclusion under 20 concurrent clients, tokens increasing in grant order', async () => {
      const name = fresh('mutex');
      let inside = 0;
      let maxInside = 0;
      const grants: bigint[] = [];
      const worker = async (client: LocksClient) => {
        for (let round = 0; round < 3; round++) {
          const lease = await acquire(name, { wait_ms: 60_000 }, client);
          inside++;
          maxInside = Math.max(maxInside, inside);
          grants.push(BigInt(lease.fencing_token));
          await sleep(2);
          inside--;
          await release(lease, client);
        }
      };
      await Promise.all(Array.from({ length: 20 }, () => worker(newClient())));
      assert.equal(maxInside, 1, 'two holders overlapped');
      assert.equal(grants.length, 60);
      if (capabilities.fencing) {
        for (let i = 1; i < grants.length; i++)
          assert.ok(grants[i]! > grants[i - 1]!, `token ${grants[i]} after ${grants[i - 1]}`);
      }
    });

    test('waiters are granted in arrival order', { skip: skip('fifo') }, async () => {
      const name = fresh('fifo');
      const held = await acquire(name);
      const order: number[] = [];
      const waiters: Promise<void>[] = [];
      for (let i = 0; i < 5; i++) {
        const client = newClient();
        waiters.push(
          acquire(name, { wait_ms: 30_000, owner: `w${i}` }, client).then(async (lease) => {
            order.push(i);
            await release(lease, client);
          }),
        );
        await until(`waiter ${i} queued`, async () => (await describeLock(name)).waiters === i + 1);
      }
      await release(held);
      await Promise.all(waiters);
      assert.deepEqual(order, [0, 1, 2, 3, 4]);
    });

    test('a wait that runs out is ABORTED naming the holder, and leaves no waiter', async () => {
      const name = fresh('wait-timeout');
      const held = await acquire(name, { owner: 'slow-holder' });
      const started = Date.now();
      const err = await rejection(acquire(name, { wait_ms: 300 }, newClient()));
      const waited = Date.now() - started;
      assert.equal(err.code, grpc.status.ABORTED);
      assert.match(err.details, /slow-holder/);
      assert.ok(waited >= 250, `gave up after ${waited} ms, before wait_ms`);
      assert.equal((await describeLock(name)).waiters, 0);
      assert.equal((await describeLock(name)).owner, 'slow-holder');
      await release(held);
    });

    test('a wait never outlasts the call deadline, and leaves no waiter', async () => {
      const name = fresh('deadline');
      const held = await acquire(name);
      const started = Date.now();
      const err = await rejection(acquire(name, { wait_ms: 60_000 }, newClient(), { deadline: Date.now() + 400 }));
      assert.ok(
        [grpc.status.ABORTED, grpc.status.DEADLINE_EXCEEDED].includes(err.code),
        `status ${err.code}: ${err.details}`,
      );
      assert.ok(Date.now() - started < 5_000);
      await until('waiter gone', async () => (await describeLock(name)).waiters === 0);
      const state = await describeLock(name);
      assert.equal(state.fencing_token, held.fencing_token, 'the holder changed');
      await release(held);
    });

    test('a cancelled wait leaves no waiter and no orphaned grant', async () => {
      const name = fresh('cancel');
      const held = await acquire(name);
      const pending = acquire(name, { wait_ms: 60_000 }, newClient());
      await until('one waiter', async () => (await describeLock(name)).waiters === 1);
      pending.call!.cancel();
      const err = await rejection(pending);
      assert.equal(err.code, grpc.status.CANCELLED);
      await until('waiter gone', async () => (await describeLock(name)).waiters === 0);
      await release(held);
      // Had the cancelled waiter been granted the lock, this try-once would fail.
      const next = await acquire(name, { wait_ms: 0 });
      await release(next);
    });

    test('an unrefreshed lease expires and the next waiter gets the lock', { skip: skip('autoRelease') }, async () => {
      const name = fresh('ttl');
      const held = await acquire(name, { ttl_ms: shortTtlMs, owner: 'forgetful' });
      const started = Date.now();
      const next = await acquire(name, { wait_ms: shortTtlMs * 10 + 10_000 }, newClient());
      const waited = Date.now() - started;
      assert.ok(waited >= shortTtlMs * 0.8, `granted after ${waited} ms, before the ${shortTtlMs} ms TTL`);
      if (capabilities.fencing) assert.ok(BigInt(next.fencing_token) > BigInt(held.fencing_token));
      assert.equal((await rejection(refresh(held))).code, grpc.status.FAILED_PRECONDITION);
      assert.equal((await rejection(release(held))).code, grpc.status.FAILED_PRECONDITION);
      assert.equal(
        (await describeLock(name)).fencing_token,
        next.fencing_token,
        'the expired lease disturbed the new holder',
      );
      await release(next);
    });

    test('Refresh keeps the lease alive past its TTL and moves its expiry', { skip: skip('autoRelease') }, async () => {
      const name = fresh('refresh');
      const held = await acquire(name, { ttl_ms: shortTtlMs });
      let expiry = Number(held.expires_at_ms);
      const until3Ttl = Date.now() + shortTtlMs * 3;
      while (Date.now() < until3Ttl) {
        await sleep(shortTtlMs / 4);
        const refreshed = await refresh(held);
        assert.equal(refreshed.fencing_token, held.fencing_token);
        assert.ok(Number(refreshed.expires_at_ms) >= expiry);
        expiry = Number(refreshed.expires_at_ms);
      }
      assert.equal((await rejection(acquire(name, { wait_ms: 0 }))).code, grpc.status.ABORTED);
      await release(held);
    });

    test('fencing tokens strictly increase across grants', { skip: skip('fencing') }, async () => {
      const name = fresh('fencing');
      let last = 0n;
      for (let i = 0; i < 10; i++) {
        const lease = await acquire(name);
        const token = BigInt(lease.fencing_token);
        assert.ok(token > last, `token ${token} after ${last}`);
        last = token;
        await release(lease);
      }
    });

    test('release by a non-holder is refused and the holder keeps the lock', async () => {
      const name = fresh('non-holder');
      const held = await acquire(name, { owner: 'rightful' });
      const forged = { ...held, lease_id: held.lease_id.replace(/.$/, (c) => (c === '0' ? '1' : '0')) };
      const err = await rejection(release(forged));
      assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
      assert.equal((await rejection(refresh(forged))).code, grpc.status.FAILED_PRECONDITION);
      const state = await describeLock(name);
      assert.equal(state.held, true);
      assert.equal(state.owner, 'rightful');
      assert.deepEqual(await release(held), { released: true });
      assert.equal(
        (await rejection(release(held))).code,
        grpc.status.FAILED_PRECONDITION,
        'a second release must fail',
      );
    });
  });
}
