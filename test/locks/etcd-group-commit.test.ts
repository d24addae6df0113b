// Group commit on etcd (src/locks/etcd/txn-batch.ts): the own-key writes of one turn go to
// etcd as one Txn, except what must not share one. First the batcher's rules on a scripted
// transport (which members go together, how a failed batch is undone), then the rule that
// keeps mutual exclusion, on a real etcd: two puts into one lock's queue never share a Txn.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { ITxnRequest, ITxnResponse } from 'etcd3';
import { BackendUnavailableError, LockBusyError } from '../../src/errors.js';
import type { LockSession } from '../../src/locks/backend.js';
import { EtcdLockBackend } from '../../src/locks/etcd/lock-backend.js';
import { TxnBatcher, type TxnMember } from '../../src/locks/etcd/txn-batch.js';
import { etcdMissing, startEtcd, type EtcdMember } from '../support/etcd.js';
import { until } from '../support/faults.js';

/** A member whose one compare holds when `holds`, with `ops` success ops that each answer their own tag. */
const member = (tag: string, conflicts: string[], ops = 1, holds = true): TxnMember => ({
  request: {
    compare: [{ key: Buffer.from(tag), target: 'Value', result: holds ? 'Equal' : 'NotEqual' }],
    success: Array.from({ length: ops }, (_, i) => ({ request_range: { key: Buffer.from(`${tag}#${i}`) } })),
    failure: [{ request_range: { key: Buffer.from(`${tag}!`) } }],
  },
  conflicts,
});

/** A transport that records every Txn sent and answers it as etcd would (from the compares). */
function scripted(fail?: (request: ITxnRequest) => unknown) {
  const sent: ITxnRequest[] = [];
  const send = async (request: ITxnRequest): Promise<ITxnResponse> => {
    sent.push(request);
    const err = fail?.(request);
    if (err !== undefined) throw err;
    const succeeded = (request.compare ?? []).every((c) => c.result === 'Equal');
    const ops = (succeeded ? request.success : request.failure) ?? [];
    return {
      header: { revision: String(sent.length) } as ITxnResponse['header'],
      succeeded,
      responses: ops.map((op) => ({ response_range: { kvs: [{ key: op.request_range!.key }] } })) as never,
    };
  };
  return { sent, send };
}
const answered = (txn: ITxnResponse) => txn.responses.map((r) => (r.response_range.kvs[0]!.key as Buffer).toString());

describe('TxnBatcher', () => {
  test('the writes of one turn go as one Txn; each member gets its own responses, in order', async () => {
    const { sent, send } = scripted();
    const batch = new TxnBatcher(send, () => false);
    const txns = await Promise.all([batch.submit(member('a', ['qa'], 2)), batch.submit(member('b', ['qb'], 1))]);
    assert.equal(sent.length, 1);
    assert.deepEqual(txns.map(answered), [['a#0', 'a#1'], ['b#0']]);
    assert.deepEqual(
      txns.map((t) => t.header.revision),
      ['1', '1'],
    );
    // A member alone goes exactly as it was given, failure branch and all.
    const alone = member('c', ['qc']);
    await batch.submit(alone);
    assert.equal(sent.length, 2);
    assert.deepEqual(sent[1], alone.request);
  });

  test('members that conflict go in separate Txns of the same turn; the others join the first that has room', async () => {
    const { sent, send } = scripted();
    const batch = new TxnBatcher(send, () => false);
    const txns = await Promise.all([
      batch.submit(member('a', ['q1', 'id1'])),
      batch.submit(member('b', ['q1'])), // same queue as a
      batch.submit(member('c', ['q2', 'id1'])), // same lock id as a
      batch.submit(member('d', ['q3'])),
    ]);
    assert.equal(sent.length, 2);
    assert.deepEqual(
      sent.map((r) => r.compare!.map((c) => c.key!.toString())),
      [
        ['a', 'd'],
        ['b', 'c'],
      ],
    );
    assert.deepEqual(txns.map(answered), [['a#0'], ['b#0'], ['c#0'], ['d#0']]);
  });

  test("a batch stays under etcd's limit of ops per Txn", async () => {
    const { sent, send } = scripted();
    const batch = new TxnBatcher(send, () => false);
    await Promise.all(Array.from({ length: 100 }, (_, i) => batch.submit(member(`m${i}`, [`q${i}`], 2))));
    assert.ok(sent.length >= 3, `${sent.length} Txns`);
    for (const r of sent) assert.ok(r.success!.length <= 128 && r.compare!.length <= 128);
    assert.equal(
      sent.reduce((n, r) => n + r.compare!.length, 0),
      100,
    );
  });

  test('a compare that fails undoes the batch: every member runs alone and meets its own branch', async () => {
    const { sent, send } = scripted();
    const batch = new TxnBatcher(send, () => false);
    const txns = await Promise.all([batch.submit(member('a', ['qa'])), batch.submit(member('b', ['qb'], 1, false))]);
    assert.equal(sent.length, 3, 'the batch, then a and b alone');
    assert.deepEqual(
      txns.map((t) => [t.succeeded, ...answered(t)]),
      [
        [true, 'a#0'],
        [false, 'b!'],
      ],
    );
  });

  test("a failure that may have been applied fails every member, unsent again; a refusal etcd applied nothing of is retried alone for each member's own answer", async () => {
    const down = new Error('unavailable');
    const gone = new Error('lease not found');
    const { sent, send } = scripted(() => down);
    const all = new TxnBatcher(send, (err) => err === gone);
    const results = await Promise.allSettled([all.submit(member('a', ['qa'])), all.submit(member('b', ['qb']))]);
    assert.equal(sent.length, 1, 'not resent: the batch may have been applied');
    assert.deepEqual(
      results.map((r) => r.status === 'rejected' && r.reason),
      [down, down],
    );

    const one = scripted((r) => (r.compare!.some((c) => c.key!.toString() === 'b') ? gone : undefined));
    const each = new TxnBatcher(one.send, (err) => err === gone);
    const mixed = await Promise.allSettled([each.submit(member('a', ['qa'])), each.submit(member('b', ['qb']))]);
    assert.equal(one.sent.length, 3);
    assert.equal(mixed[0]!.status, 'fulfilled');
    assert.deepEqual(mixed[1], { status: 'rejected', reason: gone });
  });
});

describe('group commit on etcd', { skip: etcdMissing() }, () => {
  let etcd: EtcdMember;
  let backend: EtcdLockBackend;
  const signal = new AbortController().signal;
  let seq = 0;

  before(async () => {
    etcd = await startEtcd();
    backend = new EtcdLockBackend({
      endpoints: etcd.endpoint,
      prefix: `latchkey-group-commit-${process.pid}/`,
      opTimeoutMs: 1_000,
    });
  });
  after(async () => {
    await backend?.close();
    await etcd?.[Symbol.asyncDispose]();
  });

  test('sessions asking for one lock in the same turn: exactly one holds it, the others are refused busy', async () => {
    const sessions: LockSession[] = await Promise.all(
      Array.from({ length: 5 }, () => backend.openSession({ ttlMs: 30_000, signal })),
    );
    for (let round = 0; round < 3; round++) {
      const name = `contended-${seq++}`;
      // Started in one turn: every put reaches the batcher before it flushes.
      const tries = sessions.map((s, i) =>
        s.acquire({ name, waitMs: 0, owner: `s${i}`, mode: 'EXCLUSIVE', limit: 1, signal }),
      );
      const results = await Promise.allSettled(tries);
      const held = results.filter((r) => r.status === 'fulfilled');
      assert.equal(held.length, 1, `round ${round}: ${held.length} sessions hold "${name}"`);
      for (const r of results)
        if (r.status === 'rejected') assert.ok(r.reason instanceof LockBusyError, String(r.reason));
      const state = await backend.describe(name, signal);
      assert.equal(state.held, true);
      assert.equal(state.waiters, 0, 'the refused keys left the queue');
      const lease = (held[0] as PromiseFulfilledResult<Awaited<(typeof tries)[number]>>).value;
      await sessions[results.indexOf(held[0]!)]!.release({ name, leaseId: lease.leaseId, signal });
    }
    await Promise.all(sessions.map((s) => s.end()));
  });

  test('a batch sent to an etcd that hangs (SIGSTOP): every member fails UNAVAILABLE in time; the next keepalive deletes any key the stalled batch left', async () => {
    const session = await backend.openSession({ ttlMs: 30_000, signal });
    const names = Array.from({ length: 8 }, () => `stalled-${seq++}`);
    const pid = etcd.pid!;
    process.kill(pid, 'SIGSTOP');
    let results: PromiseSettledResult<unknown>[];
    const started = Date.now();
    try {
      await until(
        'etcd stopped',
        10_000,
        () => /^\d+ \(.*\) [Tt] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) || undefined,
      );
      results = await Promise.allSettled(
        names.map((name) =>
          session.acquire({ name, waitMs: 0, owner: 'stalled', mode: 'EXCLUSIVE', limit: 1, signal }),
        ),
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const took = Date.now() - started;
    for (const r of results)
      assert.ok(
        r.status === 'rejected' && r.reason instanceof BackendUnavailableError,
        String((r as PromiseRejectedResult).reason),
      );
    assert.ok(took < 5_000, `answered after ${took} ms`);
    // etcd may apply the stalled batch when it runs again, after the deletes that were to
    // take its keys out of the queue: keys of locks the session does not know it holds, that
    // its keepalives would keep. The first keepalive etcd answers deletes them.
    await until('etcd answers again', 10_000, () => session.keepAlive(signal));
    await until('no key left queued', 10_000, async () => {
      const states = await Promise.all(names.map((name) => backend.describe(name, signal)));
      return states.every((st) => !st.held && st.waiters === 0) || undefined;
    });
    // The session goes on: the same names in one batch again.
    const leases = await Promise.all(
      names.map((name) => session.acquire({ name, waitMs: 0, owner: 'again', mode: 'EXCLUSIVE', limit: 1, signal })),
    );
    assert.equal(new Set(leases.map((l) => l.leaseId)).size, names.length);
    await session.end();
  });
});
