// Fails when client/generated/ differs from what `npm run gen` would write now.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const committed = join(root, 'client', 'generated');
const fresh = mkdtempSync(join(tmpdir(), 'latchkey-gen-'));

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

try {
  const script = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.gen as string;
  const command = script.replace(/^rm -rf client\/generated && /, '').replace('-O client/generated', `-O ${fresh}`);
  execFileSync('sh', ['-c', command], {
    cwd: root,
    stdio: 'pipe',
    env: { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}:${process.env.PATH}` },
  });
  const want = listFiles(fresh)
    .map((f) => relative(fresh, f))
    .sort();
  const have = listFiles(committed)
    .map((f) => relative(committed, f))
    .sort();
  const stale = [
    ...want.filter(
      (f) => !have.includes(f) || readFileSync(join(fresh, f), 'utf8') !== readFileSync(join(committed, f), 'utf8'),
    ),
    ...have.filter((f) => !want.includes(f)),
  ];
  if (stale.length > 0) {
    console.error(`client/generated is out of date (${stale.join(', ')}): run \`npm run gen\` and commit the result.`);
    process.exit(1);
  }
  console.log(`client/generated is up to date (${want.length} files).`);
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
