// A memcached address whose connections never come up (SYNs dropped, as behind a partition):
// every call answers UNAVAILABLE within a bounded time, including the one retried on a new
// connection after the first timed out connecting.
//
// NOTE: the hazard. memjs's 'close' handler of a socket clears the server's *current*
// socket and cancels its connect timeout. The store destroys a socket that timed out
// connecting (a late SYN-ACK would still carry its queued write) and retries the unsent
// request at once, on a new socket; the old socket's 'close' then came on the next tick
// and left the retry on a socket with no timer, waiting for ever.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { BackendUnavailableError } from '../../src/errors.js';
import { MemcachedStore } from '../../src/cache/memcached.js';

const TIMEOUT_MS = 300;

/**
 * A loopback port that accepts no connection: a listener (a python3 process) that never
 * accepts, its backlog filled, so the kernel drops every further SYN and a connect stays
 * pending.
 */
async function blackhole(): Promise<{ address: string; [Symbol.asyncDispose](): Promise<void> }> {
  const child = spawn(
    '/usr/bin/python3',
    [
      '-c',
      'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  const fillers: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  return {
    address: `127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

test('memcached that never accepts: a get answers UNAVAILABLE within its two attempts, and again the next time', {
  timeout: 30_000,
}, async () => {
  await using hole = await blackhole();
  // A connect there stays pending: the premise of the test.
  const probe = connect(Number(hole.address.split(':')[1]), '127.0.0.1');
  probe.on('error', () => {});
  const probed = await Promise.race([
    once(probe, 'connect').then(() => 'connected'),
    new Promise((r) => setTimeout(() => r('pending'), 2 * TIMEOUT_MS)),
  ]);
  probe.destroy();
  assert.equal(probed, 'pending', 'the blackhole accepted a connection');

  const store = new MemcachedStore({ servers: [hole.address], maxItemBytes: 1 << 20, timeoutMs: TIMEOUT_MS });
  try {
    for (let round = 1; round <= 3; round++) {
      const started = performance.now();
      const outcome = await Promise.race([
        store.get(`k${round}`, new AbortController().signal).then(
          () => 'answered',
          (err: unknown) => err,
        ),
        new Promise((r) => setTimeout(() => r('no answer'), 10 * TIMEOUT_MS)),
      ]);
      const tookMs = performance.now() - started;
      assert.ok(
        outcome instanceof BackendUnavailableError,
        `round ${round}: ${String(outcome)} after ${tookMs.toFixed(0)} ms`,
      );
      // Two attempts, each bounded by the connect timeout or the stall watchdog (1.5 x).
      assert.ok(tookMs < 2 * 1.5 * TIMEOUT_MS + 500, `round ${round}: answered after ${tookMs.toFixed(0)} ms`);
    }
  } finally {
    await store.close();
  }
});
