// createServer(config): the grpc.Server with the Locks, Cache, Health and Reflection
// services, the lock backends and cache stores the config enables, and graceful shutdown.
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { pipelineHandler } from './cache/pipeline.js';
import { createCacheService } from './cache/service.js';
import { LruStore } from './cache/lru.js';
import { MemcachedStore } from './cache/memcached.js';
import type { CacheStore } from './cache/store.js';
import { systemClock, type Clock } from './clock.js';
import { resolveConfig, ConfigError, type Config } from './config.js';
import type { Logger } from './errors.js';
import type { LockBackend } from './locks/backend.js';
import { FileLockBackend } from './locks/file.js';
import { EtcdLockBackend } from './locks/etcd.js';
import { MemoryLockBackend } from './locks/memory.js';
import { createLockService } from './locks/service.js';
import { loadProto, reflectionDefinition } from './proto.js';
import { InflightCalls, serverStream, unary, type RpcEnv } from './rpc.js';
import { TokenAuth } from './auth.js';
import { readFileSync } from 'node:fs';

export interface ServerOptions {
  /** Where log lines go; default stderr. */
  readonly log?: Logger;
  /** Time source for leases and cache TTLs; default the system clock. */
  readonly clock?: Clock;
  /** Lock backends to serve besides those the config enables (embedding, tests). */
  readonly lockBackends?: readonly LockBackend[];
  /** Cache stores to serve besides those the config enables (embedding, tests). */
  readonly stores?: readonly CacheStore[];
  /** Serve Cache without its Pipeline method (UNIMPLEMENTED), like an older server: for tests of client fallback. */
  readonly disablePipeline?: boolean;
}

export interface LatchkeyServer {
  readonly config: Config;
  /** Binds config.listen and starts serving; resolves with the bound host:port. */
  listen(): Promise<string>;
  /**
   * Stops accepting calls, fails lock waiters with UNAVAILABLE, lets other in-flight calls
   * finish for up to graceMs, then cuts off whatever is left. Idempotent.
   */
  shutdown(graceMs?: number): Promise<void>;
  /** Re-reads --auth-tokens-file (the CLI calls it on SIGHUP); a no-op without one. */
  reloadAuth(): void;
}

const SERVICE_NAMES = ['latchkey.v1.Locks', 'latchkey.v1.Cache'] as const;

function createLockBackends(config: Config, clock: Clock, extra: readonly LockBackend[], log: Logger): Map<string, LockBackend> {
  const backends: LockBackend[] = [new MemoryLockBackend({ clock })];
  if (config.lockDir !== '') backends.push(new FileLockBackend({ dir: config.lockDir, clock, log }));
  if (config.etcdEndpoints !== '') backends.push(new EtcdLockBackend({ endpoints: config.etcdEndpoints, prefix: config.etcdPrefix }));
  backends.push(...extra);
  return new Map(backends.map((b) => [b.kind, b]));
}

function createStores(config: Config, clock: Clock, extra: readonly CacheStore[]): Map<string, CacheStore> {
  const stores: CacheStore[] = [new LruStore({ maxEntries: config.lruMaxEntries, maxBytes: config.lruMaxBytes, clock }), ...extra];
  if (config.memcached !== '') {
    const servers = config.memcached.split(',').map((s) => s.trim());
    stores.push(new MemcachedStore({ servers, maxItemBytes: config.memcachedMaxItemBytes, timeoutMs: config.memcachedTimeoutMs }));
  }
  return new Map(stores.map((s) => [s.kind, s]));
}

/** TLS (mutual when --tls-ca is set) or plaintext, as the config says. */
function credentials(config: Config): grpc.ServerCredentials {
  if (config.tlsCert === '') return grpc.ServerCredentials.createInsecure();
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`${flag} ${path}: ${(err as Error).message}`);
    }
  };
  const ca = config.tlsCa === '' ? null : read('--tls-ca', config.tlsCa);
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: read('--tls-cert', config.tlsCert), private_key: read('--tls-key', config.tlsKey) }], ca !== null);
}

export function createServer(overrides: Partial<Config> = {}, options: ServerOptions = {}): LatchkeyServer {
  const config = resolveConfig(overrides);
  const log = options.log ?? ((line: string) => process.stderr.write(`latchkey: ${line}\n`));
  const clock = options.clock ?? systemClock;
  const backends = createLockBackends(config, clock, options.lockBackends ?? [], log);
  const stores = createStores(config, clock, options.stores ?? []);
  if (!backends.has(config.backend)) throw new ConfigError(`--backend "${config.backend}" is not enabled; enabled: ${[...backends.keys()].join(', ')}`);
  if (!stores.has(config.store)) throw new ConfigError(`--store "${config.store}" is not enabled; enabled: ${[...stores.keys()].join(', ')}`);

  const inflight = new InflightCalls();
  const auth = config.authTokensFile === '' ? undefined : new TokenAuth(config.authTokensFile, log);
  const env: RpcEnv = { inflight, log, auth };
  const locks = createLockService(backends, config);
  const cache = createCacheService(stores, config, log);
  const proto = loadProto();
  const isPublic = (path: string) => path.startsWith('/grpc.health.v1.Health/') || (config.reflection === 'public' && path.startsWith('/grpc.reflection.'));
  const server = new grpc.Server({
    'grpc.max_receive_message_length': config.maxMessageBytes,
    'grpc.max_send_message_length': config.maxMessageBytes,
    interceptors: auth === undefined ? [] : [auth.interceptor(isPublic)],
  });
  const h = <Req, Res>(handler: (req: Req, ctx: import('./rpc.js').CallContext) => Promise<Res>) => unary(handler, env);

  server.addService(proto.latchkey.v1.Locks.service, {
    Acquire: h(locks.acquire),
    Refresh: h(locks.refresh),
    Release: h(locks.release),
    Describe: h(locks.describe),
    Watch: serverStream(locks.watch, env),
  });
  server.addService(proto.latchkey.v1.Cache.service, {
    Get: h(cache.get),
    Set: h(cache.set),
    Cas: h(cache.cas),
    Add: h(cache.add),
    Delete: h(cache.delete),
    Incr: h(cache.incr),
    Touch: h(cache.touch),
    GetMany: h(cache.getMany),
    SetMany: h(cache.setMany),
    ...(options.disablePipeline ? {} : { Pipeline: pipelineHandler(cache, config, env) }),
  });
  const health = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(SERVICE_NAMES.map((s) => [s, 'SERVING'])) });
  health.addToServer(server);
  if (config.reflection !== 'off') new ReflectionService(reflectionDefinition()).addToServer(server);

  let shuttingDown: Promise<void> | undefined;

  return {
    config,
    listen() {
      return new Promise((resolve, reject) => {
        server.bindAsync(config.listen, credentials(config), (err, port) => {
          if (err) return reject(new ConfigError(`cannot listen on ${config.listen}: ${err.message}`));
          const host = config.listen.slice(0, config.listen.lastIndexOf(':'));
          resolve(`${host}:${port}`);
        });
      });
    },

    reloadAuth() {
      auth?.reload();
    },

    shutdown(graceMs = config.shutdownGraceMs) {
      shuttingDown ??= (async () => {
        for (const s of ['', ...SERVICE_NAMES]) health.setStatus(s, 'NOT_SERVING');
        // Waiters cannot "finish" within a grace period: they would wait for a holder that
        // may never release. They get UNAVAILABLE now and can retry on another server.
        await Promise.all([...backends.values()].map((b) => b.close()));
        inflight.drain();
        const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
        // NOTE: tryShutdown waits forever on open calls; the grace timer bounds it.
        await Promise.race([Promise.all([drained, inflight.idle()]), graceOver]);
        clearTimeout(timer);
        inflight.abortAll();
        server.forceShutdown();
        await Promise.all([...stores.values()].map((s) => s.close()));
      })();
      return shuttingDown;
    },
  };
}
