// The last step of `npm run build` (after tsc): makes dist/ the server package's, which
// depends on @latchkey/client instead of carrying a copy of it.
// - src/ reaches client/ only through its two entries (test/sdk/wire-module.test.ts checks
//   it): client/index.ts, the SDK, and client/common/index.ts, the wire module. Their relative
//   specifiers in dist/src become the package's: '@latchkey/client', '@latchkey/client/common'.
// - dist/client/, which tsc emitted because src/ imports it, is removed.
// - dist/client.js re-exports the SDK, so `latchkey/client` goes on working.
// NOTE: sources keep their relative imports so that `npm start` and the tests run the .ts
// files through tsx with no build at all; only the packaged server sees the package names.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'dist');

/** The client entries src/ may import, as dist paths, and the package specifier each becomes. */
const ENTRIES = new Map([
  [join(DIST, 'client', 'index.js'), '@latchkey/client'],
  [join(DIST, 'client', 'common', 'index.js'), '@latchkey/client/common'],
]);

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? listFiles(path) : [path];
  });
}

/** `from '…'`, `import('…')` and `export … from '…'` specifiers that are relative. */
const SPECIFIER = /(\bfrom\s+|\bimport\s*\(\s*)(['"])(\.{1,2}\/[^'"]+)\2/g;

export function packageServer(): void {
  if (!existsSync(join(DIST, 'src'))) throw new Error('dist/src is missing: run tsc -p tsconfig.build.json first');
  const leftovers: string[] = [];
  for (const file of listFiles(join(DIST, 'src')).filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'))) {
    const text = readFileSync(file, 'utf8');
    const rewritten = text.replace(SPECIFIER, (whole, lead: string, quote: string, specifier: string) => {
      const target = resolve(dirname(file), specifier);
      const entry = ENTRIES.get(target);
      if (entry !== undefined) return `${lead}${quote}${entry}${quote}`;
      if (!relative(join(DIST, 'src'), target).startsWith('..')) return whole;
      leftovers.push(`${relative(ROOT, file)}: ${specifier}`);
      return whole;
    });
    if (rewritten !== text) writeFileSync(file, rewritten);
  }
  if (leftovers.length > 0)
    throw new Error(`dist/src reaches outside itself other than through @latchkey/client:\n${leftovers.join('\n')}`);
  rmSync(join(DIST, 'client'), { recursive: true, force: true });
  const reexport =
    "// The SDK, as `latchkey/client`: the @latchkey/client package.\nexport * from '@latchkey/client';\n";
  writeFileSync(join(DIST, 'client.js'), reexport);
  writeFileSync(join(DIST, 'client.d.ts'), reexport);
}

if (process.argv[1] === import.meta.filename) packageServer();
