// A client process of an election, for the partition scenarios (test/partitions/): started on a
// client host of its own (runScript(..., world.net.host(name).launch)), it connects to every
// latchkey server of the list through the SDK (lock sessions on: its campaigns live in the
// client's lock session) and records what it does into a history file (history.ts opToJson
// lines, on the machine's monotonic clock, which the test process shares). Two roles:
//   - leader: campaigns once (it is the first candidate, so it leads), and takes a lock of
//     its own (`witness`) in the same session: the lock's expiry is the session's as its
//     keepalives state it, the leadership's as its KeepAlives do, and the session lives until
//     the later of the two. It makes fenced writes with its leadership's token every
//     writeEveryMs while it leads, and records its campaign when the leadership ends, with the
//     session's last stated expiry as validUntilMs (so the checker holds the leadership for
//     the session). It reports every change of that expiry, and when each handle's signal
//     (the leadership's, the witness lock's) aborted, and why. On "late": one more fenced
//     write with its old token, as a leader that was cut off would make.
//   - candidate: on "campaign", cycles campaign / lead for leadMs with fenced writes / resign
//     (election-workload.ts runCandidate), printing {"leading": token, "atMs": ms} at each win.
//
// argv[2]: an ElectionClientConfig as JSON. Prints {"ready": true, ...} once it leads (leader)
// or is connected (candidate). Then stdin lines: "campaign" (candidate), "late" (leader:
// {"late": [status]}), "stop" (ends the loops, writes the history, closes: {"done": true, ...}).
// Every call has a deadline; nothing waits unbounded.
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { connect, type Leadership, type LockHandle } from '../../client/index.js';
import type { LockInput, LockOp, LockOutput } from './checker.js';
import { fencedWrite, runCandidate, wonCampaign } from './election-workload.js';
import { monotonicMs, opToJson, wallToMonotonicMs, type Outcome } from './history.js';

export interface ElectionClientConfig {
  readonly role: 'leader' | 'candidate';
  /** Its name in the history. */
  readonly client: string;
  /** The latchkey servers, host:port, the one to use first first. */
  readonly addresses: readonly string[];
  /** The server whose cache takes the fenced writes, host:port, and its name in the history. */
  readonly fencedAddress: string;
  readonly fencedVia: string;
  readonly election: string;
  /** The key of the fenced writes. */
  readonly key: string;
  /** The leader's lock in its session. */
  readonly witness: string;
  readonly ttlMs: number;
  /** The deadline of every call but a campaign (which waits as long as it takes). */
  readonly deadlineMs: number;
  readonly writeEveryMs: number;
  /** A candidate's term, before it resigns. */
  readonly leadMs: number;
  readonly historyFile: string;
}

export interface ElectionClientReport {
  readonly done: true;
  /** The leader's: every change of its session's stated expiry, when it was seen, both monotonic ms. */
  readonly expiries: readonly { readonly atMs: number; readonly expiresAtMs: number }[];
  /** The leader's: each handle whose signal aborted ('leadership', 'witness'): when, and the reason. */
  readonly aborts: readonly { readonly name: string; readonly atMs: number; readonly reason: string }[];
}

/** Attempts of each late fenced write, until one is answered. */
const LATE_ATTEMPTS = 4;
/** How often the session's stated expiry is read. */
const EXPIRY_POLL_MS = 10;
/** Channel options: a client finds a server again soon after a partition heals. */
const CHANNEL = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 };
const BACKEND = 'etcd';
const VIA = 'session';

const config = JSON.parse(process.argv[2]!) as ElectionClientConfig;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const client = connect(config.addresses, { sessions: true, deadlineMs: config.deadlineMs, channelOptions: CHANNEL });
// Fenced writes through one server's store, one call each (no retries: each is one operation).
const fencing = connect(config.fencedAddress, {
  sessions: false,
  pipeline: false,
  retry: false,
  deadlineMs: config.deadlineMs,
  channelOptions: CHANNEL,
});
const cache = fencing.cache();

let recorded = 0;
const record = (op: Omit<LockOp, 'id'>) =>
  appendFileSync(config.historyFile, `${opToJson({ ...op, id: recorded++ } as LockOp)}\n`);
const input = createInterface({ input: process.stdin });
const stop = new AbortController();
const expiries: { atMs: number; expiresAtMs: number }[] = [];
const aborts: { name: string; atMs: number; reason: string }[] = [];

if (config.role === 'candidate') {
  console.log(JSON.stringify({ ready: true }));
  let running: Promise<void> | undefined;
  for await (const line of input) {
    const command = line.trim();
    if (command === 'campaign')
      running ??= runCandidate({
        client,
        cache,
        name: config.client,
        election: config.election,
        backend: BACKEND,
        ttlMs: config.ttlMs,
        via: VIA,
        fencedVia: config.fencedVia,
        key: config.key,
        leadMs: config.leadMs,
        writeEveryMs: config.writeEveryMs,
        deadlineMs: config.deadlineMs,
        record,
        onLeading: (leadership, atMs) =>
          console.log(JSON.stringify({ leading: leadership.fencingToken.toString(), atMs })),
        signal: stop.signal,
      });
    else if (command === 'stop') break;
  }
  stop.abort();
  await running;
} else {
  const campaign: Extract<LockInput, { op: 'campaign' }> = {
    op: 'campaign',
    election: config.election,
    ttlMs: config.ttlMs,
    via: VIA,
  };
  const invokeMs = monotonicMs();
  const leadership: Leadership = await client.campaign(config.election, config.client, {
    backend: BACKEND,
    ttlMs: config.ttlMs,
    deadlineMs: config.deadlineMs,
  });
  const returnMs = monotonicMs();
  // The witness: a lock in the same session (same backend and TTL), whose expiry its keepalives state.
  const witnessInput: LockInput = { op: 'acquire', name: config.witness, ttlMs: config.ttlMs, waitMs: 0, via: VIA };
  const witnessInvokeMs = monotonicMs();
  const witness: LockHandle = await client.lock(config.witness, { backend: BACKEND, ttlMs: config.ttlMs, waitMs: 0 });
  const witnessReturnMs = monotonicMs();

  /** The session's expiry as last stated, by a keepalive of the session or a KeepAlive of the leadership. */
  const statedExpiry = () => wallToMonotonicMs(Math.max(leadership.expiresAt.getTime(), witness.expiresAt.getTime()));
  // Each hold's stated expiry, taken as it ended (its signal aborted), or at stop.
  let leadershipUntilMs: number | undefined;
  let witnessUntilMs: number | undefined;
  leadership.signal.addEventListener('abort', () => {
    leadershipUntilMs ??= statedExpiry();
    aborts.push({ name: 'leadership', atMs: monotonicMs(), reason: String(leadership.signal.reason) });
  });
  witness.signal.addEventListener('abort', () => {
    witnessUntilMs ??= statedExpiry();
    aborts.push({ name: 'witness', atMs: monotonicMs(), reason: String(witness.signal.reason) });
  });
  const pollExpiry = setInterval(() => {
    if (leadership.signal.aborted || witness.signal.aborted) return;
    const expiresAtMs = statedExpiry();
    const last = expiries.at(-1);
    // Converted anew each time: a change under a millisecond is the conversion's, not the server's.
    if (last === undefined || Math.abs(expiresAtMs - last.expiresAtMs) > 1)
      expiries.push({ atMs: monotonicMs(), expiresAtMs });
  }, EXPIRY_POLL_MS);

  let stopping = false;
  let written = 0;
  const write = (value: string) =>
    fencedWrite({
      cache,
      client: config.client,
      key: config.key,
      value,
      leadership,
      via: config.fencedVia,
      deadlineMs: config.deadlineMs,
      record,
    });
  const writer = (async () => {
    while (!stopping) {
      if (!leadership.signal.aborted) await write(`${config.client}.${++written}`);
      await sleep(config.writeEveryMs);
    }
  })();
  console.log(JSON.stringify({ ready: true, token: leadership.fencingToken.toString() }));

  for await (const line of input) {
    const command = line.trim();
    if (command === 'late') {
      // NOTE: the fencing client has one address, and its connection to it may still be the
      // one the partition stalled (TCP resends with a growing backoff after the heal): a write
      // whose answer does not come is made again, a few times; each attempt is recorded.
      let outcome: Outcome<LockOutput> | undefined;
      for (let attempt = 0; attempt < LATE_ATTEMPTS && outcome?.status !== 'ok'; attempt++)
        outcome = await write(`${config.client}.late${++written}`);
      console.log(JSON.stringify({ late: [outcome!.status] }));
    } else if (command === 'stop') break;
  }
  stopping = true;
  await writer;
  clearInterval(pollExpiry);
  record(wonCampaign(config.client, campaign, invokeMs, returnMs, leadership, leadershipUntilMs ?? statedExpiry()));
  record({
    client: config.client,
    input: witnessInput,
    invokeMs: witnessInvokeMs,
    returnMs: witnessReturnMs,
    outcome: {
      status: 'ok',
      value: {
        op: 'acquire',
        leaseId: witness.leaseId,
        token: witness.fencingToken,
        validUntilMs: witnessUntilMs ?? statedExpiry(),
      },
    },
  });
}
input.close();
const report: ElectionClientReport = { done: true, expiries, aborts };
console.log(JSON.stringify(report));
await Promise.race([Promise.all([client.close(), fencing.close()]), sleep(config.deadlineMs)]);
process.exit(0);
