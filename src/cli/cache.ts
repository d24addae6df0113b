// `latchkey cache get|set|cas|add|delete|incr|touch`: the Cache service from a shell, through
// the SDK. Values go in as arguments (UTF-8) or raw bytes on stdin, and come out raw on
// stdout; outcomes other than success have their own exit codes (see exit-codes.ts).
import type { CacheClient, Fence } from '../../client/index.js';
import {
  CLIENT_OPTIONS_HELP,
  int64Arg,
  integerOption,
  uint64Arg,
  type OptionSpecs,
  type OptionValues,
} from './args.js';
import { clientCommand } from './client-command.js';
import { EXIT, exitCodesHelp, UsageError } from './exit-codes.js';
import type { Output } from './output.js';

/** Environment variables `latchkey lock NAME -- CMD` gives CMD; --fenced reads them back. */
export const LOCK_ENV = {
  name: 'LATCHKEY_LOCK_NAME',
  backend: 'LATCHKEY_LOCK_BACKEND',
  fencingToken: 'LATCHKEY_FENCING_TOKEN',
  leaseId: 'LATCHKEY_LEASE_ID',
  address: 'LATCHKEY_ADDRESS',
} as const;

/**
 * Environment variables `latchkey elect NAME -- CMD` gives CMD; --fenced reads them back (the
 * fencing token and the address are LOCK_ENV's variables).
 */
export const ELECTION_ENV = {
  name: 'LATCHKEY_ELECTION',
  backend: 'LATCHKEY_ELECTION_BACKEND',
  value: 'LATCHKEY_ELECTION_VALUE',
  fencingToken: LOCK_ENV.fencingToken,
  address: LOCK_ENV.address,
} as const;

const STORE = { store: 'string' } as const;
const TTL = { 'ttl-ms': 'string' } as const;
const FENCED = { fenced: 'boolean' } as const;

interface Context<S extends OptionSpecs> {
  readonly out: Output;
  readonly cache: CacheClient;
  readonly key: string;
  /** Positionals after KEY. */
  readonly args: readonly string[];
  readonly values: OptionValues<S>;
  readonly deadlineMs: number | undefined;
}

interface Subcommand<S extends OptionSpecs> {
  readonly synopsis: string;
  readonly summary: string;
  readonly options: S;
  /** Positionals after KEY: required names, then how many optional ones may follow. */
  readonly args: readonly string[];
  readonly optionalArgs: number;
  readonly help: string;
  run(ctx: Context<S>): Promise<number>;
}

const VALUE_HELP = `VALUE is stored as its UTF-8 bytes. Without VALUE, or with VALUE "-", the value is read
from stdin as raw bytes (binary-safe; use this for anything that is not text). With no VALUE
and stdin a terminal, it is an error, so a forgotten argument does not wait for typing
(pass "-" to type the value, ending it with Ctrl-D). A VALUE that starts with "-" goes after
"--": latchkey cache set KEY -- --not-an-option`;

const TTL_HELP = '  --ttl-ms N             expire the key N ms from now (default 0 = never; up to 365 days)';
const FENCED_HELP = `  --fenced               a fenced write: refused (exit 8) if a newer holder of the lock has
                         written the key. The lock is the one \`latchkey lock NAME -- CMD\` holds
                         for CMD, read from ${LOCK_ENV.name}, ${LOCK_ENV.fencingToken}
                         and ${LOCK_ENV.backend}; or the leadership \`latchkey elect NAME -- CMD\`
                         holds, from ${ELECTION_ENV.name} and ${LOCK_ENV.fencingToken}`;
const STORE_HELP = '  --store NAME           cache store ("lru", "memcached"); default the server\'s --store';

function ttlOf(values: { 'ttl-ms'?: string | undefined }): number | undefined {
  return values['ttl-ms'] === undefined
    ? undefined
    : integerOption('--ttl-ms', values['ttl-ms'], 0, Number.MAX_SAFE_INTEGER);
}

function casOf(raw: string | undefined, required: boolean): bigint | undefined {
  if (raw === undefined) {
    if (required) throw new UsageError('--cas N is required: the cas from `latchkey cache get KEY --json`');
    return undefined;
  }
  const cas = uint64Arg('--cas', raw);
  if (cas === 0n) throw new UsageError('--cas must not be 0: pass the cas from `latchkey cache get KEY --json`');
  return cas;
}

function fenceOf(values: { fenced?: boolean | undefined }, env: NodeJS.ProcessEnv): Fence | undefined {
  if (values.fenced !== true) return undefined;
  const name = env[LOCK_ENV.name];
  const election = env[ELECTION_ENV.name];
  const token = env[LOCK_ENV.fencingToken];
  if ((!name && !election) || !token) {
    throw new UsageError(
      `--fenced needs ${LOCK_ENV.name} (or ${ELECTION_ENV.name}) and ${LOCK_ENV.fencingToken} in the environment; \`latchkey lock NAME -- CMD\` and \`latchkey elect NAME -- CMD\` set them for CMD`,
    );
  }
  const fencingToken = uint64Arg(LOCK_ENV.fencingToken, token);
  // Each guard's command clears the other's variables for its CMD: at most one is set.
  if (name) return { name, backend: env[LOCK_ENV.backend] ?? '', fencingToken };
  return { election: election!, backend: env[ELECTION_ENV.backend] ?? '', fencingToken };
}

/** VALUE from the argument, or stdin's raw bytes for "-" or no argument (see VALUE_HELP). */
async function readValue(arg: string | undefined, command: string): Promise<Buffer> {
  if (arg !== undefined && arg !== '-') return Buffer.from(arg, 'utf8');
  if (arg === undefined && process.stdin.isTTY) {
    throw new UsageError(`${command}: missing VALUE: give it as an argument, pipe it to stdin, or pass "-" to type it`);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * An outcome other than success: with --json it is still a result (one JSON line on stdout),
 * without it a line on stderr; the exit code is the same either way.
 */
function refused(out: Output, code: number, json: object, name: string, message: string): number {
  if (out.json) {
    out.result(json, undefined);
    return code;
  }
  return out.fail(code, name, message);
}

function subcommand<S extends OptionSpecs>(spec: Subcommand<S>): Subcommand<OptionSpecs> {
  return spec as unknown as Subcommand<OptionSpecs>;
}

const SUBCOMMANDS: Readonly<Record<string, Subcommand<OptionSpecs>>> = {
  get: subcommand({
    synopsis: 'get KEY',
    summary: 'print a value (raw bytes) and exit 0, or exit 3 if the key is absent',
    options: { ...STORE },
    args: [],
    optionalArgs: 0,
    help: `Writes the value's bytes to stdout exactly, with no newline added, so
\`latchkey cache get KEY > file\` restores what \`latchkey cache set KEY < file\` stored. Only when
stdout is a terminal, and the value does not end in a newline, is one added for the prompt's
sake. With --json: {"key","found","cas","valueBase64"} (cas is what cas and delete --cas take).
An absent or expired key exits 3 (with --json: {"key","found":false} on stdout).

options:
${STORE_HELP}

examples:
  latchkey cache get config > config.bin
  cas=$(latchkey cache get counter --json | jq -r .cas)`,
    async run({ out, cache, key, deadlineMs }) {
      const item = await cache.get(key, { deadlineMs });
      if (item === undefined)
        return refused(out, EXIT.notFound, { key, found: false }, 'NotFound', `key "${key}" not found`);
      let human: Buffer = item.value;
      if (process.stdout.isTTY && human.at(-1) !== 0x0a) human = Buffer.concat([human, Buffer.from('\n')]);
      out.result({ key, found: true, cas: item.cas, valueBase64: item.value.toString('base64') }, human);
      return EXIT.ok;
    },
  }),

  set: subcommand({
    synopsis: 'set KEY [VALUE|-] [--ttl-ms N] [--fenced]',
    summary: 'store a value unconditionally; prints STORED and the new cas',
    options: { ...STORE, ...TTL, ...FENCED },
    args: [],
    optionalArgs: 1,
    help: `Stores VALUE under KEY whatever is there. Prints "STORED cas=N" (--json: {"key","outcome","cas"}).

${VALUE_HELP}

options:
${STORE_HELP}
${TTL_HELP}
${FENCED_HELP}

examples:
  latchkey cache set greeting "hello world" --ttl-ms 60000
  latchkey cache set image < logo.png
  tar c dir | latchkey cache set snapshot -`,
    async run({ out, cache, key, args, values, deadlineMs }) {
      const ttlMs = ttlOf(values);
      const fence = fenceOf(values, process.env);
      const value = await readValue(args[0], 'latchkey cache set');
      const cas = await cache.set(key, value, { ttlMs, fence, deadlineMs });
      out.result({ key, outcome: 'STORED', cas }, `STORED cas=${cas}`);
      return EXIT.ok;
    },
  }),

  cas: subcommand({
    synopsis: 'cas KEY [VALUE|-] --cas N [--ttl-ms N] [--fenced]',
    summary: 'store only if the key still has cas N (exit 4 if it changed, 3 if absent)',
    options: { ...STORE, ...TTL, ...FENCED, cas: 'string' },
    args: [],
    optionalArgs: 1,
    help: `Compare-and-set: stores VALUE only if KEY's cas is still N (from \`get --json\`). Prints
"STORED cas=N" with the new cas. Another write since: exit 4 (EXISTS); the key was deleted or
expired: exit 3 (NOT_FOUND). With --json the outcome is on stdout in every case:
{"key","outcome","cas"}.

${VALUE_HELP}

options:
${STORE_HELP}
  --cas N                the cas the key must still have (required)
${TTL_HELP}
${FENCED_HELP}

example:
  item=$(latchkey cache get config --json) && cas=$(echo "$item" | jq -r .cas)
  echo "$item" | jq -r .valueBase64 | base64 -d | edit-config | latchkey cache cas config --cas "$cas"`,
    async run({ out, cache, key, args, values, deadlineMs }) {
      const cas = casOf(values.cas as string | undefined, true)!;
      const ttlMs = ttlOf(values);
      const fence = fenceOf(values, process.env);
      const value = await readValue(args[0], 'latchkey cache cas');
      const res = await cache.cas(key, value, cas, { ttlMs, fence, deadlineMs });
      const json = { key, outcome: res.outcome, cas: res.cas };
      if (res.outcome === 'EXISTS')
        return refused(
          out,
          EXIT.exists,
          json,
          'Exists',
          `cas of key "${key}" refused: EXISTS: the key was written since cas ${cas}`,
        );
      if (res.outcome === 'NOT_FOUND')
        return refused(
          out,
          EXIT.notFound,
          json,
          'NotFound',
          `cas of key "${key}" refused: NOT_FOUND: the key does not exist`,
        );
      out.result(json, `STORED cas=${res.cas}`);
      return EXIT.ok;
    },
  }),

  add: subcommand({
    synopsis: 'add KEY [VALUE|-] [--ttl-ms N] [--fenced]',
    summary: 'store only if the key is absent (exit 4 if it exists)',
    options: { ...STORE, ...TTL, ...FENCED },
    args: [],
    optionalArgs: 1,
    help: `Stores VALUE only if KEY is absent; prints "STORED cas=N". If the key exists: exit 4
(EXISTS). With --json the outcome is on stdout in every case: {"key","outcome","cas"}.

${VALUE_HELP}

options:
${STORE_HELP}
${TTL_HELP}
${FENCED_HELP}

example:
  latchkey cache add leader "$(hostname)" --ttl-ms 30000 && echo "we lead"`,
    async run({ out, cache, key, args, values, deadlineMs }) {
      const ttlMs = ttlOf(values);
      const fence = fenceOf(values, process.env);
      const value = await readValue(args[0], 'latchkey cache add');
      const res = await cache.add(key, value, { ttlMs, fence, deadlineMs });
      const json = { key, outcome: res.outcome, cas: res.cas };
      if (res.outcome === 'EXISTS')
        return refused(out, EXIT.exists, json, 'Exists', `add of key "${key}" refused: EXISTS: the key already exists`);
      out.result(json, `STORED cas=${res.cas}`);
      return EXIT.ok;
    },
  }),

  delete: subcommand({
    synopsis: 'delete KEY [--cas N] [--fenced]',
    summary: 'delete a key (exit 3 if absent, 4 if --cas N is stale)',
    options: { ...STORE, ...FENCED, cas: 'string' },
    args: [],
    optionalArgs: 0,
    help: `Deletes KEY; prints "DELETED". An absent key: exit 3 (NOT_FOUND). With --cas N, only if
the key's cas is still N; else exit 4 (EXISTS). With --json: {"key","outcome"}.

options:
${STORE_HELP}
  --cas N                delete only if the key's cas is still N
${FENCED_HELP}

examples:
  latchkey cache delete session:42
  latchkey cache delete config --cas 1234`,
    async run({ out, cache, key, values, deadlineMs }) {
      const cas = casOf(values.cas as string | undefined, false);
      const fence = fenceOf(values, process.env);
      const outcome = await cache.delete(key, { cas, fence, deadlineMs });
      const json = { key, outcome };
      if (outcome === 'NOT_FOUND')
        return refused(
          out,
          EXIT.notFound,
          json,
          'NotFound',
          `delete of key "${key}": NOT_FOUND: the key does not exist`,
        );
      if (outcome === 'EXISTS')
        return refused(
          out,
          EXIT.exists,
          json,
          'Exists',
          `delete of key "${key}" refused: EXISTS: its cas is no longer ${cas}`,
        );
      out.result(json, 'DELETED');
      return EXIT.ok;
    },
  }),

  incr: subcommand({
    synopsis: 'incr KEY DELTA [--initial N] [--ttl-ms N]',
    summary: 'add DELTA (negative to decrement) to a decimal counter; prints the new value',
    options: { ...STORE, ...TTL, initial: 'string' },
    args: ['DELTA'],
    optionalArgs: 0,
    help: `Adds DELTA to the decimal number stored under KEY and prints the result: unsigned 64-bit,
wrapping on overflow, stopping at 0 when decremented. An absent key is created with --initial
(DELTA is not applied to it). A value that is not a number: exit 8. With --json:
{"key","value","cas"}, value as a decimal string.

options:
${STORE_HELP}
  --initial N            value of an absent key (default 0)
  --ttl-ms N             expiry of a key created from --initial; an existing key keeps its own

examples:
  latchkey cache incr hits 1
  latchkey cache incr slots -1 --initial 10`,
    async run({ out, cache, key, args, values, deadlineMs }) {
      const delta = int64Arg('DELTA', args[0]!);
      const initial = values.initial === undefined ? undefined : uint64Arg('--initial', values.initial as string);
      const res = await cache.incr(key, delta, { initial, ttlMs: ttlOf(values), deadlineMs });
      out.result({ key, value: res.value, cas: res.cas }, String(res.value));
      return EXIT.ok;
    },
  }),

  touch: subcommand({
    synopsis: 'touch KEY --ttl-ms N',
    summary: "set a key's expiry without changing it (exit 3 if absent)",
    options: { ...STORE, ...TTL },
    args: [],
    optionalArgs: 0,
    help: `Gives KEY a new expiry, N ms from now (0 = never), without changing its value or cas;
prints "TOUCHED". An absent key: exit 3 (NOT_FOUND). With --json: {"key","outcome"}.

options:
${STORE_HELP}
  --ttl-ms N             the new expiry in ms from now; 0 = never (required)

example:
  latchkey cache touch session:42 --ttl-ms 1800000`,
    async run({ out, cache, key, values, deadlineMs }) {
      const ttlMs = ttlOf(values);
      if (ttlMs === undefined) throw new UsageError('latchkey cache touch: --ttl-ms N is required (0 = never expire)');
      const outcome = await cache.touch(key, ttlMs, { deadlineMs });
      const json = { key, outcome };
      if (outcome === 'NOT_FOUND')
        return refused(
          out,
          EXIT.notFound,
          json,
          'NotFound',
          `touch of key "${key}": NOT_FOUND: the key does not exist`,
        );
      out.result(json, 'TOUCHED');
      return EXIT.ok;
    },
  }),
};

export const CACHE_SUBCOMMANDS: readonly string[] = Object.keys(SUBCOMMANDS);

export const CACHE_HELP = `usage: latchkey cache <command> KEY ... [options]

The cache service (memcached semantics) from a shell. Keys are 1-250 bytes of UTF-8 without
whitespace. Values come from an argument, or raw bytes from stdin; get writes raw bytes.

commands:
${Object.values(SUBCOMMANDS)
  .map((s) => `  ${s.synopsis}\n      ${s.summary}`)
  .join('\n')}

Run "latchkey cache <command> --help" for details.

options of every cache command:
${STORE_HELP}

${CLIENT_OPTIONS_HELP}
With --json, a miss or a refused write is still a result: its JSON line is on stdout (e.g.
{"key":"k","found":false}), and the exit code (3, 4) tells it apart from success.

examples:
  latchkey cache set greeting hello --ttl-ms 60000
  latchkey cache get greeting
  latchkey cache incr hits 1
  latchkey --json cache get greeting      (or: latchkey cache get greeting --json)

${exitCodesHelp()}`;

function subcommandHelp(_name: string, sub: Subcommand<OptionSpecs>): string {
  return `usage: latchkey cache ${sub.synopsis} [client options]

${sub.help}

${CLIENT_OPTIONS_HELP}

${exitCodesHelp()}`;
}

export async function cacheCommand(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${CACHE_HELP}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const sub = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : undefined;
  if (sub === undefined)
    throw new UsageError(
      `unknown cache command "${name}"; one of: ${CACHE_SUBCOMMANDS.join(', ')} (see latchkey cache --help)`,
    );
  return clientCommand({
    command: `latchkey cache ${name}`,
    options: sub.options,
    positionals: ['KEY', ...sub.args],
    optionalPositionals: sub.optionalArgs,
    help: subcommandHelp(name, sub),
    run: ({ out, options, values, positionals, client }) =>
      sub.run({
        out,
        cache: client().cache((values as OptionValues<typeof STORE>).store ?? ''),
        key: positionals[0]!,
        args: positionals.slice(1),
        values,
        deadlineMs: options.deadlineMs,
      }),
  })(rest);
}
