// Running CMD while a guard holds: a lock's lease (`latchkey lock NAME -- CMD`) or a
// leadership (`latchkey elect NAME -- CMD`). CMD starts only once the guard is held (the
// caller's job), is stopped if the guard is lost (SIGTERM, then SIGKILL after a grace), gets
// the signals latchkey receives, and the guard is let go only after CMD has exited. The exit
// code follows the lock command's rules: CMD's status, or EXIT.leaseLost when the guard was
// lost while CMD ran or was found lost when letting it go.
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { ELECTION_ENV, LOCK_ENV } from './cache.js';
import { EXIT } from './exit-codes.js';
import type { Output } from './output.js';

/** Signals forwarded to CMD; each otherwise stops latchkey without letting go of anything. */
export const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export function signalNumber(signal: NodeJS.Signals): number {
  return osConstants.signals[signal] ?? 0;
}

/**
 * `env` without any guard's variables: the guard CMD runs under sets its own, so a CMD that
 * runs `latchkey cache ... --fenced` fences with the innermost guard (a lock taken inside
 * an election's CMD, or the reverse), never with a mix of both.
 */
export function withoutGuardEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const rest = { ...env };
  for (const name of [...Object.values(LOCK_ENV), ...Object.values(ELECTION_ENV)])
    if (name !== LOCK_ENV.address) delete rest[name];
  return rest;
}

/** What CMD runs under, as the SDK hands it out (a LockHandle, a Leadership). */
export interface Guard {
  /** Aborts when the guard is lost, or once it is let go. */
  readonly signal: AbortSignal;
  /** 'lost' once lost; a release that failed says 'release-failed' or 'resign-failed'. */
  readonly state: string;
  /** Why it was lost, or why letting it go failed. */
  readonly error: Error | undefined;
  /** Lets go (release, resign); resolves with the final state. Never rejects. */
  release(): Promise<string>;
}

/** The lines latchkey prints about the guard, in its own words. */
export interface GuardMessages {
  /** The guard was lost while CMD ran. */
  lost(reason: string, pid: number | undefined, killGraceMs: number): string;
  /** The guard was found lost when letting it go after CMD exited with `status`. */
  lostAfter(status: number, reason: string): string;
  /** Letting the guard go did not get through (a warning: CMD's status stands). */
  releaseFailed(status: number, reason: string): string;
}

export interface SuperviseOptions {
  readonly command: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly killGraceMs: number;
  readonly guard: Guard;
  readonly messages: GuardMessages;
  readonly out: Output;
  /** Called once CMD runs with how to pass it a signal: from then on signals are CMD's. */
  readonly onForward: (forward: (signal: NodeJS.Signals) => void) => void;
}

type ChildEnd =
  | { readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly error: NodeJS.ErrnoException };

/** Runs CMD under the guard and resolves with latchkey's exit code. */
export async function superviseCommand(o: SuperviseOptions): Promise<number> {
  const { guard, out, messages } = o;
  const [file, ...args] = o.command;
  const child = spawn(file!, args, { stdio: 'inherit', env: o.env });
  const ended = new Promise<ChildEnd>((resolve) => {
    child.once('error', (error) => resolve({ error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // From here on a signal is CMD's (the caller checked for one just before).
  o.onForward((signal) => child.kill(signal));

  let lost = false;
  let killTimer: NodeJS.Timeout | undefined;
  const onLost = () => {
    if (guard.state !== 'lost') return; // let go: CMD has already exited
    lost = true;
    out.fail(EXIT.leaseLost, 'LeaseLostError', messages.lost(guard.error?.message ?? 'lost', child.pid, o.killGraceMs));
    child.kill('SIGTERM');
    killTimer = setTimeout(() => {
      out.warn(`CMD (pid ${child.pid}) still running ${o.killGraceMs} ms after SIGTERM; sending SIGKILL`);
      child.kill('SIGKILL');
    }, o.killGraceMs);
  };
  guard.signal.addEventListener('abort', onLost, { once: true });
  if (guard.signal.aborted) onLost();
  const end = await ended;
  clearTimeout(killTimer);
  guard.signal.removeEventListener('abort', onLost);
  const state = await guard.release();

  if ('error' in end) {
    const code = end.error.code === 'ENOENT' ? 127 : end.error.code === 'EACCES' ? 126 : EXIT.error;
    return out.fail(code, 'SpawnError', `cannot run ${JSON.stringify(file)}: ${end.error.message}`);
  }
  const status = end.code ?? 128 + signalNumber(end.signal!);
  if (lost) return EXIT.leaseLost;
  if (state === 'lost')
    return out.fail(EXIT.leaseLost, 'LeaseLostError', messages.lostAfter(status, guard.error?.message ?? ''));
  if (state === 'release-failed' || state === 'resign-failed')
    out.warn(messages.releaseFailed(status, guard.error?.message ?? ''));
  return status;
}
