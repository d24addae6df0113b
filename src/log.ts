// Structured logs. The server logs through the small Logger interface below; `latchkey serve`
// implements it with pino (one JSON line per event on stderr), and lineLogger adapts the
// older one-string-per-line form (ServerOptions.log, tests) to it. The only file that
// imports pino.
//
// What is never logged: auth tokens (auth.ts names a token only as token#<8 hex>), cache
// values, and lease ids (a lease id is all Release needs: whoever reads it could release
// the lock). Events carry lock names, owners, backends and fencing tokens instead.
import { pino } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The fields of one event. `event` names it for filtering (e.g. "lock.grant"); `err`, an
 * Error, is logged with its stack. Values must be JSON-friendly: bigints as strings.
 */
export type LogFields = Readonly<Record<string, unknown>>;

export type LogFn = (fields: LogFields, msg: string) => void;

/** What the server needs of a logger; a pino logger is one. */
export interface Logger {
  readonly fatal: LogFn;
  readonly error: LogFn;
  readonly warn: LogFn;
  readonly info: LogFn;
  readonly debug: LogFn;
  readonly trace: LogFn;
  /** Lets a hot path skip building fields for a level that is off. */
  isLevelEnabled(level: LogLevel): boolean;
}

/**
 * Field names whose values are censored wherever they appear (top level or one object
 * down), in case a future event carries one by mistake: defence in depth, not the rule.
 */
const REDACT = ['leaseId', 'lease_id', 'authorization', 'token', 'value'].flatMap((key) => [key, `*.${key}`]);

/**
 * The JSON logger of `latchkey serve`: one line per event on `destination`, a file
 * descriptor (default 2, stderr; written synchronously, so nothing is lost when the process
 * exits) or anything with write(line). Lines look like
 * {"level":"info","time":"2025-01-01T00:00:00.000Z","pid":7,"event":"listening",...,"msg":"..."}
 */
export function createLogger(level: LogLevel, destination: number | { write(line: string): void } = 2): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT, censor: '[redacted]' },
    },
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination,
  );
}

const SEVERITY: Readonly<Record<LogLevel, number>> = { fatal: 60, error: 50, warn: 40, info: 30, debug: 20, trace: 10 };

/**
 * A Logger over a function taking one line per event: the message, then the other fields as
 * JSON, then `: ` and the stack of `err`. An internal error reads
 * `internal error: TypeError: ...` as it always has (test/support/server.ts looks for it).
 */
export function lineLogger(write: (line: string) => void, level: LogLevel = 'info'): Logger {
  const min = SEVERITY[level];
  const at =
    (l: LogLevel): LogFn =>
    (fields, msg) => {
      if (SEVERITY[l] >= min) write(formatLine(fields, msg));
    };
  return {
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    isLevelEnabled: (l) => SEVERITY[l] >= min,
  };
}

function formatLine(fields: LogFields, msg: string): string {
  const { err, event: _event, ...rest } = fields;
  const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
  const cause = err === undefined ? '' : `: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
  return `${msg}${extra}${cause}`;
}
