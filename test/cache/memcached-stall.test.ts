// A memcached server that stalls (SIGSTOP) past the store's timeout with writes in flight,
// then resumes: memcached executes every request it had received, so a write that may have
// reached it must never be sent again. Checked with memcached's own counters and cas values,
// and by the linearizability checker (test/support/checker.ts) on the recorded history of the
// sets, cases and deletes, with a read of every key at the end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { checkCache, formatViolations, type CacheInput, type CacheOutput } from '../support/checker.js';
import { sleep, unaryOutcome, type Outcome } from '../support/faults.js';
import { codeName, History } from '../support/history.js';
import { memcachedMissing, startMemcached } from '../support/memcached.js';
import { memcachedStats, textGets } from '../support/memcached-text.js';
import { startServer } from '../support/server.js';

const skip = memcachedMissing();
const TIMEOUT_MS = 1_000;
/** Longer than TIMEOUT_MS, so requests written early time out, and short of 2 x TIMEOUT_MS,
 * so a request written after the first timeout (a resend, on the old code) is answered. */
const STALL_MS = 1_600;
const WAVE_EVERY_MS = 100;
const BURST_WAVES = 8;
const WAVES = BURST_WAVES + 4;

type Op = 'Set' | 'Cas' | 'Touch' | 'Delete';
interface Sent {
  readonly op: Op;
  readonly key: string;
  readonly value?: Buffer;
  readonly outcome: Promise<Outcome<{ cas?: string; outcome?: string }>>;
}

test('writes in flight when memcached stalls are executed at most once, and every acknowledged cas is real', {
  skip,
  timeout: 60_000,
}, async (t) => {
  await using mc = await startMemcached();
  await using s = await startServer({ memcached: mc.address, store: 'memcached', memcachedTimeoutMs: TIMEOUT_MS });
  const run = `${process.pid}-${Date.now()}`;
  const call = <T>(method: string, request: object) =>
    unaryOutcome<T>(s.cache, method, { store: 'memcached', ...request }, 15_000);
  // The sets, cases, deletes and reads, recorded (touches change no value: left out, with their keys).
  const history = new History<CacheInput, CacheOutput>();
  const recorded = <T extends { cas?: string; outcome?: string; found?: boolean; value?: Buffer }>(
    method: string,
    request: { key: string; value?: Buffer; cas?: string },
  ) => {
    const input: CacheInput =
      method === 'Set'
        ? { op: 'set', key: request.key, value: request.value!.toString() }
        : method === 'Cas'
          ? { op: 'cas', key: request.key, value: request.value!.toString(), cas: BigInt(request.cas!) }
          : method === 'Delete'
            ? { op: 'delete', key: request.key, cas: 0n }
            : { op: 'get', key: request.key };
    const end = history.begin('c', input);
    const outcome = call<T>(method, request);
    void outcome.then((o) => {
      if (o.code !== grpc.status.OK) return end({ status: 'unknown', code: codeName(o.code), message: o.details });
      const v = o.value!;
      end({
        status: 'ok',
        value:
          method === 'Get'
            ? v.found
              ? { found: true, value: v.value!.toString(), cas: BigInt(v.cas!) }
              : { found: false }
            : {
                outcome: v.outcome as CacheOutput['outcome'],
                cas: v.cas === undefined || v.cas === '0' ? undefined : BigInt(v.cas),
              },
      });
    });
    return outcome;
  };

  // Keys for the touches, deletes and cases in flight, written before the stall.
  const casOf = new Map<string, string>();
  for (let w = 0; w < WAVES; w++)
    for (const kind of ['touch', 'delete', 'cas']) {
      const key = `stall:${run}:${kind}:${w}`;
      const value = Buffer.from('before');
      const res = await (kind === 'touch' ? call : recorded)<{ cas: string }>('Set', { key, value });
      assert.equal(res.code, grpc.status.OK, res.details);
      casOf.set(key, res.value!.cas);
    }
  const before = await memcachedStats(mc.port);

  await mc.freeze();
  const sent: Sent[] = [];
  const send = (op: Op, key: string, request: object, value?: Buffer) =>
    sent.push({ op, key, value, outcome: (op === 'Touch' ? call : recorded)(op, { key, ...request }) });
  const stalledAt = performance.now();
  const wave = (w: number) => {
    for (const i of [0, 1]) {
      const value = Buffer.from(`set ${w}.${i}`);
      send('Set', `stall:${run}:set:${w}.${i}`, { value }, value);
    }
    const casValue = Buffer.from(`cas ${w}`);
    const casKey = `stall:${run}:cas:${w}`;
    send('Cas', casKey, { value: casValue, cas: casOf.get(casKey) }, casValue);
    send('Touch', `stall:${run}:touch:${w}`, { ttl_ms: 600_000 });
    send('Delete', `stall:${run}:delete:${w}`, {});
  };
  try {
    // A burst while it is stopped, then quiet: the burst sits in memcached's socket buffer
    // until the store's timeout fails the connection. Then more waves, on a new connection,
    // answered when memcached resumes (as a resend of the burst would be).
    for (let w = 0; w < BURST_WAVES; w++) wave(w);
    await sleep(TIMEOUT_MS + WAVE_EVERY_MS);
    for (let w = BURST_WAVES; w < WAVES; w++) {
      wave(w);
      await sleep(WAVE_EVERY_MS);
    }
    await sleep(Math.max(0, STALL_MS - (performance.now() - stalledAt)));
  } finally {
    mc.thaw();
  }
  const outcomes = await Promise.all(sent.map((x) => x.outcome));

  // memcached executes what it had received when it resumes; wait until its counters settle.
  const counted = (st: Record<string, number>) =>
    ['cmd_set', 'cmd_touch', 'delete_hits', 'delete_misses'].map((n) => st[n]! - before[n]!).join(',');
  let stats = await memcachedStats(mc.port);
  for (let i = 0; i < 20; i++) {
    await sleep(100);
    const again = await memcachedStats(mc.port);
    const settled = counted(again) === counted(stats);
    stats = again;
    if (settled) break;
  }
  const delta = (name: string) => stats[name]! - before[name]!;
  const asked = (...ops: Op[]) => sent.filter((x) => ops.includes(x.op)).length;
  const acknowledged = outcomes.filter((o) => o.code === grpc.status.OK).length;
  const report = `${acknowledged} of ${sent.length} acknowledged; cmd_set +${delta('cmd_set')} for ${asked('Set', 'Cas')} sets and cases, cmd_touch +${delta('cmd_touch')} for ${asked('Touch')} touches, delete_hits+delete_misses +${delta('delete_hits') + delta('delete_misses')} for ${asked('Delete')} deletes`;

  // At most once: memcached executed no request more often than latchkey was asked for it.
  assert.ok(delta('cmd_set') <= asked('Set', 'Cas'), report);
  assert.ok(delta('cmd_touch') <= asked('Touch'), report);
  assert.ok(delta('delete_hits') + delta('delete_misses') <= asked('Delete'), report);
  assert.ok(delta('touch_hits') <= asked('Touch') && delta('cas_hits') <= asked('Cas'), report);

  // Each answer is either the result or an error that says the write's fate is unknown.
  outcomes.forEach((o, i) => {
    if (o.code === grpc.status.OK) return;
    assert.ok(
      o.code === grpc.status.UNAVAILABLE || o.code === grpc.status.DEADLINE_EXCEEDED,
      `${sent[i]!.op}: ${o.code} ${o.details}`,
    );
    assert.match(o.details, /may or may not have been applied/, `${sent[i]!.op}: ${o.details}`);
    assert.match(o.details, new RegExp(mc.address.replaceAll('.', '\\.')), o.details);
  });
  assert.ok(acknowledged > 0, `no write was acknowledged after the stall: ${report}`);
  assert.ok(acknowledged < sent.length, `no write was in flight when memcached timed out: ${report}`);

  // Every acknowledged cas is the one memcached assigned (nothing else wrote these keys),
  // and every acknowledged store holds its value.
  const items = await textGets(
    mc.port,
    sent.filter((x) => x.op === 'Set' || x.op === 'Cas').map((x) => x.key),
  );
  sent.forEach((x, i) => {
    const o = outcomes[i]!;
    if (o.code !== grpc.status.OK || (x.op !== 'Set' && x.op !== 'Cas')) return;
    if (x.op === 'Cas') assert.equal(o.value!.outcome, 'STORED', `${x.key}: ${JSON.stringify(o.value)}`);
    const item = items.get(x.key);
    assert.ok(item !== undefined, `${x.op} ${x.key} was acknowledged but memcached does not hold it`);
    assert.equal(item.cas.toString(), o.value!.cas, `${x.op} ${x.key}: acknowledged cas vs memcached's`);
    assert.ok(item.value.equals(x.value!), `${x.key} holds ${item.value}`);
  });
  t.diagnostic(report);

  // Every key's history, with a read of it now, is linearizable: no write applied twice, or
  // late over a newer one; the writes whose answers were lost taken as may-or-may-not.
  for (const key of new Set(sent.filter((x) => x.op !== 'Touch').map((x) => x.key))) {
    const read = await recorded<{ found: boolean; value: Buffer; cas: string }>('Get', { key });
    assert.equal(read.code, grpc.status.OK, read.details);
  }
  const checked = checkCache(history.completed());
  assert.deepEqual(checked.violations, [], formatViolations(checked.violations));
  t.diagnostic(`history checked: ${JSON.stringify(checked.stats)}`);

  // And the store works normally afterwards.
  const after_ = await call<{ cas: string }>('Set', { key: `stall:${run}:after`, value: Buffer.from('ok') });
  assert.equal(after_.code, grpc.status.OK, after_.details);
});

test('a server that stalls under a steady load is timed out after --memcached-timeout-ms, not when it resumes', {
  skip,
  timeout: 60_000,
}, async (t) => {
  await using mc = await startMemcached();
  const timeoutMs = 400;
  await using s = await startServer({ memcached: mc.address, store: 'memcached', memcachedTimeoutMs: timeoutMs });
  const run = `${process.pid}-${Date.now()}`;
  const set = (key: string) =>
    unaryOutcome<{ cas: string }>(s.cache, 'Set', { store: 'memcached', key, value: Buffer.from(key) }, 15_000);
  assert.equal((await set(`steady:${run}:warm`)).code, grpc.status.OK);
  const before = await memcachedStats(mc.port);

  await mc.freeze();
  const sent: Promise<Outcome<{ cas: string }>>[] = [];
  const stalledAt = performance.now();
  try {
    // A write every 50 ms keeps the connection busy: memjs's idle timer never fires.
    while (performance.now() - stalledAt < 4 * timeoutMs) {
      sent.push(set(`steady:${run}:${sent.length}`));
      await sleep(50);
    }
  } finally {
    mc.thaw();
  }
  const outcomes = await Promise.all(sent);
  const first = outcomes[0]!;
  t.diagnostic(
    `first write answered ${grpc.status[first.code]} after ${Math.round(first.ms)} ms; stall ${4 * timeoutMs} ms`,
  );
  assert.equal(first.code, grpc.status.UNAVAILABLE, first.details);
  assert.match(first.details, /may or may not have been applied/);
  assert.ok(
    first.ms < 3 * timeoutMs,
    `the first write waited ${Math.round(first.ms)} ms with a ${timeoutMs} ms timeout`,
  );
  await sleep(200);
  const after = await memcachedStats(mc.port);
  assert.ok(
    after.cmd_set! - before.cmd_set! <= sent.length,
    `cmd_set +${after.cmd_set! - before.cmd_set!} for ${sent.length} sets`,
  );
});

test('a write to a server that refuses connections is UNAVAILABLE saying it was not sent', { skip }, async () => {
  await using mc = await startMemcached();
  await using s = await startServer({ memcached: mc.address, store: 'memcached', memcachedTimeoutMs: TIMEOUT_MS });
  const call = (method: string, request: object) =>
    unaryOutcome(s.cache, method, { store: 'memcached', key: 'refused', ...request }, 15_000);
  assert.equal((await call('Set', { value: Buffer.from('1') })).code, grpc.status.OK);
  await mc.kill();
  // A read first: it may meet the connection memcached's exit closed (a read is resent).
  assert.equal((await call('Get', {})).code, grpc.status.UNAVAILABLE);
  for (const [method, request] of [
    ['Set', { value: Buffer.from('2') }],
    ['Delete', {}],
    ['Incr', { delta: '1', initial: '1' }],
  ] as const) {
    const o = await call(method, request);
    assert.equal(o.code, grpc.status.UNAVAILABLE, `${method}: ${o.details}`);
    assert.match(o.details, /ECONNREFUSED.*the (set|delete|incr) of key "refused" was not sent/, o.details);
  }
});
