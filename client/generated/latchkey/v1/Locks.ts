// Original file: proto/latchkey/v1/locks.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AcquireRequest as _latchkey_v1_AcquireRequest, AcquireRequest__Output as _latchkey_v1_AcquireRequest__Output } from '../../latchkey/v1/AcquireRequest.js';
import type { DescribeRequest as _latchkey_v1_DescribeRequest, DescribeRequest__Output as _latchkey_v1_DescribeRequest__Output } from '../../latchkey/v1/DescribeRequest.js';
import type { Lease as _latchkey_v1_Lease, Lease__Output as _latchkey_v1_Lease__Output } from '../../latchkey/v1/Lease.js';
import type { LockEvent as _latchkey_v1_LockEvent, LockEvent__Output as _latchkey_v1_LockEvent__Output } from '../../latchkey/v1/LockEvent.js';
import type { LockState as _latchkey_v1_LockState, LockState__Output as _latchkey_v1_LockState__Output } from '../../latchkey/v1/LockState.js';
import type { RefreshRequest as _latchkey_v1_RefreshRequest, RefreshRequest__Output as _latchkey_v1_RefreshRequest__Output } from '../../latchkey/v1/RefreshRequest.js';
import type { ReleaseRequest as _latchkey_v1_ReleaseRequest, ReleaseRequest__Output as _latchkey_v1_ReleaseRequest__Output } from '../../latchkey/v1/ReleaseRequest.js';
import type { ReleaseResponse as _latchkey_v1_ReleaseResponse, ReleaseResponse__Output as _latchkey_v1_ReleaseResponse__Output } from '../../latchkey/v1/ReleaseResponse.js';
import type { SessionRequest as _latchkey_v1_SessionRequest, SessionRequest__Output as _latchkey_v1_SessionRequest__Output } from '../../latchkey/v1/SessionRequest.js';
import type { SessionResponse as _latchkey_v1_SessionResponse, SessionResponse__Output as _latchkey_v1_SessionResponse__Output } from '../../latchkey/v1/SessionResponse.js';
import type { WatchRequest as _latchkey_v1_WatchRequest, WatchRequest__Output as _latchkey_v1_WatchRequest__Output } from '../../latchkey/v1/WatchRequest.js';

export interface LocksClient extends grpc.Client {
  /**
   * Acquire a lock. wait_ms = 0 tries once; wait_ms > 0 waits (FIFO where the backend
   * declares `fifo`) up to wait_ms, and never so long that the answer would miss the call's
   * deadline. Not granted in time: ABORTED, naming the lock and its current owner.
   * A wait that the deadline cuts short ends 50 ms + 1% of the time left (at most 10 min)
   * before the deadline the server reads: gRPC's C core (Python, C++, Ruby, PHP) sends its
   * deadline rounded up by up to 1% (1 s as "1010m"), and the answer must still get back
   * in time. To wait the whole wait_ms, set a deadline at least that much longer.
   */
  Acquire(argument: _latchkey_v1_AcquireRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  Acquire(argument: _latchkey_v1_AcquireRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  Acquire(argument: _latchkey_v1_AcquireRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  Acquire(argument: _latchkey_v1_AcquireRequest, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  /**
   * Acquire a lock. wait_ms = 0 tries once; wait_ms > 0 waits (FIFO where the backend
   * declares `fifo`) up to wait_ms, and never so long that the answer would miss the call's
   * deadline. Not granted in time: ABORTED, naming the lock and its current owner.
   * A wait that the deadline cuts short ends 50 ms + 1% of the time left (at most 10 min)
   * before the deadline the server reads: gRPC's C core (Python, C++, Ruby, PHP) sends its
   * deadline rounded up by up to 1% (1 s as "1010m"), and the answer must still get back
   * in time. To wait the whole wait_ms, set a deadline at least that much longer.
   */
  acquire(argument: _latchkey_v1_AcquireRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  acquire(argument: _latchkey_v1_AcquireRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  acquire(argument: _latchkey_v1_AcquireRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  acquire(argument: _latchkey_v1_AcquireRequest, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  
  /**
   * Read the lock's state without changing it.
   */
  Describe(argument: _latchkey_v1_DescribeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_LockState__Output>): grpc.ClientUnaryCall;
  Describe(argument: _latchkey_v1_DescribeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_LockState__Output>): grpc.ClientUnaryCall;
  Describe(argument: _latchkey_v1_DescribeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_LockState__Output>): grpc.ClientUnaryCall;
  Describe(argument: _latchkey_v1_DescribeRequest, callback: grpc.requestCallback<_latchkey_v1_LockState__Output>): grpc.ClientUnaryCall;
  /**
   * Read the lock's state without changing it.
   */
  describe(argument: _latchkey_v1_DescribeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_LockState__Output>): grpc.ClientUnaryCall;
  describe(argument: _latchkey_v1_DescribeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_LockState__Output>): grpc.ClientUnaryCall;
  describe(argument: _latchkey_v1_DescribeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_LockState__Output>): grpc.ClientUnaryCall;
  describe(argument: _latchkey_v1_DescribeRequest, callback: grpc.requestCallback<_latchkey_v1_LockState__Output>): grpc.ClientUnaryCall;
  
  /**
   * Extend a held lease. A lease that no longer holds the lock: FAILED_PRECONDITION.
   */
  Refresh(argument: _latchkey_v1_RefreshRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  Refresh(argument: _latchkey_v1_RefreshRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  Refresh(argument: _latchkey_v1_RefreshRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  Refresh(argument: _latchkey_v1_RefreshRequest, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  /**
   * Extend a held lease. A lease that no longer holds the lock: FAILED_PRECONDITION.
   */
  refresh(argument: _latchkey_v1_RefreshRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  refresh(argument: _latchkey_v1_RefreshRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  refresh(argument: _latchkey_v1_RefreshRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  refresh(argument: _latchkey_v1_RefreshRequest, callback: grpc.requestCallback<_latchkey_v1_Lease__Output>): grpc.ClientUnaryCall;
  
  /**
   * Release a held lease. A wrong or expired lease: FAILED_PRECONDITION, holder untouched.
   */
  Release(argument: _latchkey_v1_ReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _latchkey_v1_ReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _latchkey_v1_ReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _latchkey_v1_ReleaseRequest, callback: grpc.requestCallback<_latchkey_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Release a held lease. A wrong or expired lease: FAILED_PRECONDITION, holder untouched.
   */
  release(argument: _latchkey_v1_ReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _latchkey_v1_ReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _latchkey_v1_ReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _latchkey_v1_ReleaseRequest, callback: grpc.requestCallback<_latchkey_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * A lock session: one stream and one backend lease (one etcd lease on etcd) for many locks.
   * The first request carries `open` (a new session, or resume one by id); the first
   * response carries `opened`. Every request carries tagged `ops` (the first may too: they run
   * once the session is open), any number per message up to --max-batch, answered by tag in
   * any order: a waiting acquire never holds up the others. Every lock taken in the session
   * lives on the session's lease and one keepalive renews them all; each op answers with
   * exactly the codes and messages its unary RPC would.
   * 
   * How the stream ends:
   * - A request with `end`: the session ends cleanly. Waiting acquires are answered
   * CANCELLED, every lock is released at once, and the stream ends OK.
   * - The stream breaks (cancelled, deadline, connection lost), or the client half-closes
   * without `end`: nothing is released. Waiting acquires are withdrawn (answered
   * CANCELLED where the stream can still carry it, and a half-closed stream then ends OK);
   * the session and its locks stay until its TTL runs out, and the client may resume it
   * with `open.resume_id` before then (through any server on the same backend where the
   * backend declares `across_hosts`, else through the server that opened it). A resume
   * takes the session over from a stream still attached to it: that stream ends ABORTED.
   * - The session expires (or its backend loses its lease) while attached: waiting acquires
   * are answered FAILED_PRECONDITION and the stream ends FAILED_PRECONDITION.
   * - The server shuts down: waiting acquires are answered UNAVAILABLE, what runs is answered,
   * and the stream ends UNAVAILABLE (resume elsewhere where the backend allows it).
   * NOTE: why an explicit `end` rather than the half-close alone: a server on grpc-js sees a
   * client's cancel (its deadline too) first as a half-close, since the client's HTTP/2 stack
   * ends its side before it resets the stream; so a half-close cannot safely mean "release".
   * Stream-level mistakes end the stream with a status and leave the session to its TTL, like
   * a break: a first request without `open` or a second `open` (INVALID_ARGUMENT), a tag
   * already in use by an unanswered op (INVALID_ARGUMENT), a session that cannot be resumed
   * (FAILED_PRECONDITION), a backend without `sessions` (FAILED_PRECONDITION).
   */
  Session(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_latchkey_v1_SessionRequest, _latchkey_v1_SessionResponse__Output>;
  Session(options?: grpc.CallOptions): grpc.ClientDuplexStream<_latchkey_v1_SessionRequest, _latchkey_v1_SessionResponse__Output>;
  /**
   * A lock session: one stream and one backend lease (one etcd lease on etcd) for many locks.
   * The first request carries `open` (a new session, or resume one by id); the first
   * response carries `opened`. Every request carries tagged `ops` (the first may too: they run
   * once the session is open), any number per message up to --max-batch, answered by tag in
   * any order: a waiting acquire never holds up the others. Every lock taken in the session
   * lives on the session's lease and one keepalive renews them all; each op answers with
   * exactly the codes and messages its unary RPC would.
   * 
   * How the stream ends:
   * - A request with `end`: the session ends cleanly. Waiting acquires are answered
   * CANCELLED, every lock is released at once, and the stream ends OK.
   * - The stream breaks (cancelled, deadline, connection lost), or the client half-closes
   * without `end`: nothing is released. Waiting acquires are withdrawn (answered
   * CANCELLED where the stream can still carry it, and a half-closed stream then ends OK);
   * the session and its locks stay until its TTL runs out, and the client may resume it
   * with `open.resume_id` before then (through any server on the same backend where the
   * backend declares `across_hosts`, else through the server that opened it). A resume
   * takes the session over from a stream still attached to it: that stream ends ABORTED.
   * - The session expires (or its backend loses its lease) while attached: waiting acquires
   * are answered FAILED_PRECONDITION and the stream ends FAILED_PRECONDITION.
   * - The server shuts down: waiting acquires are answered UNAVAILABLE, what runs is answered,
   * and the stream ends UNAVAILABLE (resume elsewhere where the backend allows it).
   * NOTE: why an explicit `end` rather than the half-close alone: a server on grpc-js sees a
   * client's cancel (its deadline too) first as a half-close, since the client's HTTP/2 stack
   * ends its side before it resets the stream; so a half-close cannot safely mean "release".
   * Stream-level mistakes end the stream with a status and leave the session to its TTL, like
   * a break: a first request without `open` or a second `open` (INVALID_ARGUMENT), a tag
   * already in use by an unanswered op (INVALID_ARGUMENT), a session that cannot be resumed
   * (FAILED_PRECONDITION), a backend without `sessions` (FAILED_PRECONDITION).
   */
  session(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_latchkey_v1_SessionRequest, _latchkey_v1_SessionResponse__Output>;
  session(options?: grpc.CallOptions): grpc.ClientDuplexStream<_latchkey_v1_SessionRequest, _latchkey_v1_SessionResponse__Output>;
  
  /**
   * Follow a lock: first one STATE event with the current state, then an event for every
   * grant, release, expiry and waiter arriving or leaving, in order, until the caller
   * cancels or the server shuts down (the stream then ends cleanly).
   */
  Watch(argument: _latchkey_v1_WatchRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_latchkey_v1_LockEvent__Output>;
  Watch(argument: _latchkey_v1_WatchRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_latchkey_v1_LockEvent__Output>;
  /**
   * Follow a lock: first one STATE event with the current state, then an event for every
   * grant, release, expiry and waiter arriving or leaving, in order, until the caller
   * cancels or the server shuts down (the stream then ends cleanly).
   */
  watch(argument: _latchkey_v1_WatchRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_latchkey_v1_LockEvent__Output>;
  watch(argument: _latchkey_v1_WatchRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_latchkey_v1_LockEvent__Output>;
  
}

export interface LocksHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Acquire a lock. wait_ms = 0 tries once; wait_ms > 0 waits (FIFO where the backend
   * declares `fifo`) up to wait_ms, and never so long that the answer would miss the call's
   * deadline. Not granted in time: ABORTED, naming the lock and its current owner.
   * A wait that the deadline cuts short ends 50 ms + 1% of the time left (at most 10 min)
   * before the deadline the server reads: gRPC's C core (Python, C++, Ruby, PHP) sends its
   * deadline rounded up by up to 1% (1 s as "1010m"), and the answer must still get back
   * in time. To wait the whole wait_ms, set a deadline at least that much longer.
   */
  Acquire: grpc.handleUnaryCall<_latchkey_v1_AcquireRequest__Output, _latchkey_v1_Lease>;
  
  /**
   * Read the lock's state without changing it.
   */
  Describe: grpc.handleUnaryCall<_latchkey_v1_DescribeRequest__Output, _latchkey_v1_LockState>;
  
  /**
   * Extend a held lease. A lease that no longer holds the lock: FAILED_PRECONDITION.
   */
  Refresh: grpc.handleUnaryCall<_latchkey_v1_RefreshRequest__Output, _latchkey_v1_Lease>;
  
  /**
   * Release a held lease. A wrong or expired lease: FAILED_PRECONDITION, holder untouched.
   */
  Release: grpc.handleUnaryCall<_latchkey_v1_ReleaseRequest__Output, _latchkey_v1_ReleaseResponse>;
  
  /**
   * A lock session: one stream and one backend lease (one etcd lease on etcd) for many locks.
   * The first request carries `open` (a new session, or resume one by id); the first
   * response carries `opened`. Every request carries tagged `ops` (the first may too: they run
   * once the session is open), any number per message up to --max-batch, answered by tag in
   * any order: a waiting acquire never holds up the others. Every lock taken in the session
   * lives on the session's lease and one keepalive renews them all; each op answers with
   * exactly the codes and messages its unary RPC would.
   * 
   * How the stream ends:
   * - A request with `end`: the session ends cleanly. Waiting acquires are answered
   * CANCELLED, every lock is released at once, and the stream ends OK.
   * - The stream breaks (cancelled, deadline, connection lost), or the client half-closes
   * without `end`: nothing is released. Waiting acquires are withdrawn (answered
   * CANCELLED where the stream can still carry it, and a half-closed stream then ends OK);
   * the session and its locks stay until its TTL runs out, and the client may resume it
   * with `open.resume_id` before then (through any server on the same backend where the
   * backend declares `across_hosts`, else through the server that opened it). A resume
   * takes the session over from a stream still attached to it: that stream ends ABORTED.
   * - The session expires (or its backend loses its lease) while attached: waiting acquires
   * are answered FAILED_PRECONDITION and the stream ends FAILED_PRECONDITION.
   * - The server shuts down: waiting acquires are answered UNAVAILABLE, what runs is answered,
   * and the stream ends UNAVAILABLE (resume elsewhere where the backend allows it).
   * NOTE: why an explicit `end` rather than the half-close alone: a server on grpc-js sees a
   * client's cancel (its deadline too) first as a half-close, since the client's HTTP/2 stack
   * ends its side before it resets the stream; so a half-close cannot safely mean "release".
   * Stream-level mistakes end the stream with a status and leave the session to its TTL, like
   * a break: a first request without `open` or a second `open` (INVALID_ARGUMENT), a tag
   * already in use by an unanswered op (INVALID_ARGUMENT), a session that cannot be resumed
   * (FAILED_PRECONDITION), a backend without `sessions` (FAILED_PRECONDITION).
   */
  Session: grpc.handleBidiStreamingCall<_latchkey_v1_SessionRequest__Output, _latchkey_v1_SessionResponse>;
  
  /**
   * Follow a lock: first one STATE event with the current state, then an event for every
   * grant, release, expiry and waiter arriving or leaving, in order, until the caller
   * cancels or the server shuts down (the stream then ends cleanly).
   */
  Watch: grpc.handleServerStreamingCall<_latchkey_v1_WatchRequest__Output, _latchkey_v1_LockEvent>;
  
}

export interface LocksDefinition extends grpc.ServiceDefinition {
  Acquire: MethodDefinition<_latchkey_v1_AcquireRequest, _latchkey_v1_Lease, _latchkey_v1_AcquireRequest__Output, _latchkey_v1_Lease__Output>
  Describe: MethodDefinition<_latchkey_v1_DescribeRequest, _latchkey_v1_LockState, _latchkey_v1_DescribeRequest__Output, _latchkey_v1_LockState__Output>
  Refresh: MethodDefinition<_latchkey_v1_RefreshRequest, _latchkey_v1_Lease, _latchkey_v1_RefreshRequest__Output, _latchkey_v1_Lease__Output>
  Release: MethodDefinition<_latchkey_v1_ReleaseRequest, _latchkey_v1_ReleaseResponse, _latchkey_v1_ReleaseRequest__Output, _latchkey_v1_ReleaseResponse__Output>
  Session: MethodDefinition<_latchkey_v1_SessionRequest, _latchkey_v1_SessionResponse, _latchkey_v1_SessionRequest__Output, _latchkey_v1_SessionResponse__Output>
  Watch: MethodDefinition<_latchkey_v1_WatchRequest, _latchkey_v1_LockEvent, _latchkey_v1_WatchRequest__Output, _latchkey_v1_LockEvent__Output>
}
