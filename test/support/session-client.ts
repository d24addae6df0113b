// A client process with lock sessions, for the partition scenarios (test/partitions/): started
// on a client host of its own (runScript(..., world.net.host('c2').launch)), it connects to
// every latchkey server of the list through the SDK (sessions on), holds one session's locks,
// and records what it does into a history file (history.ts opToJson lines, on the machine's
// monotonic clock, which the test process shares):
//   - the acquires of its locks, each written when its hold ends (released, lost, or at stop),
//     with the session's expiry as the server last stated it before then as validUntilMs, so
//     the checker (checker.ts) holds the lock for the session, not just for the first TTL;
//   - fenced writes with each held lock's token, every writeEveryMs, through one server's
//     cache (fencedAddress: one store, so fences compare), and, on "late", one more with each
//     old token, as a holder that was cut off would make;
//   - probe cycles: lock and release of a name nobody else uses, through the session, so the
//     history shows when the session serves again (after a resume, or a new session).
// It also reports what the test measures: every change of the session's stated expiry
// (a confirmed keepalive or resume), and when each handle's signal aborted, and why.
//
// argv[2]: a SessionClientConfig as JSON. Prints {"ready": true, "locks": [...]} once it holds
// every name. Then stdin lines: "release" (release the held locks: {"released": [...]}),
// "late" (the late fenced writes, each until answered, a few times: {"late": [...]}), "stop" (ends the loops, writes the
// history, closes: {"done": true, ...}). Every call has a deadline; nothing waits unbounded.
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { connect, FencedOutError, LatchkeyError, LockBusyError, type LockHandle } from '../../client/index.js';
import type { LockInput, LockOp, LockOutput } from './checker.js';
import { codeName, monotonicMs, opToJson, wallToMonotonicMs, type Outcome } from './history.js';

export interface SessionClientConfig {
  /** Its name in the history. */
  readonly client: string;
  /** The latchkey servers, host:port, the one to use first first. */
  readonly addresses: readonly string[];
  /** The server whose cache takes the fenced writes, host:port, and its name in the history. */
  readonly fencedAddress: string;
  readonly fencedVia: string;
  /** The locks it holds (one session: same backend and TTL). */
  readonly names: readonly string[];
  /** The lock of the probe cycles. */
  readonly probe: string;
  readonly ttlMs: number;
  /** wait_ms of the first acquires. */
  readonly waitMs: number;
  /** The deadline of every other call (probe acquires try once). */
  readonly deadlineMs: number;
  readonly writeEveryMs: number;
  readonly probeEveryMs: number;
  readonly historyFile: string;
  /** Lock sessions (default), or false: unary calls, each handle refreshing its own lease. */
  readonly sessions?: boolean;
}

export interface SessionClientReport {
  readonly done: true;
  /** Every change of the session's stated expiry: when it was seen, and the expiry, both monotonic ms. */
  readonly expiries: readonly { readonly atMs: number; readonly expiresAtMs: number }[];
  /** Each handle whose signal aborted: when, and the reason. */
  readonly aborts: readonly { readonly name: string; readonly atMs: number; readonly reason: string }[];
}

/** Attempts of each late fenced write, until one is answered. */
const LATE_ATTEMPTS = 4;
/** How often the session's stated expiry is read. */
const EXPIRY_POLL_MS = 10;
/** Channel options: a client finds a server again soon after a partition heals. */
const CHANNEL = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 };

const config = JSON.parse(process.argv[2]!) as SessionClientConfig;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const client = connect(config.addresses, {
  sessions: config.sessions ?? true,
  deadlineMs: config.deadlineMs,
  channelOptions: CHANNEL,
});
// Fenced writes through one server's store, one call each (no retries: each is one operation).
const fencing = connect(config.fencedAddress, {
  sessions: false,
  pipeline: false,
  retry: false,
  deadlineMs: config.deadlineMs,
  channelOptions: CHANNEL,
});
const cache = fencing.cache();
const via = 'session';

let recorded = 0;
function write(op: Omit<LockOp, 'id'>): void {
  appendFileSync(config.historyFile, `${opToJson({ ...op, id: recorded++ } as LockOp)}\n`);
}

function failure(err: unknown): Outcome<never> {
  const code = err instanceof LatchkeyError ? codeName(err.code) : 'THROWN';
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  // Not granted (LockBusyError) is definite; anything else may have been applied.
  return { status: err instanceof LockBusyError ? 'fail' : 'unknown', code, message };
}

/** A held lock, and the acquire to write once its hold is over. */
interface Held {
  readonly client: string;
  readonly lock: LockHandle;
  readonly input: LockInput;
  readonly invokeMs: number;
  readonly returnMs: number;
  /** The session's stated expiry as the hold ended (monotonic ms); undefined while held. */
  validUntilMs: number | undefined;
}

const expiryOf = (lock: LockHandle) => wallToMonotonicMs(lock.expiresAt.getTime());

/** Writes the acquire of a hold that is over, with the expiry stated until then. */
function endHold(held: Held): void {
  held.validUntilMs ??= expiryOf(held.lock);
  write({
    client: held.client,
    input: held.input,
    invokeMs: held.invokeMs,
    returnMs: held.returnMs,
    outcome: {
      status: 'ok',
      value: {
        op: 'acquire',
        leaseId: held.lock.leaseId,
        token: held.lock.fencingToken,
        validUntilMs: held.validUntilMs,
      },
    },
  });
}

async function acquire(name: string, waitMs: number, who: string): Promise<Held | undefined> {
  const input: LockInput = { op: 'acquire', name, ttlMs: config.ttlMs, waitMs, via };
  const invokeMs = monotonicMs();
  try {
    const lock = await client.lock(name, { backend: 'etcd', ttlMs: config.ttlMs, waitMs, owner: who });
    return { client: who, lock, input, invokeMs, returnMs: monotonicMs(), validUntilMs: undefined };
  } catch (err) {
    write({ client: who, input, invokeMs, returnMs: monotonicMs(), outcome: failure(err) });
    return undefined;
  }
}

async function release(held: Held): Promise<string> {
  // NOTE: the expiry is read before the release: once it is over, a session that goes on
  // (or a new one) states expiries that are no longer this lock's.
  held.validUntilMs ??= expiryOf(held.lock);
  if (held.lock.state !== 'held') {
    // Lost already: nothing is sent, and the hold ended when its session did.
    endHold(held);
    return held.lock.state;
  }
  const invokeMs = monotonicMs();
  const outcome = await held.lock.release({ deadlineMs: config.deadlineMs });
  endHold(held);
  write({
    client: held.client,
    input: { op: 'release', name: held.lock.name, leaseId: held.lock.leaseId, via },
    invokeMs,
    returnMs: monotonicMs(),
    outcome:
      outcome === 'released'
        ? { status: 'ok', value: { op: 'release' } }
        : { status: outcome === 'lost' ? 'fail' : 'unknown', code: outcome, message: String(held.lock.error) },
  });
  return outcome;
}

let written = 0;
async function fencedWrite(name: string, token: bigint, value: string): Promise<Outcome<LockOutput>> {
  const input: LockInput = {
    op: 'fenced-write',
    key: `fenced-${name}`,
    lock: name,
    token,
    value,
    via: config.fencedVia,
  };
  const invokeMs = monotonicMs();
  let outcome: Outcome<LockOutput>;
  try {
    await cache.set(input.key, value, { fence: { name, backend: 'etcd', fencingToken: token } });
    outcome = { status: 'ok', value: { op: 'fenced-write', stored: true } };
  } catch (err) {
    outcome =
      err instanceof FencedOutError ? { status: 'ok', value: { op: 'fenced-write', stored: false } } : failure(err);
  }
  write({ client: config.client, input, invokeMs, returnMs: monotonicMs(), outcome });
  return outcome;
}

// The locks, through one session.
const holds: Held[] = [];
for (const name of config.names) {
  const held = await acquire(name, config.waitMs, config.client);
  if (held === undefined) throw new Error(`could not acquire "${name}" to start with`);
  holds.push(held);
}

const expiries: { atMs: number; expiresAtMs: number }[] = [];
const aborts: { name: string; atMs: number; reason: string }[] = [];
for (const held of holds)
  held.lock.signal.addEventListener('abort', () => {
    // The session's expiry as it was when the handle gave up: what the server last stated.
    if (held.lock.state === 'lost') held.validUntilMs ??= expiryOf(held.lock);
    aborts.push({ name: held.lock.name, atMs: monotonicMs(), reason: String(held.lock.signal.reason) });
  });
const pollExpiry = setInterval(() => {
  const held = holds.find((h) => h.lock.state === 'held');
  if (held === undefined) return;
  const expiresAtMs = expiryOf(held.lock);
  const last = expiries.at(-1);
  // Converted anew each time: a change under a millisecond is the conversion's, not the server's.
  if (last === undefined || Math.abs(expiresAtMs - last.expiresAtMs) > 1)
    expiries.push({ atMs: monotonicMs(), expiresAtMs });
}, EXPIRY_POLL_MS);

let stopping = false;
let releasing = false;
const writer = (async () => {
  while (!stopping) {
    if (!releasing)
      for (const held of holds)
        if (held.lock.state === 'held' && !held.lock.signal.aborted)
          await fencedWrite(held.lock.name, held.lock.fencingToken, `${config.client}.${++written}`);
    await sleep(config.writeEveryMs);
  }
})();
const prober = (async () => {
  while (!stopping) {
    const held = await acquire(config.probe, 0, `${config.client}-probe`);
    if (held !== undefined) await release(held);
    await sleep(config.probeEveryMs);
  }
})();

console.log(
  JSON.stringify({
    ready: true,
    locks: holds.map((h) => ({ name: h.lock.name, token: h.lock.fencingToken.toString(), leaseId: h.lock.leaseId })),
  }),
);

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  const command = line.trim();
  if (command === 'release') {
    releasing = true;
    const outcomes = [];
    for (const held of holds) outcomes.push(await release(held));
    console.log(JSON.stringify({ released: outcomes }));
  } else if (command === 'late') {
    // NOTE: the fencing client has one address, and its connection to it may still be the one
    // the partition stalled (TCP resends with a growing backoff after the heal): a write whose
    // answer does not come is made again, a few times; each attempt is recorded.
    const outcomes = [];
    for (const held of holds) {
      let outcome: Outcome<LockOutput> | undefined;
      for (let attempt = 0; attempt < LATE_ATTEMPTS && outcome?.status !== 'ok'; attempt++)
        outcome = await fencedWrite(held.lock.name, held.lock.fencingToken, `${config.client}.late${++written}`);
      outcomes.push(outcome!.status);
    }
    console.log(JSON.stringify({ late: outcomes }));
  } else if (command === 'stop') break;
}
input.close();
stopping = true;
await Promise.all([writer, prober]);
clearInterval(pollExpiry);
// Holds not released: their acquires end here (the session's last stated expiry).
for (const held of holds) if (!releasing) endHold(held);
const report: SessionClientReport = { done: true, expiries, aborts };
console.log(JSON.stringify(report));
await Promise.race([Promise.all([client.close(), fencing.close()]), sleep(config.deadlineMs)]);
process.exit(0);
