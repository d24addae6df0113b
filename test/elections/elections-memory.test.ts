// The election contract on the memory backend, and the file backend's refusal of it; then
// what the contract does not cover: shutdown, and token name prefixes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { fileCapabilities } from '../../src/locks/file.js';
import { memoryCapabilities } from '../../src/locks/memory.js';
import { rejection } from '../support/assertions.js';
import { startServer, type TestServer } from '../support/server.js';
import { electionContract } from './contract.js';

electionContract({
  backend: 'memory',
  capabilities: memoryCapabilities,
  shortTtlMs: 300,
  start: () => startServer(),
});

const lockDir = mkdtempSync(join(tmpdir(), 'latchkey-elections-file-'));
after(() => rmSync(lockDir, { recursive: true, force: true }));

electionContract({
  backend: 'file',
  capabilities: fileCapabilities,
  shortTtlMs: 300,
  start: () => startServer({ lockDir }),
});

describe('elections on a memory server, beyond the contract', () => {
  test('Observe ends cleanly (OK) when the server shuts down, and a waiting Campaign is answered UNAVAILABLE', async () => {
    const s = await startServer();
    try {
      const won = await call(s, 'Campaign', { name: 'shutdown', value: 'a' });
      assert.ok(won);
      const waiting = call(s, 'Campaign', { name: 'shutdown', value: 'b' });
      waiting.catch(() => {}); // awaited below
      const observed = new Promise<grpc.StatusObject>((resolve) => {
        const stream = s.elections.Observe({ name: 'shutdown' });
        stream.on('data', () => {});
        stream.on('error', () => {});
        stream.on('status', resolve);
      });
      await until(async () => (await call<{ candidates: number }>(s, 'Leader', { name: 'shutdown' })).candidates === 2);
      await s.server.shutdown(2_000);
      assert.equal((await observed).code, grpc.status.OK);
      assert.equal((await rejection(waiting)).code, grpc.status.UNAVAILABLE);
    } finally {
      await s[Symbol.asyncDispose]();
    }
  });

  test('a token limited to name prefixes may use only those election names (PERMISSION_DENIED otherwise)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-elections-auth-'));
    try {
      const file = join(dir, 'tokens');
      writeFileSync(file, 'token-for-billing-0123456 billing/\n');
      await using s = await startServer({ authTokensFile: file });
      const md = new grpc.Metadata();
      md.set('authorization', 'Bearer token-for-billing-0123456');
      const ok = await call(s, 'Campaign', { name: 'billing/leader', value: 'a' }, md);
      assert.ok(ok);
      for (const [method, request] of [
        ['Campaign', { name: 'payroll/leader', value: 'a' }],
        ['Leader', { name: 'payroll/leader' }],
        ['Resign', { leadership: { ...(ok as object), name: 'payroll/leader' } }],
      ] as const) {
        const err = await rejection(call(s, method, request, md));
        assert.equal(err.code, grpc.status.PERMISSION_DENIED, method);
        assert.match(err.details, /may not use election "payroll\/leader"/, method);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function call<Res = unknown>(s: TestServer, method: string, request: object, md = new grpc.Metadata()): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const fn = (s.elections as unknown as Record<string, Function>)[method]!;
    fn.call(s.elections, request, md, {}, (err: Error | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

async function until(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
