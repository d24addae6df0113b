// A real gRPC C-core client (Python's grpcio, stubs generated from proto/) against a real
// server. C core rounds the grpc-timeout it sends up (a 1 s deadline goes out as "1010m"),
// so the deadline the server reads is later than the one the client keeps: the server must
// give up waiting early enough that the ABORTED naming the holder still reaches the client.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Lease__Output } from '../../client/common/index.js';
import { pythonGrpcMissing, pythonStubs, runPython } from '../support/python.js';
import { startServer } from '../support/server.js';

const skip = pythonGrpcMissing();

interface Outcome {
  code: string;
  details: string;
  reason: string;
  deadline_s: number;
  elapsed_s: number;
}

test('a Python client whose deadline ends before wait_ms gets ABORTED naming the holder', { skip }, async () => {
  using stubs = pythonStubs();
  await using s = await startServer();
  await s.call<Lease__Output>(s.locks, 'Acquire', { name: 'py/held', owner: 'holder-1', ttl_ms: 60_000 });
  // 1 s is sent as 1010m and 2 s as 2010m; 0.25 s as 251m or so (C core rounds to three digits).
  const deadlines = [1, 0.25, 2];
  const { stdout } = await runPython(stubs, join(import.meta.dirname, '../support/python-deadlines.py'), [
    s.address,
    'py/held',
    '10000',
    ...deadlines.map(String),
  ]);
  const outcomes = stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Outcome);
  assert.deepEqual(
    outcomes.map((o) => o.deadline_s),
    deadlines,
  );
  for (const o of outcomes) {
    const what = `deadline ${o.deadline_s} s: ${JSON.stringify(o)}`;
    assert.equal(o.code, 'ABORTED', what);
    assert.match(o.details, /lock "py\/held" .*held by holder-1/, what);
    assert.equal(o.reason, 'LockBusyError', what);
    assert.ok(o.elapsed_s < o.deadline_s, what);
    // The server gives up shortly before the deadline, not long before it.
    assert.ok(o.elapsed_s > o.deadline_s * 0.7, what);
  }
});
