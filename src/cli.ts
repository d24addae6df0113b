#!/usr/bin/env node
// `latchkey serve | lock | cache`: the command line.
import { configHelp, ConfigError, parseConfig } from './config.js';
import { createServer } from './server.js';

const USAGE = `usage: latchkey <command> [options]

commands:
  serve     run the latchkey gRPC server (latchkey serve --help)

Run "latchkey <command> --help" for a command's options.`;

const SERVE_HELP = `usage: latchkey serve [options]

Runs the latchkey gRPC server: services latchkey.v1.Locks and latchkey.v1.Cache, plus
grpc.health.v1.Health and server reflection (for grpcurl). Lock backends: memory.
Cache stores: lru. Every option can also be set by its environment variable; an option
given on the command line wins.

options:
${configHelp()}

example:
  latchkey serve --listen 127.0.0.1:50051 --lru-max-entries 100000`;

async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(SERVE_HELP);
    return 0;
  }
  const config = parseConfig(argv, process.env);
  const server = createServer(config);
  const address = await server.listen();
  console.log(`latchkey listening on ${address} (locks: ${config.backend}, cache: ${config.store})`);
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`latchkey: ${signal}: shutting down (grace ${config.shutdownGraceMs} ms)\n`);
      server.shutdown().then(() => resolve(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`latchkey: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(`latchkey: ${err.message}`);
      process.exitCode = 2;
    } else {
      console.error(err);
      process.exitCode = 1;
    }
  },
);
