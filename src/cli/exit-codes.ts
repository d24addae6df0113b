// The exit codes of the `latchkey` command line: the one table that --help prints, the
// commands return and the tests check. Scripts branch on these, so a code never changes
// meaning once released; new reasons get new numbers.
import {
  FailedPreconditionError,
  DeadlineExceededError,
  InvalidArgumentError,
  LeaseLostError,
  LockBusyError,
  NotElectedError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from '../../client/index.js';

export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  exists: 4,
  lockBusy: 5,
  leaseLost: 6,
  unavailable: 7,
  precondition: 8,
  notAllowed: 9,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface ExitCodeDoc {
  readonly code: number;
  readonly meaning: string;
}

export const EXIT_CODES: readonly ExitCodeDoc[] = [
  { code: EXIT.ok, meaning: 'success' },
  { code: EXIT.error, meaning: 'any other error (unexpected server or client failure)' },
  { code: EXIT.usage, meaning: 'usage error: bad option or argument, or the server said INVALID_ARGUMENT' },
  { code: EXIT.notFound, meaning: 'not found: cache get missed; cas, delete or touch found no such key' },
  { code: EXIT.exists, meaning: 'exists or changed: add found the key; cas or delete --cas saw another cas' },
  {
    code: EXIT.lockBusy,
    meaning: 'lock not obtained, or not elected, within --wait-ms (the message names the holder or the leader)',
  },
  {
    code: EXIT.leaseLost,
    meaning: 'lease or leadership lost while CMD ran (CMD was sent SIGTERM), or before CMD started',
  },
  {
    code: EXIT.unavailable,
    meaning: 'server unreachable or unavailable, a failed TLS handshake, or --deadline-ms passed',
  },
  {
    code: EXIT.precondition,
    meaning:
      'refused by a precondition: fenced out, not the holder, incr on a non-number, a --limit other than the one in force, or --limit/--shared/watch on a backend without them',
  },
  {
    code: EXIT.notAllowed,
    meaning:
      'not allowed: no valid token (UNAUTHENTICATED), or the token may not use this lock name or cache key (PERMISSION_DENIED)',
  },
];

/** Codes of `latchkey lock NAME -- CMD` (and `latchkey elect NAME -- CMD`) besides the table: they come from CMD, not latchkey. */
export const CMD_EXIT_NOTES = [
  'CMD ran: latchkey exits with its status, or 128+N if signal N ended it (as sh does).',
  'CMD could not be run: 127 if it was not found, 126 if it is not executable.',
  'NOTE: CMD may exit with a code from the table above; as with flock(1), only CMD knows what',
  'it meant. Make CMD avoid 5 and 6 if a script must tell those apart.',
];

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  return [...lines, line];
}

export function exitCodesHelp(options: { withCmdNotes?: boolean } = {}): string {
  const rows = EXIT_CODES.map((e) =>
    wrap(e.meaning, 86)
      .map((line, i) => `  ${(i === 0 ? String(e.code) : '').padEnd(4)}${line}`)
      .join('\n'),
  );
  const notes = options.withCmdNotes ? ['', ...CMD_EXIT_NOTES.map((n) => `  ${n}`)] : [];
  return ['exit codes:', ...rows, ...notes].join('\n');
}

/** A mistake in the command line itself; exits EXIT.usage, never JSON-shaped by the server. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * The exit code for an error a command did not handle itself. LeaseLostError is checked
 * before its parent NotHolderError (a FailedPreconditionError): "you lost it" is not "you
 * never had it".
 */
export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof UsageError || err instanceof InvalidArgumentError) return EXIT.usage;
  if (err instanceof LockBusyError || err instanceof NotElectedError) return EXIT.lockBusy;
  if (err instanceof LeaseLostError) return EXIT.leaseLost;
  if (err instanceof FailedPreconditionError) return EXIT.precondition;
  if (err instanceof UnavailableError || err instanceof DeadlineExceededError) return EXIT.unavailable;
  if (err instanceof UnauthenticatedError || err instanceof PermissionDeniedError) return EXIT.notAllowed;
  return EXIT.error;
}
