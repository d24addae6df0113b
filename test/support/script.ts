// Runs a TypeScript helper (test/support/*.ts) as a separate node process that talks JSON
// lines on stdout: SDK clients that must live in their own process to be SIGKILLed, or to
// contend from several processes. Stopped by pid; every wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { REPO_ROOT, type Launcher } from './spawn.js';

export interface Script extends AsyncDisposable {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Every stdout line that parsed as JSON, in order. */
  messages(): readonly Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the first JSON line that matches; rejects on timeout or if the process exits first. */
  waitFor(
    match: (message: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Resolves with the exit once the process has exited (output drained); bounded. */
  exited(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Writes a line to its stdin. */
  send(line: string): void;
  /** Sends the signal (default SIGKILL) to its pid unless it has exited; does not wait. */
  kill(signal?: NodeJS.Signals): void;
}

/** Generous: tsx compiles the script and the SDK on start, slowly on a busy 2-core machine. */
export const SCRIPT_START_TIMEOUT_MS = 20_000;

/** Children still running, killed if this test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live)
    if (child.pid !== undefined)
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
});

/** Starts `node --import tsx script ...args`; `launch` says where it runs (default: here). */
export function runScript(script: string, args: readonly string[], launch: Launcher = spawn): Script {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // NOTE: a child that inherited node --test's marker would speak the runner's protocol.
  delete env.NODE_TEST_CONTEXT;
  const child = launch(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${script}`);
  const pid = child.pid;
  live.add(child);
  const messages: Record<string, unknown>[] = [];
  let partial = '';
  let stderr = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const listeners = new Set<() => void>();
  const notify = () => [...listeners].forEach((listener) => listener());

  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try {
        messages.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        stderr += `[stdout] ${line}\n`;
      }
    }
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-20_000)));
  child.stdin!.on('error', () => {}); // EPIPE once the child is gone
  child.once('close', (code, signal) => {
    live.delete(child);
    exit = { code, signal };
    notify();
  });

  /** Resolves once check() returns a value; re-checked on every message and on exit. */
  const until = <T>(check: () => T | undefined, what: string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        listeners.delete(listener);
      };
      const listener = () => {
        try {
          const value = check();
          if (value !== undefined) {
            done();
            resolve(value);
          }
        } catch (err) {
          done();
          reject(err);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `${script} (pid ${pid}): timed out after ${timeoutMs} ms waiting for ${what}\n--- stderr:\n${stderr}`,
          ),
        );
      }, timeoutMs);
      listeners.add(listener);
      listener();
    });

  const kill = (signal: NodeJS.Signals = 'SIGKILL') => {
    if (exit !== undefined) return;
    try {
      process.kill(pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  };

  return {
    pid,
    child,
    messages: () => messages,
    stderr: () => stderr,
    waitFor: (match, what, timeoutMs = SCRIPT_START_TIMEOUT_MS) =>
      until(
        () => {
          const found = messages.find(match);
          if (found !== undefined) return found;
          if (exit !== undefined)
            throw new Error(
              `${script} (pid ${pid}) exited (code ${exit.code}, signal ${exit.signal}) before ${what}\n--- stderr:\n${stderr}`,
            );
          return undefined;
        },
        what,
        timeoutMs,
      ),
    exited: (timeoutMs = 10_000) => until(() => exit, 'its exit', timeoutMs),
    send: (line) => void child.stdin!.write(`${line}\n`),
    kill,
    async [Symbol.asyncDispose]() {
      kill('SIGKILL');
      await until(() => exit, 'its exit after SIGKILL', 10_000);
    },
  };
}
