// Every `latchkey` command's --help, the exit-code table in the help, and `latchkey serve`'s
// startup failures.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CACHE_SUBCOMMANDS } from '../../src/cli/cache.js';
import { CLIENT_OPTIONS } from '../../src/cli/args.js';
import { FLAGS } from '../../src/config.js';
import { EXIT, EXIT_CODES, exitCodesHelp } from '../../src/cli/exit-codes.js';
import { isOneLine, runCli, type CliResult } from '../cli/support.js';

const HELPS: readonly (readonly string[])[] = [
  ['--help'],
  ['help'],
  ['serve', '--help'],
  ['lock', '--help'],
  ['lock', 'describe', '--help'],
  ['lock', 'watch', '--help'],
  ['cache', '--help'],
  ...CACHE_SUBCOMMANDS.map((sub) => ['cache', sub, '--help']),
  ['elect', '--help'],
  ['elect', 'observe', '--help'],
  ['elect', 'leader', '--help'],
];

/** Runs at most `width` at a time: each child compiles TypeScript on start. */
async function inBatches<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += width) results.push(...(await Promise.all(items.slice(i, i + width).map(fn))));
  return results;
}

function hasExitTable(text: string): boolean {
  return (
    text.includes(exitCodesHelp()) &&
    EXIT_CODES.every((e) => text.includes(`  ${String(e.code).padEnd(4)}${e.meaning.slice(0, 20)}`))
  );
}

/**
 * An option row of a help text: the option (and its alias), its argument in capitals, then
 * at least two spaces before the text, so `--flag Nthe text` cannot pass.
 */
const OPTION_ROW = /^ {2,4}(--?[a-z][-a-z0-9]*)((, | or )--?[a-z][-a-z0-9]*)*( [A-Z][-A-Z0-9_:.,=[\]]*)* {2,}\S/;

/** The lines under "examples:". */
function examples(text: string): string {
  return /\nexamples?:\n((?: {2}.*\n?)+)/.exec(text)?.[1] ?? '';
}

describe('latchkey --help', () => {
  test('every command and subcommand has --help: exit 0, an example, nothing on stderr', async () => {
    const results = await inBatches(HELPS, 4, (args) => runCli(args));
    results.forEach((r: CliResult, i) => {
      const what = HELPS[i]!.join(' ');
      assert.deepEqual({ code: r.code, stderr: r.stderr }, { code: 0, stderr: '' }, what);
      const text = r.stdout.toString();
      assert.match(text, /^usage: latchkey/, what);
      assert.match(text, /\nexamples?:\n {2}.*latchkey /, `${what} shows no example`);
      for (const line of text.split('\n')) {
        assert.doesNotMatch(line, /\s$/, `${what}: trailing whitespace in ${JSON.stringify(line)}`);
        if (/^ {2,4}-/.test(line)) assert.match(line, OPTION_ROW, `${what}: option runs into its text: ${line}`);
      }
    });
    // The exit codes, from the same table the commands use, in the top-level help and in
    // the help of each client command.
    for (const i of [0, 3, 4, 5, 6])
      assert.ok(hasExitTable(results[i]!.stdout.toString()), `${HELPS[i]!.join(' ')} lacks the exit-code table`);
    assert.match(results[3]!.stdout.toString(), /128\+N/);
    assert.ok(EXIT_CODES.some((e) => e.code === EXIT.notAllowed));

    // Every client option in the help of every client command; the new ones with an example.
    results.forEach((r, i) => {
      if (HELPS[i]![0] === 'serve') return;
      for (const option of Object.keys(CLIENT_OPTIONS))
        assert.match(
          r.stdout.toString(),
          new RegExp(`\\n  --${option}\\b`),
          `${HELPS[i]!.join(' ')} lacks --${option}`,
        );
    });
    const [top, , , lock, , watch] = results.map((r) => r.stdout.toString());
    for (const option of ['--limit', '--shared']) {
      assert.match(lock!, new RegExp(`\\n  ${option}\\b`));
      assert.match(examples(lock!), new RegExp(` ${option}\\b`), `no example of ${option}`);
    }
    for (const option of ['--tls-ca', '--token-file'])
      assert.match(examples(lock!) + examples(top!), new RegExp(option), `no example of ${option}`);
    assert.match(examples(top!), /latchkey lock watch /);
    assert.match(examples(watch!), /latchkey lock watch /);
    assert.match(top!, /LATCHKEY_CLIENT_TLS_CA/);
    assert.match(top!, /no --token option/);
    const help = (...args: string[]) => results[HELPS.findIndex((h) => h.join(' ') === `${args.join(' ')} --help`)]!;
    const elect = help('elect').stdout.toString();
    for (const args of [['elect'], ['elect', 'observe'], ['elect', 'leader']])
      assert.ok(hasExitTable(help(...args).stdout.toString()), `${args.join(' ')} --help lacks the exit-code table`);
    assert.match(elect, /128\+N/);
    assert.match(elect, /LATCHKEY_ELECTION +the election's name/);
    assert.match(elect, /\n {2}--value TEXT\b/);
    assert.match(examples(top!), /latchkey elect /);
  });

  test('-h works on subcommands; bare `latchkey cache`, `latchkey lock` and `latchkey elect` print usage and exit 2', async () => {
    const [h, cache, lock, elect] = await Promise.all([
      runCli(['cache', 'incr', '-h']),
      runCli(['cache']),
      runCli(['lock']),
      runCli(['elect']),
    ]);
    assert.equal(h.code, 0);
    assert.match(h.stdout.toString(), /^usage: latchkey cache incr KEY DELTA/);
    for (const r of [cache, lock, elect]) {
      assert.equal(r.code, EXIT.usage);
      assert.match(r.stdout.toString(), /^usage: latchkey (cache|lock|elect)/);
    }
  });

  test('serve --help names every lock backend and cache store with the flag that enables it', async () => {
    const r = await runCli(['serve', '--help']);
    const text = r.stdout.toString();
    assert.doesNotMatch(text, /Lock backends: memory\./);
    for (const pattern of [
      / memory +always on/,
      / file +with --lock-dir DIR/,
      / etcd +with --etcd-endpoints/,
      / lru +always on/,
      / memcached +with --memcached/,
    ]) {
      assert.match(text, pattern);
    }
    // Every server option is listed, its text in one column after the longest option.
    const columns = new Set(
      FLAGS.map((f) => {
        const row = new RegExp(`^  ${f.flag}( N| VALUE)? +`, 'm').exec(text);
        assert.ok(row, `serve --help lacks ${f.flag}`);
        return row[0].length;
      }),
    );
    assert.equal(columns.size, 1, `option texts start in columns ${[...columns].join(', ')}`);
  });
});

describe('latchkey serve startup failures', () => {
  test('an unusable --lock-dir: one clean line, no stack trace, non-zero exit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-serve-'));
    try {
      const notADir = join(dir, 'file');
      writeFileSync(notADir, 'x');
      const r = await runCli(['serve', '--listen', '127.0.0.1:0', '--lock-dir', join(notADir, 'locks')]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stdout.length, 0);
      assert.ok(isOneLine(r.stderr), `not one line: ${JSON.stringify(r.stderr)}`);
      assert.match(r.stderr, /^latchkey: cannot start: file lock backend: cannot create lock dir ".*locks": ENOTDIR/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('client options are refused before serve, with exit 2', async () => {
    const r = await runCli(['--json', 'serve']);
    assert.equal(r.code, EXIT.usage);
    assert.ok(isOneLine(r.stderr), r.stderr);
  });
});
