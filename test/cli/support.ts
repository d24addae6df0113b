// Runs the client commands of `latchkey` as child processes, with stdin bytes in and raw
// stdout bytes out (test/support/spawn.ts's runCli is text-only and has no stdin). Every
// wait is bounded, and a child that outlives its bound is killed by its pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/spawn.js';

/** tsx compiles on start: seconds, not milliseconds, on a busy 2-core machine. */
export const CLI_TIMEOUT_MS = 60_000;

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

export interface CliOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** Bytes for stdin; default none (stdin is /dev/null). */
  readonly input?: Buffer | string;
  readonly timeoutMs?: number;
}

export interface RunningCli {
  readonly pid: number;
  readonly child: ChildProcess;
  stderr(): string;
  stdout(): Buffer;
  /** Resolves with the result when the child has exited and its output is complete. */
  readonly done: Promise<CliResult>;
}

function childEnv(env: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  // Same reasons as test/support/spawn.ts: the test runner's marker and the developer's
  // LATCHKEY_* settings must not reach the child.
  delete merged.NODE_TEST_CONTEXT;
  for (const key of Object.keys(merged)) if (key.startsWith('LATCHKEY_')) delete merged[key];
  return { ...merged, ...env };
}

/** Starts `latchkey ...args`; `done` rejects (after a SIGKILL) if it runs past timeoutMs. */
export function startCli(args: readonly string[], options: CliOptions = {}): RunningCli {
  const child = spawn(process.execPath, ['--import', 'tsx', join('src', 'cli.ts'), ...args], {
    cwd: REPO_ROOT,
    env: childEnv(options.env ?? {}),
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  if (options.input !== undefined) child.stdin!.end(options.input);
  const timeoutMs = options.timeoutMs ?? CLI_TIMEOUT_MS;
  const done = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`latchkey ${args.join(' ')} did not exit within ${timeoutMs} ms\n--- stderr:\n${err}`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'close': stdout and stderr are drained by then.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
  done.catch(() => {});
  return { pid: child.pid!, child, stderr: () => err, stdout: () => Buffer.concat(out), done };
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

/** Polls check() every 20 ms until it returns true; throws after withinMs. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  withinMs = CLI_TIMEOUT_MS,
): Promise<void> {
  const end = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** True when `text` is exactly one line ending in a newline. */
export function isOneLine(text: string): boolean {
  return text.endsWith('\n') && !text.slice(0, -1).includes('\n');
}
