// Command-line parsing for the client commands: a small strict parser (long options, `=` or
// a separate value, `--` ends options), the options every client command shares (server
// address, output, deadline, TLS and token), and number arguments with messages that name
// the option. node:util parseArgs would read `incr KEY -5` as an unknown option -5; this
// parser takes "-" followed by digits as an argument.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectOptions } from '../../client/index.js';
import { UsageError } from './exit-codes.js';

export type OptionType = 'string' | 'boolean';
export type OptionSpecs = Readonly<Record<string, OptionType>>;

export type OptionValues<S extends OptionSpecs> = {
  -readonly [K in keyof S]?: S[K] extends 'string' ? string : boolean;
};

export interface Parsed<S extends OptionSpecs> {
  readonly values: OptionValues<S>;
  readonly positionals: string[];
  /** --help or -h was given (anywhere before `--`). */
  readonly help: boolean;
}

/**
 * Parses `argv` against `specs` (long names without the dashes). Unknown options are errors,
 * not ignored; a string option given twice keeps the last value, as most tools do.
 * `command` names the command in messages ("latchkey cache get").
 */
export function parseArgs<S extends OptionSpecs>(argv: readonly string[], specs: S, command: string): Parsed<S> {
  const values: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    // "-" is stdin; "-5" is a negative number.
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      positionals.push(arg);
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`unknown option "${arg}" (see ${command} --help)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    const type = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (type === undefined) throw new UsageError(`unknown option "--${name}" (see ${command} --help)`);
    if (type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    values[name] = value;
  }
  return { values: values as OptionValues<S>, positionals, help };
}

/** Throws unless exactly the named positionals (and at most `optional` more) were given. */
export function expectPositionals(
  positionals: readonly string[],
  names: readonly string[],
  command: string,
  optional = 0,
): void {
  if (positionals.length < names.length)
    throw new UsageError(`${command}: missing ${names.slice(positionals.length).join(' ')} (see ${command} --help)`);
  if (positionals.length > names.length + optional) {
    throw new UsageError(
      `${command}: unexpected argument "${positionals[names.length + optional]}" (see ${command} --help)`,
    );
  }
}

/** A whole number of milliseconds (or a count) within bounds; `_` separators allowed. */
export function integerOption(option: string, raw: string, min: number, max: number): number {
  const text = raw.replaceAll('_', '');
  if (!/^\d+$/.test(text)) throw new UsageError(`${option} must be a whole number, got "${raw}"`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`${option} must be between ${min} and ${max}, got ${raw}`);
  return n;
}

const UINT64_MAX = 2n ** 64n - 1n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** An unsigned 64-bit decimal (cas values, incr's --initial). */
export function uint64Arg(what: string, raw: string): bigint {
  if (!/^\d+$/.test(raw)) throw new UsageError(`${what} must be a whole number >= 0, got "${raw}"`);
  const n = BigInt(raw);
  if (n > UINT64_MAX) throw new UsageError(`${what} must be at most ${UINT64_MAX}, got ${raw}`);
  return n;
}

/** A signed 64-bit decimal (incr's DELTA). */
export function int64Arg(what: string, raw: string): bigint {
  if (!/^[-+]?\d+$/.test(raw))
    throw new UsageError(`${what} must be a whole number (negative to decrement), got "${raw}"`);
  const n = BigInt(raw);
  if (n < INT64_MIN || n > INT64_MAX)
    throw new UsageError(`${what} must be between ${INT64_MIN} and ${INT64_MAX}, got ${raw}`);
  return n;
}

// --- the options every client command takes ---

export const DEFAULT_ADDRESS = '127.0.0.1:50051';
export const ADDRESS_ENV = 'LATCHKEY_ADDRESS';

/**
 * The client's TLS and token variables.
 * NOTE: not LATCHKEY_TLS_CA/CERT/KEY: `latchkey serve` reads those for its own certificate,
 * and a shell (or a container) that runs a server and clients side by side would hand the
 * server's key to every client, or a client's CA to the server as its mutual-TLS CA.
 */
export const CLIENT_ENV = {
  tls: 'LATCHKEY_CLIENT_TLS',
  tlsCa: 'LATCHKEY_CLIENT_TLS_CA',
  tlsCert: 'LATCHKEY_CLIENT_TLS_CERT',
  tlsKey: 'LATCHKEY_CLIENT_TLS_KEY',
  tokenFile: 'LATCHKEY_TOKEN_FILE',
  token: 'LATCHKEY_TOKEN',
} as const;

/**
 * The help lines for the variables `latchkey lock` and `latchkey elect` set for CMD: the
 * command's own `rows` ([name, text]; an empty name continues the line above), then the
 * client's TLS and token variables they pass on, names padded to `width`.
 */
export function commandEnvHelp(rows: readonly (readonly [string, string])[], width: number): string {
  return [
    ...rows,
    [`${CLIENT_ENV.tls}*`, "latchkey's own --tls, --tls-ca, --tls-cert, --tls-key (as absolute"],
    [CLIENT_ENV.tokenFile, 'paths) and --token-file, when given, so that `latchkey` run by CMD'],
    ['', `reaches the server the same way (${CLIENT_ENV.token} passes on as it is)`],
  ]
    .map(([name, text]) => `  ${name!.padEnd(width)}${text}`)
    .join('\n');
}

export const CLIENT_OPTIONS = {
  address: 'string',
  json: 'boolean',
  'deadline-ms': 'string',
  tls: 'boolean',
  'tls-ca': 'string',
  'tls-cert': 'string',
  'tls-key': 'string',
  'token-file': 'string',
} as const satisfies OptionSpecs;

export const CLIENT_OPTIONS_HELP = `client options (every lock and cache command):
  --address HOST:PORT    the latchkey server; env ${ADDRESS_ENV}, default ${DEFAULT_ADDRESS}
  --json                 print the result as one line of JSON on stdout (64-bit numbers as
                         decimal strings, values as base64); errors become one line of JSON
                         on stderr: {"error":NAME,"exitCode":N,"message":TEXT}
  --deadline-ms N        deadline of each call to the server, in ms (default 10000); a lock
                         wait gets its --wait-ms on top
  --tls                  connect with TLS, checking the server's certificate against the
                         system's CAs (env ${CLIENT_ENV.tls}=1); implied by the next three
  --tls-ca FILE          check the server's certificate against this PEM CA bundle instead;
                         env ${CLIENT_ENV.tlsCa}
  --tls-cert FILE        mutual TLS: present this PEM client certificate; needs --tls-key;
                         env ${CLIENT_ENV.tlsCert}
  --tls-key FILE         the PEM private key of --tls-cert; env ${CLIENT_ENV.tlsKey}
  --token-file FILE      send the bearer token in FILE (a server with --auth-tokens-file);
                         env ${CLIENT_ENV.tokenFile}, or the token itself in ${CLIENT_ENV.token}
  NOTE: there is no --token option: a command line is visible to every user of the machine
  (ps, /proc/PID/cmdline); a file or the environment is not. The client's TLS variables are
  LATCHKEY_CLIENT_TLS_*, not the LATCHKEY_TLS_* that \`latchkey serve\` reads for its own
  certificate, so a shell that sets both cannot mix them up.`;

export interface ClientOptions {
  readonly address: string;
  readonly json: boolean;
  readonly deadlineMs: number | undefined;
  /** What connect() needs: the deadline, TLS and the token. */
  readonly connect: ConnectOptions;
  /**
   * The TLS and token settings as environment variables with absolute paths, for a CMD that
   * runs `latchkey` itself (`latchkey lock NAME -- CMD`) to reach the same server the same way.
   */
  readonly childEnv: Readonly<Record<string, string>>;
}

type Env = Readonly<Record<string, string | undefined>>;

function readOption(what: string, path: string): Buffer {
  if (path.trim() === '') throw new UsageError(`${what} must not be empty`);
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${what} ${path}: cannot read it: ${(err as Error).message}`);
  }
}

function booleanEnv(name: string, env: Env): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new UsageError(`${name} must be 1 or 0 (true or false), got "${env[name]}"`);
}

/** A token as the server's tokens file spells one: visible ASCII, no spaces. */
function checkToken(what: string, raw: string): string {
  const token = raw.trim();
  if (token === '') throw new UsageError(`${what} is empty`);
  // The server's tokens file has several lines, and name prefixes after a token.
  if (/\s/.test(token)) {
    throw new UsageError(
      `${what} holds more than one token (is it the server's --auth-tokens-file?): give the client its one token, alone`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError(`${what}: a token may hold only visible ASCII characters`);
  return token;
}

function tlsOptions(
  values: OptionValues<typeof CLIENT_OPTIONS>,
  env: Env,
  childEnv: Record<string, string>,
): ConnectOptions['tls'] {
  // A flag wins over its variable; an empty variable counts as unset.
  const file = (flag: 'tls-ca' | 'tls-cert' | 'tls-key', name: string) => {
    const given = values[flag];
    const path = given ?? (env[name]?.trim() || undefined);
    if (path === undefined) return undefined;
    const what = given === undefined ? name : `--${flag}`;
    const pem = readOption(what, path);
    if (!pem.includes('-----BEGIN ')) throw new UsageError(`${what} ${path} is not a PEM file (no "-----BEGIN" line)`);
    childEnv[name] = resolve(path);
    return pem;
  };
  const ca = file('tls-ca', CLIENT_ENV.tlsCa);
  const cert = file('tls-cert', CLIENT_ENV.tlsCert);
  const key = file('tls-key', CLIENT_ENV.tlsKey);
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError('--tls-cert and --tls-key go together: a client certificate needs its private key');
  const tls = values.tls === true || booleanEnv(CLIENT_ENV.tls, env);
  if (!tls && ca === undefined && cert === undefined) return undefined;
  if (tls) childEnv[CLIENT_ENV.tls] = '1';
  return { ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert, key: key! }) };
}

function tokenOption(
  values: OptionValues<typeof CLIENT_OPTIONS>,
  env: Env,
  childEnv: Record<string, string>,
): string | undefined {
  // --token-file, then LATCHKEY_TOKEN_FILE, then LATCHKEY_TOKEN: a file named explicitly wins
  // over a token inherited from the environment.
  const flag = values['token-file'];
  const path = flag ?? (env[CLIENT_ENV.tokenFile]?.trim() || undefined);
  if (path !== undefined) {
    const what = flag === undefined ? `${CLIENT_ENV.tokenFile} ${path}` : `--token-file ${path}`;
    const token = checkToken(
      what,
      readOption(flag === undefined ? CLIENT_ENV.tokenFile : '--token-file', path).toString('utf8'),
    );
    childEnv[CLIENT_ENV.tokenFile] = resolve(path);
    return token;
  }
  const inline = env[CLIENT_ENV.token];
  return inline === undefined || inline.trim() === '' ? undefined : checkToken(CLIENT_ENV.token, inline);
}

export function clientOptions(values: OptionValues<typeof CLIENT_OPTIONS>, env: Env): ClientOptions {
  const address = (values.address ?? env[ADDRESS_ENV] ?? '').trim() || DEFAULT_ADDRESS;
  if (values.address !== undefined && values.address.trim() === '') throw new UsageError('--address must not be empty');
  // Without a port, grpc-js would quietly dial 443; any gRPC target (unix:PATH, dns:///...) has a colon.
  if (!address.includes(':'))
    throw new UsageError(`--address must be host:port (or a gRPC target such as unix:/path), got "${address}"`);
  const deadlineMs =
    values['deadline-ms'] === undefined
      ? undefined
      : integerOption('--deadline-ms', values['deadline-ms'], 1, 86_400_000);
  const childEnv: Record<string, string> = {};
  const tls = tlsOptions(values, env, childEnv);
  const token = tokenOption(values, env, childEnv);
  const connect: ConnectOptions = {
    deadlineMs,
    ...(tls === undefined ? {} : { tls }),
    ...(token === undefined ? {} : { token }),
  };
  return { address, json: values.json === true, deadlineMs, connect, childEnv };
}
