// `latchkey lock NAME -- CMD ARGS...` (flock(1) / `consul lock` for latchkey), with --limit
// (a semaphore) and --shared (a read lock); `latchkey lock describe NAME`; and `latchkey lock
// watch NAME`. The SDK's LockHandle does the lease work (refreshes, loss detection); this
// module ties CMD's life to it: CMD starts only once the lock is held, is stopped if the
// lease is lost, and the lock is released only after CMD has exited.
import { hostname, userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  InvalidArgumentError,
  LockBusyError,
  type LatchkeyClient,
  type LockEvent,
  type LockHandle,
  type LockMode,
  type LockState,
} from '../../client/index.js';
import { CLIENT_OPTIONS_HELP, commandEnvHelp, integerOption } from './args.js';
import { LOCK_ENV } from './cache.js';
import { clientCommand } from './client-command.js';
import { EXIT, exitCodesHelp, UsageError } from './exit-codes.js';
import type { Output } from './output.js';
import { superviseCommand } from './supervise.js';

export const DEFAULT_KILL_GRACE_MS = 5_000;

/**
 * Without --wait-ms, `latchkey lock` waits until it gets the lock, as flock(1), `consul lock`
 * and `etcdctl lock` do. One Acquire may wait at most the server's --max-wait-ms, so the wait
 * is a series of Acquires of this length (the server's default --max-wait-ms).
 * NOTE: each new Acquire joins the back of the queue; an hour per round keeps that rare.
 */
const WAIT_ROUND_MS = 3_600_000;
/** Between try-once rounds when a server allows no waiting at all (--max-wait-ms 0). */
const POLL_MS = 1_000;

/** Signals that end `latchkey lock watch` (exit 0). */
const WATCH_STOP: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/** The largest --limit (the wire's uint32); the server may allow less, and says so. */
const MAX_LIMIT = 2 ** 32 - 1;

const LOCK_OPTIONS = {
  'ttl-ms': 'string',
  'wait-ms': 'string',
  backend: 'string',
  owner: 'string',
  'kill-grace-ms': 'string',
  limit: 'string',
  shared: 'boolean',
} as const;

const DESCRIBE_OPTIONS = { backend: 'string' } as const;
const WATCH_OPTIONS = DESCRIBE_OPTIONS;

const ENV_HELP = commandEnvHelp(
  [
    [LOCK_ENV.name, "the lock's name"],
    [LOCK_ENV.backend, 'the backend that granted it'],
    [LOCK_ENV.fencingToken, "the lease's fencing token; strictly increases with every grant of"],
    ['', 'the lock: hand it to whatever the lock protects, so it can refuse'],
    ['', 'a holder whose lease ran out'],
    [LOCK_ENV.leaseId, "the lease's id"],
    [LOCK_ENV.address, "the server's address, so `latchkey cache ... --fenced` in CMD"],
    ['', 'writes to the same server, fenced by this lock'],
  ],
  24,
);

export const LOCK_HELP = `usage: latchkey lock NAME [options] -- CMD [ARGS...]
       latchkey lock describe NAME [--backend B] [client options]
       latchkey lock watch NAME [--backend B] [client options]

Runs CMD while holding lock NAME, like flock(1) or \`consul lock\`: acquires the lock, runs CMD
(no shell; stdin, stdout and stderr are CMD's), keeps the lease refreshed while CMD runs,
releases the lock when CMD exits, and exits with CMD's status.

Waiting: without --wait-ms, latchkey waits for the lock as long as it takes (like flock and
consul lock). --wait-ms 0 tries once (like flock -n); --wait-ms N waits up to N ms. Not
obtained: exit 5, with one line on stderr naming the holder. SIGINT or SIGTERM while waiting
gives up the wait and exits 128+signal; CMD never starts.

More than one holder: --limit N makes NAME a semaphore: up to N CMDs run at once, each with
its own lease and fencing token; every holder of NAME must give the same N (exit 8 if one
in force differs). --shared takes a read lock: any number of --shared holders at once, and
none while a holder without --shared (a writer) has it. One FIFO queue serves both, so a
waiting writer is not starved by readers that come after it. The backend must declare
semaphore or shared (memory does; latchkey lock describe NAME shows them), else exit 8.

CMD's environment gets:
${ENV_HELP}

Lease lost: if the lease cannot be kept (released or taken behind our back, server gone for
longer than the TTL), CMD is sent SIGTERM, then SIGKILL if it is still running after
--kill-grace-ms; latchkey prints one line saying the lease was lost and exits 6 whatever
CMD's status was. A loss found only when releasing after CMD exited also exits 6.
Signals: SIGINT, SIGTERM and SIGHUP sent to latchkey are passed on to CMD; the lock is
released after CMD exits.
NOTE: Ctrl-C in a terminal signals CMD directly as well (it is in the same process group), so
CMD then sees SIGINT twice.
NOTE: if latchkey itself is killed with SIGKILL, CMD keeps running unprotected, and the lock
is freed when its TTL runs out.

options:
  --ttl-ms N             lease TTL in ms; refreshed every TTL/3 while CMD runs (default the
                         server's --default-ttl-ms, 15000 unless changed)
  --wait-ms N            how long to wait for the lock, in ms; 0 = try once (default: forever;
                         a given N may not exceed the server's --max-wait-ms)
  --backend NAME         lock backend ("memory", "file", "etcd"); default the server's
  --owner TEXT           names this holder in busy messages and describe (default
                         user@host (pid N))
  --kill-grace-ms N      after SIGTERM on a lost lease, how long CMD may take to exit before
                         SIGKILL (default ${DEFAULT_KILL_GRACE_MS})
  --limit N              a semaphore: at most N holders of NAME at once (default 1)
  --shared               a shared (read) lock; not with --limit

${CLIENT_OPTIONS_HELP}
With --json, stdout stays CMD's: only latchkey's own messages (on stderr) become JSON.

examples:
  latchkey lock nightly-backup -- /usr/local/bin/backup --full
  latchkey lock deploy --wait-ms 0 -- sh -c 'deploy.sh --token "$${LOCK_ENV.fencingToken}"'
  latchkey lock migrate --wait-ms 60000 --ttl-ms 30000 -- npm run migrate
  latchkey lock encoders --limit 4 -- ffmpeg -i in.mov out.mp4      (4 encoders at a time)
  latchkey lock catalog --shared -- ./read-catalog.sh     (readers together; writers omit --shared)
  latchkey lock deploy --tls-ca ca.pem --token-file ~/.latchkey-token --address lk:50051 -- ./deploy.sh

${exitCodesHelp({ withCmdNotes: true })}`;

export const DESCRIBE_HELP = `usage: latchkey lock describe NAME [--backend B] [client options]

Prints lock NAME's state: every holder (owner, mode, fencing token, expiry), the waiters in
the order they will be served, the semaphore limit, and what its backend guarantees. Exits 0
whether the lock is held or not. With --json: {"name","backend","held","owner",
"fencingToken","expiresAt","waiters","holders":[{"owner","fencingToken","expiresAt","mode"}],
"queue":[{"owner","mode"}],"limit","capabilities":{"acrossHosts","fencing","fifo",
"autoRelease","semaphore","shared","watch","sessions","elections"}}: owner, fencingToken and expiresAt are the first
holder's; fencing tokens are decimal strings, times ISO 8601 (expiresAt null when free);
limit is 1 for a plain lock and 0 when nobody holds or waits.

options:
  --backend NAME         lock backend ("memory", "file", "etcd"); default the server's

${CLIENT_OPTIONS_HELP}

examples:
  latchkey lock describe nightly-backup
  latchkey lock describe deploy --backend etcd --json | jq -r .owner
  latchkey lock describe encoders --json | jq -r '.holders[].owner'

${exitCodesHelp()}`;

export const WATCH_HELP = `usage: latchkey lock watch NAME [--backend B] [client options]

Follows lock NAME: prints one line with its state, then one line per event as it happens
(ACQUIRED, RELEASED, EXPIRED, WAITER_ADDED, WAITER_LEFT), until SIGINT (Ctrl-C) or SIGTERM,
then exits 0. If the server ends the watch (it is shutting down), exits 7 with one line on
stderr: run it again to keep watching. The backend must declare watch (memory does), else
exit 8. With --json, each line is {"type","name","owner","fencingToken","mode","at"}, and the
first (type STATE) also has "state", shaped as \`latchkey lock describe --json\` prints it.

options:
  --backend NAME         lock backend ("memory", "file", "etcd"); default the server's

${CLIENT_OPTIONS_HELP}

examples:
  latchkey lock watch nightly-backup
  latchkey lock watch deploy --json | jq -c 'select(.type == "ACQUIRED") | {owner, at}'

${exitCodesHelp()}`;

export function defaultOwner(): string {
  let user = process.env.USER ?? '';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for this uid (common in containers): the env's USER, if any.
  }
  return `${user === '' ? '' : `${user}@`}${hostname()} (pid ${process.pid})`;
}

interface RunOptions {
  readonly name: string;
  readonly command: readonly string[];
  readonly ttlMs: number | undefined;
  readonly waitMs: number | undefined;
  readonly backend: string | undefined;
  readonly owner: string;
  readonly killGraceMs: number;
  readonly limit: number | undefined;
  readonly mode: LockMode;
  readonly address: string;
  /** TLS and token settings for CMD (see ENV_HELP). */
  readonly childEnv: Readonly<Record<string, string>>;
}

/** Acquires, waiting forever (in rounds) when no --wait-ms was given. */
async function acquire(client: LatchkeyClient, o: RunOptions, signal: AbortSignal): Promise<LockHandle> {
  const base = { ttlMs: o.ttlMs, backend: o.backend, owner: o.owner, limit: o.limit, mode: o.mode, signal };
  if (o.waitMs !== undefined) return client.lock(o.name, { ...base, waitMs: o.waitMs });
  let round = WAIT_ROUND_MS;
  for (;;) {
    try {
      return await client.lock(o.name, { ...base, waitMs: round });
    } catch (err) {
      if (err instanceof LockBusyError) {
        if (round === 0) await sleep(POLL_MS, undefined, { signal });
        continue;
      }
      // A server with a lower --max-wait-ms says its limit; wait in rounds of that instead.
      const limit =
        err instanceof InvalidArgumentError ? /wait_ms must be between 0 and (\d+)/.exec(err.message) : null;
      if (limit !== null && Number(limit[1]) < round) {
        round = Number(limit[1]);
        continue;
      }
      throw err;
    }
  }
}

function runLocked(client: LatchkeyClient, o: RunOptions, out: Output): Promise<number> {
  return superviseCommand<LockHandle>({
    command: o.command,
    take: (signal) => acquire(client, o, signal),
    guardOf: (handle) => handle,
    envOf: (handle) => ({
      ...o.childEnv,
      [LOCK_ENV.name]: handle.name,
      [LOCK_ENV.backend]: handle.backend,
      [LOCK_ENV.fencingToken]: handle.fencingToken.toString(),
      [LOCK_ENV.leaseId]: handle.leaseId,
      [LOCK_ENV.address]: o.address,
    }),
    killGraceMs: o.killGraceMs,
    out,
    messages: {
      lost: (reason, pid, graceMs) =>
        `lease on lock "${o.name}" lost while CMD ran: ${reason}; sending CMD (pid ${pid}) SIGTERM, SIGKILL after ${graceMs} ms`,
      lostAfter: (status, reason) =>
        `lease on lock "${o.name}" was found lost when releasing it after CMD exited with status ${status}: ${reason}; CMD may not have held the lock all along`,
      releaseFailed: (status, reason) =>
        `CMD exited with status ${status}, but releasing lock "${o.name}" failed (${reason}); the server frees it when its lease expires`,
    },
  });
}

const iso = (date: Date | undefined) => date?.toISOString() ?? null;

/** describe --json's shape, also the `state` of watch --json's STATE line. */
function stateJson(s: LockState): object {
  return { ...s, expiresAt: iso(s.expiresAt), holders: s.holders.map((h) => ({ ...h, expiresAt: iso(h.expiresAt) })) };
}

const modeText = (mode: LockMode) => (mode === 'SHARED' ? 'shared' : 'exclusive');
const ownerText = (owner: string) => owner || '(unnamed)';

function heldText(s: LockState): string {
  if (!s.held) return 'free';
  const n = s.holders.length;
  if (s.holders.some((h) => h.mode === 'SHARED')) return `held by ${n} shared holder${n === 1 ? '' : 's'}`;
  return s.limit > 1 ? `held by ${n} of ${s.limit} (semaphore)` : 'held';
}

function describeText(s: LockState): string {
  const c = s.capabilities;
  const yesNo = (b: boolean) => (b ? 'yes' : 'no');
  const now = Date.now();
  const holders = s.holders.map((h) => {
    const shared = h.mode === 'SHARED' ? 'shared, ' : '';
    return `  holder          ${ownerText(h.owner)}: ${shared}fencing token ${h.fencingToken}, expires ${h.expiresAt.toISOString()} (in ${Math.max(0, h.expiresAt.getTime() - now)} ms)`;
  });
  const queue = s.queue.map(
    (w, i) => `${`  ${i === 0 ? 'queue' : ''}`.padEnd(18)}${i + 1}. ${ownerText(w.owner)}: ${modeText(w.mode)}`,
  );
  return [
    `lock "${s.name}" (backend ${s.backend}): ${heldText(s)}`,
    ...(holders.length > 0 ? holders : ['  holder          -']),
    ...(s.limit > 1 ? [`  limit           ${s.limit}`] : []),
    `  waiters         ${s.waiters}`,
    ...queue,
    `  capabilities    ${(Object.keys(c) as (keyof typeof c)[]).map((k) => `${k}=${yesNo(c[k])}`).join(' ')}`,
  ].join('\n');
}

const describe = clientCommand({
  command: 'latchkey lock describe',
  options: DESCRIBE_OPTIONS,
  positionals: ['NAME'],
  help: DESCRIBE_HELP,
  async run({ out, options, values, positionals, client }) {
    const state = await client().describe(positionals[0]!, { backend: values.backend, deadlineMs: options.deadlineMs });
    out.result(stateJson(state), describeText(state));
    return EXIT.ok;
  },
});

function eventJson(e: LockEvent): object {
  const { state, ...rest } = e;
  return { ...rest, at: e.at.toISOString(), ...(state === undefined ? {} : { state: stateJson(state) }) };
}

function eventText(e: LockEvent): string {
  const at = e.at.toISOString();
  if (e.type === 'STATE') {
    const s = e.state;
    const holders = s.holders
      .map((h) => `${ownerText(h.owner)}, ${h.mode === 'SHARED' ? 'shared, ' : ''}token ${h.fencingToken}; `)
      .join('');
    return `${at} ${'STATE'.padEnd(12)} lock "${s.name}" (backend ${s.backend}) ${heldText(s)}: ${holders}${s.waiters} waiting`;
  }
  const token = e.fencingToken > 0n ? `, fencing token ${e.fencingToken}` : '';
  return `${at} ${e.type.padEnd(12)} ${ownerText(e.owner)}: ${modeText(e.mode)}${token}`;
}

const watch = clientCommand({
  command: 'latchkey lock watch',
  options: WATCH_OPTIONS,
  positionals: ['NAME'],
  help: WATCH_HELP,
  async run({ out, options, values, positionals, client }) {
    const name = positionals[0]!;
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    for (const s of WATCH_STOP) process.on(s, onSignal);
    try {
      for await (const event of client().watch(name, { backend: values.backend, signal: stop.signal }))
        out.result(eventJson(event), eventText(event));
      if (stop.signal.aborted) return EXIT.ok;
      return out.fail(
        EXIT.unavailable,
        'WatchEndedError',
        `the latchkey server at ${options.address} ended the watch of lock "${name}" (it is shutting down); run latchkey lock watch again to keep watching`,
      );
    } finally {
      for (const s of WATCH_STOP) process.off(s, onSignal);
    }
  },
});

/** `latchkey lock NAME -- CMD`: CMD (after `--`) is not latchkey's to parse, so it comes apart. */
const lockRun = (cmd: readonly string[]) =>
  clientCommand({
    command: 'latchkey lock',
    options: LOCK_OPTIONS,
    positionals: ['NAME'],
    help: LOCK_HELP,
    async run({ out, options, values, positionals, client }) {
      if (cmd.length === 0)
        throw new UsageError('latchkey lock: missing "-- CMD [ARGS...]": the command to run while holding the lock');
      if (values.shared === true && values.limit !== undefined) {
        throw new UsageError(
          '--limit and --shared do not go together: --limit counts exclusive holders (a semaphore); shared holders are not counted',
        );
      }
      const run: RunOptions = {
        name: positionals[0]!,
        command: cmd,
        ttlMs:
          values['ttl-ms'] === undefined
            ? undefined
            : integerOption('--ttl-ms', values['ttl-ms'], 1, Number.MAX_SAFE_INTEGER),
        waitMs:
          values['wait-ms'] === undefined
            ? undefined
            : integerOption('--wait-ms', values['wait-ms'], 0, Number.MAX_SAFE_INTEGER),
        backend: values.backend,
        owner: values.owner ?? defaultOwner(),
        killGraceMs:
          values['kill-grace-ms'] === undefined
            ? DEFAULT_KILL_GRACE_MS
            : integerOption('--kill-grace-ms', values['kill-grace-ms'], 0, 86_400_000),
        limit: values.limit === undefined ? undefined : integerOption('--limit', values.limit, 1, MAX_LIMIT),
        mode: values.shared === true ? 'SHARED' : 'EXCLUSIVE',
        address: options.address,
        childEnv: options.childEnv,
      };
      return runLocked(client(), run, out);
    },
  });

export async function lockCommand(argv: readonly string[], globals: readonly string[] = []): Promise<number> {
  const dashes = argv.indexOf('--');
  const before = dashes >= 0 ? argv.slice(0, dashes) : argv;
  // `lock describe NAME` unless a `--` follows: `latchkey lock describe -- CMD` locks "describe".
  if (argv[0] === 'describe' && dashes < 0) return describe([...globals, ...argv.slice(1)]);
  if (argv[0] === 'watch' && dashes < 0) return watch([...globals, ...argv.slice(1)]);
  if (argv.length === 0) {
    process.stdout.write(`${LOCK_HELP}\n`);
    return EXIT.usage;
  }
  const cmd = dashes >= 0 ? argv.slice(dashes + 1) : [];
  return lockRun(cmd)([...globals, ...before]);
}
