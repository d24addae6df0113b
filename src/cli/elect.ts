// `latchkey elect NAME --value V -- CMD ARGS...` (run CMD only while leading, as `etcdctl elect`
// campaigns and `consul lock` runs a command), `latchkey elect observe NAME` and `latchkey
// elect leader NAME`. The SDK's Leadership keeps the leadership's session alive and says when
// it is lost; supervise.ts ties CMD's life to it, as it does for `latchkey lock`.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  connect,
  type ConnectOptions,
  type LatchkeyClient,
  type Leader,
  type Leadership,
  UnavailableError,
} from '../../client/index.js';
import {
  CLIENT_OPTIONS,
  CLIENT_OPTIONS_HELP,
  clientOptions,
  commandEnvHelp,
  expectPositionals,
  integerOption,
  parseArgs,
} from './args.js';
import { ELECTION_ENV } from './cache.js';
import { EXIT, exitCodesHelp, UsageError } from './exit-codes.js';
import { DEFAULT_KILL_GRACE_MS, defaultOwner } from './lock.js';
import { Output } from './output.js';
import { superviseCommand } from './supervise.js';

/** Signals that end `latchkey elect observe` (exit 0). */
const OBSERVE_STOP: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
/**
 * Without --wait-ms a campaign whose server went away is made again after this pause, so a
 * restart of the server (or a move to the next address) costs the candidate its place in the
 * queue but not its candidacy.
 */
const RECAMPAIGN_MS = 1_000;

const ELECT_OPTIONS = {
  ...CLIENT_OPTIONS,
  value: 'string',
  'ttl-ms': 'string',
  'wait-ms': 'string',
  backend: 'string',
  'kill-grace-ms': 'string',
} as const;

const OBSERVE_OPTIONS = { ...CLIENT_OPTIONS, backend: 'string' } as const;
const LEADER_OPTIONS = OBSERVE_OPTIONS;

const ENV_HELP = commandEnvHelp(
  [
    [ELECTION_ENV.name, "the election's name"],
    [ELECTION_ENV.backend, 'the backend that holds it'],
    [ELECTION_ENV.value, "this leader's value (--value)"],
    [ELECTION_ENV.fencingToken, "the leadership's fencing token; strictly increases with every new"],
    ['', 'leader: hand it to whatever only the leader may change, so it can'],
    ['', 'refuse a leader that has been deposed'],
    [ELECTION_ENV.address, "the server's address, so `latchkey cache ... --fenced` in CMD"],
    ['', 'writes to the same server, fenced by this leadership'],
  ],
  26,
);

export const ELECT_HELP = `usage: latchkey elect NAME [--value V] [options] -- CMD [ARGS...]
       latchkey elect observe NAME [--backend B] [client options]
       latchkey elect leader NAME [--backend B] [client options]

Runs CMD only while leading election NAME: campaigns (candidates lead one at a time, in the
order they campaigned), runs CMD once this one leads (no shell; stdin, stdout and stderr are
CMD's), keeps the leadership's session alive while CMD runs, resigns when CMD exits (the next
candidate leads), and exits with CMD's status. Run it on every replica: exactly one CMD runs
at a time.

Waiting: without --wait-ms, latchkey waits to lead as long as it takes (and campaigns again
if its server goes away meanwhile). --wait-ms N waits up to N ms; not leading by then: exit 5,
with one line naming the leader. SIGINT or SIGTERM while waiting withdraws the candidacy and
exits 128+signal; CMD never starts.

CMD's environment gets:
${ENV_HELP}

Leadership lost: if the leadership's session cannot be kept alive (server gone for longer
than the TTL, the process stalled past it), CMD is sent SIGTERM, then SIGKILL if it is still
running after --kill-grace-ms; latchkey prints one line saying the leadership was lost and
exits 6 whatever CMD's status was. Another candidate leads only once the session has expired.
Signals: SIGINT, SIGTERM and SIGHUP sent to latchkey are passed on to CMD; latchkey resigns
after CMD exits.
NOTE: if latchkey itself is killed with SIGKILL, CMD keeps running, no longer the leader,
and the next candidate leads when the session's TTL runs out.

options:
  --value TEXT           what this candidate makes known while it leads (latchkey elect
                         leader/observe, \`etcdctl elect -l\`), e.g. its address; default
                         user@host (pid N)
  --ttl-ms N             TTL of the leadership's session, in ms; renewed every TTL/3 (default
                         the server's --default-ttl-ms, 15000 unless changed). A leader that
                         dies is followed at most one TTL later
  --wait-ms N            how long to wait to lead, in ms (default: forever)
  --backend NAME         lock backend ("memory", "etcd"); default the server's. It must
                         support elections (latchkey lock describe shows capabilities)
  --kill-grace-ms N      after SIGTERM on a lost leadership, how long CMD may take to exit
                         before SIGKILL (default ${DEFAULT_KILL_GRACE_MS})

${CLIENT_OPTIONS_HELP}
With --json, stdout stays CMD's: only latchkey's own messages (on stderr) become JSON.

examples:
  latchkey elect scheduler --value "$(hostname):8080" -- ./scheduler
  latchkey elect compactor --ttl-ms 5000 -- sh -c 'compact --fence "$${ELECTION_ENV.fencingToken}"'
  latchkey elect leader scheduler --json | jq -r .value

${exitCodesHelp({ withCmdNotes: true })}`;

export const OBSERVE_HELP = `usage: latchkey elect observe NAME [--backend B] [client options]

Follows election NAME: prints one line with its leader now (or that nobody leads), then one
line per change as it happens: ELECTED (a new leader), PROCLAIMED (the leader changed its
value), VACANT (nobody leads), until SIGINT (Ctrl-C) or SIGTERM, then exits 0. If the server
ends the stream (it is shutting down), exits 7 with one line on stderr: run it again to keep
following. With --json, each line is {"change","election","backend","elected","value",
"fencingToken","candidates","at"}, change being CURRENT on the first line.

options:
  --backend NAME         lock backend ("memory", "etcd"); default the server's

${CLIENT_OPTIONS_HELP}

examples:
  latchkey elect observe scheduler
  latchkey elect observe scheduler --json | jq -r 'select(.change == "ELECTED") | .value'

${exitCodesHelp()}`;

export const LEADER_HELP = `usage: latchkey elect leader NAME [--backend B] [client options]

Prints who leads election NAME now: its value and fencing token, and how many candidates
campaign; or that nobody leads. Exits 0 either way. With --json: {"election","backend",
"elected","value","fencingToken","candidates"} (value "" and fencingToken "0" when nobody
leads).

options:
  --backend NAME         lock backend ("memory", "etcd"); default the server's

${CLIENT_OPTIONS_HELP}

examples:
  latchkey elect leader scheduler
  latchkey elect leader scheduler --json | jq -r .value

${exitCodesHelp()}`;

interface RunOptions {
  readonly name: string;
  readonly value: string;
  readonly command: readonly string[];
  readonly ttlMs: number | undefined;
  readonly waitMs: number | undefined;
  readonly backend: string | undefined;
  readonly killGraceMs: number;
  readonly address: string;
  readonly connect: ConnectOptions;
  readonly childEnv: Readonly<Record<string, string>>;
}

/** Campaigns, and without --wait-ms campaigns again while the server is unreachable. */
async function campaign(client: LatchkeyClient, o: RunOptions, signal: AbortSignal): Promise<Leadership> {
  const options = { ttlMs: o.ttlMs, backend: o.backend, signal };
  if (o.waitMs !== undefined) return client.campaign(o.name, o.value, { ...options, waitMs: o.waitMs });
  for (;;) {
    try {
      return await client.campaign(o.name, o.value, options);
    } catch (err) {
      if (!(err instanceof UnavailableError) || signal.aborted) throw err;
      await sleep(RECAMPAIGN_MS, undefined, { signal });
    }
  }
}

async function runElected(o: RunOptions, out: Output): Promise<number> {
  await using client = connect(o.address, o.connect);
  return await superviseCommand<Leadership>({
    command: o.command,
    take: (signal) => campaign(client, o, signal),
    guardOf: (leadership) => ({
      signal: leadership.signal,
      get state() {
        return leadership.state;
      },
      get error() {
        return leadership.error;
      },
      release: () => leadership.resign(),
    }),
    envOf: (leadership) => ({
      ...o.childEnv,
      [ELECTION_ENV.name]: leadership.election,
      [ELECTION_ENV.backend]: leadership.backend,
      [ELECTION_ENV.value]: leadership.value,
      [ELECTION_ENV.fencingToken]: leadership.fencingToken.toString(),
      [ELECTION_ENV.address]: o.address,
    }),
    killGraceMs: o.killGraceMs,
    out,
    messages: {
      lost: (reason, pid, graceMs) =>
        `leadership of election "${o.name}" lost while CMD ran: ${reason}; sending CMD (pid ${pid}) SIGTERM, SIGKILL after ${graceMs} ms`,
      lostAfter: (status, reason) =>
        `leadership of election "${o.name}" was found lost when resigning after CMD exited with status ${status}: ${reason}; CMD may not have led all along`,
      releaseFailed: (status, reason) =>
        `CMD exited with status ${status}, but resigning from election "${o.name}" failed (${reason}); the next candidate leads when the session expires`,
    },
  });
}

const leaderJson = (l: Leader) => ({ ...l });

function leaderText(l: Leader): string {
  if (!l.elected) return `election "${l.election}" (backend ${l.backend}): nobody leads`;
  return `election "${l.election}" (backend ${l.backend}): led by ${JSON.stringify(l.value)} (fencing token ${l.fencingToken}), ${l.candidates} candidate${l.candidates === 1 ? '' : 's'}`;
}

type Change = 'CURRENT' | 'ELECTED' | 'PROCLAIMED' | 'VACANT';

/** What an Observe message changed, against the one before it. */
function changeOf(previous: Leader | undefined, now: Leader): Change {
  if (previous === undefined) return 'CURRENT';
  if (!now.elected) return 'VACANT';
  return previous.elected && previous.fencingToken === now.fencingToken ? 'PROCLAIMED' : 'ELECTED';
}

function changeText(change: Change, l: Leader, at: Date): string {
  const when = at.toISOString();
  if (!l.elected) return `${when} ${change.padEnd(11)} nobody leads`;
  return `${when} ${change.padEnd(11)} ${JSON.stringify(l.value)} (fencing token ${l.fencingToken})`;
}

async function observe(argv: readonly string[], globals: readonly string[]): Promise<number> {
  const command = 'latchkey elect observe';
  const { values, positionals, help } = parseArgs([...globals, ...argv], OBSERVE_OPTIONS, command);
  if (help) {
    process.stdout.write(`${OBSERVE_HELP}\n`);
    return EXIT.ok;
  }
  const options = clientOptions(values, process.env);
  const out = new Output(options.json, options.address, options.connect.tls !== undefined);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  for (const s of OBSERVE_STOP) process.on(s, onSignal);
  try {
    expectPositionals(positionals, ['NAME'], command);
    const name = positionals[0]!;
    await using client = connect(options.address, options.connect);
    let previous: Leader | undefined;
    for await (const leader of client.observe(name, { backend: values.backend, signal: stop.signal })) {
      const change = changeOf(previous, leader);
      const at = new Date();
      out.result({ change, ...leaderJson(leader), at: at.toISOString() }, changeText(change, leader, at));
      previous = leader;
    }
    if (stop.signal.aborted) return EXIT.ok;
    return out.fail(
      EXIT.unavailable,
      'ObserveEndedError',
      `the latchkey server at ${options.address} ended the observation of election "${name}" (it is shutting down); run latchkey elect observe again to keep following`,
    );
  } catch (err) {
    return out.error(err);
  } finally {
    for (const s of OBSERVE_STOP) process.off(s, onSignal);
  }
}

async function leader(argv: readonly string[], globals: readonly string[]): Promise<number> {
  const command = 'latchkey elect leader';
  const { values, positionals, help } = parseArgs([...globals, ...argv], LEADER_OPTIONS, command);
  if (help) {
    process.stdout.write(`${LEADER_HELP}\n`);
    return EXIT.ok;
  }
  const options = clientOptions(values, process.env);
  const out = new Output(options.json, options.address, options.connect.tls !== undefined);
  try {
    expectPositionals(positionals, ['NAME'], command);
    await using client = connect(options.address, options.connect);
    const state = await client.leader(positionals[0]!, { backend: values.backend, deadlineMs: options.deadlineMs });
    out.result(leaderJson(state), leaderText(state));
    return EXIT.ok;
  } catch (err) {
    return out.error(err);
  }
}

export async function electCommand(argv: readonly string[], globals: readonly string[] = []): Promise<number> {
  const dashes = argv.indexOf('--');
  const before = dashes >= 0 ? argv.slice(0, dashes) : argv;
  // `elect observe NAME` unless a `--` follows: `latchkey elect observe -- CMD` campaigns in "observe".
  if (argv[0] === 'observe' && dashes < 0) return observe(argv.slice(1), globals);
  if (argv[0] === 'leader' && dashes < 0) return leader(argv.slice(1), globals);
  if (argv.length === 0) {
    process.stdout.write(`${ELECT_HELP}\n`);
    return EXIT.usage;
  }
  const command = 'latchkey elect';
  const { values, positionals, help } = parseArgs([...globals, ...before], ELECT_OPTIONS, command);
  if (help) {
    process.stdout.write(`${ELECT_HELP}\n`);
    return EXIT.ok;
  }
  const options = clientOptions(values, process.env);
  const out = new Output(options.json, options.address, options.connect.tls !== undefined);
  try {
    expectPositionals(positionals, ['NAME'], command);
    const cmd = dashes >= 0 ? argv.slice(dashes + 1) : [];
    if (cmd.length === 0)
      throw new UsageError(`${command}: missing "-- CMD [ARGS...]": the command to run while leading`);
    const run: RunOptions = {
      name: positionals[0]!,
      value: values.value ?? defaultOwner(),
      command: cmd,
      ttlMs:
        values['ttl-ms'] === undefined
          ? undefined
          : integerOption('--ttl-ms', values['ttl-ms'], 1, Number.MAX_SAFE_INTEGER),
      waitMs:
        values['wait-ms'] === undefined
          ? undefined
          : integerOption('--wait-ms', values['wait-ms'], 1, Number.MAX_SAFE_INTEGER),
      backend: values.backend,
      killGraceMs:
        values['kill-grace-ms'] === undefined
          ? DEFAULT_KILL_GRACE_MS
          : integerOption('--kill-grace-ms', values['kill-grace-ms'], 0, 86_400_000),
      address: options.address,
      connect: options.connect,
      childEnv: options.childEnv,
    };
    return await runElected(run, out);
  } catch (err) {
    return out.error(err);
  }
}
