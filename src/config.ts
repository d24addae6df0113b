// Flags and environment → one validated Config. Every flag has an env var; a flag beats its
// env var, which beats the default. Messages say which flag is wrong and what it accepts.
import { MAX_ENVELOPE_OVERHEAD } from './cache/fencing.js';
import { LOG_LEVELS, type LogLevel } from './log.js';
import { MAX_NAME_BYTES } from './validate.js';

/**
 * What `latchkey serve` runs with: each field is one flag (named beside it, with its env
 * var LATCHKEY_<FLAG>; see FLAGS below for the accepted range and the help text). Numbers
 * are whole; a range that starts above 0 means 0 is refused. resolveConfig() checks the
 * interactions named here, with a ConfigError naming both flags.
 */
export interface Config {
  /**
   * --listen: host:port to serve gRPC on. Default 127.0.0.1:50051; port 0 = any free port
   * (listen() resolves with the one bound). An address that is not loopback needs TLS
   * (tlsCert and tlsKey) or `insecure`.
   */
  readonly listen: string;
  /**
   * --backend: the lock backend of a request that leaves `backend` empty. Default memory;
   * file needs `lockDir`, etcd needs `etcdEndpoints`.
   */
  readonly backend: string;
  /**
   * --store: the cache store of a request that leaves `store` empty. Default lru; memcached needs
   * `memcached`.
   */
  readonly store: string;
  /**
   * --default-ttl-ms: lease TTL in ms for an Acquire that sends ttl_ms 0 (a request cannot ask
   * for a TTL of 0). Default 15_000; 10 ms to 7 days; at most `maxTtlMs`.
   */
  readonly defaultTtlMs: number;
  /**
   * --max-ttl-ms: the longest lease TTL a request may ask for, in ms. Default 1 day; 10 ms to 7
   * days; at least `defaultTtlMs`.
   */
  readonly maxTtlMs: number;
  /**
   * --max-wait-ms: the longest wait_ms an Acquire may ask for, in ms. Default 1 hour; up to
   * 1 day; 0 = no request may wait (each Acquire tries once). A wait also ends at the call's
   * deadline, a little before it, so that the caller is told who holds the lock.
   */
  readonly maxWaitMs: number;
  /**
   * --max-value-bytes: the largest cache value accepted, in bytes. Default 1 MiB; 1 B to
   * 64 MiB. `maxMessageBytes` must exceed it by 64 KiB, and `lruMaxBytes` must hold one such
   * value with its key and fence; memcached also refuses items over `memcachedMaxItemBytes`.
   */
  readonly maxValueBytes: number;
  /**
   * --lru-max-entries: the most entries the LRU store keeps before it evicts the least
   * recently used. Default 100_000; 1 to 2^31. Memory for the index is reserved up front.
   */
  readonly lruMaxEntries: number;
  /**
   * --lru-max-bytes: the most bytes (keys + values) the LRU store keeps before it evicts.
   * Default 256 MiB; at least 1 KiB, and at least `maxValueBytes` plus a key and a fence.
   * Whichever of this and `lruMaxEntries` is reached first evicts.
   */
  readonly lruMaxBytes: number;
  /**
   * --lock-dir: the file lock backend's directory (created if missing; one host's local
   * filesystem, not NFS). Default '' = the file backend is off.
   */
  readonly lockDir: string;
  /**
   * --shutdown-grace-ms: at shutdown, how long in-flight calls may still finish, in ms,
   * before they are cut off. Default 5_000; up to 10 minutes; 0 = cut them off at once. Lock
   * waiters never wait for it: they fail with UNAVAILABLE as shutdown begins.
   */
  readonly shutdownGraceMs: number;
  /**
   * --max-batch: the most keys in one GetMany or SetMany and the most operations in one
   * Pipeline frame; a larger one is refused whole (RESOURCE_EXHAUSTED). Default 1000; 1 to
   * 100_000.
   */
  readonly maxBatch: number;
  /**
   * --memcached: memcached servers, host:port comma-separated (keys placed by ketama, as
   * libmemcached clients place them). Default '' = the memcached store is off.
   */
  readonly memcached: string;
  /**
   * --memcached-max-item-bytes: memcached's item size limit in bytes (set it to the servers'
   * -I); a value whose item would be larger is refused with INVALID_ARGUMENT. Default 1 MiB;
   * 1 KiB to 1 GiB.
   */
  readonly memcachedMaxItemBytes: number;
  /**
   * --memcached-timeout-ms: how long a memcached server may leave requests unanswered, in
   * ms (and how long it may take to connect), before it counts as unavailable (UNAVAILABLE).
   * A request that may have reached it is never sent again, except a get: a write whose answer
   * is lost may or may not have been applied. Default 1_000; 10 ms to 1 minute.
   */
  readonly memcachedTimeoutMs: number;
  /**
   * --tombstone-retention-ms: how long a fenced Delete's tombstone keeps holders of older
   * fencing tokens from writing the key back, in ms (README "Tombstones"). Default 0 =
   * `maxTtlMs`; otherwise at least `maxTtlMs` (a tombstone must outlast the longest lease), up
   * to 365 days.
   */
  readonly tombstoneRetentionMs: number;
  /** --etcd-endpoints: etcd client URLs, host:port comma-separated. Default '' = the etcd backend is off. */
  readonly etcdEndpoints: string;
  /**
   * --etcd-prefix: the etcd key prefix of locks: lock NAME is the one `etcdctl lock
   * <prefix>NAME` takes. Default latchkey/locks/. Servers sharing locks must share it.
   */
  readonly etcdPrefix: string;
  /** etcd key prefix of elections: election <name> is `etcdctl elect <etcdElectionPrefix><name>`. */
  readonly etcdElectionPrefix: string;
  /** --tls-cert: PEM certificate (chain) to serve TLS with; needs `tlsKey`. Default '' = plaintext. */
  readonly tlsCert: string;
  /** --tls-key: the PEM private key of `tlsCert`. Default ''. */
  readonly tlsKey: string;
  /**
   * --tls-ca: PEM CA bundle; set = mutual TLS, every client must present a certificate it
   * signed. Needs `tlsCert`. Default '' = no client certificate asked for.
   */
  readonly tlsCa: string;
  /**
   * --insecure: allow plaintext gRPC (and the plain-HTTP `metricsListen`) on an address that
   * is not loopback. Default false.
   */
  readonly insecure: boolean;
  /**
   * --auth-tokens-file: require `authorization: Bearer <token>` with a token listed in this
   * file (one per line, optional name prefixes after it; re-read by reloadAuth(), SIGHUP).
   * Default '' = no authentication.
   */
  readonly authTokensFile: string;
  /**
   * --reflection: who may use server reflection: auth (a token, when `authTokensFile` is
   * set), public (never a token), off. Default auth.
   */
  readonly reflection: 'auth' | 'public' | 'off';
  /**
   * --max-waiters-per-lock: the most Acquire calls waiting on one lock name through this
   * server; past it RESOURCE_EXHAUSTED. Default 1_000; 1 to 1_000_000. Counted per server:
   * waiters through other servers are not.
   */
  readonly maxWaitersPerLock: number;
  /**
   * --max-waiters: the most Acquire calls waiting through this server in all. Default 10_000; 1 to
   * 10_000_000.
   */
  readonly maxWaiters: number;
  /**
   * --max-streams: the most Cache/Pipeline streams open at once; past it RESOURCE_EXHAUSTED.
   * Default 1_000; 1 to 1_000_000.
   */
  readonly maxStreams: number;
  /**
   * --max-message-bytes: the largest gRPC message accepted or sent, in bytes. Default
   * 16 MiB; 64 KiB to 1 GiB; at least `maxValueBytes` + 64 KiB. A GetMany reply stays within
   * it (values past it are refused per key), and Pipeline reply frames within half of it.
   */
  readonly maxMessageBytes: number;
  /**
   * --metrics-listen: host:port to serve Prometheus metrics on (GET /metrics, plain HTTP;
   * port 0 = any free port). Loopback only unless `insecure`. Default '' = not served.
   */
  readonly metricsListen: string;
  /**
   * --log-level: the least severe event logged: fatal, error, warn, info (default), debug (a line
   * per grant and expiry) or trace.
   */
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
    help: 'LRU store: most entries kept before evicting the least recently used (the index grows with the entries, 24-28 bytes each)',
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
    help: 'enable the memcached store on these servers: host:port[,host:port...] (keys placed by ketama, as libmemcached clients place them)',
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
    help: 'how long a memcached server may leave requests unanswered (or take to connect) before it counts as unavailable',
  },
  {
    key: 'tombstoneRetentionMs',
    flag: '--tombstone-retention-ms',
    env: 'LATCHKEY_TOMBSTONE_RETENTION_MS',
    kind: 'integer',
    default: 0,
    min: 0,
    max: 365 * DAY_MS,
    help: 'how long a fenced delete keeps holders of older fencing tokens from writing the key back; 0 = --max-ttl-ms, and no less is accepted (see Tombstones)',
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

/** The tombstone retention in force: --tombstone-retention-ms, or --max-ttl-ms for 0. */
export function tombstoneRetentionMs(config: Config): number {
  return config.tombstoneRetentionMs === 0 ? config.maxTtlMs : config.tombstoneRetentionMs;
}

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
  if (config.tombstoneRetentionMs !== 0 && config.tombstoneRetentionMs < config.maxTtlMs) {
    throw new ConfigError(
      `--tombstone-retention-ms (${config.tombstoneRetentionMs}) must be at least --max-ttl-ms (${config.maxTtlMs}), or 0 for the same: a tombstone must outlast the longest lease, or a fenced write delayed (a paused holder, a slow network) by less than one lease could bring a deleted key back`,
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
  const labels = FLAGS.map((f) => `${f.flag}${f.kind === 'integer' ? ' N' : f.kind === 'string' ? ' VALUE' : ''}`);
  // The help column starts two spaces after the longest flag, so no flag runs into its text.
  const width = Math.max(...labels.map((label) => label.length)) + 2;
  const rows = FLAGS.map(
    (f, i) =>
      `  ${labels[i]!.padEnd(width)}${f.help}\n  ${''.padEnd(width)}env ${f.env}, default ${f.default === '' ? '(none)' : f.default}`,
  );
  return rows.join('\n');
}
