// What the client commands print: results on stdout (human text, or one JSON line with
// --json), failures as one line on stderr (one JSON line with --json). Keeping both behind
// one object keeps every command's output shape the same.
import { DeadlineExceededError, LatchkeyError, UnauthenticatedError, UnavailableError } from '../../client/index.js';
import { CLIENT_ENV } from './args.js';
import { exitCodeOf, UsageError } from './exit-codes.js';

/** JSON.stringify with bigints as decimal strings (JSON numbers lose precision past 2^53). */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** One line, whatever the message contains: scripts read stderr line by line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

export class Output {
  constructor(
    readonly json: boolean,
    /** The server address, named in "cannot reach" messages. */
    readonly address: string,
    /** Whether the client connects with TLS, for the hint when a connection fails. */
    readonly tls = false,
  ) {}

  /**
   * What to check when a connection failed in a way that points at TLS: a certificate the
   * client or the server refused, or (plaintext) a handshake that never completed.
   */
  #tlsHint(message: string): string {
    if (/certificate|SSL|TLS|handshake/i.test(message))
      return ' (a TLS failure: check --tls-ca, --tls-cert and --tls-key)';
    if (!this.tls && /Failed to connect/.test(message))
      return ' (if the server uses TLS, give --tls-ca FILE, or --tls)';
    return '';
  }

  /**
   * A result: `json` as one line with --json, else `human` as it is (a Buffer is written
   * byte for byte; a string gets a newline; undefined prints nothing).
   */
  result(json: object, human: string | Buffer | undefined): void {
    if (this.json) process.stdout.write(`${jsonLine(json)}\n`);
    else if (typeof human === 'string') process.stdout.write(`${human}\n`);
    else if (human !== undefined) process.stdout.write(human);
  }

  /** A failure with a known exit code. With --json the stdout result (if any) is the caller's. */
  fail(code: number, name: string, message: string): number {
    const text = oneLine(message);
    process.stderr.write(
      this.json ? `${jsonLine({ error: name, exitCode: code, message: text })}\n` : `latchkey: ${text}\n`,
    );
    return code;
  }

  /** A note on stderr that does not end the command (e.g. a Release that did not get through). */
  warn(message: string): void {
    process.stderr.write(
      this.json ? `${jsonLine({ warning: oneLine(message) })}\n` : `latchkey: ${oneLine(message)}\n`,
    );
  }

  /** An error a command did not handle: its exit code from the table, its message on stderr. */
  error(err: unknown): number {
    const code = exitCodeOf(err);
    const name = err instanceof Error ? err.name : 'Error';
    let message = err instanceof Error ? err.message : String(err);
    // grpc-js ends some messages with an empty "Resolution note:".
    if (err instanceof UnavailableError)
      message = `latchkey server at ${this.address} is unavailable: ${message.replace(/\s*Resolution note:\s*$/, '')}${this.#tlsHint(message)}`;
    else if (err instanceof DeadlineExceededError)
      message = `no answer from the latchkey server at ${this.address} in time (--deadline-ms): ${message}`;
    else if (err instanceof UnauthenticatedError)
      message = `latchkey server at ${this.address} refused the call: ${message}; give latchkey a token with --token-file FILE, ${CLIENT_ENV.tokenFile} or ${CLIENT_ENV.token}`;
    else if (!(err instanceof UsageError) && !(err instanceof LatchkeyError)) message = `unexpected error: ${message}`;
    return this.fail(code, name, message);
  }
}
