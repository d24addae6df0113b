// The latchkey client SDK: the @latchkey/client package (and "latchkey/client"). Public types are the SDK's own
// (bigint, Date, Buffer); the wire shapes of ./common (the wire module) stay internal.
export {
  connect,
  DEFAULT_DEADLINE_MS,
  DEFAULT_RETRY,
  DEFAULT_TTL_MS,
  type Capabilities,
  type ConnectOptions,
  type DescribeOptions,
  type LatchkeyClient,
  type LockEvent,
  type LockEventType,
  type LockHolder,
  type LockMode,
  type LockOptions,
  type LockState,
  type LockWaiter,
  type WatchOptions,
} from './client.js';
export type { Pem, TlsOptions, TokenSource } from './credentials.js';
export type { LockHandle, LockHandleState } from './lock-handle.js';
export type {
  CampaignOptions,
  Leader,
  LeaderOptions,
  Leadership,
  LeadershipState,
  ObserveOptions,
} from './elections.js';
export type {
  CacheClient,
  CacheItem,
  CacheValue,
  DeleteOptions,
  Fence,
  FencedWriteOptions,
  GetOrSetOptions,
  IncrOptions,
  UpdateFn,
  UpdateOptions,
  WriteOptions,
} from './cache.js';
export type { CallOptions, RetryOptions } from './unary-call.js';
export type { PipelineOptions } from './pipeline.js';
export type { SessionOptions } from './session.js';
export {
  AbortError,
  CancelledError,
  CasConflictError,
  DeadlineExceededError,
  FailedPreconditionError,
  FencedOutError,
  fromStatus,
  InternalError,
  InvalidArgumentError,
  LatchkeyError,
  LeaseLostError,
  LockBusyError,
  NotElectedError,
  NotHolderError,
  NotLeaderError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  type LatchkeyErrorOptions,
} from './errors.js';
