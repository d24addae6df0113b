// The start-up every client command shares (`latchkey cache ...`, `latchkey lock ...`): parse
// its options with the client options, answer --help, resolve the address, TLS and token,
// check the positionals, connect, run, close, and turn whatever the command throws into its
// exit code and one line on stderr. A command says only what is its own.
import { connect, type LatchkeyClient } from '../../client/index.js';
import {
  CLIENT_OPTIONS,
  clientOptions,
  expectPositionals,
  parseArgs,
  type ClientOptions,
  type OptionSpecs,
  type OptionValues,
} from './args.js';
import { EXIT } from './exit-codes.js';
import { Output } from './output.js';

export interface ClientCommandContext<S extends OptionSpecs> {
  readonly out: Output;
  /** The client options resolved (address, --json, deadline, TLS, token). */
  readonly options: ClientOptions;
  readonly values: OptionValues<typeof CLIENT_OPTIONS & S>;
  /** Checked against `positionals` (and `optionalPositionals`) already. */
  readonly positionals: readonly string[];
  /** The client, connected on first call and closed when the command ends. */
  client(): LatchkeyClient;
}

export interface ClientCommandSpec<S extends OptionSpecs> {
  /** How messages name it: "latchkey lock describe". */
  readonly command: string;
  /** The command's own options; the client options are added. */
  readonly options: S;
  /** The positionals it requires, by name ("NAME", "KEY"), then how many optional ones may follow. */
  readonly positionals: readonly string[];
  readonly optionalPositionals?: number;
  /** What --help prints. */
  readonly help: string;
  /** Returns the exit code; anything it throws is reported by Output.error. */
  run(ctx: ClientCommandContext<S>): Promise<number>;
}

/** The command as a function of its arguments (after the command's name) to its exit code. */
export function clientCommand<S extends OptionSpecs>(
  spec: ClientCommandSpec<S>,
): (argv: readonly string[]) => Promise<number> {
  return async (argv) => {
    const { values, positionals, help } = parseArgs(argv, { ...CLIENT_OPTIONS, ...spec.options }, spec.command);
    if (help) {
      process.stdout.write(`${spec.help}\n`);
      return EXIT.ok;
    }
    const options = clientOptions(values, process.env);
    const out = new Output(options.json, options.address, options.connect.tls !== undefined);
    try {
      expectPositionals(positionals, spec.positionals, spec.command, spec.optionalPositionals);
      let client: LatchkeyClient | undefined;
      try {
        return await spec.run({
          out,
          options,
          values,
          positionals,
          client: () => (client ??= connect(options.address, options.connect)),
        });
      } finally {
        await client?.[Symbol.asyncDispose]();
      }
    } catch (err) {
      return out.error(err);
    }
  };
}
