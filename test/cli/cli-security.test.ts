// The client commands against servers with TLS, mutual TLS and bearer tokens, as child
// processes: the --tls-* and --token-file options and their LATCHKEY_CLIENT_TLS_* /
// LATCHKEY_TOKEN(_FILE) variables, what `latchkey lock` hands CMD, and exit 9 for a refusal.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from '../../client/index.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { isOneLine, runCli, type CliResult } from '../cli/support.js';
import { REPO_ROOT } from '../support/spawn.js';
import { startServer, type TestServer } from '../support/server.js';
import { makePki, opensslMissing, type Pki } from '../support/tls.js';

function expectExit(r: CliResult, code: number, stderr?: RegExp): void {
  assert.equal(r.code, code, `exit ${r.code}, expected ${code}; stderr: ${r.stderr}`);
  if (stderr !== undefined) {
    assert.ok(isOneLine(r.stderr), `not one line: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, stderr);
  }
}

describe('latchkey client commands over TLS', { skip: opensslMissing() }, () => {
  let pki: Pki;
  let tls: TestServer;
  let mtls: TestServer;
  before(async () => {
    pki = makePki();
    tls = await startServer({ lruMaxEntries: 1_000, tlsCert: pki.serverCert, tlsKey: pki.serverKey });
    mtls = await startServer({
      lruMaxEntries: 1_000,
      tlsCert: pki.serverCert,
      tlsKey: pki.serverKey,
      tlsCa: pki.caCert,
    });
  });
  after(async () => {
    await tls[Symbol.asyncDispose]();
    await mtls[Symbol.asyncDispose]();
    pki[Symbol.dispose]();
  });

  test("--tls-ca or LATCHKEY_CLIENT_TLS_CA reaches a TLS server; without it, or with the server's LATCHKEY_TLS_CA, exit 7", async () => {
    const at = ['--address', tls.address];
    expectExit(await runCli(['cache', 'set', 'tls-k', 'over-tls', ...at, '--tls-ca', pki.caCert]), 0);
    const [byEnv, leading, describe, plain, serverVar, systemRoots] = await Promise.all([
      runCli(['cache', 'get', 'tls-k', ...at], { env: { LATCHKEY_CLIENT_TLS_CA: pki.caCert } }),
      // Client options before the command.
      runCli(['--tls-ca', pki.caCert, ...at, 'cache', 'get', 'tls-k']),
      runCli(['lock', 'describe', 'tls-lock', ...at, '--tls-ca', pki.caCert, '--json']),
      runCli(['cache', 'get', 'tls-k', ...at, '--deadline-ms', '5000']),
      // The server's own variable is not the client's: the client stays plaintext.
      runCli(['cache', 'get', 'tls-k', ...at, '--deadline-ms', '5000'], { env: { LATCHKEY_TLS_CA: pki.caCert } }),
      // --tls alone trusts the system's CAs, which did not sign this server's certificate.
      runCli(['cache', 'get', 'tls-k', ...at, '--tls', '--deadline-ms', '5000']),
    ]);
    for (const r of [byEnv, leading]) {
      expectExit(r, 0);
      assert.equal(r.stdout.toString(), 'over-tls');
    }
    expectExit(describe, 0);
    assert.equal(JSON.parse(describe.stdout.toString()).held, false);
    for (const r of [plain, serverVar, systemRoots])
      expectExit(r, EXIT.unavailable, /^latchkey: latchkey server at 127\.0\.0\.1:\d+ is unavailable/);
  });

  test('mutual TLS: a client certificate gets in, by options or variables; none is exit 7; half of one, or a file that is not PEM, exit 2', async () => {
    const at = ['--address', mtls.address];
    const cert = ['--tls-ca', pki.caCert, '--tls-cert', pki.clientCert, '--tls-key', pki.clientKey];
    expectExit(await runCli(['cache', 'set', 'mtls-k', 'v', ...at, ...cert]), 0);
    const [byEnv, none, stranger, halfCert, notPem, missing] = await Promise.all([
      runCli(['cache', 'get', 'mtls-k', ...at], {
        env: {
          LATCHKEY_CLIENT_TLS_CA: pki.caCert,
          LATCHKEY_CLIENT_TLS_CERT: pki.clientCert,
          LATCHKEY_CLIENT_TLS_KEY: pki.clientKey,
        },
      }),
      runCli(['cache', 'get', 'mtls-k', ...at, '--tls-ca', pki.caCert, '--deadline-ms', '5000']),
      runCli([
        'cache',
        'get',
        'mtls-k',
        ...at,
        '--tls-ca',
        pki.caCert,
        '--tls-cert',
        pki.strangerCert,
        '--tls-key',
        pki.strangerKey,
        '--deadline-ms',
        '5000',
      ]),
      runCli(['cache', 'get', 'mtls-k', ...at, '--tls-ca', pki.caCert, '--tls-cert', pki.clientCert]),
      runCli(['cache', 'get', 'mtls-k', ...at, '--tls-ca', join(pki.dir, 'server.ext')]),
      runCli(['cache', 'get', 'mtls-k', ...at, '--tls-ca', join(pki.dir, 'no-such.pem')]),
    ]);
    expectExit(byEnv, 0);
    assert.equal(byEnv.stdout.toString(), 'v');
    for (const r of [none, stranger]) expectExit(r, EXIT.unavailable, /is unavailable/);
    expectExit(halfCert, EXIT.usage, /--tls-cert and --tls-key go together/);
    expectExit(notPem, EXIT.usage, /--tls-ca .*server\.ext is not a PEM file/);
    expectExit(missing, EXIT.usage, /--tls-ca .*no-such\.pem: cannot read it/);
  });

  test('latchkey lock hands CMD its TLS files as absolute paths, which work from anywhere', async () => {
    // Relative paths, as a user in the repo would type them.
    const rel = (path: string) => relative(REPO_ROOT, path);
    const script = 'printf "%s|%s|%s" "$LATCHKEY_CLIENT_TLS_CA" "$LATCHKEY_CLIENT_TLS_CERT" "$LATCHKEY_CLIENT_TLS_KEY"';
    const r = await runCli([
      'lock',
      'mtls-env',
      '--address',
      mtls.address,
      '--tls-ca',
      rel(pki.caCert),
      '--tls-cert',
      rel(pki.clientCert),
      '--tls-key',
      rel(pki.clientKey),
      '--',
      'sh',
      '-c',
      script,
    ]);
    expectExit(r, 0);
    const [ca, cert, key] = r.stdout.toString().split('|');
    assert.deepEqual([ca, cert, key], [pki.caCert, pki.clientCert, pki.clientKey]);
    const again = await runCli(['lock', 'describe', 'mtls-env', '--address', mtls.address], {
      env: { LATCHKEY_CLIENT_TLS_CA: ca!, LATCHKEY_CLIENT_TLS_CERT: cert!, LATCHKEY_CLIENT_TLS_KEY: key! },
    });
    expectExit(again, 0);
  });
});

describe('latchkey client commands with bearer tokens', () => {
  const ADMIN = 'admin-token-0123456789abcdef';
  const BILLING = 'billing-token-0123456789abcdef';
  let dir: string;
  let server: TestServer;
  let at: string[];
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-auth-'));
    server = await startServer({
      lruMaxEntries: 1_000,
      authTokensFile: file('tokens', `${ADMIN}\n${BILLING} billing/ invoices:\n`),
    });
    at = ['--address', server.address];
  });
  after(async () => {
    await server[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  });

  test('no token: exit 9 with one line saying how to give one; --token-file, LATCHKEY_TOKEN_FILE and LATCHKEY_TOKEN get in', async () => {
    const admin = file('admin', `${ADMIN}\n`);
    const [none, json, lock, byFlag, byFileEnv, byEnv, wrong] = await Promise.all([
      runCli(['cache', 'get', 'k', ...at]),
      runCli(['lock', 'describe', 'k', ...at, '--json']),
      runCli(['lock', 'k', ...at, '--', 'true']),
      runCli(['cache', 'set', 'k', 'v', ...at, '--token-file', admin]),
      runCli(['lock', 'describe', 'k', ...at], { env: { LATCHKEY_TOKEN_FILE: admin } }),
      runCli(['lock', 'k', ...at, '--', 'true'], { env: { LATCHKEY_TOKEN: ADMIN } }),
      runCli(['cache', 'get', 'k', ...at], { env: { LATCHKEY_TOKEN: 'not-a-token-this-server-knows' } }),
    ]);
    for (const r of [none, lock])
      expectExit(
        r,
        EXIT.notAllowed,
        /^latchkey: latchkey server at .* refused the call: .*authorization: Bearer.*--token-file FILE, LATCHKEY_TOKEN_FILE or LATCHKEY_TOKEN\n$/,
      );
    expectExit(json, EXIT.notAllowed);
    assert.deepEqual(Object.keys(JSON.parse(json.stderr)), ['error', 'exitCode', 'message']);
    assert.equal(JSON.parse(json.stderr).error, 'UnauthenticatedError');
    for (const r of [byFlag, byFileEnv, byEnv]) expectExit(r, 0);
    expectExit(wrong, EXIT.notAllowed, /not valid on this server/);
  });

  test('a token limited to prefixes: exit 9 from lock (CMD never runs), describe, watch, and cache calls through the pipeline', async () => {
    const billing = file('billing', BILLING);
    const marker = join(dir, 'payroll-ran');
    const env = { LATCHKEY_TOKEN_FILE: billing };
    const [lock, describe, watch, get, set, allowed, allowedLock] = await Promise.all([
      runCli(['lock', 'payroll/run', ...at, '--', 'touch', marker], { env }),
      runCli(['lock', 'describe', 'payroll/run', ...at], { env }),
      runCli(['lock', 'watch', 'payroll/run', ...at], { env }),
      runCli(['cache', 'get', 'payroll:1', ...at, '--json'], { env }),
      runCli(['cache', 'set', 'payroll:1', 'x', ...at], { env }),
      runCli(['cache', 'set', 'invoices:1', 'x', ...at], { env }),
      runCli(['lock', 'billing/run', ...at, '--', 'true'], { env }),
    ]);
    for (const r of [lock, describe, watch, set])
      expectExit(
        r,
        EXIT.notAllowed,
        /token#[0-9a-f]{8} may not use (lock|key) "payroll[/:]\w+": it is limited to names starting with "billing\/", "invoices:"/,
      );
    expectExit(get, EXIT.notAllowed);
    assert.equal(JSON.parse(get.stderr).error, 'PermissionDeniedError');
    assert.equal(existsSync(marker), false, 'CMD ran without the lock');
    expectExit(allowed, 0);
    expectExit(allowedLock, 0);
    for (const r of [lock, describe, watch, get, set])
      assert.ok(!r.stderr.includes(BILLING), 'the token appeared in a message');
  });

  test('there is no --token option; a token file that is empty or the server tokens file is exit 2', async () => {
    const [flag, empty, serverFile, missing] = await Promise.all([
      runCli(['cache', 'get', 'k', ...at, '--token', ADMIN]),
      runCli(['cache', 'get', 'k', ...at, '--token-file', file('empty', '\n')]),
      runCli(['cache', 'get', 'k', ...at, '--token-file', join(dir, 'tokens')]),
      runCli(['cache', 'get', 'k', ...at], { env: { LATCHKEY_TOKEN_FILE: join(dir, 'no-such-file') } }),
    ]);
    expectExit(flag, EXIT.usage, /unknown option "--token"/);
    expectExit(empty, EXIT.usage, /--token-file .*empty/);
    expectExit(serverFile, EXIT.usage, /--auth-tokens-file/);
    expectExit(missing, EXIT.usage, /LATCHKEY_TOKEN_FILE .*no-such-file: cannot read it/);
  });

  test('latchkey lock hands CMD its --token-file, so latchkey in CMD is let in too', async () => {
    const billing = file('billing-cmd', BILLING);
    const r = await runCli([
      'lock',
      'billing/cmd',
      ...at,
      '--token-file',
      relative(REPO_ROOT, billing),
      '--',
      'sh',
      '-c',
      'printf %s "$LATCHKEY_TOKEN_FILE"',
    ]);
    expectExit(r, 0);
    assert.equal(r.stdout.toString(), billing);
    // The CMD's environment as a nested `latchkey` would see it.
    expectExit(
      await runCli(['cache', 'set', 'invoices:cmd', 'x', ...at], { env: { LATCHKEY_TOKEN_FILE: r.stdout.toString() } }),
      0,
    );
    await using client = connect(server.address, { token: ADMIN });
    assert.equal((await client.cache().get('invoices:cmd'))?.value.toString(), 'x');
  });
});
