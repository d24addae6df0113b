// The SDK against servers with TLS, mutual TLS and bearer tokens (connect's `tls` and `token`):
// every path a call can take (unary, the cache pipeline, a lock session, a watch stream)
// carries them, and refusals come back as the SDK's typed errors; with lock sessions on (the
// default) and off.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import {
  AbortError,
  connect,
  DeadlineExceededError,
  InvalidArgumentError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  type ConnectOptions,
  type LatchkeyClient,
} from '../../client/index.js';
import { startServer } from '../support/server.js';
import { makePki, opensslMissing, type Pki } from '../support/tls.js';

const serve = (config: Parameters<typeof startServer>[0] = {}) => startServer({ lruMaxEntries: 10_000, ...config });

/** What went over the wire, seen by an outer client interceptor (before the token is added). */
interface Traffic {
  /** Method names of the calls started, in order. */
  readonly calls: string[];
  /** Status codes of the Pipeline streams, in the order they ended. */
  readonly pipelineEnded: grpc.status[];
}

function observe(): { traffic: Traffic; channelOptions: grpc.ChannelOptions } {
  const traffic: Traffic = { calls: [], pipelineEnded: [] };
  const interceptor: grpc.Interceptor = (options, next) => {
    const method = options.method_definition.path.split('/').pop()!;
    traffic.calls.push(method);
    const requester = new grpc.RequesterBuilder()
      .withStart((metadata, _listener, start) =>
        start(
          metadata,
          new grpc.ListenerBuilder()
            .withOnReceiveStatus((status, nextStatus) => {
              if (method === 'Pipeline') traffic.pipelineEnded.push(status.code);
              nextStatus(status);
            })
            .build(),
        ),
      )
      .build();
    return new grpc.InterceptingCall(next(options), requester);
  };
  return { traffic, channelOptions: { interceptors: [interceptor] } };
}

/** The first event of a watch (its STATE), or what the watch failed with. */
async function firstEvent(client: LatchkeyClient, name: string): Promise<string> {
  for await (const ev of client.watch(name)) return ev.type;
  return 'ended';
}

for (const sessions of [true, false]) {
  const mode = sessions ? 'sessions' : 'unary';
  const connectTo = (address: string, options: ConnectOptions = {}) => connect(address, { sessions, ...options });

  describe(`SDK over TLS (${mode})`, { skip: opensslMissing() }, () => {
    let pki: Pki;
    before(() => {
      pki = makePki();
    });
    after(() => pki[Symbol.dispose]());

    const failFast: ConnectOptions = { retry: false, deadlineMs: 5_000 };

    it('with the CA: locks, the cache pipeline and watch work; plaintext, unknown CAs and a wrong server name are UnavailableError', async () => {
      await using s = await serve({ tlsCert: pki.serverCert, tlsKey: pki.serverKey });
      const ca = pki.read(pki.caCert);
      const { traffic, channelOptions } = observe();
      await using client = connectTo(s.address, { tls: { ca: ca.toString('utf8') }, channelOptions });
      await using lock = await client.lock('tls/lock', { ttlMs: 5_000 });
      await client.cache().set('tls/key', 'secret', { fence: lock });
      assert.equal((await client.cache().get('tls/key'))?.value.toString(), 'secret');
      assert.ok(
        traffic.calls.includes('Pipeline') && !traffic.calls.includes('Get'),
        `cache calls went ${traffic.calls.join(',')}`,
      );
      assert.equal(await firstEvent(client, 'tls/lock'), 'STATE');

      // The certificate names 127.0.0.1 and localhost; serverName checks it against another.
      await using named = connectTo(s.address, { tls: { ca, serverName: 'localhost' } });
      assert.equal((await named.describe('tls/lock')).held, true);
      await using wrongName = connectTo(s.address, { ...failFast, tls: { ca, serverName: 'wrong.example' } });
      await assert.rejects(wrongName.describe('tls/lock'), UnavailableError);
      await using plaintext = connectTo(s.address, failFast);
      await assert.rejects(plaintext.describe('tls/lock'), UnavailableError);
      await using systemRoots = connectTo(s.address, { ...failFast, tls: {} });
      await assert.rejects(systemRoots.describe('tls/lock'), UnavailableError);
    });

    it('mutual TLS: a client certificate from the CA is let in; none, or a stranger one, is UnavailableError', async () => {
      await using s = await serve({ tlsCert: pki.serverCert, tlsKey: pki.serverKey, tlsCa: pki.caCert });
      const ca = pki.read(pki.caCert);
      await using good = connectTo(s.address, {
        tls: { ca, cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) },
      });
      await using lock = await good.lock('mtls', { ttlMs: 5_000 });
      assert.equal(
        await good
          .cache()
          .add('mtls/key', 'x')
          .then((r) => r.outcome),
        'STORED',
      );
      assert.equal(await firstEvent(good, 'mtls'), 'STATE');
      await using none = connectTo(s.address, { ...failFast, tls: { ca } });
      await assert.rejects(none.describe('mtls'), UnavailableError);
      await assert.rejects(none.cache().get('mtls/key'), UnavailableError);
      await using stranger = connectTo(s.address, {
        ...failFast,
        tls: { ca, cert: pki.read(pki.strangerCert), key: pki.read(pki.strangerKey) },
      });
      await assert.rejects(stranger.describe('mtls'), UnavailableError);
      assert.equal(lock.state, 'held');
    });

    it('bad tls options are InvalidArgumentError at connect()', () => {
      const ca = pki.read(pki.caCert);
      assert.throws(
        () => connect('127.0.0.1:1', { tls: { ca, cert: pki.read(pki.clientCert) } }),
        (err: Error) => err instanceof InvalidArgumentError && /tls\.key/.test(err.message),
      );
      assert.throws(
        () => connect('127.0.0.1:1', { tls: { ca: pki.caCert } }),
        (err: Error) => err instanceof InvalidArgumentError && /not a file name/.test(err.message),
      );
      assert.throws(
        () => connect('127.0.0.1:1', { tls: { ca }, credentials: grpc.credentials.createInsecure() }),
        InvalidArgumentError,
      );
    });
  });

  describe(`SDK bearer tokens (${mode})`, () => {
    const ADMIN = 'admin-token-0123456789abcdef';
    const BILLING = 'billing-token-0123456789abcdef';
    let dir: string;
    let tokens: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'latchkey-sdk-auth-'));
      tokens = join(dir, 'tokens');
      writeFileSync(tokens, `${ADMIN}\n${BILLING} billing/ invoices:\n`);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('no token: UnauthenticatedError on every path; the refused pipeline gives its calls back as unary calls', async () => {
      await using s = await serve({ authTokensFile: tokens });
      const { traffic, channelOptions } = observe();
      await using client = connectTo(s.address, { channelOptions });
      await assert.rejects(client.lock('x'), UnauthenticatedError);
      await assert.rejects(
        client.describe('x'),
        (err: Error) => err instanceof UnauthenticatedError && /authorization: Bearer/.test(err.message),
      );
      await assert.rejects(firstEvent(client, 'x'), UnauthenticatedError);

      const cache = client.cache();
      const results = await Promise.allSettled([cache.get('a'), cache.set('b', 'v'), cache.incr('c', 1)]);
      for (const r of results)
        assert.ok(
          r.status === 'rejected' && r.reason instanceof UnauthenticatedError,
          String(r.status === 'rejected' ? r.reason : r.value),
        );
      assert.deepEqual(traffic.pipelineEnded, [grpc.status.UNAUTHENTICATED]);
      // Each call ran once more as a unary call (which the server refused too), not lost.
      const after = traffic.calls.slice(traffic.calls.indexOf('Pipeline') + 1).sort();
      assert.deepEqual(after, ['Get', 'Incr', 'Set']);
      // The stream stays down a while after a refusal: the next call goes unary at once.
      await assert.rejects(cache.get('a'), UnauthenticatedError);
      assert.equal(traffic.calls.filter((m) => m === 'Pipeline').length, 1);

      await using wrong = connectTo(s.address, { token: 'not-a-token-this-server-knows' });
      await assert.rejects(
        wrong.describe('x'),
        (err: Error) => err instanceof UnauthenticatedError && /not valid/.test(err.message),
      );
    });

    it('a token (a string, or a function, sync or async) goes on unary calls, the pipeline stream and watch', async () => {
      await using s = await serve({ authTokensFile: tokens });
      let asked = 0;
      let callsWithProviders = 0;
      const sources: ConnectOptions['token'][] = [
        // A token file's trailing newline is trimmed.
        `${ADMIN}\n`,
        () => (asked++, ADMIN),
        async () => {
          asked++;
          await new Promise((resolve) => setTimeout(resolve, 5));
          return ADMIN;
        },
      ];
      for (const token of sources) {
        const { traffic, channelOptions } = observe();
        await using client = connectTo(s.address, { token, channelOptions });
        await using lock = await client.lock('t/lock', { ttlMs: 5_000 });
        assert.equal((await client.describe('t/lock')).fencingToken, lock.fencingToken);
        const cache = client.cache();
        await Promise.all([cache.set('t/a', '1', { fence: lock }), cache.set('t/b', '2')]);
        assert.deepEqual(
          (await Promise.all([cache.get('t/a'), cache.get('t/b')])).map((i) => i?.value.toString()),
          ['1', '2'],
        );
        assert.ok(
          traffic.calls.includes('Pipeline') && !traffic.calls.includes('Get') && !traffic.calls.includes('Set'),
          traffic.calls.join(','),
        );
        assert.equal(await firstEvent(client, 't/lock'), 'STATE');
        if (sessions)
          assert.ok(traffic.calls.includes('Session') && !traffic.calls.includes('Acquire'), traffic.calls.join(','));
        else assert.ok(!traffic.calls.includes('Session'), traffic.calls.join(','));
        await lock.release();
        if (typeof token === 'function') callsWithProviders += traffic.calls.length;
      }
      // One token per call or stream started: a function is asked every time.
      assert.equal(asked, callsWithProviders);
      assert.ok(asked >= 2 * 3, `the token functions were called ${asked} times`);
    });

    it('a token limited to prefixes: PermissionDeniedError from unary calls, from watch, and per operation on the pipeline', async () => {
      await using s = await serve({ authTokensFile: tokens });
      for (const pipeline of [true, false]) {
        const { traffic, channelOptions } = observe();
        await using client = connectTo(s.address, { token: BILLING, pipeline, channelOptions });
        await using allowed = await client.lock('billing/run', { ttlMs: 5_000 });
        await assert.rejects(
          client.lock('payroll/run'),
          (err: Error) =>
            err instanceof PermissionDeniedError && /"billing\/"/.test(err.message) && !err.message.includes(BILLING),
        );
        await assert.rejects(client.describe('payroll/run'), PermissionDeniedError);
        await assert.rejects(firstEvent(client, 'payroll/run'), PermissionDeniedError);
        assert.equal(await firstEvent(client, 'billing/run'), 'STATE');

        // One frame: the allowed operations succeed, the others fail alone.
        const cache = client.cache();
        const [ok, denied, deniedSet, okSet] = await Promise.allSettled([
          cache.get('invoices:1'),
          cache.get('payroll:1'),
          cache.set('payroll:2', 'x'),
          cache.set('invoices:2', 'y'),
        ]);
        assert.equal(ok.status, 'fulfilled');
        assert.equal(okSet.status, 'fulfilled');
        for (const r of [denied, deniedSet])
          assert.ok(
            r.status === 'rejected' && r.reason instanceof PermissionDeniedError,
            String(r.status === 'rejected' ? r.reason : 'fulfilled'),
          );
        if (pipeline) {
          assert.ok(
            !traffic.calls.includes('Get') && !traffic.calls.includes('Set'),
            `went unary: ${traffic.calls.join(',')}`,
          );
          assert.deepEqual(traffic.pipelineEnded, [], 'a denied operation must not end the stream');
        } else {
          assert.ok(!traffic.calls.includes('Pipeline'));
        }
        assert.equal(allowed.state, 'held');
      }
    });

    it('a token function that fails, returns junk, outlasts the deadline or is aborted: the call fails and is never sent', async () => {
      await using s = await serve({ authTokensFile: tokens });
      // The messages below are the client's own: had a call reached the server without a
      // token, it would have said "send authorization: Bearer <token>".
      const failing = connectTo(s.address, {
        token: () => {
          throw new Error('vault is sealed');
        },
      });
      await using _failing = failing;
      await assert.rejects(
        failing.describe('x'),
        (err: Error) =>
          err instanceof UnauthenticatedError && /token provider failed: vault is sealed/.test(err.message),
      );
      await assert.rejects(failing.cache().get('x'), UnauthenticatedError);
      await assert.rejects(firstEvent(failing, 'x'), UnauthenticatedError);

      await using rejecting = connectTo(s.address, {
        token: async () => Promise.reject(new Error('expired refresh token')),
      });
      await assert.rejects(rejecting.lock('x'), /expired refresh token/);
      await using junk = connectTo(s.address, { token: async () => 'two words' });
      await assert.rejects(
        junk.describe('x'),
        (err: Error) => err instanceof UnauthenticatedError && /visible ASCII/.test(err.message),
      );
      assert.throws(() => connectTo(s.address, { token: '' }), InvalidArgumentError);
      assert.throws(() => connectTo(s.address, { token: 'has space-0123456789abcdef' }), InvalidArgumentError);

      const never = () => new Promise<string>(() => {});
      await using slow = connectTo(s.address, { token: never, retry: false });
      const started = Date.now();
      await assert.rejects(slow.describe('x', { deadlineMs: 200 }), DeadlineExceededError);
      assert.ok(Date.now() - started < 2_000);
      const stop = new AbortController();
      const aborted = slow.describe('x', { signal: stop.signal });
      setTimeout(() => stop.abort(), 20);
      await assert.rejects(aborted, AbortError);
      const watchStop = new AbortController();
      const watching = (async () => {
        for await (const _ of slow.watch('x', { signal: watchStop.signal })) assert.fail('no event expected');
      })();
      setTimeout(() => watchStop.abort(), 20);
      await watching;
    });

    it('mutual TLS and a token together', { skip: opensslMissing() }, async () => {
      using pki = makePki();
      await using s = await serve({
        authTokensFile: tokens,
        tlsCert: pki.serverCert,
        tlsKey: pki.serverKey,
        tlsCa: pki.caCert,
      });
      const tls = { ca: pki.read(pki.caCert), cert: pki.read(pki.clientCert), key: pki.read(pki.clientKey) };
      await using client = connectTo(s.address, { tls, token: async () => BILLING });
      await using lock = await client.lock('billing/tls', { ttlMs: 5_000 });
      await client.cache().set('invoices:tls', 'x', { fence: lock });
      await assert.rejects(client.cache().get('payroll:tls'), PermissionDeniedError);
      await using anonymous = connectTo(s.address, { tls });
      await assert.rejects(anonymous.cache().get('invoices:tls'), UnauthenticatedError);
    });
  });
}
