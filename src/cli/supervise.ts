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
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function signalNumber(signal: NodeJS.Signals): number {
  return osConstants.signals[signal] ?? 0;
}

/**
 * `env` without any guard's variables: the guard CMD runs under sets its own, so a CMD that
 * runs `latchkey cache ... --fenced` fences with the innermost guard (a lock taken inside
 * an election's CMD, or the reverse), never with a mix of both.
 */
function withoutGuardEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
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

export interface SuperviseOptions<Taken> {
  readonly command: readonly string[];
  readonly killGraceMs: number;
  readonly messages: GuardMessages;
  readonly out: Output;
  /**
   * Takes the guard (acquires the lock, wins the election). `signal` aborts if latchkey gets
   * a signal first: the take is given up, and latchkey exits 128 + the signal's number.
   */
  take(signal: AbortSignal): Promise<Taken>;
  /** What was taken, as supervision sees it. */
  guardOf(taken: Taken): Guard;
  /** CMD's own variables for what was taken (on top of latchkey's environment, less any guard's). */
  envOf(taken: Taken): NodeJS.ProcessEnv;
}

type ChildEnd =
  | { readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly error: NodeJS.ErrnoException };

/**
 * Takes the guard, runs CMD under it, and resolves with latchkey's exit code. A signal that
 * comes while the guard is being taken gives the take up; one that comes once CMD runs is
 * passed on to CMD.
 */
export async function superviseCommand<Taken>(o: SuperviseOptions<Taken>): Promise<number> {
  const giveUp = new AbortController();
  let received: NodeJS.Signals | undefined;
  let forward: ((signal: NodeJS.Signals) => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    received = signal;
    if (forward !== undefined) forward(signal);
    else giveUp.abort();
  };
  for (const s of FORWARDED) process.on(s, onSignal);
  try {
    let taken: Taken;
    try {
      taken = await o.take(giveUp.signal);
    } catch (err) {
      if (received !== undefined) return 128 + signalNumber(received);
      throw err;
    }
    const guard = o.guardOf(taken);
    // The take crossed the signal: the caller asked to stop before CMD ever started.
    if (received !== undefined) {
      await guard.release();
      return 128 + signalNumber(received);
    }
    const env = { ...withoutGuardEnv(process.env), ...o.envOf(taken) };
    return await runUnder(guard, env, o, (fn) => (forward = fn));
  } finally {
    for (const s of FORWARDED) process.off(s, onSignal);
  }
}

/** Runs CMD under a guard held already; `onForward` gets how to pass CMD a signal. */
async function runUnder(
  guard: Guard,
  env: NodeJS.ProcessEnv,
  o: Pick<SuperviseOptions<unknown>, 'command' | 'killGraceMs' | 'messages' | 'out'>,
  onForward: (forward: (signal: NodeJS.Signals) => void) => void,
): Promise<number> {
  const { out, messages } = o;
  const [file, ...args] = o.command;
  const child = spawn(file!, args, { stdio: 'inherit', env });
  const ended = new Promise<ChildEnd>((resolve) => {
    child.once('error', (error) => resolve({ error }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // From here on a signal is CMD's (superviseCommand checked for one just before).
  onForward((signal) => child.kill(signal));

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
