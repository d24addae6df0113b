#!/usr/bin/env node
// `latchkey serve | lock | elect | cache`: the command line. Each command lives in src/cli/; this file
// dispatches, and is the one place that turns a command's result into the process's exit.
import { CLIENT_OPTIONS, CLIENT_OPTIONS_HELP } from './cli/args.js';
import { EXIT, exitCodesHelp, UsageError } from './cli/exit-codes.js';
import { Output } from './cli/output.js';

const USAGE = `usage: latchkey <command> [options]

commands:
  serve                              run the latchkey gRPC server (latchkey serve --help)
  lock NAME [options] -- CMD [ARGS]  run CMD while holding lock NAME (latchkey lock --help);
                                     --limit N for a semaphore, --shared for a read lock
  lock describe NAME                 show a lock's holders, tokens, expiries and queue
  lock watch NAME                    print a lock's events as they happen, until Ctrl-C
  elect NAME [--value V] -- CMD      run CMD only while leading election NAME (latchkey elect
                                     --help); one CMD at a time across every replica
  elect observe NAME                 print an election's leader, then each change, until Ctrl-C
  elect leader NAME                  show who leads an election now
  cache get|set|cas|add|delete|incr|touch KEY ...
                                     the cache from a shell (latchkey cache --help)

Run "latchkey <command> --help" for a command's options. The client options may also come
before the command: latchkey --address 10.0.0.5:50051 cache get KEY

${CLIENT_OPTIONS_HELP}

examples:
  latchkey serve --listen 0.0.0.0:50051
  latchkey lock nightly-backup -- /usr/local/bin/backup --full
  latchkey lock encoders --limit 4 -- ffmpeg -i in.mov out.mp4
  latchkey lock describe nightly-backup --json
  latchkey lock watch nightly-backup --json
  latchkey elect scheduler --value "$(hostname):8080" -- ./scheduler
  LATCHKEY_TOKEN_FILE=/run/secrets/latchkey latchkey --tls-ca ca.pem --address lk.internal:50051 cache get KEY
  echo hello | latchkey cache set greeting --ttl-ms 60000 && latchkey cache get greeting

${exitCodesHelp({ withCmdNotes: true })}`;

/** Client options given before the command; they are handed to it as if given after. */
function splitGlobals(argv: readonly string[]): { globals: string[]; rest: string[] } {
  const globals: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) break;
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    const type = Object.hasOwn(CLIENT_OPTIONS, name) ? CLIENT_OPTIONS[name as keyof typeof CLIENT_OPTIONS] : undefined;
    if (type === undefined) break;
    if (type === 'boolean' || eq >= 0) globals.push(arg);
    else if (i + 1 < argv.length) globals.push(arg, argv[++i]!);
    else break;
  }
  return { globals, rest: argv.slice(i) };
}

async function main(argv: readonly string[]): Promise<number> {
  const { globals, rest } = splitGlobals(argv);
  const [command, ...args] = rest;
  if (command === 'serve' && globals.length > 0)
    throw new UsageError(`${globals[0]} is a client option; latchkey serve takes --listen (see latchkey serve --help)`);
  // Each command loads only what it needs: a cache get should not load etcd and memcached.
  switch (command) {
    case 'serve':
      return (await import('./cli/serve.js')).serve(args);
    case 'lock':
      return (await import('./cli/lock.js')).lockCommand(args, globals);
    case 'elect':
      return (await import('./cli/elect.js')).electCommand(args, globals);
    case 'cache': {
      const [sub, ...subArgs] = args;
      const cache = await import('./cli/cache.js');
      // Client options before the subcommand go after its name, where its parser reads them.
      return sub === undefined ? cache.cacheCommand([]) : cache.cacheCommand([sub, ...globals, ...subArgs]);
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`latchkey: unknown command "${command}"\n\n${USAGE}\n`);
      return 2;
  }
}

// NOTE: grpc-js sets the TLS server name to the address's host even when it is an IP, and
// Node then prints a DeprecationWarning (DEP0123) on stderr, which would break the one-line
// stderr that scripts read. Deprecations inside dependencies are not the CLI user's to act on.
process.noDeprecation = true;

// A reader that goes away (`latchkey cache get KEY | head -c 10`) is not an error worth a
// stack trace: stop quietly, with the status a shell gives a process killed by SIGPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(128 + 13);
  throw err;
});

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Commands report their own failures; what reaches here is a usage error found before a
    // command could, or a bug. Either way: one line, no stack trace.
    const code = err instanceof UsageError ? EXIT.usage : EXIT.error;
    const message = `${code === EXIT.usage ? '' : 'unexpected error: '}${err instanceof Error ? err.message : String(err)}`;
    const dashes = argv.indexOf('--');
    new Output((dashes < 0 ? argv : argv.slice(0, dashes)).includes('--json'), '').fail(
      code,
      err instanceof Error ? err.name : 'Error',
      message,
    );
    process.exitCode = code;
  },
);
