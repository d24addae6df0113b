// TLS, mutual TLS, bearer tokens with name prefixes, and the server's resource limits.
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ConfigError, resolveConfig } from '../../src/config.js';
import { loadProto } from '../../src/proto.js';
import { PipelineCaller } from '../support/pipeline.js';
import { SessionStream } from '../support/session-stream.js';
import { startServer } from '../support/server.js';
import { makePki, opensslMissing, type Pki } from '../support/tls.js';

const proto = loadProto();

function unary<Res>(
  client: grpc.Client,
  method: string,
  request: object,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!;
    fn.call(
      client,
      request,
      metadata,
      { deadline: Date.now() + 10_000, ...options },
      (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)),
    );
  });
}

async function status(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return promise.then(
    () => assert.fail('expected the call to fail'),
    (err: grpc.ServiceError) => err,
  );
}

const bearer = (token: string) => {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
};

describe('TLS', { skip: opensslMissing() }, () => {
  let pki: Pki;
  before(() => {
    pki = makePki();
  });
  after(() => pki[Symbol.dispose]());

  test('a TLS server serves TLS clients and refuses plaintext', async () => {
    await using s = await startServer({ tlsCert: pki.serverCert, tlsKey: pki.serverKey });
    const tls = new proto.latchkey.v1.Cache(s.address, grpc.credentials.createSsl(pki.read(pki.caCert)));
    const plain = new proto.latchkey.v1.Cache(s.address, grpc.credentials.createInsecure());
    try {
      await unary(tls, 'Set', { key: 'tls', value: Buffer.from('secret') });
      assert.equal((await unary<{ value: Buffer }>(tls, 'Get', { key: 'tls' })).value.toString(), 'secret');
      assert.equal(
        (await status(unary(plain, 'Get', { key: 'tls' }, undefined, { deadline: Date.now() + 3_000 }))).code !==
          grpc.status.OK,
        true,
      );
    } finally {
      tls.close();
      plain.close();
    }
  });

  test('mutual TLS: a client certificate from the configured CA is required', async () => {
    await using s = await startServer({ tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsCa: pki.caCert });
    const ca = pki.read(pki.caCert);
    const good = new proto.latchkey.v1.Locks(
      s.address,
      grpc.credentials.createSsl(ca, pki.read(pki.clientKey), pki.read(pki.clientCert)),
    );
    const none = new proto.latchkey.v1.Locks(s.address, grpc.credentials.createSsl(ca));
    const stranger = new proto.latchkey.v1.Locks(
      s.address,
      grpc.credentials.createSsl(ca, pki.read(pki.strangerKey), pki.read(pki.strangerCert)),
    );
    try {
      assert.equal((await unary<{ held: boolean }>(good, 'Describe', { name: 'mtls' })).held, false);
      assert.equal(
        (await status(unary(none, 'Describe', { name: 'mtls' }, undefined, { deadline: Date.now() + 3_000 }))).code,
        grpc.status.UNAVAILABLE,
      );
      assert.equal(
        (await status(unary(stranger, 'Describe', { name: 'mtls' }, undefined, { deadline: Date.now() + 3_000 }))).code,
        grpc.status.UNAVAILABLE,
      );
    } finally {
      good.close();
      none.close();
      stranger.close();
    }
  });
});

test('plaintext is refused on a non-loopback address unless --insecure says so', () => {
  assert.throws(
    () => resolveConfig({ listen: '0.0.0.0:50051' }),
    (err: Error) => err instanceof ConfigError && /--tls-cert/.test(err.message) && /--insecure/.test(err.message),
  );
  assert.equal(resolveConfig({ listen: '0.0.0.0:50051', insecure: true }).insecure, true);
  assert.doesNotThrow(() => resolveConfig({ listen: '[::1]:50051' }));
  assert.throws(() => resolveConfig({ tlsCert: 'a.pem' }), /--tls-key/);
});

describe('bearer tokens', () => {
  const ADMIN = 'admin-token-0123456789abcdef';
  const BILLING = 'billing-token-0123456789abcdef';
  const NEXT = 'rotated-token-0123456789abcdef';
  let dir: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-auth-'));
    file = join(dir, 'tokens');
    writeFileSync(file, `# test tokens\n${ADMIN}\n${BILLING} billing/ invoices:\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('calls need a valid token; health stays open; tokens never reach the log', async () => {
    const logs: string[] = [];
    await using s = await startServer({ authTokensFile: file }, { log: (line) => logs.push(line) });
    const missing = await status(unary(s.locks, 'Describe', { name: 'x' }));
    assert.equal(missing.code, grpc.status.UNAUTHENTICATED);
    assert.match(missing.details, /authorization: Bearer/);
    assert.equal(
      (await status(unary(s.cache, 'Get', { key: 'x' }, bearer('not-a-real-token-at-all')))).code,
      grpc.status.UNAUTHENTICATED,
    );
    assert.equal((await unary<{ held: boolean }>(s.locks, 'Describe', { name: 'x' }, bearer(ADMIN))).held, false);

    const health = new (grpc.makeGenericClientConstructor({}, 'Health'))(s.address, grpc.credentials.createInsecure());
    try {
      const reply = await new Promise<Buffer>((resolve, reject) =>
        health.makeUnaryRequest(
          '/grpc.health.v1.Health/Check',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          (err, res) => (err ? reject(err) : resolve(res!)),
        ),
      );
      assert.deepEqual([...reply], [0x08, 0x01], 'SERVING without a token');
    } finally {
      health.close();
    }
    for (const token of [ADMIN, BILLING])
      assert.ok(!logs.some((l) => l.includes(token)), 'a token appeared in the log');
  });

  test('a token limited to prefixes is PERMISSION_DENIED elsewhere, on every path', async () => {
    await using s = await startServer({ authTokensFile: file });
    const md = bearer(BILLING);
    const lease = await unary<{ lease_id: string }>(s.locks, 'Acquire', { name: 'billing/run', ttl_ms: 5_000 }, md);
    await unary(s.locks, 'Release', { name: 'billing/run', lease_id: lease.lease_id }, md);
    await unary(s.cache, 'Set', { key: 'invoices:1', value: Buffer.from('x') }, md);
    const denied = await status(unary(s.locks, 'Acquire', { name: 'payroll/run' }, md));
    assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
    assert.match(denied.details, /"billing\/"/);
    assert.doesNotMatch(denied.details, new RegExp(BILLING));
    assert.equal((await status(unary(s.cache, 'Get', { key: 'payroll:1' }, md))).code, grpc.status.PERMISSION_DENIED);
    const many = await unary<{ results: { key: string; error: { code: number } | null }[] }>(
      s.cache,
      'GetMany',
      { keys: ['invoices:1', 'payroll:1'] },
      md,
    );
    assert.deepEqual(
      many.results.map((r) => r.error?.code ?? 0),
      [0, grpc.status.PERMISSION_DENIED],
    );
    const stream = (
      s.cache as unknown as { Pipeline(md: grpc.Metadata): grpc.ClientDuplexStream<object, unknown> }
    ).Pipeline(md);
    const pipeline = new PipelineCaller({ Pipeline: () => stream } as never);
    try {
      await pipeline.call('Get', { key: 'invoices:1' });
      assert.equal(
        ((await pipeline.call('Get', { key: 'payroll:1' }).catch((e: unknown) => e)) as { code: number }).code,
        grpc.status.PERMISSION_DENIED,
      );
    } finally {
      pipeline.close();
    }
  });

  test('a lock session checks each lock name against its token, and only the token that opened it may resume it', async () => {
    await using s = await startServer({ authTokensFile: file });
    const noToken = await status(SessionStream.open(s.locks, { ttl_ms: 10_000 }));
    assert.equal(noToken.code, grpc.status.UNAUTHENTICATED);
    const stream = await SessionStream.open(s.locks, { ttl_ms: 10_000 }, {}, bearer(BILLING));
    const lease = await stream.op<{ name: string }>({ acquire: { name: 'billing/session' } });
    assert.equal(lease.name, 'billing/session');
    const denied = await status(stream.op({ acquire: { name: 'payroll/session' } }));
    assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
    assert.match(denied.details, /"billing\/"/);
    await stream.cancel();
    const other = await status(SessionStream.open(s.locks, { resume_id: stream.opened.session_id }, {}, bearer(ADMIN)));
    assert.equal(other.code, grpc.status.PERMISSION_DENIED);
    assert.match(other.details, /opened with another token/);
    assert.doesNotMatch(other.details, new RegExp(`${BILLING}|${ADMIN}`));
    const same = await SessionStream.open(s.locks, { resume_id: stream.opened.session_id }, {}, bearer(BILLING));
    assert.deepEqual(
      same.opened.leases.map((l) => l.name),
      ['billing/session'],
    );
    assert.equal((await same.close()).code, grpc.status.OK);
  });

  test('reflection follows --reflection: auth, public, off', async () => {
    const reflect = async (address: string, md: grpc.Metadata) => {
      const client = new (grpc.makeGenericClientConstructor({}, 'R'))(address, grpc.credentials.createInsecure());
      try {
        return await new Promise<grpc.StatusObject>((resolve) => {
          const call = client.makeBidiStreamRequest(
            '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
            (b: Buffer) => b,
            (b: Buffer) => b,
            md,
            { deadline: Date.now() + 5_000 },
          );
          call.on('data', () => call.end());
          call.on('error', () => {});
          call.on('status', resolve);
          call.write(Buffer.from([0x3a, 0x01, 0x2a])); // list_services: "*"
        });
      } finally {
        client.close();
      }
    };
    {
      await using s = await startServer({ authTokensFile: file });
      assert.equal((await reflect(s.address, new grpc.Metadata())).code, grpc.status.UNAUTHENTICATED);
      assert.equal((await reflect(s.address, bearer(ADMIN))).code, grpc.status.OK);
    }
    {
      await using s = await startServer({ authTokensFile: file, reflection: 'public' });
      assert.equal((await reflect(s.address, new grpc.Metadata())).code, grpc.status.OK);
    }
    {
      await using s = await startServer({ reflection: 'off' });
      assert.equal((await reflect(s.address, new grpc.Metadata())).code, grpc.status.UNIMPLEMENTED);
    }
  });

  test('reloading the tokens file swaps tokens; a broken file keeps the old ones', async () => {
    const local = join(dir, 'rotating');
    writeFileSync(local, `${ADMIN}\n`);
    const logs: string[] = [];
    await using s = await startServer({ authTokensFile: local }, { log: (l) => logs.push(l) });
    await unary(s.locks, 'Describe', { name: 'r' }, bearer(ADMIN));
    writeFileSync(local, `${NEXT}\n`);
    s.server.reloadAuth();
    assert.equal(
      (await status(unary(s.locks, 'Describe', { name: 'r' }, bearer(ADMIN)))).code,
      grpc.status.UNAUTHENTICATED,
    );
    await unary(s.locks, 'Describe', { name: 'r' }, bearer(NEXT));
    writeFileSync(local, 'short\n');
    s.server.reloadAuth();
    await unary(s.locks, 'Describe', { name: 'r' }, bearer(NEXT));
    assert.ok(logs.some((l) => /kept the previous tokens/.test(l)));
    assert.ok(!logs.some((l) => l.includes(NEXT) || l.includes(ADMIN)));
  });
});

describe('limits', () => {
  test('waiters per lock and in total are capped with RESOURCE_EXHAUSTED naming the limit', async () => {
    await using s = await startServer({ maxWaitersPerLock: 2, maxWaiters: 3 });
    const held = await unary<{ lease_id: string }>(s.locks, 'Acquire', { name: 'busy', ttl_ms: 10_000 });
    const waiters = [0, 1].map(() =>
      unary(s.locks, 'Acquire', { name: 'busy', wait_ms: 10_000, ttl_ms: 100 }).catch((e: unknown) => e),
    );
    const deadline = Date.now() + 5_000;
    while ((await unary<{ waiters: number }>(s.locks, 'Describe', { name: 'busy' })).waiters < 2)
      assert.ok(Date.now() < deadline);
    const third = await status(unary(s.locks, 'Acquire', { name: 'busy', wait_ms: 10_000 }));
    assert.equal(third.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(third.details, /--max-waiters-per-lock/);
    const other = await unary<{ lease_id: string }>(s.locks, 'Acquire', { name: 'busy-2', ttl_ms: 10_000 });
    const fourth = unary(s.locks, 'Acquire', { name: 'busy-2', wait_ms: 10_000, ttl_ms: 100 }).catch((e: unknown) => e);
    while ((await unary<{ waiters: number }>(s.locks, 'Describe', { name: 'busy-2' })).waiters < 1)
      assert.ok(Date.now() < deadline);
    const fifth = await status(unary(s.locks, 'Acquire', { name: 'busy-3', wait_ms: 10_000 }));
    assert.match(fifth.details, /--max-waiters\)/);
    assert.ok(
      (await unary<{ lease_id: string }>(s.locks, 'Acquire', { name: 'busy-3', wait_ms: 0 })).lease_id,
      'try-once is never counted as a waiter',
    );
    await unary(s.locks, 'Release', { name: 'busy', lease_id: held.lease_id });
    await unary(s.locks, 'Release', { name: 'busy-2', lease_id: other.lease_id });
    await Promise.all([...waiters, fourth]);
  });

  test('batches, messages and streams are capped', async () => {
    await using s = await startServer({
      maxBatch: 3,
      maxValueBytes: 1024,
      maxMessageBytes: 65_536 + 1024,
      maxStreams: 1,
    });
    const batch = await status(unary(s.cache, 'GetMany', { keys: ['a', 'b', 'c', 'd'] }));
    assert.equal(batch.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(batch.details, /--max-batch/);
    const big = await status(unary(s.cache, 'Set', { key: 'big', value: Buffer.alloc(100_000) }));
    assert.equal(big.code, grpc.status.RESOURCE_EXHAUSTED);
    const first = new PipelineCaller(s.cache);
    try {
      await first.call('Get', { key: 'a' });
      const second = new PipelineCaller(s.cache);
      const err = (await second.call('Get', { key: 'a' }).catch((e: unknown) => e)) as grpc.ServiceError;
      assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(err.details, /--max-streams/);
    } finally {
      first.close();
    }
  });
});
