// `latchkey serve`: flags and env → Config → createServer → listen, until SIGINT/SIGTERM.
import * as grpc from '@grpc/grpc-js';
import { configHelp, ConfigError, parseConfig, type Config } from '../config.js';
import { createServer, type LatchkeyServer } from '../server.js';

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

options:
${configHelp()}

examples:
  latchkey serve --listen 127.0.0.1:50051 --lru-max-entries 100000
  latchkey serve --lock-dir /var/lib/latchkey/locks --backend file
  LATCHKEY_ETCD_ENDPOINTS=10.0.0.1:2379,10.0.0.2:2379 latchkey serve --backend etcd

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
  process.stderr.write(`latchkey: ${err instanceof ConfigError ? '' : 'cannot start: '}${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

export async function serve(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return 0;
  }
  let config: Config;
  let server: LatchkeyServer;
  let address: string;
  // grpc-js logs its own line for a failed bind before we report it, once, ourselves;
  // anything else it has to say goes to stderr marked as coming from grpc.
  grpc.setLogger({
    error: (...args: unknown[]) => {
      const line = args.join(' ');
      if (!/No address added out of total/.test(line)) process.stderr.write(`latchkey: grpc: ${line}\n`);
    },
  });
  try {
    config = parseConfig(argv, process.env);
    server = createServer(config);
    address = await server.listen();
  } catch (err) {
    failStart(err);
  }
  console.log(`latchkey listening on ${address} (locks: ${config.backend}, cache: ${config.store})`);
  // SIGHUP re-reads --auth-tokens-file (a bad file keeps the old tokens, and says so).
  process.on('SIGHUP', () => server.reloadAuth());
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`latchkey: ${signal}: shutting down (grace ${config.shutdownGraceMs} ms)\n`);
      server.shutdown().then(() => resolve(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
