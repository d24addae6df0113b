// Flags and environment → one validated Config. Every flag has an env var; a flag beats its
// env var, which beats the default. Messages say which flag is wrong and what it accepts.
import { MAX_ENVELOPE_OVERHEAD } from './cache/fencing.js';
import { LOG_LEVELS, type LogLevel } from './log.js';
import { MAX_NAME_BYTES } from './validate.js';

export interface Config {
  /** host:port to listen on. */
  readonly listen: string;
  /** Lock backend used when a request leaves `backend` empty. */
  readonly backend: string;
  /** Cache store used when a request leaves `store` empty. */
  readonly store: string;
  readonly defaultTtlMs: number;
  readonly maxTtlMs: number;
  readonly maxWaitMs: number;
  readonly maxValueBytes: number;
  readonly lruMaxEntries: number;
  readonly lruMaxBytes: number;
  /** File lock backend directory; '' = the file backend is disabled. */
  readonly lockDir: string;
  readonly shutdownGraceMs: number;
  /** Most keys in one GetMany/SetMany and most operations in one Pipeline frame. */
  readonly maxBatch: number;
  /** memcached servers, host:port comma-separated; '' = memcached store disabled. */
  readonly memcached: string;
  readonly memcachedMaxItemBytes: number;
  readonly memcachedTimeoutMs: number;
  /** etcd client endpoints, host:port comma-separated; '' = etcd lock backend disabled. */
  readonly etcdEndpoints: string;
  /** etcd key prefix of locks: lock <name> is `etcdctl lock <etcdPrefix><name>`. */
  readonly etcdPrefix: string;
  /** etcd key prefix of elections: election <name> is `etcdctl elect <etcdElectionPrefix><name>`. */
  readonly etcdElectionPrefix: string;
  /** PEM files; both set = serve TLS. */
  readonly tlsCert: string;
  readonly tlsKey: string;
  /** PEM CA bundle; set = mutual TLS, clients must present a certificate it signed. */
  readonly tlsCa: string;
  /** Allow plaintext on an address that is not loopback. */
  readonly insecure: boolean;
  /** Bearer tokens file; '' = no authentication. */
  readonly authTokensFile: string;
  /** Who may use server reflection when tokens are required. */
  readonly reflection: 'auth' | 'public' | 'off';
  readonly maxWaitersPerLock: number;
  readonly maxWaiters: number;
  readonly maxStreams: number;
  readonly maxMessageBytes: number;
  /** host:port of the Prometheus /metrics endpoint; '' = not served. */
  readonly metricsListen: string;
  /** Least severe log level written. */
  readonly logLevel: LogLevel;
}

type Kind = 'string' | 'integer' | 'boolean';

interface FlagSpec {
  readonly key: keyof Config;
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly default: string | number | boolean;
  /** Allowed values of a string option. */
  readonly choices?: readonly string[];
  readonly help: string;
  /** Inclusive bounds for integers. */
  readonly min?: number;
  readonly max?: number;
}

const DAY_MS = 86_400_000;

export const FLAGS: readonly FlagSpec[] = [
  {
    key: 'listen',
    flag: '--listen',
    env: 'LATCHKEY_LISTEN',
    kind: 'string',
    default: '127.0.0.1:50051',
    help: 'address to serve gRPC on, host:port (port 0 = any free port)',
  },
  {
    key: 'backend',
    flag: '--backend',
    env: 'LATCHKEY_BACKEND',
    kind: 'string',
    default: 'memory',
    help: 'default lock backend for requests with an empty `backend`',
  },
  {
    key: 'store',
    flag: '--store',
    env: 'LATCHKEY_STORE',
    kind: 'string',
    default: 'lru',
    help: 'default cache store for requests with an empty `store`',
  },
  {
    key: 'defaultTtlMs',
    flag: '--default-ttl-ms',
    env: 'LATCHKEY_DEFAULT_TTL_MS',
    kind: 'integer',
    default: 15_000,
    min: 10,
    max: 7 * DAY_MS,
    help: 'lease TTL when Acquire sends ttl_ms = 0',
  },
  {
    key: 'maxTtlMs',
    flag: '--max-ttl-ms',
    env: 'LATCHKEY_MAX_TTL_MS',
    kind: 'integer',
    default: DAY_MS,
    min: 10,
    max: 7 * DAY_MS,
    help: 'largest lease TTL a request may ask for',
  },
  {
    key: 'maxWaitMs',
    flag: '--max-wait-ms',
    env: 'LATCHKEY_MAX_WAIT_MS',
    kind: 'integer',
    default: 3_600_000,
    min: 0,
    max: DAY_MS,
    help: 'largest wait_ms a request may ask for',
  },
  {
    key: 'maxValueBytes',
    flag: '--max-value-bytes',
    env: 'LATCHKEY_MAX_VALUE_BYTES',
    kind: 'integer',
    default: 1024 * 1024,
    min: 1,
    max: 64 * 1024 * 1024,
    help: 'largest cache value accepted',
  },
  {
    key: 'lruMaxEntries',
    flag: '--lru-max-entries',
    env: 'LATCHKEY_LRU_MAX_ENTRIES',
    kind: 'integer',
    default: 100_000,
    min: 1,
    max: 2 ** 31,
    help: 'LRU store: most entries kept before evicting the least recently used (memory for the index is reserved up front)',
  },
  {
    key: 'lruMaxBytes',
    flag: '--lru-max-bytes',
    env: 'LATCHKEY_LRU_MAX_BYTES',
    kind: 'integer',
    default: 256 * 1024 * 1024,
    min: 1024,
    max: 2 ** 50,
    help: 'LRU store: most bytes (keys + values) kept before evicting',
  },
  {
    key: 'lockDir',
    flag: '--lock-dir',
    env: 'LATCHKEY_LOCK_DIR',
    kind: 'string',
    default: '',
    help: "enable the file lock backend with lock files in this directory, created if missing (one host's local filesystem, not NFS)",
  },
  {
    key: 'memcached',
    flag: '--memcached',
    env: 'LATCHKEY_MEMCACHED',
    kind: 'string',
    default: '',
    help: 'enable the memcached store on these servers: host:port[,host:port...] (keys spread by hash)',
  },
  {
    key: 'memcachedMaxItemBytes',
    flag: '--memcached-max-item-bytes',
    env: 'LATCHKEY_MEMCACHED_MAX_ITEM_BYTES',
    kind: 'integer',
    default: 1024 * 1024,
    min: 1024,
    max: 1024 * 1024 * 1024,
    help: "memcached's item size limit (its -I); larger items are refused with INVALID_ARGUMENT",
  },
  {
    key: 'memcachedTimeoutMs',
    flag: '--memcached-timeout-ms',
    env: 'LATCHKEY_MEMCACHED_TIMEOUT_MS',
    kind: 'integer',
    default: 1_000,
    min: 10,
    max: 60_000,
    help: 'how long a memcached request may take before that server counts as unavailable',
  },
  {
    key: 'etcdEndpoints',
    flag: '--etcd-endpoints',
    env: 'LATCHKEY_ETCD_ENDPOINTS',
    kind: 'string',
    default: '',
    help: 'enable the etcd lock backend on this cluster: host:port[,host:port...] (client URLs)',
  },
  {
    key: 'etcdPrefix',
    flag: '--etcd-prefix',
    env: 'LATCHKEY_ETCD_PREFIX',
    kind: 'string',
    default: 'latchkey/locks/',
    help: 'etcd key prefix of locks; lock NAME is the one `etcdctl lock PREFIXNAME` takes',
  },
  {
    key: 'etcdElectionPrefix',
    flag: '--etcd-election-prefix',
    env: 'LATCHKEY_ETCD_ELECTION_PREFIX',
    kind: 'string',
    default: 'latchkey/elections/',
    help: 'etcd key prefix of elections; election NAME is the one `etcdctl elect PREFIXNAME` takes',
  },
  {
    key: 'maxBatch',
    flag: '--max-batch',
    env: 'LATCHKEY_MAX_BATCH',
    kind: 'integer',
    default: 1000,
    min: 1,
    max: 100_000,
    help: 'most keys in one GetMany/SetMany, and most operations in one Pipeline frame',
  },
  {
    key: 'tlsCert',
    flag: '--tls-cert',
    env: 'LATCHKEY_TLS_CERT',
    kind: 'string',
    default: '',
    help: 'serve TLS with this PEM certificate (chain); needs --tls-key',
  },
  {
    key: 'tlsKey',
    flag: '--tls-key',
    env: 'LATCHKEY_TLS_KEY',
    kind: 'string',
    default: '',
    help: 'PEM private key of --tls-cert',
  },
  {
    key: 'tlsCa',
    flag: '--tls-ca',
    env: 'LATCHKEY_TLS_CA',
    kind: 'string',
    default: '',
    help: 'mutual TLS: require client certificates signed by this PEM CA bundle',
  },
  {
    key: 'insecure',
    flag: '--insecure',
    env: 'LATCHKEY_INSECURE',
    kind: 'boolean',
    default: false,
    help: 'allow plaintext on an address that is not loopback (without it, such a --listen needs TLS)',
  },
  {
    key: 'authTokensFile',
    flag: '--auth-tokens-file',
    env: 'LATCHKEY_AUTH_TOKENS_FILE',
    kind: 'string',
    default: '',
    help: 'require "authorization: Bearer <token>" from this file (one token per line, optional name prefixes after it; reloaded on SIGHUP)',
  },
  {
    key: 'reflection',
    flag: '--reflection',
    env: 'LATCHKEY_REFLECTION',
    kind: 'string',
    default: 'auth',
    choices: ['auth', 'public', 'off'],
    help: 'server reflection: auth (needs a token when tokens are on), public (never needs one), or off',
  },
  {
    key: 'maxWaitersPerLock',
    flag: '--max-waiters-per-lock',
    env: 'LATCHKEY_MAX_WAITERS_PER_LOCK',
    kind: 'integer',
    default: 1_000,
    min: 1,
    max: 1_000_000,
    help: 'most Acquire calls waiting on one lock name through this server',
  },
  {
    key: 'maxWaiters',
    flag: '--max-waiters',
    env: 'LATCHKEY_MAX_WAITERS',
    kind: 'integer',
    default: 10_000,
    min: 1,
    max: 10_000_000,
    help: 'most Acquire calls waiting through this server in all',
  },
  {
    key: 'maxStreams',
    flag: '--max-streams',
    env: 'LATCHKEY_MAX_STREAMS',
    kind: 'integer',
    default: 1_000,
    min: 1,
    max: 1_000_000,
    help: 'most Cache/Pipeline streams open at once, and apart from them most Locks/Session streams',
  },
  {
    key: 'maxMessageBytes',
    flag: '--max-message-bytes',
    env: 'LATCHKEY_MAX_MESSAGE_BYTES',
    kind: 'integer',
    default: 16 * 1024 * 1024,
    min: 64 * 1024,
    max: 1024 * 1024 * 1024,
    help: 'largest gRPC message accepted; must exceed --max-value-bytes',
  },
  {
    key: 'metricsListen',
    flag: '--metrics-listen',
    env: 'LATCHKEY_METRICS_LISTEN',
    kind: 'string',
    default: '',
    help: 'serve Prometheus metrics on http://HOST:PORT/metrics (plain HTTP: loopback only unless --insecure)',
  },
  {
    key: 'logLevel',
    flag: '--log-level',
    env: 'LATCHKEY_LOG_LEVEL',
    kind: 'string',
    default: 'info',
    choices: LOG_LEVELS,
    help: 'least severe event logged (JSON lines on stderr): fatal, error, warn, info, debug (adds one line per lock grant and lease expiry) or trace',
  },
  {
    key: 'shutdownGraceMs',
    flag: '--shutdown-grace-ms',
    env: 'LATCHKEY_SHUTDOWN_GRACE_MS',
    kind: 'integer',
    default: 5_000,
    min: 0,
    max: 600_000,
    help: 'on SIGINT/SIGTERM, how long in-flight calls may finish before they are cut off',
  },
];

export const defaultConfig: Config = Object.fromEntries(FLAGS.map((f) => [f.key, f.default])) as unknown as Config;

export class ConfigError extends TypeError {
  override name = 'ConfigError';
}

function parseValue(spec: FlagSpec, raw: string, source: string): string | number | boolean {
  if (spec.kind === 'boolean') {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new ConfigError(`${source} must be true or false, got "${raw}"`);
  }
  if (spec.kind === 'string') {
    if (raw.trim() === '' && spec.default !== '') throw new ConfigError(`${source} must not be empty`);
    if (spec.choices && !spec.choices.includes(raw.trim()))
      throw new ConfigError(`${source} must be one of ${spec.choices.join(', ')}, got "${raw}"`);
    return raw.trim();
  }
  if (!/^\d+$/.test(raw.replaceAll('_', ''))) throw new ConfigError(`${source} must be a whole number, got "${raw}"`);
  const n = Number(raw.replaceAll('_', ''));
  if (!Number.isSafeInteger(n) || n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_SAFE_INTEGER)) {
    throw new ConfigError(`${source} must be between ${spec.min ?? 0} and ${spec.max}, got ${raw}`);
  }
  return n;
}

/** Options a caller may pass programmatically (tests, embedding) on top of the defaults. */
export function resolveConfig(overrides: Partial<Config> = {}): Config {
  const config = { ...defaultConfig, ...overrides };
  validate(config);
  return config;
}

/**
 * Parses `latchkey serve` arguments and the environment. Returns the config, or throws
 * ConfigError naming the flag. Unknown flags are errors, not ignored.
 */
export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Config {
  const values: Record<string, string | number | boolean> = {};
  for (const spec of FLAGS) {
    const raw = env[spec.env];
    if (raw !== undefined && raw !== '') values[spec.key] = parseValue(spec, raw, `${spec.env}`);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS.find((f) => f.flag === name);
    if (spec === undefined) throw new ConfigError(`unknown option "${name}" (see latchkey serve --help)`);
    if (spec.kind === 'boolean' && eq < 0) {
      values[spec.key] = true;
      continue;
    }
    const raw = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (raw === undefined) throw new ConfigError(`${spec.flag} needs a value`);
    values[spec.key] = parseValue(spec, raw, spec.flag);
  }
  return resolveConfig(values as Partial<Config>);
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:\s,]+):\d{1,5}$/;

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)$/;

function validate(config: Config): void {
  for (const endpoint of config.etcdEndpoints === '' ? [] : config.etcdEndpoints.split(',')) {
    if (!HOST_PORT.test(endpoint.trim().replace(/^https?:\/\//, '')))
      throw new ConfigError(`--etcd-endpoints must list host:port endpoints separated by commas, got "${endpoint}"`);
  }
  if (config.backend === 'etcd' && config.etcdEndpoints === '')
    throw new ConfigError(
      '--backend etcd needs --etcd-endpoints host:port[,host:port...] (or LATCHKEY_ETCD_ENDPOINTS)',
    );
  if (config.backend === 'file' && config.lockDir === '') {
    throw new ConfigError(
      '--backend file needs --lock-dir (or LATCHKEY_LOCK_DIR): the directory to keep lock files in',
    );
  }
  for (const server of config.memcached === '' ? [] : config.memcached.split(',')) {
    if (!HOST_PORT.test(server.trim()))
      throw new ConfigError(`--memcached must list host:port servers separated by commas, got "${server}"`);
  }
  if (config.store === 'memcached' && config.memcached === '')
    throw new ConfigError('--store memcached needs --memcached host:port[,host:port...]');
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(config.listen)) {
    throw new ConfigError(`--listen must be host:port (e.g. 127.0.0.1:50051 or [::1]:50051), got "${config.listen}"`);
  }
  // The pattern allows five digits; ports stop at 65535, and past that only bind would say so.
  const port = Number(config.listen.slice(config.listen.lastIndexOf(':') + 1));
  if (port > 65535) throw new ConfigError(`--listen port must be 0-65535 (0 = any free port), got ${port}`);
  if (config.defaultTtlMs > config.maxTtlMs) {
    throw new ConfigError(
      `--default-ttl-ms (${config.defaultTtlMs}) must not exceed --max-ttl-ms (${config.maxTtlMs})`,
    );
  }
  // NOTE: lock names may hold '/', so with --etcd-prefix a/ and --etcd-election-prefix a/e/
  // election "x"'s keys would be lock "e/x"'s: one prefix must not begin the other.
  if (
    config.etcdElectionPrefix.startsWith(config.etcdPrefix) ||
    config.etcdPrefix.startsWith(config.etcdElectionPrefix)
  ) {
    throw new ConfigError(
      `--etcd-election-prefix "${config.etcdElectionPrefix}" and --etcd-prefix "${config.etcdPrefix}" overlap (one begins the other), so elections and locks would share keys: give them apart prefixes, e.g. latchkey/elections/ and latchkey/locks/`,
    );
  }
  const itemOverhead = MAX_NAME_BYTES + MAX_ENVELOPE_OVERHEAD;
  if (config.maxValueBytes + itemOverhead > config.lruMaxBytes) {
    throw new ConfigError(
      `--lru-max-bytes (${config.lruMaxBytes}) must be at least --max-value-bytes (${config.maxValueBytes}) + ${itemOverhead} (key and fence), or the LRU store could not hold a value it accepted`,
    );
  }
  if ((config.tlsCert === '') !== (config.tlsKey === ''))
    throw new ConfigError('--tls-cert and --tls-key go together: give both to serve TLS');
  if (config.tlsCa !== '' && config.tlsCert === '')
    throw new ConfigError('--tls-ca (mutual TLS) needs --tls-cert and --tls-key too');
  const host = config.listen.slice(0, config.listen.lastIndexOf(':'));
  if (config.tlsCert === '' && !config.insecure && !LOOPBACK.test(host)) {
    throw new ConfigError(
      `refusing plaintext on ${config.listen}, which is not a loopback address: give --tls-cert and --tls-key, or --insecure if the network is private`,
    );
  }
  if (config.metricsListen !== '') {
    if (
      !/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(config.metricsListen) ||
      Number(config.metricsListen.slice(config.metricsListen.lastIndexOf(':') + 1)) > 65535
    ) {
      throw new ConfigError(
        `--metrics-listen must be host:port (e.g. 127.0.0.1:9464; port 0 = any free port), got "${config.metricsListen}"`,
      );
    }
    // Metrics are plain HTTP whatever --tls-cert says: off loopback, only on a network declared private.
    const metricsHost = config.metricsListen.slice(0, config.metricsListen.lastIndexOf(':'));
    if (!config.insecure && !LOOPBACK.test(metricsHost)) {
      throw new ConfigError(
        `refusing to serve metrics in plaintext on ${config.metricsListen}, which is not a loopback address: use a loopback address, or --insecure if the network is private`,
      );
    }
  }
  if (!(LOG_LEVELS as readonly string[]).includes(config.logLevel))
    throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${config.logLevel}"`);
  if (config.maxMessageBytes < config.maxValueBytes + 64 * 1024) {
    throw new ConfigError(
      `--max-message-bytes (${config.maxMessageBytes}) must be at least --max-value-bytes (${config.maxValueBytes}) + 65536, or a request carrying the largest value would be refused`,
    );
  }
}

export function configHelp(): string {
  const rows = FLAGS.map(
    (f) =>
      `  ${`${f.flag}${f.kind === 'integer' ? ' N' : f.kind === 'string' ? ' VALUE' : ''}`.padEnd(26)}${f.help}\n  ${''.padEnd(26)}env ${f.env}, default ${f.default}`,
  );
  return rows.join('\n');
}
