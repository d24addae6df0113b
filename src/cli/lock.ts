// `latchkey lock NAME -- CMD ARGS...` (flock(1) / `consul lock` for latchkey) and
// `latchkey lock describe NAME`. The SDK's LockHandle does the lease work (refreshes, loss
// detection); this module ties CMD's life to it: CMD starts only once the lock is held, is
// stopped if the lease is lost, and the lock is released only after CMD has exited.
import { spawn } from 'node:child_process';
import { constants as osConstants, hostname, userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, InvalidArgumentError, LockBusyError, type LatchkeyClient, type LockHandle } from '../../client/index.js';
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP, clientOptions, expectPositionals, integerOption, parseArgs } from './args.js';
import { LOCK_ENV } from './cache.js';
import { EXIT, exitCodesHelp, UsageError } from './exit-codes.js';
import { Output } from './output.js';

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

/** Signals forwarded to CMD; each otherwise stops latchkey without releasing anything. */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

const LOCK_OPTIONS = {
  ...CLIENT_OPTIONS,
  'ttl-ms': 'string',
  'wait-ms': 'string',
  backend: 'string',
  owner: 'string',
  'kill-grace-ms': 'string',
} as const;

const DESCRIBE_OPTIONS = { ...CLIENT_OPTIONS, backend: 'string' } as const;

const ENV_HELP = [
  [LOCK_ENV.name, "the lock's name"],
  [LOCK_ENV.backend, 'the backend that granted it'],
  [LOCK_ENV.fencingToken, "the lease's fencing token; strictly increases with every grant of"],
  ['', 'the lock: hand it to whatever the lock protects, so it can refuse'],
  ['', 'a holder whose lease ran out'],
  [LOCK_ENV.leaseId, "the lease's id"],
  [LOCK_ENV.address, "the server's address, so `latchkey cache ... --fenced` in CMD"],
  ['', 'writes to the same server, fenced by this lock'],
]
  .map(([name, text]) => `  ${name!.padEnd(24)}${text}`)
  .join('\n');

export const LOCK_HELP = `usage: latchkey lock NAME [options] -- CMD [ARGS...]
       latchkey lock describe NAME [--backend B] [client options]

Runs CMD while holding lock NAME, like flock(1) or \`consul lock\`: acquires the lock, runs CMD
(no shell; stdin, stdout and stderr are CMD's), keeps the lease refreshed while CMD runs,
releases the lock when CMD exits, and exits with CMD's status.

Waiting: without --wait-ms, latchkey waits for the lock as long as it takes (like flock and
consul lock). --wait-ms 0 tries once (like flock -n); --wait-ms N waits up to N ms. Not
obtained: exit 5, with one line on stderr naming the holder. SIGINT or SIGTERM while waiting
gives up the wait and exits 128+signal; CMD never starts.

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

${CLIENT_OPTIONS_HELP}
With --json, stdout stays CMD's: only latchkey's own messages (on stderr) become JSON.

examples:
  latchkey lock nightly-backup -- /usr/local/bin/backup --full
  latchkey lock deploy --wait-ms 0 -- sh -c 'deploy.sh --token "$${LOCK_ENV.fencingToken}"'
  latchkey lock migrate --wait-ms 60000 --ttl-ms 30000 -- npm run migrate

${exitCodesHelp({ withCmdNotes: true })}`;

export const DESCRIBE_HELP = `usage: latchkey lock describe NAME [--backend B] [client options]

Prints lock NAME's state: holder, fencing token, expiry, waiters, and what its backend
guarantees. Exits 0 whether the lock is held or not. With --json: {"name","backend","held",
"owner","fencingToken","expiresAt","waiters","capabilities":{"acrossHosts","fencing","fifo",
"autoRelease"}}, fencingToken as a decimal string and expiresAt as ISO 8601 (null when free).

options:
  --backend NAME         lock backend ("memory", "file", "etcd"); default the server's

${CLIENT_OPTIONS_HELP}

examples:
  latchkey lock describe nightly-backup
  latchkey lock describe deploy --backend etcd --json | jq -r .owner

${exitCodesHelp()}`;

function defaultOwner(): string {
  let user = process.env.USER ?? '';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry for this uid (common in containers): the env's USER, if any.
  }
  return `${user === '' ? '' : `${user}@`}${hostname()} (pid ${process.pid})`;
}

function signalNumber(signal: NodeJS.Signals): number {
  return osConstants.signals[signal] ?? 0;
}

interface RunOptions {
  readonly name: string;
  readonly command: readonly string[];
  readonly ttlMs: number | undefined;
  readonly waitMs: number | undefined;
  readonly backend: string | undefined;
  readonly owner: string;
  readonly killGraceMs: number;
  readonly address: string;
}

/** Acquires, waiting forever (in rounds) when no --wait-ms was given. */
async function acquire(client: LatchkeyClient, o: RunOptions, signal: AbortSignal): Promise<LockHandle> {
  const base = { ttlMs: o.ttlMs, backend: o.backend, owner: o.owner, signal };
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
      const limit = err instanceof InvalidArgumentError ? /wait_ms must be between 0 and (\d+)/.exec(err.message) : null;
      if (limit !== null && Number(limit[1]) < round) {
        round = Number(limit[1]);
        continue;
      }
      throw err;
    }
  }
}

type ChildEnd = { readonly code: number | null; readonly signal: NodeJS.Signals | null } | { readonly error: NodeJS.ErrnoException };

async function runLocked(o: RunOptions, out: Output, deadlineMs: number | undefined): Promise<number> {
  await using client = connect(o.address, { deadlineMs });
  const giveUp = new AbortController();
  let received: NodeJS.Signals | undefined;
  let forward: ((signal: NodeJS.Signals) => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    received = signal;
    if (forward !== undefined) forward(signal);
    else giveUp.abort();
  };
  for (const s of FORWARDED) process.on(s, onSignal);
  try {
    let handle: LockHandle;
    try {
      handle = await acquire(client, o, giveUp.signal);
    } catch (err) {
      if (received !== undefined) return 128 + signalNumber(received);
      throw err;
    }
    // The grant crossed the signal: the caller asked to stop before CMD ever started.
    if (received !== undefined) {
      await handle.release();
      return 128 + signalNumber(received);
    }
    const [file, ...args] = o.command;
    const child = spawn(file!, args, {
      stdio: 'inherit',
      env: {
        ...process.env,
        [LOCK_ENV.name]: handle.name,
        [LOCK_ENV.backend]: handle.backend,
        [LOCK_ENV.fencingToken]: handle.fencingToken.toString(),
        [LOCK_ENV.leaseId]: handle.leaseId,
        [LOCK_ENV.address]: o.address,
      },
    });
    const ended = new Promise<ChildEnd>((resolve) => {
      child.once('error', (error) => resolve({ error }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    // From here on a signal is CMD's (no await since the check above, so none slipped by).
    forward = (signal) => child.kill(signal);

    let lost = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onLost = () => {
      if (handle.state !== 'lost') return; // released: CMD has already exited
      lost = true;
      const reason = handle.error?.message ?? 'lease lost';
      out.fail(EXIT.leaseLost, 'LeaseLostError', `lease on lock "${o.name}" lost while CMD ran: ${reason}; sending CMD (pid ${child.pid}) SIGTERM, SIGKILL after ${o.killGraceMs} ms`);
      child.kill('SIGTERM');
      killTimer = setTimeout(() => {
        out.warn(`CMD (pid ${child.pid}) still running ${o.killGraceMs} ms after SIGTERM; sending SIGKILL`);
        child.kill('SIGKILL');
      }, o.killGraceMs);
    };
    handle.signal.addEventListener('abort', onLost, { once: true });
    if (handle.signal.aborted) onLost();
    const end = await ended;
    clearTimeout(killTimer);
    handle.signal.removeEventListener('abort', onLost);
    const state = await handle.release();

    if ('error' in end) {
      const code = end.error.code === 'ENOENT' ? 127 : end.error.code === 'EACCES' ? 126 : EXIT.error;
      return out.fail(code, 'SpawnError', `cannot run ${JSON.stringify(file)}: ${end.error.message}`);
    }
    const status = end.code ?? 128 + signalNumber(end.signal!);
    if (lost) return EXIT.leaseLost;
    if (state === 'lost') {
      return out.fail(EXIT.leaseLost, 'LeaseLostError', `lease on lock "${o.name}" was found lost when releasing it after CMD exited with status ${status}: ${handle.error?.message ?? ''}; CMD may not have held the lock all along`);
    }
    if (state === 'release-failed') out.warn(`CMD exited with status ${status}, but releasing lock "${o.name}" failed (${handle.error?.message}); the server frees it when its lease expires`);
    return status;
  } finally {
    for (const s of FORWARDED) process.off(s, onSignal);
  }
}

async function describe(argv: readonly string[], globals: readonly string[]): Promise<number> {
  const command = 'latchkey lock describe';
  const { values, positionals, help } = parseArgs([...globals, ...argv], DESCRIBE_OPTIONS, command);
  if (help) {
    process.stdout.write(`${DESCRIBE_HELP}\n`);
    return EXIT.ok;
  }
  const options = clientOptions(values, process.env);
  const out = new Output(options.json, options.address);
  try {
    expectPositionals(positionals, ['NAME'], command);
    await using client = connect(options.address, { deadlineMs: options.deadlineMs });
    const s = await client.describe(positionals[0]!, { backend: values.backend, deadlineMs: options.deadlineMs });
    const c = s.capabilities;
    const yesNo = (b: boolean) => (b ? 'yes' : 'no');
    const expires = s.expiresAt === undefined ? '-' : `${s.expiresAt.toISOString()} (in ${Math.max(0, s.expiresAt.getTime() - Date.now())} ms)`;
    const human = [
      `lock "${s.name}" (backend ${s.backend}): ${s.held ? 'held' : 'free'}`,
      `  holder          ${s.held ? s.owner || '(unnamed)' : '-'}`,
      `  fencing token   ${s.held ? s.fencingToken : '-'}`,
      `  expires         ${expires}`,
      `  waiters         ${s.waiters}`,
      `  capabilities    acrossHosts=${yesNo(c.acrossHosts)} fencing=${yesNo(c.fencing)} fifo=${yesNo(c.fifo)} autoRelease=${yesNo(c.autoRelease)}`,
    ].join('\n');
    out.result({ ...s, expiresAt: s.expiresAt?.toISOString() ?? null }, human);
    return EXIT.ok;
  } catch (err) {
    return out.error(err);
  }
}

export async function lockCommand(argv: readonly string[], globals: readonly string[] = []): Promise<number> {
  const dashes = argv.indexOf('--');
  const before = dashes >= 0 ? argv.slice(0, dashes) : argv;
  // `lock describe NAME` unless a `--` follows: `latchkey lock describe -- CMD` locks "describe".
  if (argv[0] === 'describe' && dashes < 0) return describe(argv.slice(1), globals);
  if (argv.length === 0) {
    process.stdout.write(`${LOCK_HELP}\n`);
    return EXIT.usage;
  }
  const command = 'latchkey lock';
  const { values, positionals, help } = parseArgs([...globals, ...before], LOCK_OPTIONS, command);
  if (help) {
    process.stdout.write(`${LOCK_HELP}\n`);
    return EXIT.ok;
  }
  const options = clientOptions(values, process.env);
  const out = new Output(options.json, options.address);
  try {
    expectPositionals(positionals, ['NAME'], command);
    const cmd = dashes >= 0 ? argv.slice(dashes + 1) : [];
    if (cmd.length === 0) throw new UsageError(`${command}: missing "-- CMD [ARGS...]": the command to run while holding the lock`);
    const run: RunOptions = {
      name: positionals[0]!,
      command: cmd,
      ttlMs: values['ttl-ms'] === undefined ? undefined : integerOption('--ttl-ms', values['ttl-ms'], 1, Number.MAX_SAFE_INTEGER),
      waitMs: values['wait-ms'] === undefined ? undefined : integerOption('--wait-ms', values['wait-ms'], 0, Number.MAX_SAFE_INTEGER),
      backend: values.backend,
      owner: values.owner ?? defaultOwner(),
      killGraceMs: values['kill-grace-ms'] === undefined ? DEFAULT_KILL_GRACE_MS : integerOption('--kill-grace-ms', values['kill-grace-ms'], 0, 86_400_000),
      address: options.address,
    };
    return await runLocked(run, out, options.deadlineMs);
  } catch (err) {
    return out.error(err);
  }
}
