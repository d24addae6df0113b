// What a client other than latchkey finds in memcached, read over memcached's text protocol
// on a raw TCP socket: the README's "Flags convention (memcached interop)" section, checked
// byte for byte against the layout it documents.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { memcachedMissing, startMemcached } from '../support/memcached.js';
import { textRequest } from '../support/memcached-text.js';
import { pylibmc, pylibmcMissing } from '../support/pylibmc.js';
import { README } from '../support/readme.js';
import { startServer } from '../support/server.js';

const skip = memcachedMissing();
/** The documented flags: "LKF1" as a big-endian 32-bit number. */
const FENCED_FLAGS = 1280001585;

/** `get key` over the text protocol: the flags and the value bytes, or undefined for a miss. */
async function rawGet(port: number, key: string): Promise<{ flags: number; value: Buffer } | undefined> {
  const reply = await textRequest(port, `get ${key}\r\n`, /(^|\r\n)END\r\n$/);
  const eol = reply.indexOf('\r\n');
  const line = reply.toString('latin1', 0, eol);
  if (line === 'END') return undefined;
  const match = /^VALUE (\S+) (\d+) (\d+)$/.exec(line);
  assert.ok(match, `unexpected reply ${JSON.stringify(reply.toString('latin1'))}`);
  assert.equal(match[1], key);
  return { flags: Number(match[2]), value: reply.subarray(eol + 2, eol + 2 + Number(match[3])) };
}

/** The envelope as the README's table lays it out. */
function envelope(kind: number, token: bigint, backend: string, lock: string, value: Buffer): Buffer {
  const header = Buffer.alloc(16 + backend.length + lock.length);
  header.write('LKF1', 0, 'latin1');
  header.writeUInt8(kind, 4);
  header.writeBigUInt64BE(token, 5);
  header.writeUInt8(backend.length, 13);
  header.write(backend, 14, 'utf8');
  header.writeUInt16BE(lock.length, 14 + backend.length);
  header.write(lock, 16 + backend.length, 'utf8');
  return Buffer.concat([header, value]);
}

test('the README documents the fenced envelope that this test reads', () => {
  const readme = readFileSync(README, 'utf8');
  for (const text of [
    '`0x4C4B4631` (`1280001585`',
    '| 4 | 1 | kind: `0` = value, `1` = tombstone, `2` = claim, `3` = lease |',
    '| 5 | 8 | fencing token, unsigned big-endian (a lease: when it runs out, ms since the epoch) |',
    '| 14+B | 2 | lock name length L, big-endian |',
    "| 16+B+L | rest | the value's bytes (kind `0` only) |",
    'under `latchkey:tombstone:` followed by the SHA-256 of the key',
  ])
    assert.ok(readme.includes(text), `README.md lacks ${text}`);
  assert.equal(Buffer.from('LKF1').readUInt32BE(), FENCED_FLAGS);
});

test('over the text protocol: plain values as they are, fenced values in the documented envelope, a fenced delete as no key and a tombstone of kind 1 under its own key', {
  skip,
  timeout: 60_000,
}, async () => {
  await using mc = await startMemcached();
  await using s = await startServer({ memcached: mc.address, store: 'memcached' });
  const run = `${process.pid}-${Date.now()}`;
  const lease = await s.call<{ fencing_token: string; backend: string }>(s.locks, 'Acquire', {
    name: `interop-${run}`,
    ttl_ms: 30_000,
  });
  const token = BigInt(lease.fencing_token);
  const fence = { lock: `interop-${run}`, token: lease.fencing_token };

  const plain = Buffer.from([0, 1, 13, 10, 255, 0x4c]);
  await s.call(s.cache, 'Set', { store: 'memcached', key: `plain:${run}`, value: plain });
  assert.deepEqual(await rawGet(mc.port, `plain:${run}`), { flags: 0, value: plain });

  const value = Buffer.from('fenced \u00e9 value\r\nwith a CRLF');
  await s.call(s.cache, 'Set', { store: 'memcached', key: `fenced:${run}`, value, fence });
  const fenced = await rawGet(mc.port, `fenced:${run}`);
  assert.equal(fenced?.flags, FENCED_FLAGS);
  assert.deepEqual(fenced.value, envelope(0, token, lease.backend, fence.lock, value));
  const lockLength = fenced.value.readUInt16BE(14 + fenced.value.readUInt8(13));
  assert.deepEqual(fenced.value.subarray(16 + lease.backend.length + lockLength), value, 'the value after 16+B+L');

  await s.call(s.cache, 'Delete', { store: 'memcached', key: `fenced:${run}`, fence });
  const got = await s.call<{ found: boolean }>(s.cache, 'Get', { store: 'memcached', key: `fenced:${run}` });
  assert.equal(got.found, false, 'latchkey reads the deleted key as a miss');
  assert.equal(await rawGet(mc.port, `fenced:${run}`), undefined, 'and other clients find no item in it');
  const name = `latchkey:tombstone:${createHash('sha256').update(`fenced:${run}`, 'utf8').digest('hex')}`;
  const tombstone = await rawGet(mc.port, name);
  assert.equal(tombstone?.flags, FENCED_FLAGS, 'the tombstone is an item of its own, with the flags');
  assert.deepEqual(tombstone.value, envelope(1, token, lease.backend, fence.lock, Buffer.alloc(0)), 'of kind 1');
  // memcached's meta get: `t` = the seconds it has left. The retention defaults to
  // --max-ttl-ms, one day.
  const meta = (await textRequest(mc.port, `mg ${name} t\r\n`, /\r\n$/)).toString('latin1');
  const left = Number(/^HD t(\d+)\r\n$/.exec(meta)?.[1]);
  assert.ok(left > 86_390 && left <= 86_400, `the tombstone expires in ${meta.trim()} s, not in one day`);
  const added = await textRequest(mc.port, `add fenced:${run} 0 0 5\r\nplain\r\n`, /\r\n$/);
  assert.equal(added.toString('latin1'), 'STORED\r\n', "another client's add stores");

  // A lease (kind 3): empty backend and lock, the time it runs out as its token.
  const leased = `leased:${run}`;
  const before = Date.now();
  const read = await s.call<{ lease_token: string }>(s.cache, 'Get', {
    store: 'memcached',
    key: leased,
    lease_ms: 5_000,
  });
  assert.notEqual(read.lease_token, '0');
  const item = await rawGet(mc.port, leased);
  assert.equal(item?.flags, FENCED_FLAGS, 'a lease is an item in the key, with the flags');
  const untilMs = Number(item.value.readBigUInt64BE(5));
  assert.ok(untilMs >= before + 5_000 && untilMs <= Date.now() + 5_000, `a lease running out at ${untilMs}`);
  assert.deepEqual(item.value, envelope(3, BigInt(untilMs), '', '', Buffer.alloc(0)), 'of kind 3');
  const overwritten = await textRequest(mc.port, `set ${leased} 0 0 5\r\nplain\r\n`, /\r\n$/);
  assert.equal(overwritten.toString('latin1'), 'STORED\r\n');
  const refused = await s.call<{ outcome: string }>(s.cache, 'Set', {
    store: 'memcached',
    key: leased,
    value: Buffer.from('loaded'),
    lease_token: read.lease_token,
  });
  assert.equal(refused.outcome, 'EXISTS', "another client's set ends the lease");

  // A client that decodes by flags does not pass the envelope through (as documented).
  const fresh = `fenced2:${run}`;
  await s.call(s.cache, 'Set', { store: 'memcached', key: fresh, value, fence });
  if (!pylibmcMissing())
    await assert.rejects(
      pylibmc({ servers: [mc.address], behaviors: { ketama: true }, get: [fresh] }),
      /unknown memcached key flags 17/,
    );
});
