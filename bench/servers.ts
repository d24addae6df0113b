// The servers under test, each a child process on a free loopback port: latchkey through the
// test harness's spawnServer (test/support/spawn.ts), etcd and memcached through theirs, and
// the baseline echo server (bench/echo-server.ts). Every child is registered in one place and
// stopped by its pid, at the end, on failure and on Ctrl-C.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startEtcd } from '../test/support/etcd.js';
import { startMemcached } from '../test/support/memcached.js';
import { startRedis } from './redis.js';
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
  await Promise.all(
    [...children].map((c) =>
      c.stop().catch((err: unknown) => process.stderr.write(`bench: stopping ${c.name}: ${String(err)}\n`)),
    ),
  );
}

export interface LatchkeyChild {
  readonly address: string;
  readonly pid: number;
  /** Where its main thread's CPU profile is once it has stopped, when started with profileDir. */
  readonly profile: string | undefined;
  /** Runs a full GC in the server (needs gcOnSignal) and resolves when it is done. */
  gc(): Promise<void>;
  stop(): Promise<void>;
}

const PRELOAD = pathToFileURL(join(REPO_ROOT, 'bench', 'server-preload.mjs')).href;

/**
 * `latchkey serve --listen 127.0.0.1:0 ...args`, through the test harness. bench/server-preload.mjs
 * gives it what node flags would: with profileDir its main thread is CPU-profiled from
 * start-up (the profile is written when it exits after SIGTERM); with gcOnSignal, gc() runs
 * a full collection in it.
 */
export async function startLatchkey(
  args: readonly string[],
  options: { profileDir?: string; gcOnSignal?: boolean } = {},
): Promise<LatchkeyChild> {
  const env: Record<string, string> = {};
  let profile: string | undefined;
  if (options.profileDir !== undefined) {
    mkdirSync(options.profileDir, { recursive: true });
    profile = join(options.profileDir, 'server.cpuprofile');
    env.BENCH_CPU_PROFILE = profile;
  }
  if (options.gcOnSignal) env.BENCH_GC_SIGNAL = '1';
  if (Object.keys(env).length > 0) env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${PRELOAD}`.trim();
  const server: SpawnedServer = await spawnServer(args, env);
  let gcs = 0;
  return track<Omit<LatchkeyChild, 'stop'>>(
    `latchkey (pid ${server.pid})`,
    async () => {
      const exit = await server.stop('SIGTERM');
      if (exit.signal === 'SIGKILL') process.stderr.write(`bench: latchkey (pid ${server.pid}) had to be killed\n`);
    },
    {
      address: server.address,
      pid: server.pid,
      profile,
      async gc() {
        if (!options.gcOnSignal) throw new Error('gc() needs startLatchkey(..., { gcOnSignal: true })');
        process.kill(server.pid, 'SIGUSR2');
        await server.waitForStderr(new RegExp(`^bench-preload: gc ${++gcs} done$`, 'm'), 30_000);
      },
    },
  );
}

export interface EchoChild {
  readonly address: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** The baseline echo server (bench/echo-server.ts), as its own process. */
export async function startEcho(): Promise<EchoChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', join('bench', 'echo-server.ts')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid!, 'SIGTERM');
    const timer = setTimeout(
      () => child.exitCode === null && child.signalCode === null && process.kill(child.pid!, 'SIGKILL'),
      5_000,
    );
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

export async function startEtcdChild(): Promise<{ endpoint: string; pid: number; stop(): Promise<void> }> {
  const member = await startEtcd();
  return track(`etcd (pid ${member.pid})`, async () => member[Symbol.asyncDispose](), {
    endpoint: member.endpoint,
    pid: member.pid!,
  });
}

/** memcached on a free port; memoryMb is its -m (item memory; the test harness's default is 64). */
export async function startMemcachedChild(
  options: { memoryMb?: number } = {},
): Promise<{ address: string; pid: number; stop(): Promise<void> }> {
  const memcached = await startMemcached(options);
  return track(`memcached (pid ${memcached.pid()})`, () => memcached.kill(), {
    address: memcached.address,
    pid: memcached.pid()!,
  });
}

/** A process's resident set size in MB, from /proc/<pid>/status (VmRSS). */
export function rssMb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

export async function startRedisChild(): Promise<{ address: string; pid: number; stop(): Promise<void> }> {
  const redis = await startRedis();
  return track(`redis-server (pid ${redis.pid})`, () => redis.stop(), { address: redis.address, pid: redis.pid });
}
