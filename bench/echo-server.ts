// Baseline server: latchkey.v1.Cache's Get, Set, GetMany and Pipeline answered straight from
// an lru-cache by a bare grpc-js server, with the same .proto files and loader options as
// latchkey (client/common/proto.ts). No validation, no stores, no error mapping, no in-flight
// tracking: the transport's ceiling, which latchkey's own numbers are divided by.
//
// Run as a child process (`node --import tsx bench/echo-server.ts [host:port]`) so it gets a
// core of its own, as the latchkey server under test does. Prints "echo listening on
// HOST:PORT" and serves until SIGTERM or SIGINT.
import * as grpc from '@grpc/grpc-js';
import { LRUCache } from 'lru-cache';
import {
  type CacheProto,
  type GetManyRequest__Output,
  type GetManyResponse,
  type GetRequest__Output,
  type GetResponse,
  type PipelineRequest__Output,
  type PipelineResponse,
  type PipelineResult,
  type SetRequest__Output,
  type SetResponse,
  loadPackageDefinition,
} from '../client/common/index.js';

interface Entry {
  readonly value: Buffer;
  readonly cas: string;
}

const lru = new LRUCache<string, Entry>({ max: 1_100_000 });
let lastCas = 0;
const EMPTY = Buffer.alloc(0);

function get(key: string): GetResponse {
  const entry = lru.get(key);
  return entry === undefined
    ? { found: false, value: EMPTY, cas: '0' }
    : { found: true, value: entry.value, cas: entry.cas };
}

function set(key: string, value: Buffer): SetResponse {
  const cas = String(++lastCas);
  lru.set(key, { value: Buffer.from(value), cas });
  return { cas };
}

const proto = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as CacheProto;
const server = new grpc.Server();
server.addService(proto.latchkey.v1.Cache.service, {
  Get: (call: grpc.ServerUnaryCall<GetRequest__Output, GetResponse>, callback: grpc.sendUnaryData<GetResponse>) =>
    callback(null, get(call.request.key)),
  Set: (call: grpc.ServerUnaryCall<SetRequest__Output, SetResponse>, callback: grpc.sendUnaryData<SetResponse>) =>
    callback(null, set(call.request.key, call.request.value)),
  GetMany: (
    call: grpc.ServerUnaryCall<GetManyRequest__Output, GetManyResponse>,
    callback: grpc.sendUnaryData<GetManyResponse>,
  ) => callback(null, { results: call.request.keys.map((key) => ({ key, ...get(key) })) }),
  // One reply frame per request frame, written at once.
  Pipeline: (call: grpc.ServerDuplexStream<PipelineRequest__Output, PipelineResponse>) => {
    call.on('data', (request: PipelineRequest__Output) => {
      const results: PipelineResult[] = [];
      for (const op of request.ops) {
        if (op.op === 'get') results.push({ tag: op.tag, get: get(op.get!.key) });
        else if (op.op === 'set') results.push({ tag: op.tag, set: set(op.set!.key, op.set!.value) });
        else
          results.push({
            tag: op.tag,
            error: { code: grpc.status.UNIMPLEMENTED, message: `echo server: ${op.op} is not implemented`, reason: '' },
          });
      }
      call.write({ results });
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  },
});

server.bindAsync(process.argv[2] ?? '127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`echo server: ${err.message}\n`);
    process.exit(2);
  }
  process.stdout.write(`echo listening on 127.0.0.1:${port}\n`);
});

const stop = () => server.tryShutdown(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
