// The two packages as a user gets them: `npm run build` and `npm pack` in a copy of this
// checkout (its committed and new files, not what is ignored), each tarball installed into an
// empty project (npm takes the dependencies from its cache, or the registry), the server
// package's own `latchkey serve` started from its install, and the client README's example
// run there, type-checked against the declarations the package ships. The client's install
// must hold nothing of the server's. The dependency counts and install sizes are printed
// (diagnostics), with how long each step took.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
/** The server's own libraries: none may be in the client's install. */
const SERVER_LIBRARIES = [
  'etcd3',
  'memjs',
  'pino',
  'prom-client',
  'proper-lockfile',
  'lru-cache',
  'grpc-health-check',
  '@grpc/reflection',
  '@opentelemetry/sdk-node',
  'latchkey',
];
/** npm installs and tsc builds on a busy 2-core machine. */
const STEP_TIMEOUT_MS = 240_000;

/** The environment for npm: none of the npm_* variables of an `npm test` running us. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.toLowerCase().startsWith('npm_')) delete env[key];
  delete env.NODE_TEST_CONTEXT;
  return env;
}

async function npm(cwd: string, args: string[]): Promise<string> {
  try {
    return (await run('npm', args, { cwd, env: npmEnv(), timeout: STEP_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }))
      .stdout;
  } catch (err) {
    const e = err as { message: string; stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** A copy of the checkout's files (tracked, and new ones not ignored), sharing its node_modules for the build. */
async function copyCheckout(to: string): Promise<void> {
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  for (const file of stdout.split('\0').filter(Boolean)) {
    const from = join(ROOT, file);
    if (!existsSync(from)) continue; // deleted, not yet committed
    mkdirSync(dirname(join(to, file)), { recursive: true });
    copyFileSync(from, join(to, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(to, 'node_modules'));
}

interface Packed {
  readonly filename: string;
  readonly files: readonly { readonly path: string }[];
}

async function pack(cwd: string, dest: string, args: string[] = []): Promise<Packed> {
  const packed = JSON.parse(await npm(cwd, ['pack', '--json', '--pack-destination', dest, ...args])) as Packed[];
  assert.equal(packed.length, 1);
  return packed[0]!;
}

/** Every package installed under `dir`/node_modules (nested ones too), as name@version. */
function installed(dir: string): Set<string> {
  const found = new Set<string>();
  const visit = (modules: string) => {
    if (!existsSync(modules)) return;
    for (const entry of readdirSync(modules)) {
      if (entry.startsWith('.')) continue;
      const paths = entry.startsWith('@')
        ? readdirSync(join(modules, entry)).map((name) => join(modules, entry, name))
        : [join(modules, entry)];
      for (const path of paths) {
        const manifest = join(path, 'package.json');
        if (!existsSync(manifest)) continue;
        const { name, version } = JSON.parse(readFileSync(manifest, 'utf8')) as { name: string; version: string };
        found.add(`${name}@${version}`);
        visit(join(path, 'node_modules'));
      }
    }
  };
  visit(join(dir, 'node_modules'));
  return found;
}

/** Bytes of every file under `dir` (symlinks not followed). */
function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += bytesUnder(path);
    else if (entry.isFile()) total += lstatSync(path).size;
  }
  return total;
}

async function emptyProject(dir: string, tarballs: string[]): Promise<void> {
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await npm(dir, ['install', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs]);
}

/** Starts the installed server; resolves with its address and a stop function. */
function startInstalled(cli: string): Promise<{ address: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [cli, 'serve', '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: npmEnv(),
  });
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`the installed server did not listen within 30 s\n${out}\n${err}`));
    }, 30_000);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = /^latchkey listening on (\S+:\d+) /m.exec(out);
      if (match !== null) {
        clearTimeout(timer);
        resolve({ address: match[1]!, stop });
      }
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`the installed server exited (${code}) before listening\n${out}\n${err}`));
    });
  });
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

test('@latchkey/client and latchkey as packages: installed from their tarballs, the SDK against the server', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'latchkey-packages-'));
  let last = performance.now();
  const step = (what: string) => {
    const now = performance.now();
    t.diagnostic(`${what}: ${((now - last) / 1000).toFixed(1)} s`);
    last = now;
  };
  try {
    const repo = join(work, 'repo');
    await copyCheckout(repo);
    // What prepack (the client) and prepare (the server) run, once for both.
    await npm(repo, ['run', 'build']);
    step('npm run build');
    const client = await pack(repo, work, ['--ignore-scripts', '--workspace', '@latchkey/client']);
    const server = await pack(repo, work, ['--ignore-scripts']);
    step('npm pack of both');

    const clientFiles = client.files.map((f) => f.path);
    for (const file of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/common/index.js'])
      assert.ok(clientFiles.includes(file), `the client package has ${file}`);
    for (const file of ['dist/proto/latchkey/v1/locks.proto', 'dist/proto/latchkey/v1/cache.proto'])
      assert.ok(clientFiles.includes(file), `the client package ships ${file}`);
    assert.deepEqual(
      clientFiles.filter((f) => !f.startsWith('dist/') && f !== 'package.json' && f !== 'README.md'),
      [],
    );
    const serverFiles = server.files.map((f) => f.path);
    assert.ok(serverFiles.includes('dist/src/cli.js') && serverFiles.includes('dist/client.js'));
    assert.deepEqual(
      serverFiles.filter((f) => f.startsWith('dist/client/')),
      [],
      'the server package carries no copy of the SDK',
    );

    const clientApp = join(work, 'app-client');
    const serverApp = join(work, 'app-server');
    await emptyProject(clientApp, [join(work, client.filename)]);
    step('npm install of the client');
    await emptyProject(serverApp, [join(work, client.filename), join(work, server.filename)]);
    step('npm install of the server');

    const clientTree = installed(clientApp);
    const names = [...clientTree].map((p) => p.slice(0, p.lastIndexOf('@')));
    assert.deepEqual(
      SERVER_LIBRARIES.filter((lib) => names.includes(lib)),
      [],
      'the client install holds none of the server libraries',
    );
    for (const dep of ['@latchkey/client', '@grpc/grpc-js', '@grpc/proto-loader', '@opentelemetry/api'])
      assert.ok(names.includes(dep), `the client install has ${dep}`);
    const serverTree = installed(serverApp);
    const clientBytes = bytesUnder(join(clientApp, 'node_modules'));
    const serverBytes = bytesUnder(join(serverApp, 'node_modules'));
    t.diagnostic(`@latchkey/client: ${clientTree.size - 1} packages besides itself, ${mb(clientBytes)} installed`);
    t.diagnostic(`latchkey (server): ${serverTree.size - 1} packages besides itself, ${mb(serverBytes)} installed`);
    assert.ok(
      clientBytes < serverBytes / 2,
      `the client install (${mb(clientBytes)}) is far smaller than the server's`,
    );

    // The server as installed, and the client README's example against it.
    const cli = join(serverApp, 'node_modules', 'latchkey', 'dist', 'src', 'cli.js');
    const { address, stop } = await startInstalled(cli);
    try {
      const readme = readFileSync(join(ROOT, 'client', 'README.md'), 'utf8');
      const block = /<!-- readme-test: client -->\n```ts\n([\s\S]*?)```/.exec(readme);
      assert.ok(block, 'client/README.md has its example');
      writeFileSync(join(clientApp, 'example.mts'), block[1]!.replaceAll('127.0.0.1:50051', address));
      writeFileSync(
        join(clientApp, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            lib: ['ES2022', 'ESNext.Disposable'],
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noEmit: true,
            types: ['node'],
            typeRoots: [join(ROOT, 'node_modules', '@types')],
          },
          files: ['example.mts'],
        }),
      );
      // The declarations the package ships are enough to type-check a user's code.
      await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', clientApp], {
        cwd: clientApp,
        timeout: STEP_TIMEOUT_MS,
      }).catch((err: { stdout: string; message: string }) => assert.fail(`tsc: ${err.message}\n${err.stdout}`));
      // tsx by URL (this checkout's): it lowers `await using`, which Node 20 does not parse.
      const { stdout } = await run(process.execPath, ['--import', import.meta.resolve('tsx'), 'example.mts'], {
        cwd: clientApp,
        timeout: 60_000,
      });
      assert.match(stdout, /^busy: .*reports\/daily/m);
      assert.match(stdout, /^greeting = hello$/m);
      assert.match(stdout, /^visits = 1$/m);
      // The server package still exports the SDK as latchkey/client, and createServer.
      const { stdout: exported } = await run(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          "const [s, c] = await Promise.all([import('latchkey'), import('latchkey/client')]); console.log(typeof s.createServer, typeof c.connect, c.connect === (await import('@latchkey/client')).connect)",
        ],
        { cwd: serverApp, timeout: 60_000 },
      );
      assert.equal(exported.trim(), 'function function true');
    } finally {
      await stop();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
