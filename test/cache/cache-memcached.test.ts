import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { expiration } from '../../src/cache/memcached.js';
import { cacheStoreContract } from '../cache/contract.js';
import { memcachedMissing, startMemcached, type Memcached } from '../support/memcached.js';
import { pymemcache, pymemcacheMissing } from '../support/pymemcache.js';
import { startServer } from '../support/server.js';

const skip = memcachedMissing();
// One memcached for the contract and the single-server tests; started before any suite.
const memcached: Memcached | undefined = skip ? undefined : await startMemcached();
after(() => memcached?.[Symbol.asyncDispose]());

/** One request over memcached's text protocol; resolves with the reply up to `until`. */
function textProtocol(port: number, request: Buffer | string, until: RegExp): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = Buffer.alloc(0);
    const timer = setTimeout(() => (socket.destroy(), reject(new Error(`no reply to ${request}`))), 5_000);
    socket.on('data', (chunk) => {
      reply = Buffer.concat([reply, chunk]);
      if (until.test(reply.toString('latin1'))) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.on('error', reject);
    socket.write(request);
  });
}

if (!skip) {
  cacheStoreContract({
    store: 'memcached',
    shortTtlMs: 2000,
    start: (config) => startServer({ memcached: memcached!.address, ...config }),
  });
  cacheStoreContract({
    store: 'memcached',
    shortTtlMs: 2000,
    start: (config) => startServer({ memcached: memcached!.address, ...config }),
    transport: 'pipeline',
  });
}

describe('memcached store', { skip }, () => {
  test('a value set through latchkey reads back unchanged over the text protocol, and the reverse', async () => {
    await using s = await startServer({ memcached: memcached!.address, store: 'memcached' });
    const value = Buffer.from([0, 1, 2, 13, 10, 255, 128, 32]);
    await s.call(s.cache, 'Set', { key: 'interop:from-latchkey', value });
    const reply = await textProtocol(memcached!.port, 'get interop:from-latchkey\r\n', /END\r\n$/);
    const header = `VALUE interop:from-latchkey 0 ${value.length}\r\n`;
    assert.equal(reply.subarray(0, header.length).toString('latin1'), header, 'flags are 0 and the length is exact');
    assert.ok(reply.subarray(header.length, header.length + value.length).equals(value));

    const text = Buffer.from('set by the text protocol \u00e9');
    await textProtocol(
      memcached!.port,
      Buffer.concat([Buffer.from(`set interop:from-text 42 0 ${text.length}\r\n`), text, Buffer.from('\r\n')]),
      /STORED\r\n/,
    );
    const got = await s.call<{ found: boolean; value: Buffer }>(s.cache, 'Get', { key: 'interop:from-text' });
    assert.equal(got.found, true);
    assert.ok(got.value.equals(text));
  });

  test('after a fenced delete, a plain memcached client (pymemcache) finds the key absent and may add it', {
    skip: pymemcacheMissing(),
  }, async () => {
    await using s = await startServer({ memcached: memcached!.address, store: 'memcached' });
    const fence = (token: string) => ({ lock: 'interop-lock', backend: 'memory', token });
    const key = `interop:tombstone:${process.pid}-${Date.now()}`;
    const other = `${key}:other`;
    for (const k of [key, other]) {
      await s.call(s.cache, 'Set', { key: k, value: Buffer.from('fenced'), fence: fence('5') });
      await s.call(s.cache, 'Delete', { key: k, fence: fence('7') });
    }
    const answers = await pymemcache(memcached!.address, [
      ['get', key],
      ['incr', key, 1],
      ['touch', key, 60],
      ['delete', key],
      ['add', key, 'plain'],
      ['get', key],
      ['add', other, 'plain other'],
    ]);
    assert.deepEqual(answers, [null, null, false, false, true, 'plain', true]);
    const got = await s.call<{ value: Buffer }>(s.cache, 'Get', { key });
    assert.equal(got.value.toString(), 'plain');
    // The plain client's write replaced the key and its fence, as a write without a fence does.
    await s.call(s.cache, 'Set', { key, value: Buffer.from('new lock'), fence: { ...fence('1'), lock: 'another' } });
  });

  test('incr stays exact above 2^32 and reads back as decimal text', async () => {
    await using s = await startServer({ memcached: memcached!.address, store: 'memcached' });
    const start = 2n ** 40n + 3n;
    await s.call(s.cache, 'Set', { key: 'incr:big', value: Buffer.from(start.toString()) });
    const res = await s.call<{ value: string }>(s.cache, 'Incr', { key: 'incr:big', delta: (2n ** 33n).toString() });
    assert.equal(res.value, (start + 2n ** 33n).toString());
    const reply = await textProtocol(memcached!.port, 'get incr:big\r\n', /END\r\n$/);
    assert.match(reply.toString(), new RegExp(`\\r\\n${start + 2n ** 33n}\\r\\n`));
  });

  test('a value over the item limit is INVALID_ARGUMENT before anything is sent', async () => {
    await using s = await startServer({
      memcached: memcached!.address,
      store: 'memcached',
      memcachedMaxItemBytes: 4096,
    });
    const err = (await s
      .call(s.cache, 'Set', { key: 'too-big', value: Buffer.alloc(4096) })
      .catch((e: unknown) => e)) as grpc.ServiceError;
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.match(err.details, /--memcached-max-item-bytes/);
    assert.equal((await s.call<{ found: boolean }>(s.cache, 'Get', { key: 'too-big' })).found, false);
  });

  test('TTL beyond 30 days is sent as an absolute Unix time', () => {
    const now = 1_700_000_000_000;
    assert.equal(expiration(0, now), 0);
    assert.equal(expiration(1, now), 1);
    assert.equal(expiration(1500, now), 2);
    assert.equal(expiration(30 * 86_400_000, now), 30 * 86_400);
    assert.equal(expiration(31 * 86_400_000, now), Math.ceil(now / 1000) + 31 * 86_400);
  });
});

describe('memcached store on several servers', { skip }, () => {
  test('keys spread over the servers; a server that is down is UNAVAILABLE naming it, then recovers', async () => {
    await using a = await startMemcached();
    await using b = await startMemcached();
    await using s = await startServer({
      memcached: `${a.address},${b.address}`,
      store: 'memcached',
      memcachedTimeoutMs: 500,
    });
    const keys = Array.from({ length: 40 }, (_, i) => `spread:${i}`);
    for (const key of keys) await s.call(s.cache, 'Set', { key, value: Buffer.from(key) });
    const onA = await textProtocol(a.port, `get ${keys.join(' ')}\r\n`, /END\r\n$/);
    const onB = await textProtocol(b.port, `get ${keys.join(' ')}\r\n`, /END\r\n$/);
    const count = (reply: Buffer) => (reply.toString().match(/^VALUE /gm) ?? []).length;
    assert.equal(count(onA) + count(onB), keys.length, 'each key lives on exactly one server');
    assert.ok(count(onA) > 0 && count(onB) > 0, `keys did not spread: ${count(onA)} on a, ${count(onB)} on b`);

    const keyOnB = keys.find((key) => onB.toString().includes(`VALUE ${key} `))!;
    const keyOnA = keys.find((key) => onA.toString().includes(`VALUE ${key} `))!;
    await b.kill();
    const err = (await s.call(s.cache, 'Get', { key: keyOnB }).catch((e: unknown) => e)) as grpc.ServiceError;
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.match(err.details, new RegExp(b.address.replaceAll('.', '\\.')));
    const healthy = await s.call<{ found: boolean }>(s.cache, 'Get', { key: keyOnA });
    assert.equal(healthy.found, true, 'keys on the live server are still served');

    await b.restart();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await s.call(s.cache, 'Set', { key: keyOnB, value: Buffer.from('back') });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const back = await s.call<{ value: Buffer }>(s.cache, 'Get', { key: keyOnB });
    assert.equal(back.value.toString(), 'back');
  });
});
