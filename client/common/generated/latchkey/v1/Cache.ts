// Original file: proto/latchkey/v1/cache.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AddRequest as _latchkey_v1_AddRequest, AddRequest__Output as _latchkey_v1_AddRequest__Output } from '../../latchkey/v1/AddRequest.js';
import type { AddResponse as _latchkey_v1_AddResponse, AddResponse__Output as _latchkey_v1_AddResponse__Output } from '../../latchkey/v1/AddResponse.js';
import type { CasRequest as _latchkey_v1_CasRequest, CasRequest__Output as _latchkey_v1_CasRequest__Output } from '../../latchkey/v1/CasRequest.js';
import type { CasResponse as _latchkey_v1_CasResponse, CasResponse__Output as _latchkey_v1_CasResponse__Output } from '../../latchkey/v1/CasResponse.js';
import type { DeleteRequest as _latchkey_v1_DeleteRequest, DeleteRequest__Output as _latchkey_v1_DeleteRequest__Output } from '../../latchkey/v1/DeleteRequest.js';
import type { DeleteResponse as _latchkey_v1_DeleteResponse, DeleteResponse__Output as _latchkey_v1_DeleteResponse__Output } from '../../latchkey/v1/DeleteResponse.js';
import type { GetManyRequest as _latchkey_v1_GetManyRequest, GetManyRequest__Output as _latchkey_v1_GetManyRequest__Output } from '../../latchkey/v1/GetManyRequest.js';
import type { GetManyResponse as _latchkey_v1_GetManyResponse, GetManyResponse__Output as _latchkey_v1_GetManyResponse__Output } from '../../latchkey/v1/GetManyResponse.js';
import type { GetRequest as _latchkey_v1_GetRequest, GetRequest__Output as _latchkey_v1_GetRequest__Output } from '../../latchkey/v1/GetRequest.js';
import type { GetResponse as _latchkey_v1_GetResponse, GetResponse__Output as _latchkey_v1_GetResponse__Output } from '../../latchkey/v1/GetResponse.js';
import type { IncrRequest as _latchkey_v1_IncrRequest, IncrRequest__Output as _latchkey_v1_IncrRequest__Output } from '../../latchkey/v1/IncrRequest.js';
import type { IncrResponse as _latchkey_v1_IncrResponse, IncrResponse__Output as _latchkey_v1_IncrResponse__Output } from '../../latchkey/v1/IncrResponse.js';
import type { PipelineRequest as _latchkey_v1_PipelineRequest, PipelineRequest__Output as _latchkey_v1_PipelineRequest__Output } from '../../latchkey/v1/PipelineRequest.js';
import type { PipelineResponse as _latchkey_v1_PipelineResponse, PipelineResponse__Output as _latchkey_v1_PipelineResponse__Output } from '../../latchkey/v1/PipelineResponse.js';
import type { SetManyRequest as _latchkey_v1_SetManyRequest, SetManyRequest__Output as _latchkey_v1_SetManyRequest__Output } from '../../latchkey/v1/SetManyRequest.js';
import type { SetManyResponse as _latchkey_v1_SetManyResponse, SetManyResponse__Output as _latchkey_v1_SetManyResponse__Output } from '../../latchkey/v1/SetManyResponse.js';
import type { SetRequest as _latchkey_v1_SetRequest, SetRequest__Output as _latchkey_v1_SetRequest__Output } from '../../latchkey/v1/SetRequest.js';
import type { SetResponse as _latchkey_v1_SetResponse, SetResponse__Output as _latchkey_v1_SetResponse__Output } from '../../latchkey/v1/SetResponse.js';
import type { TouchRequest as _latchkey_v1_TouchRequest, TouchRequest__Output as _latchkey_v1_TouchRequest__Output } from '../../latchkey/v1/TouchRequest.js';
import type { TouchResponse as _latchkey_v1_TouchResponse, TouchResponse__Output as _latchkey_v1_TouchResponse__Output } from '../../latchkey/v1/TouchResponse.js';

/**
 * Retries: a method marked with `idempotency_level` may be sent again when an attempt's
 * outcome is unknown (the SDK does so on UNAVAILABLE, within the call's deadline). Writes are
 * not marked: a copy that reached the server may still be applied after the retry, over a
 * newer write.
 */
export interface CacheClient extends grpc.Client {
  /**
   * Store only if the key is absent: STORED or EXISTS.
   */
  Add(argument: _latchkey_v1_AddRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_AddResponse__Output>): grpc.ClientUnaryCall;
  Add(argument: _latchkey_v1_AddRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_AddResponse__Output>): grpc.ClientUnaryCall;
  Add(argument: _latchkey_v1_AddRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_AddResponse__Output>): grpc.ClientUnaryCall;
  Add(argument: _latchkey_v1_AddRequest, callback: grpc.requestCallback<_latchkey_v1_AddResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Store only if the key is absent: STORED or EXISTS.
   */
  add(argument: _latchkey_v1_AddRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_AddResponse__Output>): grpc.ClientUnaryCall;
  add(argument: _latchkey_v1_AddRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_AddResponse__Output>): grpc.ClientUnaryCall;
  add(argument: _latchkey_v1_AddRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_AddResponse__Output>): grpc.ClientUnaryCall;
  add(argument: _latchkey_v1_AddRequest, callback: grpc.requestCallback<_latchkey_v1_AddResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Store only if the key's cas still equals `cas`: STORED, EXISTS (changed) or NOT_FOUND
   * (absent, expired or deleted).
   */
  Cas(argument: _latchkey_v1_CasRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_CasResponse__Output>): grpc.ClientUnaryCall;
  Cas(argument: _latchkey_v1_CasRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_CasResponse__Output>): grpc.ClientUnaryCall;
  Cas(argument: _latchkey_v1_CasRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_CasResponse__Output>): grpc.ClientUnaryCall;
  Cas(argument: _latchkey_v1_CasRequest, callback: grpc.requestCallback<_latchkey_v1_CasResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Store only if the key's cas still equals `cas`: STORED, EXISTS (changed) or NOT_FOUND
   * (absent, expired or deleted).
   */
  cas(argument: _latchkey_v1_CasRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_CasResponse__Output>): grpc.ClientUnaryCall;
  cas(argument: _latchkey_v1_CasRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_CasResponse__Output>): grpc.ClientUnaryCall;
  cas(argument: _latchkey_v1_CasRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_CasResponse__Output>): grpc.ClientUnaryCall;
  cas(argument: _latchkey_v1_CasRequest, callback: grpc.requestCallback<_latchkey_v1_CasResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Delete; a non-zero `cas` must match: DELETED, NOT_FOUND or EXISTS (cas mismatch). A
   * Delete without a fence also lifts the key's tombstone (see Fence): with cas 0 whatever it
   * answers, with a cas when it answers DELETED.
   */
  Delete(argument: _latchkey_v1_DeleteRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_DeleteResponse__Output>): grpc.ClientUnaryCall;
  Delete(argument: _latchkey_v1_DeleteRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_DeleteResponse__Output>): grpc.ClientUnaryCall;
  Delete(argument: _latchkey_v1_DeleteRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_DeleteResponse__Output>): grpc.ClientUnaryCall;
  Delete(argument: _latchkey_v1_DeleteRequest, callback: grpc.requestCallback<_latchkey_v1_DeleteResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Delete; a non-zero `cas` must match: DELETED, NOT_FOUND or EXISTS (cas mismatch). A
   * Delete without a fence also lifts the key's tombstone (see Fence): with cas 0 whatever it
   * answers, with a cas when it answers DELETED.
   */
  delete(argument: _latchkey_v1_DeleteRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_DeleteResponse__Output>): grpc.ClientUnaryCall;
  delete(argument: _latchkey_v1_DeleteRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_DeleteResponse__Output>): grpc.ClientUnaryCall;
  delete(argument: _latchkey_v1_DeleteRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_DeleteResponse__Output>): grpc.ClientUnaryCall;
  delete(argument: _latchkey_v1_DeleteRequest, callback: grpc.requestCallback<_latchkey_v1_DeleteResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Read a key: `found`, its value and cas. With `lease_ms`, a miss also answers a lease (see
   * Leases below). NOTE: marked safe to resend, and it is with a lease too: a lease taken by
   * an attempt whose answer was lost only makes the resent Get wait, until it runs out.
   */
  Get(argument: _latchkey_v1_GetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_GetResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _latchkey_v1_GetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_GetResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _latchkey_v1_GetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_GetResponse__Output>): grpc.ClientUnaryCall;
  Get(argument: _latchkey_v1_GetRequest, callback: grpc.requestCallback<_latchkey_v1_GetResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Read a key: `found`, its value and cas. With `lease_ms`, a miss also answers a lease (see
   * Leases below). NOTE: marked safe to resend, and it is with a lease too: a lease taken by
   * an attempt whose answer was lost only makes the resent Get wait, until it runs out.
   */
  get(argument: _latchkey_v1_GetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_GetResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _latchkey_v1_GetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_GetResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _latchkey_v1_GetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_GetResponse__Output>): grpc.ClientUnaryCall;
  get(argument: _latchkey_v1_GetRequest, callback: grpc.requestCallback<_latchkey_v1_GetResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Several Gets in one call (at most --max-batch keys); one result per key, in order.
   */
  GetMany(argument: _latchkey_v1_GetManyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_GetManyResponse__Output>): grpc.ClientUnaryCall;
  GetMany(argument: _latchkey_v1_GetManyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_GetManyResponse__Output>): grpc.ClientUnaryCall;
  GetMany(argument: _latchkey_v1_GetManyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_GetManyResponse__Output>): grpc.ClientUnaryCall;
  GetMany(argument: _latchkey_v1_GetManyRequest, callback: grpc.requestCallback<_latchkey_v1_GetManyResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Several Gets in one call (at most --max-batch keys); one result per key, in order.
   */
  getMany(argument: _latchkey_v1_GetManyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_GetManyResponse__Output>): grpc.ClientUnaryCall;
  getMany(argument: _latchkey_v1_GetManyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_GetManyResponse__Output>): grpc.ClientUnaryCall;
  getMany(argument: _latchkey_v1_GetManyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_GetManyResponse__Output>): grpc.ClientUnaryCall;
  getMany(argument: _latchkey_v1_GetManyRequest, callback: grpc.requestCallback<_latchkey_v1_GetManyResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Add `delta` to a decimal counter (64-bit unsigned, wraps on overflow; a negative delta
   * stops at 0 like memcached's decr). An absent key is created with `initial`. The counter
   * reads back as its decimal digits on every store.
   */
  Incr(argument: _latchkey_v1_IncrRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_IncrResponse__Output>): grpc.ClientUnaryCall;
  Incr(argument: _latchkey_v1_IncrRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_IncrResponse__Output>): grpc.ClientUnaryCall;
  Incr(argument: _latchkey_v1_IncrRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_IncrResponse__Output>): grpc.ClientUnaryCall;
  Incr(argument: _latchkey_v1_IncrRequest, callback: grpc.requestCallback<_latchkey_v1_IncrResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Add `delta` to a decimal counter (64-bit unsigned, wraps on overflow; a negative delta
   * stops at 0 like memcached's decr). An absent key is created with `initial`. The counter
   * reads back as its decimal digits on every store.
   */
  incr(argument: _latchkey_v1_IncrRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_IncrResponse__Output>): grpc.ClientUnaryCall;
  incr(argument: _latchkey_v1_IncrRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_IncrResponse__Output>): grpc.ClientUnaryCall;
  incr(argument: _latchkey_v1_IncrRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_IncrResponse__Output>): grpc.ClientUnaryCall;
  incr(argument: _latchkey_v1_IncrRequest, callback: grpc.requestCallback<_latchkey_v1_IncrResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Any cache operations over one stream. Each request frame carries tagged operations (at
   * most --max-batch); reply frames carry their results, matched by tag, in any order. Each
   * operation has exactly the semantics of its unary RPC; one that fails gets an `error`
   * result and the stream goes on.
   */
  Pipeline(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_latchkey_v1_PipelineRequest, _latchkey_v1_PipelineResponse__Output>;
  Pipeline(options?: grpc.CallOptions): grpc.ClientDuplexStream<_latchkey_v1_PipelineRequest, _latchkey_v1_PipelineResponse__Output>;
  /**
   * Any cache operations over one stream. Each request frame carries tagged operations (at
   * most --max-batch); reply frames carry their results, matched by tag, in any order. Each
   * operation has exactly the semantics of its unary RPC; one that fails gets an `error`
   * result and the stream goes on.
   */
  pipeline(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_latchkey_v1_PipelineRequest, _latchkey_v1_PipelineResponse__Output>;
  pipeline(options?: grpc.CallOptions): grpc.ClientDuplexStream<_latchkey_v1_PipelineRequest, _latchkey_v1_PipelineResponse__Output>;
  
  /**
   * Store unconditionally, or, with `lease_token`, only while that lease is current.
   */
  Set(argument: _latchkey_v1_SetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_SetResponse__Output>): grpc.ClientUnaryCall;
  Set(argument: _latchkey_v1_SetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_SetResponse__Output>): grpc.ClientUnaryCall;
  Set(argument: _latchkey_v1_SetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_SetResponse__Output>): grpc.ClientUnaryCall;
  Set(argument: _latchkey_v1_SetRequest, callback: grpc.requestCallback<_latchkey_v1_SetResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Store unconditionally, or, with `lease_token`, only while that lease is current.
   */
  set(argument: _latchkey_v1_SetRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_SetResponse__Output>): grpc.ClientUnaryCall;
  set(argument: _latchkey_v1_SetRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_SetResponse__Output>): grpc.ClientUnaryCall;
  set(argument: _latchkey_v1_SetRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_SetResponse__Output>): grpc.ClientUnaryCall;
  set(argument: _latchkey_v1_SetRequest, callback: grpc.requestCallback<_latchkey_v1_SetResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Several Sets in one call (at most --max-batch items); each succeeds or fails on its own;
   * one result per item, in order.
   */
  SetMany(argument: _latchkey_v1_SetManyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_SetManyResponse__Output>): grpc.ClientUnaryCall;
  SetMany(argument: _latchkey_v1_SetManyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_SetManyResponse__Output>): grpc.ClientUnaryCall;
  SetMany(argument: _latchkey_v1_SetManyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_SetManyResponse__Output>): grpc.ClientUnaryCall;
  SetMany(argument: _latchkey_v1_SetManyRequest, callback: grpc.requestCallback<_latchkey_v1_SetManyResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Several Sets in one call (at most --max-batch items); each succeeds or fails on its own;
   * one result per item, in order.
   */
  setMany(argument: _latchkey_v1_SetManyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_SetManyResponse__Output>): grpc.ClientUnaryCall;
  setMany(argument: _latchkey_v1_SetManyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_SetManyResponse__Output>): grpc.ClientUnaryCall;
  setMany(argument: _latchkey_v1_SetManyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_SetManyResponse__Output>): grpc.ClientUnaryCall;
  setMany(argument: _latchkey_v1_SetManyRequest, callback: grpc.requestCallback<_latchkey_v1_SetManyResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Change a key's expiry without changing its value: TOUCHED or NOT_FOUND.
   */
  Touch(argument: _latchkey_v1_TouchRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_TouchResponse__Output>): grpc.ClientUnaryCall;
  Touch(argument: _latchkey_v1_TouchRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_TouchResponse__Output>): grpc.ClientUnaryCall;
  Touch(argument: _latchkey_v1_TouchRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_TouchResponse__Output>): grpc.ClientUnaryCall;
  Touch(argument: _latchkey_v1_TouchRequest, callback: grpc.requestCallback<_latchkey_v1_TouchResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Change a key's expiry without changing its value: TOUCHED or NOT_FOUND.
   */
  touch(argument: _latchkey_v1_TouchRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_TouchResponse__Output>): grpc.ClientUnaryCall;
  touch(argument: _latchkey_v1_TouchRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_TouchResponse__Output>): grpc.ClientUnaryCall;
  touch(argument: _latchkey_v1_TouchRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_TouchResponse__Output>): grpc.ClientUnaryCall;
  touch(argument: _latchkey_v1_TouchRequest, callback: grpc.requestCallback<_latchkey_v1_TouchResponse__Output>): grpc.ClientUnaryCall;
  
}

/**
 * Retries: a method marked with `idempotency_level` may be sent again when an attempt's
 * outcome is unknown (the SDK does so on UNAVAILABLE, within the call's deadline). Writes are
 * not marked: a copy that reached the server may still be applied after the retry, over a
 * newer write.
 */
export interface CacheHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Store only if the key is absent: STORED or EXISTS.
   */
  Add: grpc.handleUnaryCall<_latchkey_v1_AddRequest__Output, _latchkey_v1_AddResponse>;
  
  /**
   * Store only if the key's cas still equals `cas`: STORED, EXISTS (changed) or NOT_FOUND
   * (absent, expired or deleted).
   */
  Cas: grpc.handleUnaryCall<_latchkey_v1_CasRequest__Output, _latchkey_v1_CasResponse>;
  
  /**
   * Delete; a non-zero `cas` must match: DELETED, NOT_FOUND or EXISTS (cas mismatch). A
   * Delete without a fence also lifts the key's tombstone (see Fence): with cas 0 whatever it
   * answers, with a cas when it answers DELETED.
   */
  Delete: grpc.handleUnaryCall<_latchkey_v1_DeleteRequest__Output, _latchkey_v1_DeleteResponse>;
  
  /**
   * Read a key: `found`, its value and cas. With `lease_ms`, a miss also answers a lease (see
   * Leases below). NOTE: marked safe to resend, and it is with a lease too: a lease taken by
   * an attempt whose answer was lost only makes the resent Get wait, until it runs out.
   */
  Get: grpc.handleUnaryCall<_latchkey_v1_GetRequest__Output, _latchkey_v1_GetResponse>;
  
  /**
   * Several Gets in one call (at most --max-batch keys); one result per key, in order.
   */
  GetMany: grpc.handleUnaryCall<_latchkey_v1_GetManyRequest__Output, _latchkey_v1_GetManyResponse>;
  
  /**
   * Add `delta` to a decimal counter (64-bit unsigned, wraps on overflow; a negative delta
   * stops at 0 like memcached's decr). An absent key is created with `initial`. The counter
   * reads back as its decimal digits on every store.
   */
  Incr: grpc.handleUnaryCall<_latchkey_v1_IncrRequest__Output, _latchkey_v1_IncrResponse>;
  
  /**
   * Any cache operations over one stream. Each request frame carries tagged operations (at
   * most --max-batch); reply frames carry their results, matched by tag, in any order. Each
   * operation has exactly the semantics of its unary RPC; one that fails gets an `error`
   * result and the stream goes on.
   */
  Pipeline: grpc.handleBidiStreamingCall<_latchkey_v1_PipelineRequest__Output, _latchkey_v1_PipelineResponse>;
  
  /**
   * Store unconditionally, or, with `lease_token`, only while that lease is current.
   */
  Set: grpc.handleUnaryCall<_latchkey_v1_SetRequest__Output, _latchkey_v1_SetResponse>;
  
  /**
   * Several Sets in one call (at most --max-batch items); each succeeds or fails on its own;
   * one result per item, in order.
   */
  SetMany: grpc.handleUnaryCall<_latchkey_v1_SetManyRequest__Output, _latchkey_v1_SetManyResponse>;
  
  /**
   * Change a key's expiry without changing its value: TOUCHED or NOT_FOUND.
   */
  Touch: grpc.handleUnaryCall<_latchkey_v1_TouchRequest__Output, _latchkey_v1_TouchResponse>;
  
}

export interface CacheDefinition extends grpc.ServiceDefinition {
  Add: MethodDefinition<_latchkey_v1_AddRequest, _latchkey_v1_AddResponse, _latchkey_v1_AddRequest__Output, _latchkey_v1_AddResponse__Output>
  Cas: MethodDefinition<_latchkey_v1_CasRequest, _latchkey_v1_CasResponse, _latchkey_v1_CasRequest__Output, _latchkey_v1_CasResponse__Output>
  Delete: MethodDefinition<_latchkey_v1_DeleteRequest, _latchkey_v1_DeleteResponse, _latchkey_v1_DeleteRequest__Output, _latchkey_v1_DeleteResponse__Output>
  Get: MethodDefinition<_latchkey_v1_GetRequest, _latchkey_v1_GetResponse, _latchkey_v1_GetRequest__Output, _latchkey_v1_GetResponse__Output>
  GetMany: MethodDefinition<_latchkey_v1_GetManyRequest, _latchkey_v1_GetManyResponse, _latchkey_v1_GetManyRequest__Output, _latchkey_v1_GetManyResponse__Output>
  Incr: MethodDefinition<_latchkey_v1_IncrRequest, _latchkey_v1_IncrResponse, _latchkey_v1_IncrRequest__Output, _latchkey_v1_IncrResponse__Output>
  Pipeline: MethodDefinition<_latchkey_v1_PipelineRequest, _latchkey_v1_PipelineResponse, _latchkey_v1_PipelineRequest__Output, _latchkey_v1_PipelineResponse__Output>
  Set: MethodDefinition<_latchkey_v1_SetRequest, _latchkey_v1_SetResponse, _latchkey_v1_SetRequest__Output, _latchkey_v1_SetResponse__Output>
  SetMany: MethodDefinition<_latchkey_v1_SetManyRequest, _latchkey_v1_SetManyResponse, _latchkey_v1_SetManyRequest__Output, _latchkey_v1_SetManyResponse__Output>
  Touch: MethodDefinition<_latchkey_v1_TouchRequest, _latchkey_v1_TouchResponse, _latchkey_v1_TouchRequest__Output, _latchkey_v1_TouchResponse__Output>
}
