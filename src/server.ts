// createServer(config): the grpc.Server with the Locks, Elections, Cache, Health and
// Reflection services, the lock backends and cache stores the config enables, and graceful shutdown.
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { createCache, type Cache } from './cache/cache.js';
import { meteredCache } from './cache/metered-cache.js';
import { tracedCache } from './cache/traced-cache.js';
import { pipelineHandler } from './cache/pipeline.js';
import { createCacheService } from './cache/service.js';
import { LruStore } from './cache/lru.js';
import { MemcachedStore } from './cache/memcached.js';
import type { CacheStore } from './cache/store.js';
import { systemClock, type Clock } from './clock.js';
import { resolveConfig, ConfigError, tombstoneRetentionMs, type Config } from './config.js';
import { createLogger, lineLogger, type Logger } from './log.js';
import { Metrics, serveMetrics, type MetricsEndpoint } from './metrics.js';
import type { LockBackend } from './locks/backend.js';
import { FileLockBackend } from './locks/file.js';
import { EtcdLockBackend } from './locks/etcd/lock-backend.js';
import { MemoryLockBackend } from './locks/memory.js';
import { createElectionService } from './locks/election-service.js';
import { expiryListener, meteredBackend, sessionExpiryListener } from './locks/metered-backend.js';
import { createLockService } from './locks/service.js';
import { withSessionCodec } from './locks/session-codec.js';
import { sessionHandler } from './locks/session-service.js';
import { tracedBackend } from './locks/traced-backend.js';
import { loadProto, reflectionDefinition } from './proto.js';
import { InflightCalls, type CallContext, type RpcEnv } from './call-context.js';
import { serverStream, unary } from './rpc.js';
import { TokenAuth } from './auth.js';
import { readFileSync } from 'node:fs';

export interface ServerOptions {
  /**
   * The structured logger (a pino logger is one); default JSON lines on stderr at
   * --log-level, as `latchkey serve` writes them.
   */
  readonly logger?: Logger;
  /**
   * Or a function taking one plain-text line per event at --log-level and above (tests,
   * simple embedding); an internal error reads "internal error: <stack>". Ignored with `logger`.
   */
  readonly log?: (line: string) => void;
  /**
   * Time source for the memory and file backends' leases and the LRU store's TTLs; default
   * the system clock. The etcd backend and memcached keep their own servers' time.
   */
  readonly clock?: Clock;
  /**
   * Lock backends to serve besides those the config enables (embedding, tests), each under
   * its `kind`; one with the kind of a built-in backend replaces it. Metered like the
   * built-in ones; closed at shutdown. Default none.
   */
  readonly lockBackends?: readonly LockBackend[];
  /**
   * Cache stores to serve besides those the config enables (embedding, tests), each under
   * its `kind`; one named lru replaces the built-in LRU store, but --memcached wins over one
   * named memcached. Closed at shutdown. Default none.
   */
  readonly stores?: readonly CacheStore[];
  /**
   * Serve Cache without its Pipeline method (UNIMPLEMENTED), like an older server: for tests of
   * client fallback. Default false.
   */
  readonly disablePipeline?: boolean;
}

export interface LatchkeyServer {
  readonly config: Config;
  /**
   * Binds config.metricsListen (when set), then config.listen, and starts serving; resolves
   * with the bound gRPC host:port.
   */
  listen(): Promise<string>;
  /** host:port serving GET /metrics once listen() has resolved; undefined without --metrics-listen. */
  readonly metricsAddress: string | undefined;
  /** The Prometheus text exposition of this server's metrics (what GET /metrics answers). */
  metrics(): Promise<string>;
  /**
   * Stops accepting calls, fails lock waiters with UNAVAILABLE, lets other in-flight calls
   * finish for up to graceMs, then cuts off whatever is left. Idempotent.
   */
  shutdown(graceMs?: number): Promise<void>;
  /** Re-reads --auth-tokens-file (the CLI calls it on SIGHUP); a no-op without one. */
  reloadAuth(): void;
}

const SERVICE_NAMES = ['latchkey.v1.Locks', 'latchkey.v1.Cache', 'latchkey.v1.Elections'] as const;

/**
 * The lock backends the config enables, plus `extra`, by name; each is metered and traced
 * (see metered-backend.ts, traced-backend.ts), so every way a backend is called is counted
 * and traced in one place.
 */
function createLockBackends(
  config: Config,
  clock: Clock,
  extra: readonly LockBackend[],
  log: Logger,
  metrics: Metrics,
): Map<string, LockBackend> {
  const onExpire = (kind: string) => expiryListener(kind, metrics.lock(kind), log);
  const onSessionExpire = (kind: string) => sessionExpiryListener(kind, metrics.session(kind), log);
  const backends: LockBackend[] = [
    new MemoryLockBackend({ clock, onExpire: onExpire('memory'), onSessionExpire: onSessionExpire('memory') }),
  ];
  if (config.lockDir !== '')
    backends.push(
      new FileLockBackend({
        dir: config.lockDir,
        clock,
        log,
        onExpire: onExpire('file'),
        onSessionExpire: onSessionExpire('file'),
      }),
    );
  if (config.etcdEndpoints !== '')
    backends.push(
      new EtcdLockBackend({
        endpoints: config.etcdEndpoints,
        prefix: config.etcdPrefix,
        electionPrefix: config.etcdElectionPrefix,
        clock,
        onSessionExpire: onSessionExpire('etcd'),
      }),
    );
  backends.push(...extra);
  return new Map(
    backends.map((b) => [
      b.kind,
      tracedBackend(
        meteredBackend(
          b,
          metrics.lock(b.kind),
          log,
          b.capabilities.sessions ? metrics.session(b.kind) : undefined,
          b.capabilities.elections ? metrics.election(b.kind) : undefined,
        ),
      ),
    ]),
  );
}

/** Each store as the service calls it: with fencing and tombstones, metered and traced (see metered-cache.ts, traced-cache.ts). */
function cachesOf(stores: ReadonlyMap<string, CacheStore>, config: Config, metrics: Metrics): Map<string, Cache> {
  const options = { tombstoneRetentionMs: tombstoneRetentionMs(config) };
  return new Map(
    [...stores].map(([kind, store]) => [
      kind,
      tracedCache(meteredCache(createCache(store, options), metrics.cache(kind))),
    ]),
  );
}

function createStores(config: Config, clock: Clock, extra: readonly CacheStore[]): Map<string, CacheStore> {
  const stores: CacheStore[] = [
    new LruStore({ maxEntries: config.lruMaxEntries, maxBytes: config.lruMaxBytes, clock }),
    ...extra,
  ];
  if (config.memcached !== '') {
    const servers = config.memcached.split(',').map((s) => s.trim());
    stores.push(
      new MemcachedStore({ servers, maxItemBytes: config.memcachedMaxItemBytes, timeoutMs: config.memcachedTimeoutMs }),
    );
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
  return grpc.ServerCredentials.createSsl(
    ca,
    [{ cert_chain: read('--tls-cert', config.tlsCert), private_key: read('--tls-key', config.tlsKey) }],
    ca !== null,
  );
}

export function createServer(overrides: Partial<Config> = {}, options: ServerOptions = {}): LatchkeyServer {
  const config = resolveConfig(overrides);
  const log =
    options.logger ?? (options.log ? lineLogger(options.log, config.logLevel) : createLogger(config.logLevel));
  const clock = options.clock ?? systemClock;
  const metrics = new Metrics();
  const backends = createLockBackends(config, clock, options.lockBackends ?? [], log, metrics);
  const stores = createStores(config, clock, options.stores ?? []);
  if (!backends.has(config.backend))
    throw new ConfigError(`--backend "${config.backend}" is not enabled; enabled: ${[...backends.keys()].join(', ')}`);
  if (!stores.has(config.store))
    throw new ConfigError(`--store "${config.store}" is not enabled; enabled: ${[...stores.keys()].join(', ')}`);

  const inflight = new InflightCalls();
  const auth = config.authTokensFile === '' ? undefined : new TokenAuth(config.authTokensFile, log);
  const env: RpcEnv = { inflight, log, auth };
  const locks = createLockService(backends, config);
  const elections = createElectionService(backends, config, log);
  const cache = createCacheService(cachesOf(stores, config, metrics), [...backends.keys()], config, log);
  const proto = loadProto();
  const isPublic = (path: string) =>
    path.startsWith('/grpc.health.v1.Health/') ||
    (config.reflection === 'public' && path.startsWith('/grpc.reflection.'));
  const server = new grpc.Server({
    'grpc.max_receive_message_length': config.maxMessageBytes,
    'grpc.max_send_message_length': config.maxMessageBytes,
    interceptors: auth === undefined ? [] : [auth.interceptor(isPublic)],
  });
  const h =
    (service: string) =>
    <Req, Res>(method: string, handler: (req: Req, ctx: CallContext) => Promise<Res>) =>
      unary(handler, env, metrics.rpc(service, method));
  const lockCall = h('latchkey.v1.Locks');
  const cacheCall = h('latchkey.v1.Cache');
  const electionCall = h('latchkey.v1.Elections');

  server.addService(withSessionCodec(proto.latchkey.v1.Locks.service), {
    Acquire: lockCall('Acquire', locks.acquire),
    Refresh: lockCall('Refresh', locks.refresh),
    Release: lockCall('Release', locks.release),
    Describe: lockCall('Describe', locks.describe),
    Watch: serverStream(locks.watch, env, metrics.rpc('latchkey.v1.Locks', 'Watch')),
    Session: sessionHandler(locks, config, env, metrics.rpc('latchkey.v1.Locks', 'Session')),
  });
  server.addService(proto.latchkey.v1.Elections.service, {
    Campaign: electionCall('Campaign', elections.campaign),
    Proclaim: electionCall('Proclaim', elections.proclaim),
    Resign: electionCall('Resign', elections.resign),
    KeepAlive: electionCall('KeepAlive', elections.keepAlive),
    Leader: electionCall('Leader', elections.leader),
    Observe: serverStream(elections.observe, env, metrics.rpc('latchkey.v1.Elections', 'Observe')),
  });
  server.addService(proto.latchkey.v1.Cache.service, {
    Get: cacheCall('Get', cache.get),
    Set: cacheCall('Set', cache.set),
    Cas: cacheCall('Cas', cache.cas),
    Add: cacheCall('Add', cache.add),
    Delete: cacheCall('Delete', cache.delete),
    Incr: cacheCall('Incr', cache.incr),
    Touch: cacheCall('Touch', cache.touch),
    GetMany: cacheCall('GetMany', cache.getMany),
    SetMany: cacheCall('SetMany', cache.setMany),
    ...(options.disablePipeline
      ? {}
      : { Pipeline: pipelineHandler(cache, config, env, metrics.rpc('latchkey.v1.Cache', 'Pipeline')) }),
  });
  const health = new HealthImplementation({
    '': 'SERVING',
    ...Object.fromEntries(SERVICE_NAMES.map((s) => [s, 'SERVING'])),
  });
  health.addToServer(server);
  if (config.reflection !== 'off') new ReflectionService(reflectionDefinition()).addToServer(server);

  let shuttingDown: Promise<void> | undefined;
  let metricsEndpoint: MetricsEndpoint | undefined;
  // Process metrics only where something scrapes them (see collectProcessMetrics).
  if (config.metricsListen !== '') metrics.collectProcessMetrics();

  return {
    config,
    async listen() {
      if (config.metricsListen !== '' && metricsEndpoint === undefined) {
        metricsEndpoint = await serveMetrics(metrics, config.metricsListen, log).catch((err: Error) => {
          throw new ConfigError(`cannot serve metrics on ${config.metricsListen} (--metrics-listen): ${err.message}`);
        });
      }
      return new Promise<string>((resolve, reject) => {
        server.bindAsync(config.listen, credentials(config), (err, port) => {
          if (err) return reject(new ConfigError(`cannot listen on ${config.listen}: ${err.message}`));
          const host = config.listen.slice(0, config.listen.lastIndexOf(':'));
          resolve(`${host}:${port}`);
        });
      });
    },

    get metricsAddress() {
      return metricsEndpoint?.address;
    },

    metrics() {
      return metrics.text();
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
        await metricsEndpoint?.close();
      })();
      return shuttingDown;
    },
  };
}
