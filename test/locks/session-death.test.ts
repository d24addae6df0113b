// A lock session whose client process dies (SIGKILL: the connection goes away mid-stream,
// no end, no goodbye) releases nothing early: its locks stay until the session's TTL runs
// out, and then expire; before that, the session can be resumed with every lock. The client
// is a real process (test/support/session-holder.ts, raw grpc-js), the server a real
// latchkey server over real gRPC, on every backend that declares sessions.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output as Lease } from '../../client/generated/latchkey/v1/Lease.js';
import type { LockState__Output as LockState } from '../../client/generated/latchkey/v1/LockState.js';
import { rejection } from '../support/assertions.js';
import { parseMetrics } from '../support/metrics.js';
import { runScript } from '../support/script.js';
import { startServer, type TestServer } from '../support/server.js';
import { SessionStream } from '../support/session-stream.js';

const HOLDER = join('test', 'support', 'session-holder.ts');
const scratch = mkdtempSync(join(tmpdir(), 'latchkey-session-death-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Held {
  readonly sessionId: string;
  readonly expiresAtMs: number;
  readonly leases: readonly { readonly name: string; readonly token: string }[];
}

const BACKENDS = [
  { backend: 'memory', start: () => startServer() },
  { backend: 'file', start: () => startServer({ backend: 'file', lockDir: join(scratch, `file-${process.pid}`) }) },
] as const;

for (const { backend, start } of BACKENDS) {
  describe(`a session whose client is SIGKILLed: ${backend}`, () => {
    let seq = 0;
    const names = (label: string) =>
      [0, 1].map((i) => `session-death/${backend}/${label}/${process.pid}-${seq++}-${i}`) as [string, string];

    /** The holder process takes `lockNames` in a session of ttlMs, and is SIGKILLed. */
    async function killedHolder(s: TestServer, ttlMs: number, lockNames: readonly string[]): Promise<Held> {
      await using holder = runScript(HOLDER, [s.address, backend, String(ttlMs), ...lockNames]);
      const held = (await holder.waitFor((m) => typeof m.sessionId === 'string', 'the session')) as unknown as Held;
      holder.kill('SIGKILL');
      const exit = await holder.exited();
      assert.equal(exit.signal, 'SIGKILL');
      return held;
    }

    test('its locks stay until the session TTL runs out, then expire: the next holder gets them only then', async () => {
      await using s = await start();
      const lockNames = names('expire');
      const held = await killedHolder(s, 2_000, lockNames);
      const waiter = s.call<Lease>(s.locks, 'Acquire', {
        name: lockNames[0],
        backend,
        ttl_ms: 10_000,
        wait_ms: 15_000,
      });
      const state = await s.call<LockState>(s.locks, 'Describe', { name: lockNames[1], backend });
      assert.equal(state.fencing_token, held.leases[1]!.token, 'the dead client lost a lock before its TTL');
      const next = await waiter;
      const grantedAt = Date.now();
      assert.ok(
        grantedAt >= held.expiresAtMs - 20,
        `granted ${held.expiresAtMs - grantedAt} ms before the session's expiry`,
      );
      assert.ok(grantedAt <= held.expiresAtMs + 1_500, `granted ${grantedAt - held.expiresAtMs} ms after expiry`);
      assert.ok(BigInt(next.fencing_token) > BigInt(held.leases[0]!.token));
      assert.equal((await s.call<LockState>(s.locks, 'Describe', { name: lockNames[1], backend })).held, false);
      const err = await rejection(SessionStream.open(s.locks, { resume_id: held.sessionId }));
      assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
      assert.match(err.details, /expired at/);
      const m = parseMetrics(await s.server.metrics());
      assert.equal(m.value('latchkey_lock_sessions_expired_total', { backend }), 1);
      assert.equal(m.value('latchkey_lock_lease_expiries_total', { backend }), 2);
    });

    test('within the TTL the session is resumed on a new stream with every lock', async () => {
      await using s = await start();
      const lockNames = names('resume');
      const held = await killedHolder(s, 20_000, lockNames);
      // Until the server has noticed the break, the resume takes the session over; after, it reattaches.
      const resumed = await SessionStream.open(s.locks, { resume_id: held.sessionId });
      assert.equal(resumed.opened.resumed, true);
      assert.deepEqual(
        resumed.opened.leases.map((l) => [l.name, l.fencing_token]).sort(),
        held.leases.map((l) => [l.name, l.token]).sort(),
      );
      await resumed.op({ keepalive: {} });
      const lease = resumed.opened.leases.find((l) => l.name === lockNames[0])!;
      assert.deepEqual(await resumed.op({ release: { name: lease.name, lease_id: lease.lease_id } }), {
        released: true,
      });
      assert.equal((await resumed.close()).code, grpc.status.OK);
      for (const name of lockNames)
        assert.equal((await s.call<LockState>(s.locks, 'Describe', { name, backend })).held, false);
    });
  });
}
