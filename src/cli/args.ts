// Command-line parsing for the client commands: a small strict parser (long options, `=` or
// a separate value, `--` ends options), the options every client command shares, and number
// arguments with messages that name the option. node:util parseArgs would read `incr KEY -5`
// as an unknown option -5; this parser takes "-" followed by digits as an argument.
import { UsageError } from './exit-codes.js';

export type OptionType = 'string' | 'boolean';
export type OptionSpecs = Readonly<Record<string, OptionType>>;

export type OptionValues<S extends OptionSpecs> = { -readonly [K in keyof S]?: S[K] extends 'string' ? string : boolean };

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
export function expectPositionals(positionals: readonly string[], names: readonly string[], command: string, optional = 0): void {
  if (positionals.length < names.length) throw new UsageError(`${command}: missing ${names.slice(positionals.length).join(' ')} (see ${command} --help)`);
  if (positionals.length > names.length + optional) {
    throw new UsageError(`${command}: unexpected argument "${positionals[names.length + optional]}" (see ${command} --help)`);
  }
}

/** A whole number of milliseconds (or a count) within bounds; `_` separators allowed. */
export function integerOption(option: string, raw: string, min: number, max: number): number {
  const text = raw.replaceAll('_', '');
  if (!/^\d+$/.test(text)) throw new UsageError(`${option} must be a whole number, got "${raw}"`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${option} must be between ${min} and ${max}, got ${raw}`);
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
  if (!/^[-+]?\d+$/.test(raw)) throw new UsageError(`${what} must be a whole number (negative to decrement), got "${raw}"`);
  const n = BigInt(raw);
  if (n < INT64_MIN || n > INT64_MAX) throw new UsageError(`${what} must be between ${INT64_MIN} and ${INT64_MAX}, got ${raw}`);
  return n;
}

// --- the options every client command takes ---

export const DEFAULT_ADDRESS = '127.0.0.1:50051';
export const ADDRESS_ENV = 'LATCHKEY_ADDRESS';

export const CLIENT_OPTIONS = { address: 'string', json: 'boolean', 'deadline-ms': 'string' } as const satisfies OptionSpecs;

export const CLIENT_OPTIONS_HELP = `client options (every lock and cache command):
  --address HOST:PORT    the latchkey server; env ${ADDRESS_ENV}, default ${DEFAULT_ADDRESS}
  --json                 print the result as one line of JSON on stdout (64-bit numbers as
                         decimal strings, values as base64); errors become one line of JSON
                         on stderr: {"error":NAME,"exitCode":N,"message":TEXT}
  --deadline-ms N        deadline of each call to the server, in ms (default 10000); a lock
                         wait gets its --wait-ms on top`;

export interface ClientOptions {
  readonly address: string;
  readonly json: boolean;
  readonly deadlineMs: number | undefined;
}

export function clientOptions(values: OptionValues<typeof CLIENT_OPTIONS>, env: Readonly<Record<string, string | undefined>>): ClientOptions {
  const address = (values.address ?? env[ADDRESS_ENV] ?? '').trim() || DEFAULT_ADDRESS;
  if (values.address !== undefined && values.address.trim() === '') throw new UsageError('--address must not be empty');
  // Without a port, grpc-js would quietly dial 443; any gRPC target (unix:PATH, dns:///...) has a colon.
  if (!address.includes(':')) throw new UsageError(`--address must be host:port (or a gRPC target such as unix:/path), got "${address}"`);
  const deadlineMs = values['deadline-ms'] === undefined ? undefined : integerOption('--deadline-ms', values['deadline-ms'], 1, 86_400_000);
  return { address, json: values.json === true, deadlineMs };
}
