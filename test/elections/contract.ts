// The election contract: every backend that declares `elections` runs this same suite
// through a real latchkey server over real gRPC (latchkey.v1.Elections), and a backend that
// does not is checked to refuse every Elections RPC naming the capability.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { ElectionsClient, LeaderState__Output, Leadership__Output } from '../../client/common/index.js';
import type { Capabilities } from '../../src/locks/backend.js';
import { rejection } from '../support/assertions.js';
import type { TestServer } from '../support/server.js';
import { SessionStream } from '../support/session-stream.js';

export interface ElectionContractTarget {
  /** The backend name sent in requests. */
  readonly backend: string;
  readonly capabilities: Capabilities;
  /** A session TTL the backend honours precisely enough to test expiry (its TTL granularity). */
  readonly shortTtlMs: number;
  /** Starts a server with the backend enabled; disposed after the suite. */
  start(): Promise<TestServer>;
}

type Pending<T> = Promise<T> & { readonly call: grpc.ClientUnaryCall };

function unary<Res>(
  client: grpc.Client,
  method: string,
  request: object,
  options: grpc.CallOptions = {},
): Pending<Res> {
  let call!: grpc.ClientUnaryCall;
  const promise = new Promise<Res>((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!;
    call = fn.call(client, request, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
  promise.catch(() => {});
  return Object.assign(promise, { call });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until check() is true, failing after timeoutMs. */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Resolves as `promise` does, or fails the test after timeoutMs (a candidate that never leads). */
async function within<T>(promise: Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An Observe stream's messages as they arrive. */
class Observer {
  readonly seen: LeaderState__Output[] = [];
  readonly #call: grpc.ClientReadableStream<LeaderState__Output>;
  ended = false;
  constructor(client: ElectionsClient, name: string, backend: string) {
    this.#call = client.Observe({ name, backend });
    this.#call.on('data', (leader: LeaderState__Output) => this.seen.push(leader));
    this.#call.on('error', () => {});
    this.#call.on('end', () => (this.ended = true));
    this.#call.on('status', () => (this.ended = true));
  }
  /** Waits until `count` messages have come, and returns them. */
  async first(count: number): Promise<LeaderState__Output[]> {
    await until(`${count} Observe messages (have ${this.seen.length})`, () => this.seen.length >= count);
    return this.seen.slice(0, count);
  }
  cancel(): void {
    this.#call.cancel();
  }
}

export function electionContract(target: ElectionContractTarget): void {
  const { backend, capabilities, shortTtlMs } = target;
  if (!capabilities.elections) {
    refusalSuite(target);
    return;
  }

  describe(`election contract: ${backend}`, () => {
    let server: TestServer;
    let elections: ElectionsClient;
    let seq = 0;
    /** A fresh election name per test, so tests never see each other's state. */
    const fresh = (label: string) => `contract/${backend}/${label}/${process.pid}-${Date.now()}-${seq++}`;
    const observers: Observer[] = [];

    const campaign = (name: string, value: string, fields: object = {}, options?: grpc.CallOptions) =>
      unary<Leadership__Output>(elections, 'Campaign', { name, backend, value, ttl_ms: 10_000, ...fields }, options);
    const leader = (name: string) => unary<LeaderState__Output>(elections, 'Leader', { name, backend });
    const resign = (leadership: Leadership__Output) =>
      unary<{ resigned: boolean }>(elections, 'Resign', { leadership });
    const proclaim = (leadership: Leadership__Output, value: string) =>
      unary<Leadership__Output>(elections, 'Proclaim', { leadership, value });
    const keepAlive = (leadership: Leadership__Output) =>
      unary<Leadership__Output>(elections, 'KeepAlive', { leadership });
    const observe = (name: string) => {
      const observer = new Observer(elections, name, backend);
      observers.push(observer);
      return observer;
    };
    /** Waits until the election has `n` candidates (so the next campaign queues behind them). */
    const candidates = (name: string, n: number) =>
      until(`${n} candidates for ${name}`, async () => (await leader(name)).candidates === n);

    before(async () => {
      server = await target.start();
      elections = server.elections;
    });
    after(async () => {
      for (const observer of observers) observer.cancel();
      await server[Symbol.asyncDispose]();
    });

    test('an election nobody campaigns for has no leader', async () => {
      const state = await leader(fresh('empty'));
      assert.equal(state.elected, false);
      assert.equal(state.value, '');
      assert.equal(state.fencing_token, '0');
      assert.equal(state.candidates, 0);
    });

    test('a lone candidate leads at once, with a fencing token, its value and a session of its own', async () => {
      const name = fresh('lone');
      const won = await campaign(name, 'node-a:8080');
      assert.equal(won.name, name);
      assert.equal(won.backend, backend);
      assert.equal(won.value, 'node-a:8080');
      assert.ok(BigInt(won.fencing_token) > 0n);
      assert.match(won.session_id, new RegExp(`^${backend}\\.`));
      assert.ok(Number(won.ttl_ms) >= 10_000);
      assert.ok(Number(won.expires_at_ms) > Date.now());
      const state = await leader(name);
      assert.deepEqual(
        { elected: state.elected, value: state.value, token: state.fencing_token, candidates: state.candidates },
        { elected: true, value: 'node-a:8080', token: won.fencing_token, candidates: 1 },
      );
      assert.deepEqual(await resign(won), { resigned: true });
      assert.equal((await leader(name)).elected, false);
    });

    test('one leader at a time among 10 candidates; each resign hands over in FIFO order with a higher token', async () => {
      const name = fresh('fifo');
      const won: (Leadership__Output | undefined)[] = [];
      const campaigns: Pending<Leadership__Output>[] = [];
      for (let i = 0; i < 10; i++) {
        const pending = campaign(name, `candidate-${i}`);
        void pending.then((l) => (won[i] = l)).catch(() => {});
        campaigns.push(pending);
        await candidates(name, i + 1);
      }
      let previous = 0n;
      for (let i = 0; i < 10; i++) {
        const current = await within(campaigns[i]!, `candidate ${i} to lead`);
        assert.equal(current.value, `candidate-${i}`);
        assert.ok(BigInt(current.fencing_token) > previous, 'a new leader gets a higher token');
        previous = BigInt(current.fencing_token);
        const state = await leader(name);
        assert.equal(state.value, `candidate-${i}`);
        assert.equal(state.candidates, 10 - i);
        // Nobody after it has been told it leads.
        assert.deepEqual(
          won.map((l, j) => (l === undefined ? -1 : j)).filter((j) => j > i),
          [],
          `only candidate ${i} leads`,
        );
        await resign(current);
      }
      assert.equal((await leader(name)).elected, false);
    });

    test('observers see the current leader, each proclaimed value and each change, in order', async () => {
      const name = fresh('observe');
      const a = await campaign(name, 'a-0');
      const observer = observe(name);
      await observer.first(1);
      const b = campaign(name, 'b-0');
      await candidates(name, 2);
      for (const value of ['a-1', 'a-2', 'a-3']) {
        const proclaimed = await proclaim(a, value);
        assert.equal(proclaimed.value, value);
        assert.equal(proclaimed.fencing_token, a.fencing_token, 'proclaiming keeps the token');
      }
      await resign(a);
      const bLeads = await within(b, 'b to lead');
      await resign(bLeads);
      const seen = (await observer.first(6)).map((l) => [l.elected, l.value, l.fencing_token]);
      assert.deepEqual(seen, [
        [true, 'a-0', a.fencing_token],
        [true, 'a-1', a.fencing_token],
        [true, 'a-2', a.fencing_token],
        [true, 'a-3', a.fencing_token],
        [true, 'b-0', bLeads.fencing_token],
        [false, '', '0'],
      ]);
      assert.ok(BigInt(bLeads.fencing_token) > BigInt(a.fencing_token));
    });

    test('Proclaim, KeepAlive and Resign of a leadership that is not the current one: FAILED_PRECONDITION, nothing changed', async () => {
      const name = fresh('stale');
      const a = await campaign(name, 'a');
      await resign(a);
      const b = await campaign(name, 'b');
      for (const [what, call] of [
        ['Proclaim', () => proclaim(a, 'a-again')],
        ['KeepAlive', () => keepAlive(a)],
        ['Resign', () => resign(a)],
        [
          'Proclaim with a wrong token',
          () => proclaim({ ...b, fencing_token: String(BigInt(b.fencing_token) + 1n) }, 'x'),
        ],
      ] as const) {
        const err = await rejection(call());
        assert.equal(err.code, grpc.status.FAILED_PRECONDITION, what);
        assert.equal(err.metadata.get('latchkey-error')[0], 'NotLeaderError', what);
        assert.match(err.details, new RegExp(`election "${name}"`), what);
      }
      const state = await leader(name);
      assert.deepEqual([state.value, state.fencing_token], ['b', b.fencing_token]);
      await resign(b);
    });

    test('KeepAlive keeps a leader past its TTL; without it the leadership expires, and only then does the next lead', async () => {
      const name = fresh('expiry');
      const a = await campaign(name, 'a', { ttl_ms: shortTtlMs });
      const ttlMs = Number(a.ttl_ms);
      let bLeadsAt = 0;
      const b = campaign(name, 'b');
      void b.then(() => (bLeadsAt = Date.now()));
      await candidates(name, 2);
      let last = a;
      const keepUntil = Date.now() + 2.5 * ttlMs;
      while (Date.now() < keepUntil) {
        await sleep(ttlMs / 4);
        last = await keepAlive(last);
      }
      assert.equal(bLeadsAt, 0, 'the next candidate does not lead while the leader is kept alive');
      assert.equal((await leader(name)).value, 'a');
      const bLeads = await within(b, 'b to lead once a expired');
      // Never two leaders whose sessions are both valid: the next led only once the
      // leader's session could have expired (expires_at_ms is its earliest expiry).
      assert.ok(
        bLeadsAt >= Number(last.expires_at_ms),
        `b led at ${bLeadsAt}, before a's session expired at ${last.expires_at_ms}`,
      );
      assert.ok(BigInt(bLeads.fencing_token) > BigInt(a.fencing_token));
      const err = await rejection(keepAlive(last));
      assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
      await resign(bLeads);
    });

    test('a cancelled campaign is withdrawn and never leads', async () => {
      const name = fresh('cancel');
      const a = await campaign(name, 'a');
      const c = campaign(name, 'c');
      await candidates(name, 2);
      c.call.cancel();
      assert.equal((await rejection(c)).code, grpc.status.CANCELLED);
      await candidates(name, 1);
      await resign(a);
      assert.equal((await leader(name)).elected, false);
    });

    test('a campaign still waiting when wait_ms runs out, or near its deadline, answers ABORTED naming the leader', async () => {
      const name = fresh('deadline');
      const a = await campaign(name, 'the-leader');
      const err = await rejection(campaign(name, 'b', {}, { deadline: Date.now() + 700 }));
      assert.equal(err.code, grpc.status.ABORTED);
      assert.equal(err.metadata.get('latchkey-error')[0], 'NotElectedError');
      assert.match(err.details, /"the-leader"/);
      const waited = await rejection(campaign(name, 'c', { wait_ms: 200 }));
      assert.equal(waited.code, grpc.status.ABORTED);
      assert.match(waited.details, /within wait_ms \(200 ms\): it is led by "the-leader"/);
      await candidates(name, 1);
      await resign(a);
    });

    test('a leadership fences cache writes: a deposed leader is refused once the next leader has written', async () => {
      const name = fresh('fence');
      const key = `${name}/config`;
      const cache = server.cache;
      const set = (value: string, fence: object) =>
        unary<object>(cache, 'Set', { key, value: Buffer.from(value), fence: { backend, ...fence } });
      const a = await campaign(name, 'a');
      await set('from-a', { election: name, token: a.fencing_token });
      await resign(a);
      const b = await campaign(name, 'b');
      await set('from-b', { election: name, token: b.fencing_token });
      const late = await rejection(set('late-a', { election: name, token: a.fencing_token }));
      assert.equal(late.code, grpc.status.FAILED_PRECONDITION);
      assert.equal(late.metadata.get('latchkey-error')[0], 'FencedOutError');
      assert.match(late.details, new RegExp(`election "${name}"`));
      // A lock of the same name is another fence.
      const other = await rejection(set('by-lock', { lock: name, token: '999999999' }));
      assert.equal(other.code, grpc.status.FAILED_PRECONDITION);
      assert.match(other.details, /fenced by election/);
      const got = await unary<{ found: boolean; value: Buffer }>(cache, 'Get', { key });
      assert.equal(got.value.toString(), 'from-b');
      await resign(b);
    });

    test('bad requests are INVALID_ARGUMENT naming the field', async () => {
      const name = fresh('bad');
      const cases: [string, () => Promise<unknown>, RegExp][] = [
        ['no name', () => campaign('', 'v'), /^name is required/],
        ['a name with a space', () => campaign('a b', 'v'), /^name contains/],
        ['value too long', () => campaign(name, 'x'.repeat(65_537)), /^value is 65537 bytes/],
        [
          'session_id and ttl_ms',
          () => campaign(name, 'v', { session_id: `${backend}.x`, ttl_ms: 1000 }),
          /ttl_ms must be 0/,
        ],
        ['ttl_ms too small', () => campaign(name, 'v', { ttl_ms: 1 }), /^ttl_ms must be between/],
        [
          'wait_ms too large',
          () => campaign(name, 'v', { wait_ms: '18446744073709551615' }),
          /^wait_ms must be between/,
        ],
        ['no leadership', () => unary(elections, 'Resign', {}), /^leadership is required/],
        [
          'no token',
          () => unary(elections, 'Proclaim', { leadership: { name, session_id: `${backend}.x` } }),
          /fencing_token is required/,
        ],
        [
          'unknown backend',
          () => unary(elections, 'Leader', { name, backend: 'nope' }),
          /backend "nope" is not enabled/,
        ],
      ];
      for (const [what, call, message] of cases) {
        const err = await rejection(call());
        assert.equal(err.code, grpc.status.INVALID_ARGUMENT, what);
        assert.match(err.details, message, what);
      }
      // Nothing was left campaigning by a refused request.
      assert.equal((await leader(name)).candidates, 0);
    });

    test('a campaign in a lock session lives with it: once per name, and ending the session resigns', {
      skip: capabilities.sessions ? false : `backend "${backend}" does not declare sessions`,
    }, async () => {
      const name = fresh('session');
      const stream = await SessionStream.open(server.locks, { backend, ttl_ms: 10_000 });
      const sessionId = stream.opened.session_id;
      try {
        const won = await campaign(name, 'in-session', { session_id: sessionId, ttl_ms: 0 });
        assert.equal(won.session_id, sessionId);
        assert.equal(won.ttl_ms, stream.opened.ttl_ms);
        const again = await rejection(campaign(name, 'twice', { session_id: sessionId, ttl_ms: 0 }));
        assert.equal(again.code, grpc.status.FAILED_PRECONDITION);
        assert.match(again.details, /already campaigns/);
        // The session's own keepalive renews the leadership.
        await stream.op({ keepalive: {} });
        const b = campaign(name, 'b');
        await candidates(name, 2);
        await stream.close();
        const bLeads = await within(b, 'b to lead once the session ended');
        assert.ok(BigInt(bLeads.fencing_token) > BigInt(won.fencing_token));
        assert.equal((await rejection(proclaim(won, 'after-end'))).code, grpc.status.FAILED_PRECONDITION);
        await resign(bLeads);
      } finally {
        await stream.close();
      }
      const gone = await rejection(campaign(name, 'late', { session_id: sessionId, ttl_ms: 0 }));
      assert.equal(gone.code, grpc.status.FAILED_PRECONDITION);
    });
  });
}

/** A backend without elections refuses every Elections RPC, naming the capability. */
function refusalSuite(target: ElectionContractTarget): void {
  describe(`election contract: ${target.backend} (elections not declared)`, () => {
    let server: TestServer;
    before(async () => {
      server = await target.start();
    });
    after(async () => {
      await server[Symbol.asyncDispose]();
    });
    test('Campaign, Leader and Observe are refused with FAILED_PRECONDITION naming the capability', async () => {
      const { backend } = target;
      const name = `contract/${backend}/refused`;
      const observed = new Promise<grpc.StatusObject>((resolve) => {
        const call = server.elections.Observe({ name, backend });
        call.on('error', () => {});
        call.on('status', resolve);
      });
      for (const err of [
        await rejection(unary(server.elections, 'Campaign', { name, backend, value: 'v' })),
        await rejection(unary(server.elections, 'Leader', { name, backend })),
        await observed,
      ]) {
        assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
        assert.match(err.details, /does not support leader election \(capability elections\); use memory/);
      }
    });
  });
}
