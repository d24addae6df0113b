// A lock contender in its own process, for the scale-out tests: several of these, each with
// its own SDK client on its own latchkey server (through a lock session, or unary calls), run
// lock → critical section → release on one lock name. The critical section is a deliberately non-atomic read-increment-write of a
// shared counter file, so two holders at once would lose an increment, and an append of the
// fencing token to a shared log, so the log's order is grant order.
//
// Each Acquire and Release is also appended to `historyFile` as a recorded operation
// (history.ts, on the machine's shared monotonic clock), for the lock checker (checker.ts).
//
// argv[2]: a WorkerConfig as JSON. Prints {"ready": true} once connected, starts on a "go"
// line on stdin, and ends with one {"done": true, ...} line (WorkerReport); exits 1 with the
// reason on stderr if it cannot finish its cycles in time or meets an error it must not retry.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { status } from '@grpc/grpc-js';
import { connect, LatchkeyError, type LockHandle } from '../../client/index.js';
import type { LockInput, LockOp, LockOutput } from './checker.js';
import { codeName, monotonicMs, opToJson, wallToMonotonicMs, type Outcome } from './history.js';

export interface WorkerConfig {
  readonly id: number;
  /** The latchkey server this worker talks to, host:port. */
  readonly address: string;
  readonly lockName: string;
  readonly backend: string;
  /** Completed critical sections to do. */
  readonly cycles: number;
  readonly counterFile: string;
  readonly logFile: string;
  /** Where each Acquire and Release is appended as a recorded operation (JSON lines). */
  readonly historyFile: string;
  readonly ttlMs: number;
  readonly waitMs: number;
  /** The whole run must end within this many ms of "go", or the worker fails. */
  readonly budgetMs: number;
  /** Lock through the SDK's lock session (one stream and one lease for every cycle) or unary calls. */
  readonly sessions: boolean;
}

export interface WorkerReport {
  readonly done: true;
  readonly id: number;
  readonly cycles: number;
  readonly elapsedMs: number;
  /** Failed Acquires retried, by SDK error class. */
  readonly retries: Record<string, number>;
  /** Grants whose handle signal had already aborted at the critical section: nothing written, retried. */
  readonly abandoned: number;
  /** Release outcomes other than 'released' (the lock then frees itself at its TTL). */
  readonly releaseOutcomes: Record<string, number>;
  /** The first few errors behind those outcomes and the retries, for the test's diagnostics. */
  readonly errors: readonly string[];
}

/**
 * What an Acquire may fail with while the cluster under it is busy or failing over: busy (the
 * wait ran out), UNAVAILABLE, a deadline, or a lease gone before it could be confirmed. Any
 * other status is a bug worth failing for.
 */
const RETRIED: ReadonlySet<status> = new Set([
  status.ABORTED,
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.FAILED_PRECONDITION,
]);
const BACKOFF_BASE_MS = 10;
const BACKOFF_MAX_MS = 250;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bump = (counts: Record<string, number>, key: string) => (counts[key] = (counts[key] ?? 0) + 1);
const MAX_ERRORS = 5;

const config = JSON.parse(process.argv[2]!) as WorkerConfig;
const client = connect(config.address, {
  deadlineMs: 5_000,
  sessions: config.sessions,
  // A server blip must not leave the channel in grpc-js's default (up to 120 s) backoff.
  channelOptions: { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1_000 },
});
await client.describe(config.lockName, { backend: config.backend });
console.log(JSON.stringify({ ready: true }));

const input = createInterface({ input: process.stdin });
for await (const line of input) if (line.trim() === 'go') break;
input.close();

const started = Date.now();
const retries: Record<string, number> = {};
const releaseOutcomes: Record<string, number> = {};
const errors: string[] = [];
const note = (what: string, err: unknown) =>
  void (
    errors.length < MAX_ERRORS &&
    errors.push(`${what}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`)
  );
let abandoned = 0;
let failures = 0;
let recorded = 0;
/** Appends one finished operation to the history file. */
function record(input: LockInput, invokeMs: number, outcome: Outcome<LockOutput>): void {
  const op: LockOp = {
    id: recorded++,
    client: `worker-${config.id}`,
    input,
    invokeMs,
    returnMs: monotonicMs(),
    outcome,
  };
  appendFileSync(config.historyFile, `${opToJson(op)}\n`);
}

for (let done = 0; done < config.cycles; ) {
  if (Date.now() - started > config.budgetMs) {
    console.error(
      `worker ${config.id}: only ${done} of ${config.cycles} cycles in ${config.budgetMs} ms; retries ${JSON.stringify(retries)}`,
    );
    process.exit(1);
  }
  let lock: LockHandle;
  const acquire: LockInput = {
    op: 'acquire',
    name: config.lockName,
    ttlMs: config.ttlMs,
    waitMs: config.waitMs,
    via: config.address,
  };
  const acquiredAt = monotonicMs();
  try {
    lock = await client.lock(config.lockName, {
      backend: config.backend,
      ttlMs: config.ttlMs,
      waitMs: config.waitMs,
      owner: `worker-${config.id}`,
    });
    record(acquire, acquiredAt, {
      status: 'ok',
      value: {
        op: 'acquire',
        leaseId: lock.leaseId,
        token: lock.fencingToken,
        validUntilMs: wallToMonotonicMs(lock.expiresAt.getTime()),
      },
    });
  } catch (err) {
    const code = err instanceof LatchkeyError ? codeName(err.code) : 'THROWN';
    const message = err instanceof Error ? err.message : String(err);
    // ABORTED: not granted; anything else may have been.
    record(acquire, acquiredAt, { status: code === 'ABORTED' ? 'fail' : 'unknown', code, message });
    if (!(err instanceof LatchkeyError) || !RETRIED.has(err.code)) throw err;
    bump(retries, err.name);
    note('acquire', err);
    failures++;
    await sleep(Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(failures, 10)));
    continue;
  }
  failures = 0;
  try {
    // The critical section. NOTE: the read and the write are apart on purpose (a timer in
    // between), so another holder at the same time would overwrite this increment.
    const text = readFileSync(config.counterFile, 'utf8');
    const count = Number(text);
    if (text.trim() === '' || !Number.isSafeInteger(count))
      throw new Error(
        `worker ${config.id}: counter file holds ${JSON.stringify(text)}: written by two holders at once?`,
      );
    await sleep(1);
    // A lock the handle no longer trusts protects nothing: leave without writing, acquire again.
    if (lock.signal.aborted) {
      abandoned++;
      continue;
    }
    appendFileSync(config.logFile, `${lock.fencingToken} ${Date.now()} ${config.id}\n`);
    writeFileSync(config.counterFile, String(count + 1));
    done++;
  } finally {
    const releasedAt = monotonicMs();
    const outcome = await lock.release();
    // 'lost': the handle knew the lease gone (it may not have asked the server); 'release-failed': unknown.
    record(
      { op: 'release', name: config.lockName, leaseId: lock.leaseId, via: config.address },
      releasedAt,
      outcome === 'released'
        ? { status: 'ok', value: { op: 'release' } }
        : { status: outcome === 'lost' ? 'fail' : 'unknown', code: outcome, message: String(lock.error) },
    );
    if (outcome !== 'released') {
      bump(releaseOutcomes, outcome);
      note(`release ${outcome}`, lock.error);
    }
  }
}

const report: WorkerReport = {
  done: true,
  id: config.id,
  cycles: config.cycles,
  elapsedMs: Date.now() - started,
  retries,
  abandoned,
  releaseOutcomes,
  errors,
};
console.log(JSON.stringify(report));
await client.close();
