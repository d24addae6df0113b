// Flags and environment → Config: precedence, and that every mistake is a ConfigError that
// names the flag (or env var) at fault. The last part runs the real `latchkey serve`.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ConfigError, defaultConfig, FLAGS, parseConfig, tombstoneRetentionMs } from '../../src/config.js';
import { loadProto } from '../../src/proto.js';
import { runCli, spawnServer } from '../support/spawn.js';

type Spec = (typeof FLAGS)[number];

/**
 * Two valid values other than the default, [for the env var, for the flag]. Integers step
 * off the default; strings that must be addresses get addresses. A new string flag whose
 * `<default>-env` is not valid needs an entry here (the precedence test will say so).
 */
const STRING_SAMPLES: Readonly<Record<string, [string, string]>> = {
  listen: ['127.0.0.1:1111', '[::1]:2222'],
  memcached: ['127.0.0.1:11211', '127.0.0.1:11212,127.0.0.1:11213'],
  etcdEndpoints: ['127.0.0.1:2379', '127.0.0.1:2380,127.0.0.1:2381'],
  lockDir: ['/tmp/latchkey-env', '/tmp/latchkey-flag'],
  tlsCert: ['/tmp/env-cert.pem', '/tmp/flag-cert.pem'],
  tlsKey: ['/tmp/env-key.pem', '/tmp/flag-key.pem'],
  tlsCa: ['/tmp/env-ca.pem', '/tmp/flag-ca.pem'],
  authTokensFile: ['/tmp/env-tokens', '/tmp/flag-tokens'],
  reflection: ['public', 'off'],
  metricsListen: ['127.0.0.1:9464', '[::1]:9465'],
  logLevel: ['debug', 'warn'],
};

/** Flags that are only valid together with others; the precedence test supplies these. */
const COMPANIONS: Readonly<Record<string, readonly string[]>> = {
  tlsCert: ['--tls-key', '/tmp/companion-key.pem'],
  tlsKey: ['--tls-cert', '/tmp/companion-cert.pem'],
  tlsCa: ['--tls-cert', '/tmp/companion-cert.pem', '--tls-key', '/tmp/companion-key.pem'],
};
const companionKeys = (spec: Spec) =>
  FLAGS.filter((f) => (COMPANIONS[spec.key] ?? []).includes(f.flag)).map((f) => f.key);

/** Integer flags whose values one step off the default are not valid alone. */
const INTEGER_SAMPLES: Readonly<Record<string, [string, string]>> = {
  // 0 = --max-ttl-ms; anything else must be at least --max-ttl-ms (default one day).
  tombstoneRetentionMs: ['86400001', '86400002'],
};

function samples(spec: Spec): [string, string] {
  if (spec.kind === 'boolean') return ['true', 'yes'];
  if (INTEGER_SAMPLES[spec.key]) return INTEGER_SAMPLES[spec.key]!;
  if (spec.kind === 'string') return STRING_SAMPLES[spec.key] ?? [`${spec.default}-env`, `${spec.default}-flag`];
  const d = Number(spec.default);
  const up = d + 2 <= (spec.max ?? Number.MAX_SAFE_INTEGER);
  return up ? [String(d + 1), String(d + 2)] : [String(d - 1), String(d - 2)];
}

const parsed = (spec: Spec, raw: string) =>
  spec.kind === 'integer' ? Number(raw) : spec.kind === 'boolean' ? true : raw.trim();

function configError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.ok(err instanceof TypeError);
    assert.equal(err.name, 'ConfigError');
    assert.match(err.message, message);
    return true;
  });
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const INTEGER_FLAGS = FLAGS.filter((f) => f.kind === 'integer');

describe('parseConfig', () => {
  test('no flags and no env give the defaults', () => {
    assert.deepEqual(parseConfig([], {}), defaultConfig);
    // Env vars that are set but empty count as unset.
    assert.deepEqual(parseConfig([], Object.fromEntries(FLAGS.map((f) => [f.env, '']))), defaultConfig);
  });

  test('every flag: flag beats env beats default', async (t) => {
    for (const spec of FLAGS) {
      await t.test(spec.flag, () => {
        const [fromEnv, fromFlag] = samples(spec);
        const env = { [spec.env]: fromEnv };
        const extra = COMPANIONS[spec.key] ?? [];
        const parse = (argv: string[], e: Record<string, string>) => parseConfig([...extra, ...argv], e);
        assert.equal(parse([], env)[spec.key], parsed(spec, fromEnv), `${spec.env} sets ${spec.key}`);
        if (spec.kind !== 'boolean')
          assert.equal(
            parse([spec.flag, fromFlag], {})[spec.key],
            parsed(spec, fromFlag),
            `${spec.flag} VALUE sets ${spec.key}`,
          );
        else assert.equal(parse([spec.flag], {})[spec.key], true, `${spec.flag} alone sets ${spec.key}`);
        assert.equal(
          parse([`${spec.flag}=${fromFlag}`], {})[spec.key],
          parsed(spec, fromFlag),
          `${spec.flag}=VALUE sets ${spec.key}`,
        );
        assert.equal(
          parse([`${spec.flag}=${fromFlag}`], env)[spec.key],
          parsed(spec, fromFlag),
          `${spec.flag} wins over ${spec.env}`,
        );
        // Only that key (and its companions) changed.
        const others = Object.fromEntries(companionKeys(spec).map((k) => [k, defaultConfig[k]]));
        assert.deepEqual(
          { ...parse([`${spec.flag}=${fromFlag}`], env), [spec.key]: spec.default, ...others },
          defaultConfig,
        );
      });
    }
  });

  test('the last of a repeated flag wins; values are trimmed; integers may use _ separators', () => {
    assert.equal(parseConfig(['--listen', '127.0.0.1:1', '--listen', '127.0.0.1:2'], {}).listen, '127.0.0.1:2');
    assert.equal(parseConfig(['--listen', ' 127.0.0.1:3 '], {}).listen, '127.0.0.1:3');
    assert.equal(parseConfig(['--default-ttl-ms', '30_000'], {}).defaultTtlMs, 30_000);
  });

  test('an unknown flag or a stray argument is a ConfigError naming it', () => {
    configError(() => parseConfig(['--nope', '1'], {}), /^unknown option "--nope" \(see latchkey serve --help\)$/);
    configError(() => parseConfig(['--listen=127.0.0.1:1', 'extra'], {}), /^unknown option "extra"/);
    configError(() => parseConfig(['-l', '127.0.0.1:1'], {}), /^unknown option "-l"/);
    configError(() => parseConfig(['--LISTEN', '127.0.0.1:1'], {}), /^unknown option "--LISTEN"/);
    configError(() => parseConfig(['--max-ttl'], {}), /^unknown option "--max-ttl"/);
  });

  test('a flag without its value is a ConfigError naming the flag', async (t) => {
    for (const spec of FLAGS.filter((f) => f.kind !== 'boolean')) {
      await t.test(spec.flag, () =>
        configError(() => parseConfig([spec.flag], {}), new RegExp(`^${spec.flag} needs a value$`)),
      );
    }
  });

  test('every integer flag: a value that is not a whole number is a ConfigError naming the flag or env var', async (t) => {
    for (const spec of INTEGER_FLAGS) {
      await t.test(spec.flag, () => {
        for (const bad of ['abc', '1.5', '-1', '1e3', '0x10', ' 5', '5ms', '']) {
          configError(
            () => parseConfig([spec.flag, bad], {}),
            new RegExp(`^${spec.flag} must be a whole number, got "${escapeRegExp(bad)}"$`),
          );
          configError(
            () => parseConfig([`${spec.flag}=${bad}`], {}),
            new RegExp(`^${spec.flag} must be a whole number`),
          );
          if (bad !== '')
            configError(
              () => parseConfig([], { [spec.env]: bad }),
              new RegExp(`^${spec.env} must be a whole number, got "${escapeRegExp(bad)}"$`),
            );
        }
      });
    }
  });

  test('every integer flag: a value out of its range is a ConfigError naming the flag and the range', async (t) => {
    for (const spec of INTEGER_FLAGS) {
      await t.test(spec.flag, () => {
        assert.notEqual(spec.max, undefined, `${spec.flag} declares no maximum`);
        const min = spec.min ?? 0;
        const range = `must be between ${min} and ${spec.max}`;
        const outside = [String(spec.max! + 1), '99999999999999999999', ...(min > 0 ? [String(min - 1)] : [])];
        for (const bad of outside) {
          configError(() => parseConfig([spec.flag, bad], {}), new RegExp(`^${spec.flag} ${range}, got ${bad}$`));
          configError(() => parseConfig([], { [spec.env]: bad }), new RegExp(`^${spec.env} ${range}, got ${bad}$`));
        }
      });
    }
  });

  test('an empty string value is a ConfigError for flags that need one', () => {
    for (const spec of FLAGS.filter((f) => f.kind === 'string' && f.default !== '')) {
      configError(() => parseConfig([spec.flag, ''], {}), new RegExp(`^${spec.flag} must not be empty$`));
      configError(() => parseConfig([spec.flag, '   '], {}), new RegExp(`^${spec.flag} must not be empty$`));
    }
  });

  test('--etcd-election-prefix and --etcd-prefix must not overlap: elections and locks would share keys', () => {
    assert.equal(parseConfig(['--etcd-election-prefix', 'e/'], {}).etcdElectionPrefix, 'e/');
    for (const [locks, elections] of [
      ['a/', 'a/'],
      ['a/', 'a/elections/'],
      ['x/locks/', 'x/'],
    ])
      configError(
        () => parseConfig(['--etcd-prefix', locks!, '--etcd-election-prefix', elections!], {}),
        /^--etcd-election-prefix ".*" and --etcd-prefix ".*" overlap \(one begins the other\)/,
      );
  });

  test('--listen must be host:port', () => {
    for (const good of ['127.0.0.1:0', '0.0.0.0:50051', 'localhost:1', '[::1]:50051', '[::]:0']) {
      assert.equal(parseConfig(['--listen', good, '--insecure'], {}).listen, good);
    }
    for (const bad of [
      'bogus',
      '127.0.0.1',
      ':50051',
      '127.0.0.1:',
      '127.0.0.1:123456',
      '::1:50051',
      '127.0.0.1:5x',
      'http://127.0.0.1:1',
    ]) {
      configError(
        () => parseConfig(['--listen', bad], {}),
        new RegExp(
          `^--listen must be host:port \\(e\\.g\\. 127\\.0\\.0\\.1:50051 or \\[::1\\]:50051\\), got "${escapeRegExp(bad)}"$`,
        ),
      );
    }
  });

  test('a port above 65535 is refused while parsing, not when binding', () => {
    configError(
      () => parseConfig(['--listen', '127.0.0.1:65536'], {}),
      /^--listen port must be 0-65535 \(0 = any free port\), got 65536$/,
    );
    configError(() => parseConfig(['--listen', '[::1]:99999'], {}), /^--listen port must be 0-65535/);
    configError(() => parseConfig([], { LATCHKEY_LISTEN: '127.0.0.1:99999' }), /^--listen port must be 0-65535/);
    assert.equal(parseConfig(['--listen', '127.0.0.1:65535'], {}).listen, '127.0.0.1:65535');
  });

  test('flags that constrain each other: the message names both', () => {
    configError(
      () => parseConfig(['--default-ttl-ms', '60000', '--max-ttl-ms', '59999'], {}),
      /^--default-ttl-ms \(60000\) must not exceed --max-ttl-ms \(59999\)$/,
    );
    assert.equal(parseConfig(['--default-ttl-ms', '60000', '--max-ttl-ms', '60000'], {}).maxTtlMs, 60_000);
    // The overhead per item (key, and whatever else the store keeps) is the server's to choose.
    configError(
      () => parseConfig(['--max-value-bytes', '2048', '--lru-max-bytes', '2048'], {}),
      /^--lru-max-bytes \(2048\) must be at least --max-value-bytes \(2048\) \+ \d+/,
    );
    assert.equal(
      parseConfig(['--max-value-bytes', '2048', '--lru-max-bytes', String(2048 + 4096)], {}).lruMaxBytes,
      2048 + 4096,
    );
    // The same checks apply whichever source a value came from.
    configError(
      () => parseConfig(['--max-ttl-ms', '100'], { LATCHKEY_DEFAULT_TTL_MS: '200' }),
      /^--default-ttl-ms \(200\) must not exceed --max-ttl-ms \(100\)$/,
    );
  });

  test('tombstones last at least as long as the longest lease: 0 means --max-ttl-ms, less is refused', () => {
    configError(
      () => parseConfig(['--tombstone-retention-ms', '3599999', '--max-ttl-ms', '3600000'], {}),
      /^--tombstone-retention-ms \(3599999\) must be at least --max-ttl-ms \(3600000\), or 0 for the same: a tombstone must outlast the longest lease/,
    );
    const same = parseConfig(['--tombstone-retention-ms', '3600000', '--max-ttl-ms', '3600000'], {});
    assert.equal(tombstoneRetentionMs(same), 3_600_000);
    assert.equal(
      tombstoneRetentionMs(parseConfig(['--max-ttl-ms', '3600000'], {})),
      3_600_000,
      '0 follows --max-ttl-ms',
    );
    assert.equal(tombstoneRetentionMs(defaultConfig), defaultConfig.maxTtlMs);
    const longer = parseConfig(['--tombstone-retention-ms', '7200000', '--max-ttl-ms', '3600000'], {});
    assert.equal(tombstoneRetentionMs(longer), 7_200_000);
  });
});

describe('latchkey serve (spawned)', () => {
  test('--help documents every flag, its env var and its default, and exits 0', async () => {
    for (const help of ['--help', '-h']) {
      const run = await runCli(['serve', help]);
      assert.deepEqual(
        { code: run.code, signal: run.signal, stderr: run.stderr },
        { code: 0, signal: null, stderr: '' },
      );
      for (const spec of FLAGS) {
        assert.ok(run.stdout.includes(spec.flag), `${help} does not mention ${spec.flag}`);
        assert.ok(run.stdout.includes(spec.help), `${help} does not explain ${spec.flag}`);
        assert.match(
          run.stdout,
          new RegExp(`env ${spec.env}, default ${escapeRegExp(String(spec.default))}`),
          `${help} does not give ${spec.env} and the default of ${spec.flag}`,
        );
      }
    }
  });

  test('a bad flag exits 2 with a one-line message naming it, before binding anything', async (t) => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--listen', 'bogus'], {}, /^latchkey: --listen must be host:port .*got "bogus"$/],
      [
        ['--listen', '127.0.0.1:99999'],
        {},
        /^latchkey: --listen port must be 0-65535 \(0 = any free port\), got 99999$/,
      ],
      [['--nope'], {}, /^latchkey: unknown option "--nope"/],
      [['--max-ttl-ms', 'abc'], {}, /^latchkey: --max-ttl-ms must be a whole number, got "abc"$/],
      [[], { LATCHKEY_MAX_TTL_MS: '0' }, /^latchkey: LATCHKEY_MAX_TTL_MS must be between 10 and \d+, got 0$/],
      [['--backend', 'nope'], {}, /^latchkey: --backend "nope" is not enabled; enabled: memory/],
    ];
    for (const [args, env, message] of cases) {
      await t.test(
        `${args.join(' ')} ${Object.entries(env)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`.trim(),
        async () => {
          const run = await runCli(['serve', ...args], env);
          assert.deepEqual(
            { code: run.code, signal: run.signal, stdout: run.stdout },
            { code: 2, signal: null, stdout: '' },
            run.stderr,
          );
          assert.equal(
            run.stderr.endsWith('\n') && !run.stderr.slice(0, -1).includes('\n'),
            true,
            `not one line: ${JSON.stringify(run.stderr)}`,
          );
          assert.match(run.stderr.trimEnd(), message);
        },
      );
    }
  });

  test("a port that is already taken exits 2 with latchkey's message last", async (t) => {
    const blocker = createServer();
    await new Promise<void>((resolve, reject) => blocker.once('error', reject).listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as { port: number }).port;
      await t.test('exit 2, our line last', async () => {
        const run = await runCli(['serve', '--listen', `127.0.0.1:${port}`]);
        assert.deepEqual(
          { code: run.code, signal: run.signal, stdout: run.stdout },
          { code: 2, signal: null, stdout: '' },
          run.stderr,
        );
        const lines = run.stderr.trimEnd().split('\n');
        assert.match(lines.at(-1)!, new RegExp(`^latchkey: cannot listen on 127\\.0\\.0\\.1:${port}: `));
        assert.equal(lines.filter((l) => l.startsWith('latchkey: ')).length, 1, run.stderr);
      });
      await t.test('nothing but that line on stderr', async () => {
        const run = await runCli(['serve', '--listen', `127.0.0.1:${port}`]);
        assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
      });
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('the running server takes its settings from env, and a flag wins over env', async () => {
    const proto = loadProto();
    for (const [args, limit] of [
      [[], 8],
      [['--max-value-bytes', '4'], 4],
    ] as const) {
      await using server = await spawnServer(args, { LATCHKEY_MAX_VALUE_BYTES: '8' });
      const cache = new proto.latchkey.v1.Cache(server.address, grpc.credentials.createInsecure());
      try {
        const err = await new Promise<grpc.ServiceError | null>((resolve) =>
          cache.Set({ key: 'k', value: Buffer.alloc(limit + 1) }, { deadline: Date.now() + 10_000 }, (e) => resolve(e)),
        );
        assert.equal(err?.code, grpc.status.INVALID_ARGUMENT, String(err));
        assert.match(err!.details, new RegExp(`the limit is ${limit} \\(--max-value-bytes\\)`));
      } finally {
        cache.close();
      }
    }
  });

  test('no command or an unknown one exits 2 with the usage', async () => {
    const none = await runCli([]);
    assert.equal(none.code, 2);
    assert.match(none.stdout, /^usage: latchkey <command>/);
    const unknown = await runCli(['serv']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^latchkey: unknown command "serv"/);
  });
});
