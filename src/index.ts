// The server API: embed latchkey in a Node process.
export { createServer, type LatchkeyServer, type ServerOptions } from './server.js';
export { parseConfig, resolveConfig, defaultConfig, ConfigError, FLAGS, type Config } from './config.js';
export { createLogger, lineLogger, LOG_LEVELS, type Logger, type LogLevel } from './log.js';
export type { Capabilities, LockBackend, Lease, LockState } from './locks/backend.js';
export type { CacheStore, Item, Outcome } from './cache/store.js';
