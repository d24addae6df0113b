// Fails when client/common/generated/ differs from what `npm run gen` would write now.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { GENERATED_DIR, generate } from './generate.js';

const fresh = mkdtempSync(join(tmpdir(), 'latchkey-gen-'));

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

try {
  generate(fresh);
  const want = listFiles(fresh)
    .map((f) => relative(fresh, f))
    .sort();
  const have = listFiles(GENERATED_DIR)
    .map((f) => relative(GENERATED_DIR, f))
    .sort();
  const stale = [
    ...want.filter(
      (f) => !have.includes(f) || readFileSync(join(fresh, f), 'utf8') !== readFileSync(join(GENERATED_DIR, f), 'utf8'),
    ),
    ...have.filter((f) => !want.includes(f)),
  ];
  if (stale.length > 0) {
    console.error(
      `client/common/generated is out of date (${stale.join(', ')}): run \`npm run gen\` and commit the result.`,
    );
    process.exit(1);
  }
  console.log(`client/common/generated is up to date (${want.length} files).`);
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
