// The README's generated sections: the configuration table from src/config.ts FLAGS, the
// capability matrix from the backends' own declarations, and the CLI's exit codes from
// src/cli/exit-codes.ts, so none can drift from the code.
// `npm run docs` rewrites them; test/server/readme.test.ts fails when they are stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { FLAGS } from '../../src/config.js';
import type { Capabilities } from '../../src/locks/backend.js';
import { etcdCapabilities } from '../../src/locks/etcd/lock-backend.js';
import { fileCapabilities } from '../../src/locks/file.js';
import { memoryCapabilities } from '../../src/locks/memory.js';

export const README = join(import.meta.dirname, '..', '..', 'README.md');

const BACKENDS: Record<string, Capabilities> = {
  memory: memoryCapabilities,
  file: fileCapabilities,
  etcd: etcdCapabilities,
};

export function renderCapabilities(): string {
  const keys = Object.keys(memoryCapabilities) as (keyof Capabilities)[];
  const rows = Object.entries(BACKENDS).map(
    ([name, caps]) => `| ${name} | ${keys.map((k) => (caps[k] ? 'yes' : 'no')).join(' | ')} |`,
  );
  return [`| backend | ${keys.join(' | ')} |`, `|---|${keys.map(() => '---').join('|')}|`, ...rows].join('\n');
}

export function renderFlags(): string {
  const rows = FLAGS.map(
    (f) =>
      `| \`${f.flag}\` | \`${f.env}\` | ${f.default === '' ? '(off)' : `\`${f.default}\``} | ${f.help.replaceAll('|', '\\|')} |`,
  );
  return ['| flag | environment | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

export function renderExitCodes(): string {
  return [
    '| code | meaning |',
    '|---|---|',
    ...EXIT_CODES.map((e) => `| ${e.code} | ${e.meaning.replaceAll('|', '\\|')} |`),
  ].join('\n');
}

/** The README with its generated sections brought up to date. */
export function renderReadme(text: string): string {
  const replace = (input: string, section: string, body: string) => {
    const pattern = new RegExp(`(<!-- ${section}:start -->\\n)[\\s\\S]*?(<!-- ${section}:end -->)`);
    if (!pattern.test(input)) throw new Error(`README.md lacks the <!-- ${section}:start/end --> markers`);
    return input.replace(pattern, `$1${body}\n$2`);
  };
  return replace(
    replace(replace(text, 'flags', renderFlags()), 'capabilities', renderCapabilities()),
    'exit-codes',
    renderExitCodes(),
  );
}

if (process.argv[1] === import.meta.filename) {
  writeFileSync(README, renderReadme(readFileSync(README, 'utf8')));
  console.log('README.md: generated sections updated');
}
