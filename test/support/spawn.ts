// Runs `latchkey` as a separate process, for what only a process can show: signals, exit
// codes, what it prints. Children are stopped by their pid, never by name, and every wait is
// bounded so a stuck child fails the test instead of hanging it.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { join } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');
const CLI = join('src', 'cli.ts');

/** tsx compiles on start; on a busy 2-core machine (load 10+) that has taken over 15 s. */
export const STARTUP_TIMEOUT_MS = 45_000;
/** How long stop() waits after its signal before it sends SIGKILL. */
export const STOP_TIMEOUT_MS = 10_000;

export interface Exit {
  /** The exit code, or null when a signal ended the process. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SpawnedServer extends AsyncDisposable {
  /** host:port from the "latchkey listening on" line. */
  readonly address: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything the process wrote so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when `pattern` appears on stderr (already there counts); bounded. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves when the process has exited and its output is complete; bounded. */
  waitExit(timeoutMs?: number): Promise<Exit>;
  /**
   * Sends `signal` to the pid and waits for the exit; if the process outlives
   * killAfterMs, sends SIGKILL (and the result says so: signal 'SIGKILL').
   */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<Exit>;
}

/**
 * Starts a process somewhere: `spawn` itself (the default) runs it here; a network namespace's
 * host (netns.ts) runs it inside that namespace. The returned child's pid is the process's own.
 */
export type Launcher = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

export interface RunResult extends Exit {
  readonly stdout: string;
  readonly stderr: string;
}

function childEnv(env: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  // NOTE: `node --test` marks its own children with NODE_TEST_CONTEXT; a latchkey child
  // that inherited it would talk the test runner's protocol on stdout. LATCHKEY_* from
  // the developer's shell would silently change the server under test.
  delete merged.NODE_TEST_CONTEXT;
  for (const key of Object.keys(merged)) if (key.startsWith('LATCHKEY_')) delete merged[key];
  return { ...merged, ...env };
}

function startCli(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  launch: Launcher = spawn,
): ChildProcess {
  return launch(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: REPO_ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Collects a child's output and its exit, which arrives exactly once. */
class Watched {
  out = '';
  err = '';
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;
  readonly #listeners = new Set<() => void>();

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.out += chunk;
      this.#notify();
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.err += chunk;
      this.#notify();
    });
    // 'close' rather than 'exit': by then stdout and stderr are drained, so a caller that
    // awaited the exit reads the complete output.
    this.exited = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.exit = { code, signal };
        this.#notify();
        resolve(this.exit);
      });
    });
    this.exited.catch(() => {});
  }

  /** Resolves once check() returns a value, rejects on timeout; re-checked on every output and on exit. */
  until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      const listener = () => {
        let value: T | undefined;
        try {
          value = check();
        } catch (err) {
          done();
          return reject(err);
        }
        if (value !== undefined) {
          done();
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}\n--- stdout:\n${this.out}\n--- stderr:\n${this.err}`,
          ),
        );
      }, timeoutMs);
      this.#listeners.add(listener);
      listener();
    });
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}

function sendSignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    // ESRCH: it exited between our check and the signal; that is what we wanted anyway.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

const LISTENING = /^latchkey listening on (\S+:\d+) /m;

/**
 * Starts `latchkey serve --listen 127.0.0.1:0 ...args` (a later --listen in args wins) and
 * resolves once it prints its address. Rejects, with the child's output, if it exits first
 * or does not get there within timeoutMs; the child is killed in both cases. `launch` says
 * where it runs (default: here).
 */
export async function spawnServer(
  args: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
  timeoutMs = STARTUP_TIMEOUT_MS,
  launch: Launcher = spawn,
): Promise<SpawnedServer> {
  const child = startCli(['serve', '--listen', '127.0.0.1:0', ...args], env, launch);
  const watched = new Watched(child);
  const pid = child.pid;

  const waitExit = async (ms = STOP_TIMEOUT_MS): Promise<Exit> =>
    watched.exit ?? watched.until(() => watched.exit, ms, `latchkey (pid ${pid}) to exit`);

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', killAfterMs = STOP_TIMEOUT_MS): Promise<Exit> => {
    if (watched.exit !== undefined || pid === undefined) return watched.exited;
    sendSignal(pid, signal);
    try {
      return await waitExit(killAfterMs);
    } catch {
      if (watched.exit === undefined) sendSignal(pid, 'SIGKILL');
      return waitExit(STOP_TIMEOUT_MS);
    }
  };

  let address: string;
  try {
    if (pid === undefined) await watched.exited; // spawn failed: 'error' carries the reason
    address = await watched.until(
      () => {
        const match = LISTENING.exec(watched.out);
        if (match !== null) return match[1]!;
        if (watched.exit !== undefined) {
          throw new Error(
            `latchkey exited (code ${watched.exit.code}, signal ${watched.exit.signal}) before listening\n--- stdout:\n${watched.out}\n--- stderr:\n${watched.err}`,
          );
        }
        return undefined;
      },
      timeoutMs,
      'the "latchkey listening on" line',
    );
  } catch (err) {
    if (pid !== undefined && watched.exit === undefined) await stop('SIGKILL').catch(() => {});
    throw err;
  }

  return {
    address,
    pid: pid!,
    child,
    stdout: () => watched.out,
    stderr: () => watched.err,
    waitForStderr: (pattern, ms = STOP_TIMEOUT_MS) =>
      watched
        .until(() => (pattern.test(watched.err) ? true : undefined), ms, `stderr to match ${pattern}`)
        .then(() => {}),
    waitExit,
    stop,
    async [Symbol.asyncDispose]() {
      await stop('SIGTERM');
    },
  };
}

/** Runs `latchkey ...args` to completion (bounded; SIGKILL on timeout) and returns its output. */
export async function runCli(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
  timeoutMs = STARTUP_TIMEOUT_MS,
): Promise<RunResult> {
  const child = startCli(args, env);
  const watched = new Watched(child);
  try {
    const exit = await watched.until(() => watched.exit, timeoutMs, `latchkey ${args.join(' ')} to exit`);
    return { ...exit, stdout: watched.out, stderr: watched.err };
  } catch (err) {
    if (child.pid !== undefined && watched.exit === undefined) {
      sendSignal(child.pid, 'SIGKILL');
      await watched.until(() => watched.exit, STOP_TIMEOUT_MS, 'the killed child to exit').catch(() => {});
    }
    throw err;
  }
}
