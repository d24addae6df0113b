// Flags and environment → one validated Config. Every flag has an env var; a flag beats its
// env var, which beats the default. Messages say which flag is wrong and what it accepts.
import { MAX_ENVELOPE_OVERHEAD } from './cache/fencing.js';
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
}

type Kind = 'string' | 'integer';

interface FlagSpec {
  readonly key: keyof Config;
  readonly flag: string;
  readonly env: string;
  readonly kind: Kind;
  readonly default: string | number;
  readonly help: string;
  /** Inclusive bounds for integers. */
  readonly min?: number;
  readonly max?: number;
}

const DAY_MS = 86_400_000;

export const FLAGS: readonly FlagSpec[] = [
  { key: 'listen', flag: '--listen', env: 'LATCHKEY_LISTEN', kind: 'string', default: '127.0.0.1:50051', help: 'address to serve gRPC on, host:port (port 0 = any free port)' },
  { key: 'backend', flag: '--backend', env: 'LATCHKEY_BACKEND', kind: 'string', default: 'memory', help: 'default lock backend for requests with an empty `backend`' },
  { key: 'store', flag: '--store', env: 'LATCHKEY_STORE', kind: 'string', default: 'lru', help: 'default cache store for requests with an empty `store`' },
  { key: 'defaultTtlMs', flag: '--default-ttl-ms', env: 'LATCHKEY_DEFAULT_TTL_MS', kind: 'integer', default: 15_000, min: 10, max: 7 * DAY_MS, help: 'lease TTL when Acquire sends ttl_ms = 0' },
  { key: 'maxTtlMs', flag: '--max-ttl-ms', env: 'LATCHKEY_MAX_TTL_MS', kind: 'integer', default: DAY_MS, min: 10, max: 7 * DAY_MS, help: 'largest lease TTL a request may ask for' },
  { key: 'maxWaitMs', flag: '--max-wait-ms', env: 'LATCHKEY_MAX_WAIT_MS', kind: 'integer', default: 3_600_000, min: 0, max: DAY_MS, help: 'largest wait_ms a request may ask for' },
  { key: 'maxValueBytes', flag: '--max-value-bytes', env: 'LATCHKEY_MAX_VALUE_BYTES', kind: 'integer', default: 1024 * 1024, min: 1, max: 64 * 1024 * 1024, help: 'largest cache value accepted' },
  { key: 'lruMaxEntries', flag: '--lru-max-entries', env: 'LATCHKEY_LRU_MAX_ENTRIES', kind: 'integer', default: 100_000, min: 1, max: 2 ** 31, help: 'LRU store: most entries kept before evicting the least recently used (memory for the index is reserved up front)' },
  { key: 'lruMaxBytes', flag: '--lru-max-bytes', env: 'LATCHKEY_LRU_MAX_BYTES', kind: 'integer', default: 256 * 1024 * 1024, min: 1024, max: 2 ** 50, help: 'LRU store: most bytes (keys + values) kept before evicting' },
  { key: 'lockDir', flag: '--lock-dir', env: 'LATCHKEY_LOCK_DIR', kind: 'string', default: '', help: "enable the file lock backend with lock files in this directory, created if missing (one host's local filesystem, not NFS)" },
  { key: 'memcached', flag: '--memcached', env: 'LATCHKEY_MEMCACHED', kind: 'string', default: '', help: 'enable the memcached store on these servers: host:port[,host:port...] (keys spread by hash)' },
  { key: 'memcachedMaxItemBytes', flag: '--memcached-max-item-bytes', env: 'LATCHKEY_MEMCACHED_MAX_ITEM_BYTES', kind: 'integer', default: 1024 * 1024, min: 1024, max: 1024 * 1024 * 1024, help: "memcached's item size limit (its -I); larger items are refused with INVALID_ARGUMENT" },
  { key: 'memcachedTimeoutMs', flag: '--memcached-timeout-ms', env: 'LATCHKEY_MEMCACHED_TIMEOUT_MS', kind: 'integer', default: 1_000, min: 10, max: 60_000, help: 'how long a memcached request may take before that server counts as unavailable' },
  { key: 'etcdEndpoints', flag: '--etcd-endpoints', env: 'LATCHKEY_ETCD_ENDPOINTS', kind: 'string', default: '', help: 'enable the etcd lock backend on this cluster: host:port[,host:port...] (client URLs)' },
  { key: 'etcdPrefix', flag: '--etcd-prefix', env: 'LATCHKEY_ETCD_PREFIX', kind: 'string', default: 'latchkey/locks/', help: 'etcd key prefix of locks; lock NAME is the one `etcdctl lock PREFIXNAME` takes' },
  { key: 'maxBatch', flag: '--max-batch', env: 'LATCHKEY_MAX_BATCH', kind: 'integer', default: 1000, min: 1, max: 100_000, help: 'most keys in one GetMany/SetMany, and most operations in one Pipeline frame' },
  { key: 'shutdownGraceMs', flag: '--shutdown-grace-ms', env: 'LATCHKEY_SHUTDOWN_GRACE_MS', kind: 'integer', default: 5_000, min: 0, max: 600_000, help: 'on SIGINT/SIGTERM, how long in-flight calls may finish before they are cut off' },
];

export const defaultConfig: Config = Object.fromEntries(FLAGS.map((f) => [f.key, f.default])) as unknown as Config;

export class ConfigError extends TypeError {
  override name = 'ConfigError';
}

function parseValue(spec: FlagSpec, raw: string, source: string): string | number {
  if (spec.kind === 'string') {
    if (raw.trim() === '' && spec.default !== '') throw new ConfigError(`${source} must not be empty`);
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
  const values: Record<string, string | number> = {};
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
    const raw = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (raw === undefined) throw new ConfigError(`${spec.flag} needs a value`);
    values[spec.key] = parseValue(spec, raw, spec.flag);
  }
  return resolveConfig(values as Partial<Config>);
}

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:\s,]+):\d{1,5}$/;

function validate(config: Config): void {
  for (const endpoint of config.etcdEndpoints === '' ? [] : config.etcdEndpoints.split(',')) {
    if (!HOST_PORT.test(endpoint.trim().replace(/^https?:\/\//, ''))) throw new ConfigError(`--etcd-endpoints must list host:port endpoints separated by commas, got "${endpoint}"`);
  }
  if (config.backend === 'etcd' && config.etcdEndpoints === '') throw new ConfigError('--backend etcd needs --etcd-endpoints host:port[,host:port...] (or LATCHKEY_ETCD_ENDPOINTS)');
  if (config.backend === 'file' && config.lockDir === '') {
    throw new ConfigError('--backend file needs --lock-dir (or LATCHKEY_LOCK_DIR): the directory to keep lock files in');
  }
  for (const server of config.memcached === '' ? [] : config.memcached.split(',')) {
    if (!HOST_PORT.test(server.trim())) throw new ConfigError(`--memcached must list host:port servers separated by commas, got "${server}"`);
  }
  if (config.store === 'memcached' && config.memcached === '') throw new ConfigError('--store memcached needs --memcached host:port[,host:port...]');
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(config.listen)) {
    throw new ConfigError(`--listen must be host:port (e.g. 127.0.0.1:50051 or [::1]:50051), got "${config.listen}"`);
  }
  // The pattern allows five digits; ports stop at 65535, and past that only bind would say so.
  const port = Number(config.listen.slice(config.listen.lastIndexOf(':') + 1));
  if (port > 65535) throw new ConfigError(`--listen port must be 0-65535 (0 = any free port), got ${port}`);
  if (config.defaultTtlMs > config.maxTtlMs) {
    throw new ConfigError(`--default-ttl-ms (${config.defaultTtlMs}) must not exceed --max-ttl-ms (${config.maxTtlMs})`);
  }
  const itemOverhead = MAX_NAME_BYTES + MAX_ENVELOPE_OVERHEAD;
  if (config.maxValueBytes + itemOverhead > config.lruMaxBytes) {
    throw new ConfigError(`--lru-max-bytes (${config.lruMaxBytes}) must be at least --max-value-bytes (${config.maxValueBytes}) + ${itemOverhead} (key and fence), or the LRU store could not hold a value it accepted`);
  }
}

export function configHelp(): string {
  const rows = FLAGS.map((f) => `  ${`${f.flag} ${f.kind === 'integer' ? 'N' : 'VALUE'}`.padEnd(26)}${f.help}\n  ${''.padEnd(26)}env ${f.env}, default ${f.default}`);
  return rows.join('\n');
}
