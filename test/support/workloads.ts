// Client workloads that record what they do (history.ts) for the checkers (checker.ts): lock
// cycles with fenced writes, and cache operations on a few keys. They use raw grpc-js stubs,
// so each recorded operation is exactly one call (no SDK retries or refreshes in between),
// and every call has a deadline, so a workload always ends.
import { setTimeout as sleep } from 'node:timers/promises';
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { Lease__Output as Lease } from '../../client/common/index.js';
import type { CacheInput, CacheOp, CacheOutput, LockInput, LockOp, LockOutput } from './checker.js';
import { errorClass, type History, monotonicMs, unaryCall, wallToMonotonicMs, type Outcome } from './history.js';

/** A latchkey server as one client reaches it. */
export interface Endpoint {
  /** A short name for the history ("a", "b"). */
  readonly name: string;
  readonly locks: grpc.Client;
  readonly cache: grpc.Client;
}

export interface LockWorkloadOptions {
  readonly history: History<LockInput, LockOutput>;
  /** One logical client per entry: its name and the servers it uses, its home first. */
  readonly clients: readonly { readonly name: string; readonly endpoints: readonly Endpoint[] }[];
  readonly names: readonly string[];
  readonly ttlMs: number;
  readonly waitMs: number;
  /** An Acquire's gRPC deadline is waitMs + acquireMarginMs + this: past it, its outcome is unknown. */
  readonly deadlineSlackMs: number;
  /** The deadline of each Release and fenced write. */
  readonly callDeadlineMs: number;
  /** How long a holder keeps the lock (ms, uniform in [0, holdMs]). */
  readonly holdMs: number;
  /**
   * Fenced writes of each holder go to key "fenced-<lock name>" through this endpoint's cache
   * (one store, so its fences are comparable); undefined: no fenced writes.
   */
  readonly fencedVia?: Endpoint;
  /** The workload stops starting cycles once this aborts. */
  readonly signal: AbortSignal;
  /** Only these may refuse an Acquire besides ABORTED; anything else fails the workload. */
  readonly acquireMarginMs: number;
}

const random = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;

/** Acquire through `via`, recorded. */
export function recordAcquire(
  history: History<LockInput, LockOutput>,
  client: string,
  via: Endpoint,
  request: { name: string; ttlMs: number; waitMs: number },
  deadlineMs: number,
): Promise<LockOp> {
  const input: LockInput = { op: 'acquire', ...request, via: via.name };
  return history.record(client, input, () =>
    unaryCall<Lease, LockOutput>(
      via.locks,
      'Acquire',
      { name: request.name, ttl_ms: request.ttlMs, wait_ms: request.waitMs, owner: client },
      deadlineMs,
      (lease) => ({
        op: 'acquire',
        leaseId: lease.lease_id,
        token: BigInt(lease.fencing_token),
        validUntilMs: wallToMonotonicMs(Number(lease.expires_at_ms)),
      }),
      // ABORTED: not granted (the server removed its place in the queue, or will).
      { definite: (err) => err.code === status.ABORTED || err.code === status.FAILED_PRECONDITION },
    ),
  );
}

/** Release through `via`, recorded. */
export function recordRelease(
  history: History<LockInput, LockOutput>,
  client: string,
  via: Endpoint,
  name: string,
  leaseId: string,
  deadlineMs: number,
): Promise<LockOp> {
  return history.record(client, { op: 'release', name, leaseId, via: via.name }, () =>
    unaryCall<unknown, LockOutput>(
      via.locks,
      'Release',
      { name, lease_id: leaseId },
      deadlineMs,
      () => ({ op: 'release' }),
      // Not the holder / expired: the release certainly changed nothing.
      { definite: (err) => err.code === status.FAILED_PRECONDITION },
    ),
  );
}

/** A fenced Set through `via`, recorded: stored, or refused (FencedOutError). */
export function recordFencedWrite(
  history: History<LockInput, LockOutput>,
  client: string,
  via: Endpoint,
  write: { key: string; lock: string; token: bigint; value: string },
  deadlineMs: number,
): Promise<LockOp> {
  return history.record(client, { op: 'fenced-write', ...write, via: via.name }, () =>
    unaryCall<unknown, LockOutput>(
      via.cache,
      'Set',
      { key: write.key, value: Buffer.from(write.value), fence: { lock: write.lock, token: write.token.toString() } },
      deadlineMs,
      () => ({ op: 'fenced-write', stored: true }),
      { answer: (err) => (errorClass(err) === 'FencedOutError' ? { op: 'fenced-write', stored: false } : undefined) },
    ),
  );
}

/**
 * Each client, until the signal: Acquire a random lock through its home server (the next one
 * after an UNAVAILABLE), hold it a while, write fenced (while the lease is valid), Release
 * (through another server if its answer is unknown); now and then, after the release, a
 * fenced write with the old token, as a holder that paused would make. Resolves when every
 * client has finished its last cycle.
 */
export async function runLockWorkload(options: LockWorkloadOptions): Promise<void> {
  const { history, ttlMs, waitMs, deadlineSlackMs } = options;
  const acquireDeadline = waitMs + options.acquireMarginMs + deadlineSlackMs;
  const shortDeadline = options.callDeadlineMs;
  let written = 0;
  await Promise.all(
    options.clients.map(async ({ name: client, endpoints }) => {
      let home = 0;
      while (!options.signal.aborted) {
        const via = endpoints[home % endpoints.length]!;
        const lockName = random(options.names);
        const acquired = await recordAcquire(history, client, via, { name: lockName, ttlMs, waitMs }, acquireDeadline);
        if (acquired.outcome?.status !== 'ok') {
          if (acquired.outcome?.status === 'unknown') home++;
          await sleep(5 + Math.random() * 20);
          continue;
        }
        const lease = acquired.outcome.value as Extract<LockOutput, { op: 'acquire' }>;
        await sleep(Math.random() * options.holdMs);
        const fence = options.fencedVia;
        const write = (value: string) =>
          recordFencedWrite(
            history,
            client,
            fence!,
            { key: `fenced-${lockName}`, lock: lockName, token: lease.token, value },
            shortDeadline,
          );
        // Write only while the lease is surely valid, with room for the write itself.
        if (fence !== undefined && monotonicMs() < lease.validUntilMs - shortDeadline) await write(`w${++written}`);
        let released = await recordRelease(history, client, via, lockName, lease.leaseId, shortDeadline);
        for (let i = 1; released.outcome?.status === 'unknown' && i < endpoints.length; i++)
          released = await recordRelease(
            history,
            client,
            endpoints[(home + i) % endpoints.length]!,
            lockName,
            lease.leaseId,
            shortDeadline,
          );
        if (released.outcome?.status === 'unknown') home++;
        if (fence !== undefined && Math.random() < 0.3) {
          // Late, so that a newer holder may have written meanwhile.
          await sleep(Math.random() * 10 * options.holdMs);
          await write(`late${++written}`);
        }
      }
    }),
  );
}

export interface CacheWorkloadOptions {
  readonly history: History<CacheInput, CacheOutput>;
  readonly clients: readonly { readonly name: string; readonly endpoint: Endpoint }[];
  /** Register keys: get / set / cas / add / delete, some sets fenced. */
  readonly keys: readonly string[];
  /** Counter keys: get / incr / delete. */
  readonly counters: readonly string[];
  /** The store to use ('' = the server's default). */
  readonly store: string;
  /** Each call's deadline (a function: chosen per call, e.g. now and then too short to answer). */
  readonly deadlineMs: number | (() => number);
  /** Stop once this many operations were recorded on each key (histories stay small). */
  readonly opsPerKey: number;
  readonly signal: AbortSignal;
  /** Pause between a client's operations, ms (uniform in [0, pauseMs]). */
  readonly pauseMs: number;
}

/** One cache call recorded; FencedOutError is the answer "refused". */
export function recordCacheOp(
  history: History<CacheInput, CacheOutput>,
  client: string,
  via: Endpoint,
  store: string,
  input: CacheInput,
  deadlineMs: number,
): Promise<CacheOp> {
  const call = <Res>(method: string, request: object, ok: (res: Res) => CacheOutput): Promise<Outcome<CacheOutput>> =>
    unaryCall<Res, CacheOutput>(via.cache, method, { store, key: input.key, ...request }, deadlineMs, ok, {
      answer: (err) => (errorClass(err) === 'FencedOutError' ? { refused: true } : undefined),
    });
  const fence = (token: bigint | undefined) =>
    token === undefined ? null : { lock: 'fence', token: token.toString() };
  return history.record(client, input, async () => {
    switch (input.op) {
      case 'get':
        return call<{ found: boolean; value: Buffer; cas: string }>('Get', {}, (r) =>
          r.found ? { found: true, value: r.value.toString(), cas: BigInt(r.cas) } : { found: false },
        );
      case 'set':
        return call<{ cas: string }>('Set', { value: Buffer.from(input.value), fence: fence(input.fence) }, (r) => ({
          cas: BigInt(r.cas),
        }));
      case 'cas':
        return call<{ outcome: string; cas: string }>(
          'Cas',
          { value: Buffer.from(input.value), cas: input.cas.toString(), fence: fence(input.fence) },
          (r) => ({
            outcome: r.outcome as CacheOutput['outcome'],
            cas: r.outcome === 'STORED' ? BigInt(r.cas) : undefined,
          }),
        );
      case 'add':
        return call<{ outcome: string; cas: string }>('Add', { value: Buffer.from(input.value) }, (r) => ({
          outcome: r.outcome as CacheOutput['outcome'],
          cas: r.outcome === 'STORED' ? BigInt(r.cas) : undefined,
        }));
      case 'delete':
        return call<{ outcome: string }>('Delete', { cas: input.cas.toString() }, (r) => ({
          outcome: r.outcome as CacheOutput['outcome'],
        }));
      case 'incr':
        return call<{ value: string; cas: string }>(
          'Incr',
          { delta: input.delta.toString(), initial: input.initial.toString() },
          (r) => ({ value: r.value, cas: BigInt(r.cas) }),
        );
    }
  });
}

/**
 * Each client, until the signal or until every key has its opsPerKey operations: a random
 * operation on a random key. Values are unique per write, so a read names its write; a cas
 * uses the unique the client last saw on that key; fenced sets use tokens from one counter,
 * now and then an old one (a stale holder), on the keys whose index is even.
 */
export async function runCacheWorkload(options: CacheWorkloadOptions): Promise<void> {
  const { history } = options;
  const counts = new Map<string, number>();
  const fenced = new Set(options.keys.filter((_, i) => i % 2 === 0));
  let tokens = 0n;
  let values = 0;
  const open = () => [...options.keys, ...options.counters].filter((k) => (counts.get(k) ?? 0) < options.opsPerKey);
  await Promise.all(
    options.clients.map(async ({ name: client, endpoint }) => {
      const seen = new Map<string, bigint>();
      for (;;) {
        const keys = open();
        if (options.signal.aborted || keys.length === 0) return;
        const key = random(keys);
        counts.set(key, (counts.get(key) ?? 0) + 1);
        const value = `${client}.${++values}`;
        const roll = Math.random();
        let input: CacheInput;
        if (options.counters.includes(key)) {
          input =
            roll < 0.4
              ? { op: 'get', key }
              : roll < 0.93
                ? { op: 'incr', key, delta: BigInt(1 + Math.floor(Math.random() * 3)), initial: 10n }
                : { op: 'delete', key, cas: 0n };
        } else if (fenced.has(key)) {
          // Only fenced writes on these keys: a fence is forgotten by an unfenced write.
          const token = Math.random() < 0.25 && tokens > 2n ? tokens - 2n : ++tokens;
          input = roll < 0.45 ? { op: 'get', key } : { op: 'set', key, value, fence: token };
        } else {
          const cas = seen.get(key);
          input =
            roll < 0.35
              ? { op: 'get', key }
              : roll < 0.6
                ? { op: 'set', key, value }
                : roll < 0.8 && cas !== undefined
                  ? { op: 'cas', key, value, cas }
                  : roll < 0.9
                    ? { op: 'add', key, value }
                    : { op: 'delete', key, cas: Math.random() < 0.5 && cas !== undefined ? cas : 0n };
        }
        const deadlineMs = typeof options.deadlineMs === 'number' ? options.deadlineMs : options.deadlineMs();
        const op = await recordCacheOp(history, client, endpoint, options.store, input, deadlineMs);
        const out = op.outcome?.status === 'ok' ? op.outcome.value : undefined;
        if (out?.cas !== undefined) seen.set(key, out.cas);
        await sleep(Math.random() * options.pauseMs);
      }
    }),
  );
}

/** Every status code an Acquire answered with, for diagnostics: "OK 120, ABORTED 3, UNAVAILABLE 9". */
export function tallyOutcomes(ops: readonly { outcome?: Outcome<unknown> }[]): string {
  const counts = new Map<string, number>();
  for (const op of ops) {
    const code = op.outcome === undefined ? 'RUNNING' : op.outcome.status === 'ok' ? 'OK' : op.outcome.code;
    counts.set(code, (counts.get(code) ?? 0) + 1);
  }
  return [...counts].map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
}
