// The servers under test, each a child process on a free loopback port: latchkey through the
// test harness's spawnServer (test/support/spawn.ts), etcd and memcached through theirs, and
// the baseline echo server (bench/echo-server.ts). Every child is registered in one place and
// stopped by its pid, at the end, on failure and on Ctrl-C.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startEtcd } from '../test/support/etcd.js';
import { startMemcached } from '../test/support/memcached.js';
import { REPO_ROOT, spawnServer, STARTUP_TIMEOUT_MS, type SpawnedServer } from '../test/support/spawn.js';

interface Stoppable {
  readonly name: string;
  stop(): Promise<void>;
}

/** Every child started, so stopAll() can stop what is still running. */
const children = new Set<Stoppable>();

function track<T>(name: string, stop: () => Promise<void>, value: T): T & { stop(): Promise<void> } {
  const entry: Stoppable = {
    name,
    stop: async () => {
      if (!children.delete(entry)) return;
      await stop();
    },
  };
  children.add(entry);
  return Object.assign(value as object, { stop: entry.stop }) as T & { stop(): Promise<void> };
}

/** Stops every child still running (each by its pid), in parallel, never throwing. */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => c.stop().catch((err: unknown) => process.stderr.write(`bench: stopping ${c.name}: ${String(err)}\n`))));
}

export interface LatchkeyChild {
  readonly address: string;
  readonly pid: number;
  /** The main thread's CPU profile once stopped, when started with profileDir. */
  readonly profileDir: string | undefined;
  stop(): Promise<void>;
}

/**
 * `latchkey serve --listen 127.0.0.1:0 ...args`. With profileDir, the server runs under
 * `node --cpu-prof` (through NODE_OPTIONS, which spawnServer passes on) and writes its profile
 * there when it exits after SIGTERM.
 */
export async function startLatchkey(args: readonly string[], options: { profileDir?: string } = {}): Promise<LatchkeyChild> {
  const env: Record<string, string> = {};
  if (options.profileDir !== undefined) env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${options.profileDir}`.trim();
  const server: SpawnedServer = await spawnServer(args, env);
  return track(`latchkey (pid ${server.pid})`, async () => {
    const exit = await server.stop('SIGTERM');
    if (exit.signal === 'SIGKILL') process.stderr.write(`bench: latchkey (pid ${server.pid}) had to be killed\n`);
  }, { address: server.address, pid: server.pid, profileDir: options.profileDir });
}

export interface EchoChild {
  readonly address: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** The baseline echo server (bench/echo-server.ts), as its own process. */
export async function startEcho(): Promise<EchoChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', join('bench', 'echo-server.ts')], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid!, 'SIGTERM');
    const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    const match = /^echo listening on (\S+:\d+)$/m.exec(out);
    if (match !== null) return track(`echo server (pid ${child.pid})`, stop, { address: match[1]!, pid: child.pid! });
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`echo server did not start (exit ${child.exitCode}):\n${err}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function startEtcdChild(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const member = await startEtcd();
  return track(`etcd (pid ${member.pid})`, async () => member[Symbol.asyncDispose](), { endpoint: member.endpoint });
}

export async function startMemcachedChild(): Promise<{ address: string; stop(): Promise<void> }> {
  const memcached = await startMemcached();
  return track(`memcached (pid ${memcached.pid()})`, () => memcached.kill(), { address: memcached.address });
}

/** A process's resident set size in MB, from /proc/<pid>/status (VmRSS). */
export function rssMb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

/**
 * The main thread's profile in a --cpu-prof directory. Node names them
 * CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread (tsx's
 * loader thread writes one of its own).
 */
export function mainThreadProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const main = files.filter((f) => f.split('.').at(-3) === '0');
  const pick = (main.length > 0 ? main : files).map((f) => join(dir, f)).sort((a, b) => statSync(b).size - statSync(a).size);
  return pick[0];
}
