// docker-compose.yml is valid, and every LATCHKEY_* variable it sets is one the server reads
// and accepts. (No Docker engine runs here; `docker-compose config` still validates.)
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { FLAGS, parseConfig } from '../../src/config.js';

const ROOT = join(import.meta.dirname, '..', '..');
const compose = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
const hasCompose = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;

test('docker-compose config accepts docker-compose.yml', {
  skip: hasCompose ? false : 'docker-compose is not installed (apt-get install docker-compose)',
}, async () => {
  await promisify(execFile)('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
    cwd: ROOT,
    timeout: 60_000,
  });
});

test('every LATCHKEY_* variable in docker-compose.yml is read by the server, with a valid value', () => {
  const env = Object.fromEntries(
    [...compose.matchAll(/^\s+(LATCHKEY_[A-Z_]+):\s*"?([^"\n]*)"?\s*$/gm)].map((m) => [m[1]!, m[2]!.trim()]),
  );
  assert.ok(Object.keys(env).length >= 5, 'the latchkey service sets its configuration through env vars');
  const known = new Set(FLAGS.map((f) => f.env));
  for (const name of Object.keys(env)) assert.ok(known.has(name), `${name} is not a variable latchkey reads`);
  const config = parseConfig([], env);
  assert.equal(config.backend, 'etcd');
  assert.equal(config.store, 'memcached');
  assert.equal(config.etcdEndpoints, 'etcd:2379');
  assert.equal(config.memcached, 'memcached:11211');
});

test('the Dockerfile copies only files that exist', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  for (const m of dockerfile.matchAll(/^COPY\s+(.+)\s+\S+$/gm)) {
    for (const source of m[1]!.split(/\s+/))
      assert.ok(existsSync(join(ROOT, source)), `Dockerfile copies missing ${source}`);
  }
});
