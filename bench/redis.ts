// A real redis-server for the redlock anchor: on a free loopback port, no persistence, stopped
// by its pid. Only the bench uses Redis; latchkey itself never talks to it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from '../test/support/ports.js';

let available: boolean | undefined;

/** Whether redis-server is installed; its scenarios are skipped (with this reason) when not. */
export function redisMissing(): string | false {
  available ??= spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (available) return false;
  const reason = 'redis-server is not installed (apt-get install redis-server)';
  if (process.env.LATCHKEY_REQUIRE_ALL_SUITES)
    throw new Error(`${reason}; LATCHKEY_REQUIRE_ALL_SUITES forbids skipping`);
  return reason;
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

export async function startRedis(): Promise<{ address: string; port: number; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  // --save '' and --appendonly no: a lock anchor measured without disk writes, as redlock's
  // users usually run it; one instance, as the figures were taken.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child: ChildProcess = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not listen on ${port} within 10 s: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    address: `127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    },
  };
}
