// grpc.health.v1.Health as load balancers and grpc-health-probe use it: Check, List and
// Watch against a real server, including the switch to NOT_SERVING when it shuts down.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';
import { startServer } from '../support/server.js';

const CALL_TIMEOUT_MS = 10_000;

type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

function healthClient(address: string): grpc.Client {
  const definition = protoLoader.loadSync(protoPath, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
}

const deadline = () => ({ deadline: Date.now() + CALL_TIMEOUT_MS });

/** Statuses a Watch stream delivers, one promise per message, in order. */
function watch(client: grpc.Client, service: string) {
  const call = (
    client as unknown as {
      Watch(req: object, options: grpc.CallOptions): grpc.ClientReadableStream<{ status: ServingStatus }>;
    }
  ).Watch({ service }, deadline());
  const queue: ServingStatus[] = [];
  const waiting: ((status: ServingStatus) => void)[] = [];
  let failure: Error | undefined;
  const failed: ((err: Error) => void)[] = [];
  call.on('data', (message: { status: ServingStatus }) => {
    const next = waiting.shift();
    if (next) next(message.status);
    else queue.push(message.status);
  });
  call.on('error', (err: Error) => {
    failure = err;
    for (const reject of failed.splice(0)) reject(err);
  });
  return {
    call,
    next(): Promise<ServingStatus> {
      const queued = queue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        waiting.push(resolve);
        failed.push(reject);
      });
    },
  };
}

describe('grpc.health.v1.Health', () => {
  test('Check answers SERVING for the server as a whole and for each latchkey service', async () => {
    await using s = await startServer();
    const health = healthClient(s.address);
    try {
      for (const service of ['', 'latchkey.v1.Locks', 'latchkey.v1.Cache', 'latchkey.v1.Elections']) {
        const reply = await s.call<{ status: ServingStatus }>(health, 'Check', { service }, deadline());
        assert.equal(reply.status, 'SERVING', `Check("${service}")`);
      }
    } finally {
      health.close();
    }
  });

  test('Check answers NOT_FOUND for a service the server does not have', async () => {
    await using s = await startServer();
    const health = healthClient(s.address);
    try {
      for (const service of ['latchkey.v1.Nope', 'latchkey.v1.locks', 'Locks', ' ']) {
        await assert.rejects(s.call(health, 'Check', { service }, deadline()), (err: grpc.ServiceError) => {
          assert.equal(err.code, grpc.status.NOT_FOUND, `Check("${service}"): ${err.message}`);
          return true;
        });
      }
    } finally {
      health.close();
    }
  });

  test('List names exactly the server and its three services, all SERVING', async () => {
    await using s = await startServer();
    const health = healthClient(s.address);
    try {
      const reply = await s.call<{ statuses: Record<string, { status: ServingStatus }> }>(
        health,
        'List',
        {},
        deadline(),
      );
      const statuses = Object.fromEntries(Object.entries(reply.statuses).map(([name, v]) => [name, v.status]));
      assert.deepEqual(statuses, {
        '': 'SERVING',
        'latchkey.v1.Locks': 'SERVING',
        'latchkey.v1.Cache': 'SERVING',
        'latchkey.v1.Elections': 'SERVING',
      });
    } finally {
      health.close();
    }
  });

  test('Watch reports SERVICE_UNKNOWN for an unknown service without ending the stream', async () => {
    await using s = await startServer();
    const health = healthClient(s.address);
    try {
      const w = watch(health, 'latchkey.v1.Nope');
      assert.equal(await w.next(), 'SERVICE_UNKNOWN');
      w.call.cancel();
    } finally {
      health.close();
    }
  });

  test('Watch sees NOT_SERVING for every service as soon as shutdown starts', async () => {
    await using s = await startServer();
    const health = healthClient(s.address);
    try {
      const watches = ['', 'latchkey.v1.Locks', 'latchkey.v1.Cache', 'latchkey.v1.Elections'].map((service) => ({
        service,
        w: watch(health, service),
      }));
      for (const { service, w } of watches)
        assert.equal(await w.next(), 'SERVING', `Watch("${service}") before shutdown`);
      // The open Watch streams keep the server draining for up to the grace period; it
      // must say NOT_SERVING during the drain, so balancers stop sending new calls.
      const shutdown = s.server.shutdown(CALL_TIMEOUT_MS);
      for (const { service, w } of watches)
        assert.equal(await w.next(), 'NOT_SERVING', `Watch("${service}") during shutdown`);
      for (const { w } of watches) w.call.cancel();
      await shutdown;
    } finally {
      health.close();
    }
  });
});
