// Real memcached servers for tests: started on free loopback ports, stopped by PID.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './ports.js';

export interface Memcached extends AsyncDisposable {
  /** "127.0.0.1:PORT" */
  readonly address: string;
  readonly port: number;
  pid(): number | undefined;
  /** Kills the process with SIGKILL and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty, as memcached is after a restart). */
  restart(): Promise<void>;
  /** SIGSTOP: resolves once the kernel reports it stopped (the signal is asynchronous). */
  freeze(): Promise<void>;
  /** SIGCONT. */
  thaw(): void;
}

let available: boolean | undefined;

/** Whether a memcached binary is installed; suites skip (with this reason) when not. */
export function memcachedMissing(): string | false {
  available ??= spawnSync('memcached', ['-h'], { stdio: 'ignore' }).status === 0;
  if (available) return false;
  const reason = 'memcached is not installed (apt-get install memcached)';
  if (process.env.LATCHKEY_REQUIRE_ALL_SUITES)
    throw new Error(`${reason}; LATCHKEY_REQUIRE_ALL_SUITES forbids skipping`);
  return reason;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startMemcached(options: { maxItemBytes?: number; memoryMb?: number } = {}): Promise<Memcached> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', String(options.memoryMb ?? 64), '-t', '1'];
  if (options.maxItemBytes) args.push('-I', String(options.maxItemBytes));
  // memcached refuses to run as root without naming a user.
  if (process.getuid?.() === 0) args.push('-u', 'root');

  const launch = async () => {
    const proc = spawn('memcached', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr!.on('data', (chunk) => (stderr += chunk));
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (proc.exitCode !== null) throw new Error(`memcached exited with ${proc.exitCode}: ${stderr}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`memcached did not listen on ${port} within 10 s: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const kill = async () => {
    if (child === undefined) return;
    const proc = child;
    child = undefined;
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGKILL');
    await exited(proc);
  };

  await launch();
  return {
    address: `127.0.0.1:${port}`,
    port,
    pid: () => child?.pid,
    kill,
    async restart() {
      await kill();
      await launch();
    },
    async freeze() {
      const pid = child!.pid!;
      process.kill(pid, 'SIGSTOP');
      const deadline = Date.now() + 5_000;
      // /proc/PID/stat: "PID (comm) STATE ..."; T = stopped by a signal.
      while (!/^\d+ \(.*\) T /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) {
        if (Date.now() > deadline) throw new Error(`memcached ${pid} not stopped 5 s after SIGSTOP`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    thaw() {
      if (child?.pid !== undefined) process.kill(child.pid, 'SIGCONT');
    },
    [Symbol.asyncDispose]: kill,
  };
}
