// Fuzzing every RPC of Locks and Cache with fast-check: random and malformed requests as raw
// bytes through a generic grpc-js client (so invalid UTF-8, wrong wire types, truncated
// messages and unknown fields reach the server as sent), in concurrent batches. After each
// batch: every answer carried a status this RPC documents, the server logged no internal
// error, and a valid call of the same RPC still succeeds.
//
// Requests come from test/support/fuzz-requests.ts, built from the .proto's own field lists.
// The run is seeded: the seed is printed, and LATCHKEY_FUZZ_SEED=<n> replays it (or, with
// another number, explores other inputs). A failure names the batch and the request it
// failed on, as bytes and as the plan they were made from.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import type { Lease__Output as Lease } from '../../client/generated/latchkey/v1/Lease.js';
import type { PipelineResult__Output as PipelineResult } from '../../client/generated/latchkey/v1/PipelineResult.js';
import type { SessionResponse__Output as SessionResponse } from '../../client/generated/latchkey/v1/SessionResponse.js';
import type { Config } from '../../src/config.js';
import {
  encode,
  RequestArbitraries,
  type Encoded,
  type Limits,
  type Pools,
  type RequestPlan,
} from '../support/fuzz-requests.js';
import { bytesField, decodeAs, latchkeyRoot, methodsOf, type MethodInfo } from '../support/protowire.js';
import { startServer, type TestServer } from '../support/server.js';

const DEFAULT_SEED = 0x1a7c4e7;
const SEED = process.env.LATCHKEY_FUZZ_SEED === undefined ? DEFAULT_SEED : Number(process.env.LATCHKEY_FUZZ_SEED);
if (!Number.isSafeInteger(SEED))
  throw new TypeError(`LATCHKEY_FUZZ_SEED must be an integer, got "${process.env.LATCHKEY_FUZZ_SEED}"`);
/** Batches per RPC, and requests (unary) or streams (Pipeline) per batch: 1000 requests per unary RPC. */
const RUNS = 40;
const BATCH = 25;
const STREAMS_PER_BATCH = 10;
/** A call the server does not answer in this time hangs: a failure, not a wait. */
const CALL_TIMEOUT_MS = 10_000;

const S = grpc.status;

/**
 * Small limits, so requests land on both sides of each: waits of at most 30 ms (a fuzzed
 * Acquire on a held lock does not stall the run), batches of 20, values of 1 KiB, messages
 * of 128 KiB, 4 waiters per lock.
 */
const CONFIG = {
  defaultTtlMs: 1_000,
  maxTtlMs: 60_000,
  maxWaitMs: 30,
  maxValueBytes: 1_024,
  maxBatch: 20,
  maxWaitersPerLock: 4,
  maxWaiters: 40,
  maxMessageBytes: 128 * 1024,
} satisfies Partial<Config>;

const LIMITS: Limits = { ...CONFIG, backends: ['memory', 'file'], stores: ['lru'] };

/** What a cache write may fail with besides a bad field: its fence (FencedOutError), or a fenced write that kept losing races. */
const CACHE_WRITE = [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION, S.ABORTED];

/**
 * The statuses each RPC may answer, besides OK. Every RPC may also answer INTERNAL with
 * grpc-js's own "Error deserializing request" for bytes that are not a valid request (and
 * only for those), and RESOURCE_EXHAUSTED for a message over --max-message-bytes.
 */
const ALLOWED: Readonly<Record<string, readonly grpc.status[]>> = {
  // ABORTED: held, not granted within wait_ms. RESOURCE_EXHAUSTED: --max-waiters(-per-lock).
  // FAILED_PRECONDITION: a semaphore limit or mode at odds with the lock's holders.
  'Locks/Acquire': [S.INVALID_ARGUMENT, S.ABORTED, S.RESOURCE_EXHAUSTED, S.FAILED_PRECONDITION],
  // FAILED_PRECONDITION: the lease does not hold the lock (never did, expired, released).
  'Locks/Refresh': [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
  'Locks/Release': [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
  'Locks/Describe': [S.INVALID_ARGUMENT],
  // A server stream: its first event (the STATE), or one of these. FAILED_PRECONDITION: a
  // backend without the watch capability.
  'Locks/Watch': [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
  'Cache/Get': [S.INVALID_ARGUMENT],
  'Cache/Set': CACHE_WRITE,
  'Cache/Cas': CACHE_WRITE,
  'Cache/Add': CACHE_WRITE,
  'Cache/Delete': CACHE_WRITE,
  // FAILED_PRECONDITION: the value is not a decimal number below 2^64.
  'Cache/Incr': [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
  'Cache/Touch': [S.INVALID_ARGUMENT],
  // RESOURCE_EXHAUSTED: more keys than --max-batch. A bad key fails only its own result.
  'Cache/GetMany': [S.INVALID_ARGUMENT, S.RESOURCE_EXHAUSTED],
  'Cache/SetMany': [S.INVALID_ARGUMENT, S.RESOURCE_EXHAUSTED],
  // The stream itself: OK once the client ends it. Its operations: see PIPELINE_OP_ERRORS.
  'Cache/Pipeline': [],
  // The stream: OK after end or a half-close; INVALID_ARGUMENT: a first request without
  // open, a second open, bad open fields; FAILED_PRECONDITION: a resume_id that names no
  // live session, or the session expired (fuzzed TTLs go down to 10 ms). Its ops: see
  // SESSION_OP_ERRORS.
  'Locks/Session': [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
};

/** What one entry of a GetMany/SetMany result may fail with: only its own bad key or value. */
const BATCH_ENTRY_ERRORS: readonly number[] = [S.INVALID_ARGUMENT];

/** What a pipelined operation may fail with: what its unary RPC may, and RESOURCE_EXHAUSTED for a frame over --max-batch. */
const PIPELINE_OP_ERRORS: Readonly<Record<string, readonly number[]>> = {
  get: ALLOWED['Cache/Get']!,
  set: CACHE_WRITE,
  cas: CACHE_WRITE,
  add: CACHE_WRITE,
  delete: CACHE_WRITE,
  incr: ALLOWED['Cache/Incr']!,
  touch: ALLOWED['Cache/Touch']!,
  // An operation with none set.
  none: [S.INVALID_ARGUMENT],
};

/**
 * What a session op may fail with: what its unary RPC may, FAILED_PRECONDITION (the session
 * expired), CANCELLED (withdrawn by end, a half-close or a cancel op) and, for any op sent
 * after the stream stopped, the reason it stopped (INVALID_ARGUMENT, FAILED_PRECONDITION,
 * CANCELLED), and RESOURCE_EXHAUSTED for a frame over --max-batch.
 */
const SESSION_STOPPED = [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION, S.CANCELLED, S.RESOURCE_EXHAUSTED];
const SESSION_OP_ERRORS: Readonly<Record<string, readonly number[]>> = {
  acquire: [...ALLOWED['Locks/Acquire']!, ...SESSION_STOPPED],
  release: [...ALLOWED['Locks/Release']!, ...SESSION_STOPPED],
  describe: [...ALLOWED['Locks/Describe']!, ...SESSION_STOPPED],
  keepalive: SESSION_STOPPED,
  none: SESSION_STOPPED,
};

const DESERIALIZING = /^Error deserializing request/;
const TOO_LARGE = /^Received message larger than max/;

type Tally = Map<string, number>;

interface Outcome {
  readonly code: grpc.status;
  readonly details: string;
  readonly response?: Buffer;
}

/**
 * Runs a property without shrinking: batches share server state, so a smaller batch is not a
 * replay of a smaller input, and the assertion that fails already names the request it
 * failed on. The error says how to replay the run.
 */
async function checkProperty<T>(property: fc.IAsyncPropertyWithHooks<[T]>, seed: number): Promise<void> {
  const details = await fc.check(property, { seed, numRuns: RUNS, endOnFailure: true });
  if (!details.failed) return;
  const cause =
    details.errorInstance instanceof Error ? details.errorInstance : new Error(String(details.errorInstance));
  throw new Error(
    `failed in batch ${details.numRuns} of seed ${SEED} (LATCHKEY_FUZZ_SEED=${SEED} replays it): ${cause.message}`,
    { cause },
  );
}

const identity = (b: Buffer) => b;
const codeName = (code: number) => S[code] ?? String(code);
const bump = (tally: Tally, key: string, by = 1) => tally.set(key, (tally.get(key) ?? 0) + by);
const printTally = (tally: Tally) =>
  [...tally]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
const printPlan = (plan: RequestPlan) =>
  JSON.stringify(plan, (_k, v: unknown) =>
    typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  ).slice(0, 600);

describe(`fuzz: random and malformed requests to every RPC (seed ${SEED}; LATCHKEY_FUZZ_SEED=${SEED} replays it)`, () => {
  let s: TestServer;
  let raw: grpc.Client;
  let lockDir: string;
  const logs: string[] = [];
  const arbs = new RequestArbitraries(LIMITS);
  const pools: Pools & { leaseIds: string[]; tokens: bigint[] } = { leaseIds: [], tokens: [], nextTag: 1n };
  const root = latchkeyRoot();
  const leaseType = root.lookupType('latchkey.v1.Lease');
  const pipelineOpType = root.lookupType('latchkey.v1.PipelineOp');
  const pipelineResponseType = root.lookupType('latchkey.v1.PipelineResponse');
  const sessionRequestType = root.lookupType('latchkey.v1.SessionRequest');
  const sessionOpType = root.lookupType('latchkey.v1.SessionOp');
  const sessionResponseType = root.lookupType('latchkey.v1.SessionResponse');
  /** Per RPC: requests sent, and how they were answered. */
  const sent = new Map<string, number>();
  const codes = new Map<string, Tally>();
  const kinds = new Map<string, Tally>();
  let probeCount = 0;

  before(async () => {
    lockDir = await mkdtemp(join(tmpdir(), 'latchkey-fuzz-'));
    s = await startServer({ ...CONFIG, lockDir }, { log: (line) => logs.push(line) });
    raw = new grpc.Client(s.address, grpc.credentials.createInsecure());
  });

  after(async () => {
    raw?.close();
    await s?.[Symbol.asyncDispose]();
    if (lockDir !== undefined) await rm(lockDir, { recursive: true, force: true });
    assertNoInternalErrors();
  });

  function assertNoInternalErrors(): void {
    const internal = logs.filter((l) => l.startsWith('internal error'));
    assert.deepEqual(internal, [], `the server logged internal errors:\n${internal.join('\n')}`);
  }

  const deadline = () => ({ deadline: Date.now() + CALL_TIMEOUT_MS });

  function rawUnary(path: string, bytes: Buffer): Promise<Outcome> {
    return new Promise((resolve) => {
      raw.makeUnaryRequest(path, identity, identity, bytes, new grpc.Metadata(), deadline(), (err, response) => {
        resolve(err ? { code: err.code, details: err.details } : { code: S.OK, details: '', response: response! });
      });
    });
  }

  /**
   * A server stream's first message (OK) or its status, then the stream is cancelled. A
   * stream that says nothing within the call timeout has hung: DEADLINE_EXCEEDED.
   */
  function firstMessage(path: string, bytes: Buffer): Promise<Outcome> {
    return new Promise((resolve) => {
      const call = raw.makeServerStreamRequest(path, identity, identity, bytes, new grpc.Metadata(), deadline());
      let settled = false;
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        resolve(outcome);
        call.cancel();
      };
      call.on('data', (response: Buffer) => settle({ code: S.OK, details: '', response }));
      call.on('status', (status: grpc.StatusObject) => settle({ code: status.code, details: status.details }));
      call.on('error', () => {});
    });
  }

  const methodInfo = (service: string, name: string) => methodsOf(service).find((m) => m.name === name)!;

  /** The valid call that must succeed after each batch, per RPC. */
  async function probe(rpc: string): Promise<void> {
    const n = ++probeCount;
    const name = `probe-${n}`;
    const locks = (method: string, request: object) =>
      s.call<Record<string, unknown>>(s.locks, method, request, deadline());
    const cache = (method: string, request: object) =>
      s.call<Record<string, unknown>>(s.cache, method, request, deadline());
    switch (rpc) {
      case 'Locks/Acquire':
      case 'Locks/Refresh':
      case 'Locks/Release': {
        const lease = (await locks('Acquire', { name, ttl_ms: 5_000 })) as unknown as Lease;
        if (rpc === 'Locks/Refresh')
          assert.equal(
            ((await locks('Refresh', { name, lease_id: lease.lease_id })) as unknown as Lease).fencing_token,
            lease.fencing_token,
          );
        assert.deepEqual(await locks('Release', { name, lease_id: lease.lease_id }), { released: true });
        return;
      }
      case 'Locks/Describe':
        assert.equal((await locks('Describe', { name })).held, false);
        return;
      case 'Locks/Watch': {
        const first = await firstMessage(methodInfo('Locks', 'Watch').path, bytesField(1, Buffer.from(name)));
        assert.equal(first.code, S.OK, first.details);
        assert.equal(
          decodeAs<{ type: string }>(methodInfo('Locks', 'Watch').responseType, first.response!).type,
          'STATE',
        );
        return;
      }
      case 'Cache/Get':
      case 'Cache/Set':
        await cache('Set', { key: name, value: Buffer.from('v') });
        assert.equal((await cache('Get', { key: name })).value?.toString(), 'v');
        return;
      case 'Cache/Cas': {
        const { cas } = await cache('Set', { key: name, value: Buffer.from('v') });
        assert.equal((await cache('Cas', { key: name, value: Buffer.from('w'), cas })).outcome, 'STORED');
        return;
      }
      case 'Cache/Add':
        assert.equal((await cache('Add', { key: name, value: Buffer.from('v') })).outcome, 'STORED');
        return;
      case 'Cache/Delete':
        await cache('Set', { key: name, value: Buffer.from('v') });
        assert.equal((await cache('Delete', { key: name })).outcome, 'DELETED');
        return;
      case 'Cache/Incr':
        assert.equal((await cache('Incr', { key: name, delta: '1', initial: '5' })).value, '5');
        assert.equal((await cache('Incr', { key: name, delta: '-2' })).value, '3');
        return;
      case 'Cache/Touch':
        await cache('Set', { key: name, value: Buffer.from('v') });
        assert.equal((await cache('Touch', { key: name, ttl_ms: 60_000 })).outcome, 'TOUCHED');
        return;
      case 'Cache/GetMany':
      case 'Cache/SetMany': {
        const keys = [`${name}-a`, `${name}-b`];
        const set = (await cache('SetMany', { items: keys.map((key) => ({ key, value: Buffer.from(key) })) })) as {
          results: { error: unknown }[];
        };
        assert.ok(
          set.results.every((r) => r.error === null),
          JSON.stringify(set),
        );
        const got = (await cache('GetMany', { keys })) as { results: { found: boolean; value: Buffer }[] };
        assert.deepEqual(
          got.results.map((r) => r.found && r.value.toString()),
          keys,
        );
        return;
      }
      case 'Cache/Pipeline': {
        const stream = s.cache.Pipeline(deadline());
        const results: PipelineResult[] = [];
        const ended = new Promise<grpc.StatusObject>((resolve) => {
          stream.on('data', (m: { results: PipelineResult[] }) => results.push(...m.results));
          stream.on('status', resolve);
          stream.on('error', () => {});
        });
        stream.write({ ops: [{ tag: '1', set: { key: name, value: Buffer.from('v') } }] });
        stream.write({ ops: [{ tag: '2', incr: { key: `${name}-n`, delta: '1', initial: '7' } }] });
        stream.end();
        assert.equal((await ended).code, S.OK);
        assert.deepEqual(results.map((r) => r.result).sort(), ['incr', 'set']);
        return;
      }
      case 'Locks/Session': {
        const stream = s.locks.Session(deadline());
        const results: { tag: string; result?: string }[] = [];
        let opened = false;
        const ended = new Promise<grpc.StatusObject>((resolve) => {
          stream.on('data', (m: SessionResponse) => {
            opened ||= m.opened !== null;
            results.push(...m.results);
          });
          stream.on('status', resolve);
          stream.on('error', () => {});
        });
        stream.write({ open: { ttl_ms: 5_000 }, ops: [{ tag: '1', acquire: { name } }] });
        stream.write({
          ops: [
            { tag: '2', describe: { name } },
            { tag: '3', keepalive: {} },
          ],
        });
        stream.write({ end: true });
        stream.end();
        assert.equal((await ended).code, S.OK);
        assert.ok(opened);
        assert.deepEqual(results.map((r) => r.result).sort(), ['kept_alive', 'lease', 'state']);
        assert.equal((await locks('Describe', { name })).held, false, 'end released the lock');
        return;
      }
      default:
        throw new Error(`no probe for ${rpc}`);
    }
  }

  /** Checks one unary answer against what its RPC may answer; tallies it. */
  function check(rpc: string, plan: RequestPlan, bytes: Buffer, outcome: Outcome): void {
    const context = `${rpc} answered ${codeName(outcome.code)} (${outcome.details}) to ${bytes.length} bytes [${bytes.subarray(0, 64).toString('hex')}${bytes.length > 64 ? '…' : ''}]\nplan: ${printPlan(plan)}`;
    let label = codeName(outcome.code);
    if (outcome.code === S.INTERNAL) {
      assert.match(outcome.details, DESERIALIZING, `INTERNAL that is not grpc-js's deserialization error: ${context}`);
      assert.ok(!plan.wellFormed, `a well-formed request was refused as undecodable: ${context}`);
      label = 'INTERNAL (undecodable)';
    } else if (outcome.code === S.RESOURCE_EXHAUSTED && TOO_LARGE.test(outcome.details)) {
      assert.ok(bytes.length > CONFIG.maxMessageBytes, context);
      label = 'RESOURCE_EXHAUSTED (message size)';
    } else if (outcome.code !== S.OK) {
      assert.ok(ALLOWED[rpc]!.includes(outcome.code), `not a status ${rpc} may answer: ${context}`);
    }
    if (bytes.length > CONFIG.maxMessageBytes) assert.equal(label, 'RESOURCE_EXHAUSTED (message size)', context);
    bump(codes.get(rpc)!, label);
    bump(kinds.get(rpc)!, plan.kind);

    if (outcome.code !== S.OK) return;
    if (rpc === 'Locks/Watch') {
      const event = decodeAs<{ type: string }>(methodInfo('Locks', 'Watch').responseType, outcome.response!);
      assert.equal(event.type, 'STATE', `a Watch began with ${event.type}: ${context}`);
    }
    if (rpc === 'Locks/Acquire') {
      // Granted leases feed later Refresh, Release and fences.
      const lease = decodeAs<Lease>(leaseType, outcome.response!);
      pools.leaseIds.push(lease.lease_id);
      pools.tokens.push(BigInt(lease.fencing_token));
      if (pools.leaseIds.length > 200) pools.leaseIds.shift(), pools.tokens.shift();
    }
    if (rpc === 'Cache/GetMany' || rpc === 'Cache/SetMany') {
      const method = rpc === 'Cache/GetMany' ? 'GetMany' : 'SetMany';
      const type = methodsOf('Cache').find((m) => m.name === method)!.responseType;
      const { results } = decodeAs<{ results: { error: { code: number; message: string } | null }[] }>(
        type,
        outcome.response!,
      );
      if (plan.wellFormed && plan.kind !== 'empty') {
        // One result per key or item, in order: count the entries of field 2 that were sent.
        const entries = plan.fields.filter((f) => f.field === 2).length;
        assert.equal(results.length, entries, `${context}\n${results.length} results for ${entries} entries`);
      }
      for (const r of results) {
        if (r.error !== null)
          assert.ok(
            BATCH_ENTRY_ERRORS.includes(r.error.code),
            `an entry failed with ${codeName(r.error.code)} (${r.error.message}): ${context}`,
          );
      }
    }
  }

  function fuzzUnary(method: MethodInfo, index: number) {
    const rpc = `${method.service}/${method.name}`;
    return async () => {
      sent.set(rpc, 0);
      codes.set(rpc, new Map());
      kinds.set(rpc, new Map());
      const property = fc.asyncProperty(
        fc.array(arbs.request(method.requestType), { minLength: BATCH, maxLength: BATCH }),
        async (plans) => {
          const encoded = plans.map((plan) => encode(plan, pools).bytes);
          const send = method.responseStream ? firstMessage : rawUnary;
          const outcomes = await Promise.all(encoded.map((bytes) => send(method.path, bytes)));
          sent.set(rpc, sent.get(rpc)! + plans.length);
          plans.forEach((plan, i) => check(rpc, plan, encoded[i]!, outcomes[i]!));
          assertNoInternalErrors();
          await probe(rpc);
        },
      );
      await checkProperty(property, SEED + index);
    };
  }

  /** One Pipeline stream: writes the frames, ends its side, and checks every answer. */
  async function pipelineStream(
    path: string,
    plans: readonly RequestPlan[],
  ): Promise<{ frames: number; ops: number; status: grpc.StatusObject; opCodes: Tally }> {
    const frames: Encoded[] = plans.map((plan) => encode(plan, pools, pipelineOpType));
    const call = raw.makeBidiStreamRequest(path, identity, identity, new grpc.Metadata(), deadline());
    const results: PipelineResult[] = [];
    let undecodableReply: unknown;
    const status = new Promise<grpc.StatusObject>((resolve) => {
      call.on('data', (bytes: Buffer) => {
        try {
          results.push(...decodeAs<{ results: PipelineResult[] }>(pipelineResponseType, bytes).results);
        } catch (err) {
          undecodableReply = err;
        }
      });
      call.on('status', resolve);
      // A refused stream also emits 'error'; 'status' carries the same.
      call.on('error', () => {});
    });
    for (const frame of frames) call.write(frame.bytes);
    call.end();
    const end = await status;

    const allWellFormed = plans.every((p) => p.wellFormed);
    const oversized = frames.some((f) => f.bytes.length > CONFIG.maxMessageBytes);
    const context = `Pipeline stream ended ${codeName(end.code)} (${end.details}) after ${frames.length} frames\nplans: ${plans.map(printPlan).join('\n')}`;
    assert.equal(undecodableReply, undefined, `a reply frame did not decode: ${context}`);
    if (end.code === S.INTERNAL) {
      assert.match(end.details, DESERIALIZING, context);
      assert.ok(!allWellFormed, `well-formed frames were refused as undecodable: ${context}`);
    } else if (end.code === S.RESOURCE_EXHAUSTED && TOO_LARGE.test(end.details)) {
      assert.ok(oversized, context);
    } else {
      assert.equal(end.code, S.OK, context);
    }

    // tag -> [op, frame size] for the operations of well-formed frames.
    const expected = new Map<string, { op: string; frameOps: number }>();
    for (const frame of frames)
      for (const { tag, op } of frame.tags) expected.set(tag, { op: op ?? 'none', frameOps: frame.tags.length });
    const opCodes: Tally = new Map();
    const answered = new Map<string, number>();
    for (const result of results) {
      bump(answered, result.tag);
      const sentOp = expected.get(result.tag);
      if (result.result === 'error') {
        const code = result.error!.code;
        const label = `${codeName(code)} (${result.error!.reason})`;
        if (sentOp === undefined) {
          // From a frame that was not well-formed but decoded anyway: any operation's errors.
          assert.ok(
            !allWellFormed && Object.values(PIPELINE_OP_ERRORS).some((c) => c.includes(code)),
            `${label} for unknown tag ${result.tag}: ${context}`,
          );
        } else {
          const allowed = [
            ...PIPELINE_OP_ERRORS[sentOp.op]!,
            ...(sentOp.frameOps > CONFIG.maxBatch ? [S.RESOURCE_EXHAUSTED] : []),
          ];
          assert.ok(
            allowed.includes(code),
            `${sentOp.op} (tag ${result.tag}) failed with ${label}: ${result.error!.message}\n${context}`,
          );
        }
        bump(opCodes, codeName(code));
      } else {
        if (sentOp !== undefined)
          assert.equal(result.result, sentOp.op, `tag ${result.tag} answered as ${result.result}: ${context}`);
        bump(opCodes, 'OK');
      }
    }
    if (allWellFormed && end.code === S.OK) {
      // Every operation answered exactly once.
      for (const tag of expected.keys())
        assert.equal(answered.get(tag), 1, `tag ${tag} answered ${answered.get(tag) ?? 0} times: ${context}`);
    }
    return { frames: frames.length, ops: expected.size, status: end, opCodes };
  }

  /**
   * One Session stream: a first frame (mostly a valid open), then frames of fuzzed ops (now
   * and then a whole fuzzed SessionRequest: a second open, an end, garbage), then a
   * half-close. Checks the stream's status and every answer: each op sent before the stream
   * stopped is answered exactly once, with a code its op may answer.
   */
  async function sessionStream(
    path: string,
    plans: readonly RequestPlan[],
  ): Promise<{ frames: number; ops: number; status: grpc.StatusObject; opCodes: Tally }> {
    const frames: Encoded[] = plans.map((plan) => encode(plan, pools, sessionOpType, 2));
    const call = raw.makeBidiStreamRequest(path, identity, identity, new grpc.Metadata(), deadline());
    const results: { tag: string; result: string; error: { code: number; message: string; reason: string } | null }[] =
      [];
    let undecodableReply: unknown;
    let openedCount = 0;
    const status = new Promise<grpc.StatusObject>((resolve) => {
      call.on('data', (bytes: Buffer) => {
        try {
          const response = decodeAs<SessionResponse>(sessionResponseType, bytes);
          if (response.opened !== null) openedCount++;
          results.push(...(response.results as typeof results));
        } catch (err) {
          undecodableReply = err;
        }
      });
      call.on('status', resolve);
      call.on('error', () => {});
    });
    for (const frame of frames) call.write(frame.bytes);
    call.end();
    const end = await status;

    const allWellFormed = plans.every((p) => p.wellFormed);
    const oversized = frames.some((f) => f.bytes.length > CONFIG.maxMessageBytes);
    const context = `Session stream ended ${codeName(end.code)} (${end.details}) after ${frames.length} frames\nplans: ${plans.map(printPlan).join('\n')}`;
    assert.equal(undecodableReply, undefined, `a reply frame did not decode: ${context}`);
    assert.ok(openedCount <= 1, `${openedCount} opened messages: ${context}`);
    if (end.code === S.INTERNAL) {
      assert.match(end.details, DESERIALIZING, context);
      assert.ok(!allWellFormed, `well-formed frames were refused as undecodable: ${context}`);
    } else if (end.code === S.RESOURCE_EXHAUSTED && TOO_LARGE.test(end.details)) {
      assert.ok(oversized, context);
    } else if (end.code !== S.OK) {
      assert.ok(ALLOWED['Locks/Session']!.includes(end.code), `not a status Locks/Session may end with: ${context}`);
    }
    // An op may go unanswered only when the stream stopped before it or could not answer.
    if (end.code === S.OK && results.length > 0) assert.equal(openedCount, 1, `results without opened: ${context}`);

    const expected = new Map<string, { op: string; frameOps: number }>();
    for (const frame of frames)
      for (const { tag, op } of frame.tags) expected.set(tag, { op: op ?? 'none', frameOps: frame.tags.length });
    const opCodes: Tally = new Map();
    const answered = new Map<string, number>();
    for (const result of results) {
      bump(answered, result.tag);
      const sentOp = expected.get(result.tag);
      if (result.result === 'error') {
        const code = result.error!.code;
        const label = `${codeName(code)} (${result.error!.reason})`;
        const allowed =
          sentOp === undefined
            ? Object.values(SESSION_OP_ERRORS).flat()
            : [...SESSION_OP_ERRORS[sentOp.op]!, ...(sentOp.frameOps > CONFIG.maxBatch ? [S.RESOURCE_EXHAUSTED] : [])];
        assert.ok(
          allowed.includes(code),
          `${sentOp?.op ?? 'an op'} (tag ${result.tag}) failed with ${label}: ${result.error!.message}\n${context}`,
        );
        bump(opCodes, codeName(code));
      } else {
        const shape = { acquire: 'lease', release: 'released', describe: 'state', keepalive: 'kept_alive' }[
          sentOp?.op ?? ''
        ];
        if (sentOp !== undefined && shape !== undefined)
          assert.equal(
            result.result,
            shape,
            `tag ${result.tag} (${sentOp.op}) answered as ${result.result}: ${context}`,
          );
        bump(opCodes, 'OK');
      }
    }
    for (const [tag, n] of answered) assert.equal(n, 1, `tag ${tag} answered ${n} times: ${context}`);
    if (allWellFormed && end.code === S.OK && openedCount === 1) {
      // A stream that ended OK answered every op it was sent before it stopped taking them:
      // those of every frame up to the first with end (the half-close comes after all).
      const stoppedAt = plans.findIndex((p) =>
        p.fields.some((f) => f.field === 3 && f.wire === 0 && f.value.t === 'varint' && f.value.v !== 0n),
      );
      const owed = frames.slice(0, stoppedAt < 0 ? frames.length : stoppedAt + 1).flatMap((f) => f.tags);
      for (const { tag, op } of owed)
        if (op !== 'cancel')
          assert.equal(answered.get(tag), 1, `tag ${tag} (${op}) answered ${answered.get(tag) ?? 0} times: ${context}`);
    }
    return { frames: frames.length, ops: expected.size, status: end, opCodes };
  }

  /** A SessionRequest plan whose only field is this open (field 1) and, maybe, ops. */
  const openFrame = (ttlMs: bigint, backend: string | undefined): RequestPlan => ({
    kind: 'structured',
    wellFormed: true,
    fields: [
      {
        field: 1,
        wire: 2,
        value: {
          t: 'message',
          fields: [
            { field: 2, wire: 0, value: { t: 'varint', v: ttlMs } },
            ...(backend === undefined
              ? []
              : [
                  {
                    field: 1,
                    wire: 2 as const,
                    value: { t: 'bytes' as const, b: new Uint8Array(Buffer.from(backend)) },
                  },
                ]),
          ],
        },
      },
    ],
  });

  /** Session stream plans: first frame, 1-5 frames of ops, maybe an end. */
  const sessionStreamArb = (): fc.Arbitrary<RequestPlan[]> => {
    // Mostly well-formed ops, so that most streams get past grpc-js's decoding to the server.
    const structured = arbs.request(sessionOpType).filter((p) => p.kind === 'structured');
    const opPlan = fc.oneof(
      { weight: 19, arbitrary: structured.filter((p) => p.wellFormed) },
      { weight: 1, arbitrary: structured },
    );
    const opsFrame = fc.tuple(fc.array(opPlan, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 9 })).map(
      ([ops, roll]): RequestPlan => ({
        kind: 'structured',
        wellFormed: ops.every((o) => o.wellFormed),
        fields: [
          ...ops.map((op) => ({ field: 2, wire: 2 as const, value: { t: 'message' as const, fields: op.fields } })),
          // One frame in ten also ends the session.
          ...(roll === 0 ? [{ field: 3, wire: 0 as const, value: { t: 'varint' as const, v: 1n } }] : []),
        ],
      }),
    );
    const first = fc.oneof(
      {
        weight: 8,
        arbitrary: fc
          .tuple(fc.constantFrom(300n, 1_000n, 5_000n), fc.constantFrom(undefined, 'memory', 'file'))
          .map(([ttl, backend]) => openFrame(ttl, backend)),
      },
      { weight: 2, arbitrary: arbs.request(sessionRequestType) },
    );
    const later = fc.oneof(
      { weight: 9, arbitrary: opsFrame },
      { weight: 1, arbitrary: arbs.request(sessionRequestType) },
    );
    return fc.tuple(first, fc.array(later, { minLength: 1, maxLength: 5 })).map(([f, rest]) => [f, ...rest]);
  };

  const locks = methodsOf('Locks');
  const cache = methodsOf('Cache');
  const fuzzed = [...locks, ...cache].filter((m) => `${m.service}/${m.name}` in ALLOWED);
  const notFuzzed = [...locks, ...cache].filter((m) => !(`${m.service}/${m.name}` in ALLOWED));

  fuzzed.forEach((method, index) => {
    const rpc = `${method.service}/${method.name}`;
    if (method.name === 'Session') {
      test(`${rpc}: ${RUNS} batches of ${STREAMS_PER_BATCH} streams, 2-6 frames each; every operation answered at most once, those before the stream stopped exactly once, with a status its op documents`, {
        timeout: 120_000,
      }, async (t) => {
        sent.set(rpc, 0);
        codes.set(rpc, new Map());
        kinds.set(rpc, new Map());
        const opCodes: Tally = new Map();
        let ops = 0;
        const property = fc.asyncProperty(
          fc.array(sessionStreamArb(), { minLength: STREAMS_PER_BATCH, maxLength: STREAMS_PER_BATCH }),
          async (streams) => {
            const ended = await Promise.all(streams.map((plans) => sessionStream(method.path, plans)));
            for (const [i, e] of ended.entries()) {
              sent.set(rpc, sent.get(rpc)! + e.frames);
              ops += e.ops;
              bump(
                codes.get(rpc)!,
                `stream ${codeName(e.status.code)}${e.status.code === S.INTERNAL ? ' (undecodable frame)' : ''}`,
              );
              for (const plan of streams[i]!) bump(kinds.get(rpc)!, plan.kind);
              for (const [code, n] of e.opCodes) bump(opCodes, code, n);
            }
            assertNoInternalErrors();
            await probe(rpc);
          },
        );
        await checkProperty(property, SEED + index);
        t.diagnostic(
          `${rpc}: ${sent.get(rpc)} frames (${printTally(kinds.get(rpc)!)}) on ${RUNS * STREAMS_PER_BATCH} streams: ${printTally(codes.get(rpc)!)}`,
        );
        t.diagnostic(`${rpc}: ${ops} operations; operation results: ${printTally(opCodes)}`);
        assert.ok(sent.get(rpc)! >= 800);
        assert.ok((opCodes.get('OK') ?? 0) > 100, 'hardly any session op succeeded: the fuzzing misses the sessions');
      });
      return;
    }
    if (method.name === 'Pipeline') {
      test(`${rpc}: ${RUNS} batches of ${STREAMS_PER_BATCH} streams, 3-6 frames each; every operation answered once, with a status its RPC documents`, {
        timeout: 120_000,
      }, async (t) => {
        sent.set(rpc, 0);
        codes.set(rpc, new Map());
        kinds.set(rpc, new Map());
        const opCodes: Tally = new Map();
        let ops = 0;
        const stream = fc.array(arbs.request(method.requestType), { minLength: 3, maxLength: 6 });
        const property = fc.asyncProperty(
          fc.array(stream, { minLength: STREAMS_PER_BATCH, maxLength: STREAMS_PER_BATCH }),
          async (streams) => {
            const ended = await Promise.all(streams.map((plans) => pipelineStream(method.path, plans)));
            for (const [i, e] of ended.entries()) {
              sent.set(rpc, sent.get(rpc)! + e.frames);
              ops += e.ops;
              bump(
                codes.get(rpc)!,
                `stream ${codeName(e.status.code)}${e.status.code === S.INTERNAL ? ' (undecodable frame)' : ''}`,
              );
              for (const plan of streams[i]!) bump(kinds.get(rpc)!, plan.kind);
              for (const [code, n] of e.opCodes) bump(opCodes, code, n);
            }
            assertNoInternalErrors();
            await probe(rpc);
          },
        );
        await checkProperty(property, SEED + index);
        t.diagnostic(
          `${rpc}: ${sent.get(rpc)} frames (${printTally(kinds.get(rpc)!)}) on ${RUNS * STREAMS_PER_BATCH} streams: ${printTally(codes.get(rpc)!)}`,
        );
        t.diagnostic(`${rpc}: ${ops} operations in well-formed frames; operation results: ${printTally(opCodes)}`);
        assert.ok(sent.get(rpc)! >= 1_000);
      });
      return;
    }
    const what = method.responseStream ? 'streams (first event or status, then cancelled)' : 'requests';
    test(`${rpc}: ${RUNS * BATCH} random and malformed ${what}, ${BATCH} at a time, get only documented statuses`, {
      timeout: 120_000,
    }, async (t) => {
      await fuzzUnary(method, index)();
      t.diagnostic(
        `${rpc}: ${sent.get(rpc)} requests (${printTally(kinds.get(rpc)!)}): ${printTally(codes.get(rpc)!)}`,
      );
      assert.equal(sent.get(rpc), RUNS * BATCH);
    });
  });

  test('messages over --max-message-bytes are RESOURCE_EXHAUSTED, and a name just under it is INVALID_ARGUMENT', async (t) => {
    for (const method of fuzzed) {
      const rpc = `${method.service}/${method.name}`;
      // The name or key (SetMany has none at the top: its store).
      const fields = method.requestType.fieldsArray;
      const nameField =
        fields.find((f) => ['name', 'key', 'keys'].includes(f.name)) ??
        fields.find((f) => f.type === 'string' || f.repeated)!;
      const under = bytesField(nameField.id, Buffer.alloc(CONFIG.maxMessageBytes - 1024, 0x61));
      const over = bytesField(nameField.id, Buffer.alloc(CONFIG.maxMessageBytes + 1, 0x61));
      if (method.requestStream) {
        const oversized: RequestPlan = { kind: 'random', fields: [], raw: over, wellFormed: false };
        const ended =
          method.name === 'Session'
            ? await sessionStream(method.path, [openFrame(1_000n, undefined), oversized])
            : await pipelineStream(method.path, [oversized]);
        assert.equal(ended.status.code, S.RESOURCE_EXHAUSTED, ended.status.details);
        sent.set(rpc, sent.get(rpc)! + 1);
        bump(codes.get(rpc)!, 'stream RESOURCE_EXHAUSTED (message size)');
        continue;
      }
      for (const bytes of [under, over]) {
        const outcome = await (method.responseStream ? firstMessage : rawUnary)(method.path, bytes);
        sent.set(rpc, sent.get(rpc)! + 1);
        bump(codes.get(rpc)!, bytes === over ? 'RESOURCE_EXHAUSTED (message size)' : codeName(outcome.code));
        if (bytes === over) assert.equal(outcome.code, S.RESOURCE_EXHAUSTED, `${rpc}: ${outcome.details}`);
        // GetMany answers a bad key in its result, not as the call's status.
        else if (method.name !== 'GetMany')
          assert.equal(outcome.code, S.INVALID_ARGUMENT, `${rpc}: ${outcome.details}`);
        else assert.equal(outcome.code, S.OK, `${rpc}: ${outcome.details}`);
      }
    }
    t.diagnostic(
      `${fuzzed.length} RPCs: a ${CONFIG.maxMessageBytes + 1}-byte name is refused by size, a ${CONFIG.maxMessageBytes - 1024}-byte one by validation`,
    );
  });

  test('after all of it the server serves every RPC, and logged no internal error', async (t) => {
    for (const m of fuzzed) await probe(`${m.service}/${m.name}`);
    assertNoInternalErrors();
    const total = [...sent.values()].reduce((a, b) => a + b, 0);
    t.diagnostic(`seed ${SEED}: ${total} requests in all (Pipeline: frames), ${probeCount} probe calls succeeded`);
    for (const method of fuzzed) {
      const rpc = `${method.service}/${method.name}`;
      t.diagnostic(
        `  ${rpc.padEnd(16)} ${String(sent.get(rpc) ?? 0).padStart(5)}  ${printTally(codes.get(rpc) ?? new Map())}`,
      );
    }
    if (notFuzzed.length > 0)
      t.diagnostic(
        `not fuzzed (no table of allowed statuses yet): ${notFuzzed.map((m) => `${m.service}/${m.name}`).join(', ')}`,
      );
  });
});

// Edges the fuzzing above found or aims at, pinned down as plain regression tests.
describe('limits at their edges', () => {
  function rawCall(raw: grpc.Client, path: string, bytes: Buffer): Promise<Outcome> {
    return new Promise((resolve) => {
      raw.makeUnaryRequest(
        path,
        identity,
        identity,
        bytes,
        new grpc.Metadata(),
        { deadline: Date.now() + 5_000 },
        (err, response) => {
          resolve(err ? { code: err.code, details: err.details } : { code: S.OK, details: '', response: response! });
        },
      );
    });
  }

  test('an unknown backend or store of 100000 bytes is INVALID_ARGUMENT quoting only its start, and the connection goes on serving', async () => {
    // NOTE: found by the fuzzing. The status message travels in a trailer; quoting the whole
    // name made one of about 100 KB, which grpc-js clients cannot take: the call, and every
    // later call on the same connection, hung until its deadline.
    await using s = await startServer();
    const raw = new grpc.Client(s.address, grpc.credentials.createInsecure());
    try {
      const huge = Buffer.alloc(100_000, 0x78);
      const k = Buffer.from('k');
      const cases: [string, Buffer, string][] = [
        ['/latchkey.v1.Locks/Acquire', Buffer.concat([bytesField(1, k), bytesField(2, huge)]), 'backend'],
        ['/latchkey.v1.Locks/Describe', Buffer.concat([bytesField(1, k), bytesField(2, huge)]), 'backend'],
        ['/latchkey.v1.Cache/Get', Buffer.concat([bytesField(1, huge), bytesField(2, k)]), 'store'],
        ['/latchkey.v1.Cache/SetMany', bytesField(1, huge), 'store'],
      ];
      for (const [path, bytes, field] of cases) {
        const outcome = await rawCall(raw, path, bytes);
        assert.equal(codeName(outcome.code), 'INVALID_ARGUMENT', `${path}: ${outcome.details.slice(0, 200)}`);
        assert.match(
          outcome.details,
          new RegExp(`^${field} "x{64}…" \\(100000 bytes\\) is not enabled on this server`),
        );
        assert.ok(outcome.details.length < 300, `${path}: a ${outcome.details.length}-character message`);
      }
      assert.equal((await rawCall(raw, '/latchkey.v1.Locks/Describe', bytesField(1, k))).code, S.OK);
    } finally {
      raw.close();
    }
  });

  test('Pipeline: results that add up past --max-message-bytes come back in several frames, not a failed stream', async () => {
    // 128 KiB messages and 64 KiB values (the largest that limit allows): three Gets answered
    // together make 192 KiB of results, which one reply frame cannot carry.
    await using s = await startServer({ maxMessageBytes: 128 * 1024, maxValueBytes: 64 * 1024 });
    const keys = ['a', 'b', 'c'];
    for (const key of keys) await s.call(s.cache, 'Set', { key, value: Buffer.alloc(64 * 1024, key) });
    const stream = s.cache.Pipeline({ deadline: Date.now() + 10_000 });
    const frames: PipelineResult[][] = [];
    const ended = new Promise<grpc.StatusObject>((resolve) => {
      stream.on('data', (m: { results: PipelineResult[] }) => frames.push(m.results));
      stream.on('status', resolve);
      stream.on('error', () => {});
    });
    stream.write({ ops: keys.map((key, i) => ({ tag: String(i + 1), get: { key } })) });
    stream.end();
    const status = await ended;
    assert.equal(codeName(status.code), 'OK', status.details);
    const results = frames.flat().sort((x, y) => Number(x.tag) - Number(y.tag));
    assert.deepEqual(
      results.map((r) => [r.tag, r.get?.value.toString('latin1', 0, 1), r.get?.value.length]),
      keys.map((k, i) => [String(i + 1), k, 64 * 1024]),
    );
    assert.ok(frames.length >= 2, `${frames.length} reply frame(s)`);
  });
});
