// `latchkey serve`: flags and env → Config → createServer → listen, until SIGINT/SIGTERM.
import * as grpc from '@grpc/grpc-js';
import { setFlagsFromString } from 'node:v8';
import { configHelp, ConfigError, parseConfig, type Config } from '../config.js';
import { createLogger, type Logger } from '../log.js';
import { createServer, type LatchkeyServer } from '../server.js';
import { startTracing, type Tracing } from '../tracing-start.js';

export const SERVE_HELP = `usage: latchkey serve [options]

Runs the latchkey gRPC server: services latchkey.v1.Locks and latchkey.v1.Cache, plus
grpc.health.v1.Health and server reflection (for grpcurl). Every option can also be set by
its environment variable; an option given on the command line wins.

Lock backends (a request picks one by name; --backend is the default):
  memory      always on; locks live in this process
  file        with --lock-dir DIR: lock files on this host, shared by every server using DIR
  etcd        with --etcd-endpoints HOST:PORT[,...]: locks in an etcd cluster, across hosts
Cache stores (a request picks one by name; --store is the default):
  lru         always on; an in-process LRU cache
  memcached   with --memcached HOST:PORT[,...]: memcached servers

Logs are JSON, one line per event on stderr (--log-level; debug adds a line per lock grant
and lease expiry). With --metrics-listen HOST:PORT, Prometheus metrics are served on
http://HOST:PORT/metrics. The address goes to stdout ("latchkey listening on HOST:PORT").

Traces (OpenTelemetry) are off unless the standard variables ask for them: any of
OTEL_TRACES_EXPORTER (otlp, console), OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_PROTOCOL
(http/protobuf, http/json, grpc) turns them on; OTEL_SERVICE_NAME names the service (default
latchkey). A span per RPC, per pipeline operation, per lock and cache operation, and per etcd
and memcached request; a caller's traceparent metadata continues its trace.

options:
${configHelp()}

examples:
  latchkey serve --listen 127.0.0.1:50051 --lru-max-entries 100000
  latchkey serve --lock-dir /var/lib/latchkey/locks --backend file
  LATCHKEY_ETCD_ENDPOINTS=10.0.0.1:2379,10.0.0.2:2379 latchkey serve --backend etcd
  latchkey serve --metrics-listen 127.0.0.1:9464 --log-level debug

exit codes:
  0   stopped by SIGINT or SIGTERM after a graceful shutdown
  1   could not start (e.g. a backend could not be set up); one line on stderr says why
  2   bad option or environment variable, or the address cannot be bound`;

/**
 * A server that could not start may already own sockets and timers (an etcd client, a
 * memcached pool) that would keep the process alive, so a failed start exits at once, after
 * one line on stderr (synchronous for pipes, files and terminals on Linux).
 */
function failStart(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(
    `latchkey: ${err instanceof ConfigError ? '' : 'cannot start: '}${message.replace(/\s*\n\s*/g, ' ')}\n`,
  );
  process.exit(err instanceof ConfigError ? 2 : 1);
}

export async function serve(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return 0;
  }
  // NOTE: V8's allocation-site pretenuring guesses wrong for this server. A bulk load (SetMany
  // of a million entries) keeps request objects alive long enough that V8 marks the sites
  // that decode and answer every request as making long-lived objects, and from then on
  // allocates them in old space. Each request then costs more: scavenges promote ~7 KB per
  // request and take 4x longer, a mark-compact runs every ~0.6 s, and old-space pages are
  // mapped and faulted in anew. Nothing per request lives long here (the LRU keeps its
  // entries in typed arrays, outside the JS heap), so the guess is never right. With it off,
  // a random Get on 1 M entries costs what it costs on 1 k (the bench's lru.get.1m at c=1:
  // server CPU per op 0.81x that of lru.get.1k before, 0.97x after). Set here, as this
  // command owns the process; createServer leaves V8 alone.
  setFlagsFromString('--no-allocation-site-pretenuring');
  let config: Config;
  let server: LatchkeyServer;
  let address: string;
  let log: Logger | undefined;
  let tracing: Tracing | undefined;
  // grpc-js logs its own line for a failed bind before we report it, once, ourselves;
  // anything else it has to say is logged marked as coming from grpc.
  grpc.setLogger({
    error: (...args: unknown[]) => {
      const line = args.join(' ');
      if (/No address added out of total/.test(line)) return;
      if (log === undefined) process.stderr.write(`latchkey: grpc: ${line}\n`);
      else log.error({ event: 'grpc' }, `grpc: ${line}`);
    },
  });
  try {
    config = parseConfig(argv, process.env);
    log = createLogger(config.logLevel);
    tracing = await startTracing(process.env, log);
    server = createServer(config, { logger: log });
    address = await server.listen();
  } catch (err) {
    // Plain text, not JSON: the one line a person starting the server reads (it may be
    // --log-level itself that is wrong).
    failStart(err);
  }
  const logger = log;
  console.log(`latchkey listening on ${address} (locks: ${config.backend}, cache: ${config.store})`);
  if (server.metricsAddress !== undefined) console.log(`latchkey metrics on http://${server.metricsAddress}/metrics`);
  logger.info(
    {
      event: 'listening',
      address,
      metrics: server.metricsAddress ?? null,
      backend: config.backend,
      store: config.store,
      tls: config.tlsCert !== '',
      auth: config.authTokensFile !== '',
      tracing: tracing !== undefined,
    },
    `latchkey listening on ${address}`,
  );
  // SIGHUP re-reads --auth-tokens-file (a bad file keeps the old tokens, and says so).
  process.on('SIGHUP', () => server.reloadAuth());
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      logger.info(
        { event: 'shutdown', signal, graceMs: config.shutdownGraceMs },
        `${signal}: shutting down (grace ${config.shutdownGraceMs} ms)`,
      );
      server
        .shutdown()
        .then(() => tracing?.shutdown())
        .then(() => {
          logger.info({ event: 'stopped' }, 'latchkey stopped');
          resolve(0);
        });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
