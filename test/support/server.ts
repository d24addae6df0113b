// Starts a real latchkey server in this process on 127.0.0.1:0 and makes raw grpc-js
// clients for it. Tests that need a separate process use spawnServer (cli) instead.
import * as grpc from '@grpc/grpc-js';
import type { LocksClient, CacheClient, ElectionsClient } from '../../client/common/index.js';
import { createServer, type LatchkeyServer, type ServerOptions } from '../../src/server.js';
import type { Config } from '../../src/config.js';
import { loadProto } from '../../src/proto.js';

export interface TestServer extends AsyncDisposable {
  readonly server: LatchkeyServer;
  readonly address: string;
  /** Raw grpc-js stubs, closed with the server. */
  readonly locks: LocksClient;
  readonly cache: CacheClient;
  readonly elections: ElectionsClient;
  /** A grpc-js unary call as a promise. */
  call<Res>(client: grpc.Client, method: string, request: object, options?: grpc.CallOptions): Promise<Res>;
}

export async function startServer(config: Partial<Config> = {}, options: ServerOptions = {}): Promise<TestServer> {
  const logs: string[] = [];
  const server = createServer({ listen: '127.0.0.1:0', ...config }, { log: (line) => logs.push(line), ...options });
  const address = await server.listen();
  const proto = loadProto();
  const locks = new proto.latchkey.v1.Locks(address, grpc.credentials.createInsecure());
  const cache = new proto.latchkey.v1.Cache(address, grpc.credentials.createInsecure());
  const elections = new proto.latchkey.v1.Elections(address, grpc.credentials.createInsecure());
  return {
    server,
    address,
    locks,
    cache,
    elections,
    call<Res>(client: grpc.Client, method: string, request: object, options: grpc.CallOptions = {}) {
      return new Promise<Res>((resolve, reject) => {
        const fn = (client as unknown as Record<string, Function>)[method];
        if (typeof fn !== 'function') throw new Error(`no method ${method}`);
        fn.call(client, request, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: Res) =>
          err ? reject(err) : resolve(res),
        );
      });
    },
    async [Symbol.asyncDispose]() {
      locks.close();
      cache.close();
      elections.close();
      await server.shutdown(0);
      if (logs.some((l) => l.startsWith('internal error')))
        throw new Error(`server logged internal errors:\n${logs.join('\n')}`);
    },
  };
}
