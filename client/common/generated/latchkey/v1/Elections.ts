// Original file: proto/latchkey/v1/elections.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { CampaignRequest as _latchkey_v1_CampaignRequest, CampaignRequest__Output as _latchkey_v1_CampaignRequest__Output } from '../../latchkey/v1/CampaignRequest.js';
import type { KeepAliveRequest as _latchkey_v1_KeepAliveRequest, KeepAliveRequest__Output as _latchkey_v1_KeepAliveRequest__Output } from '../../latchkey/v1/KeepAliveRequest.js';
import type { LeaderRequest as _latchkey_v1_LeaderRequest, LeaderRequest__Output as _latchkey_v1_LeaderRequest__Output } from '../../latchkey/v1/LeaderRequest.js';
import type { LeaderState as _latchkey_v1_LeaderState, LeaderState__Output as _latchkey_v1_LeaderState__Output } from '../../latchkey/v1/LeaderState.js';
import type { Leadership as _latchkey_v1_Leadership, Leadership__Output as _latchkey_v1_Leadership__Output } from '../../latchkey/v1/Leadership.js';
import type { ObserveRequest as _latchkey_v1_ObserveRequest, ObserveRequest__Output as _latchkey_v1_ObserveRequest__Output } from '../../latchkey/v1/ObserveRequest.js';
import type { ProclaimRequest as _latchkey_v1_ProclaimRequest, ProclaimRequest__Output as _latchkey_v1_ProclaimRequest__Output } from '../../latchkey/v1/ProclaimRequest.js';
import type { ResignRequest as _latchkey_v1_ResignRequest, ResignRequest__Output as _latchkey_v1_ResignRequest__Output } from '../../latchkey/v1/ResignRequest.js';
import type { ResignResponse as _latchkey_v1_ResignResponse, ResignResponse__Output as _latchkey_v1_ResignResponse__Output } from '../../latchkey/v1/ResignResponse.js';

/**
 * Leader election: candidates campaign for a name, one leads at a time (FIFO among the
 * rest), the leader proclaims values and resigns, and anyone can ask who leads or follow the
 * changes. Retries: Leader and KeepAlive are marked with `idempotency_level` (a client may send
 * them again when an attempt's outcome is unknown); a repeated Campaign could stand a second
 * candidate, and a repeated Resign answer FAILED_PRECONDITION: neither is marked.
 */
export interface ElectionsClient extends grpc.Client {
  /**
   * Campaign for election `name`: waits until this candidate leads, then answers its
   * Leadership. Candidates lead one at a time, in the order they campaigned (FIFO); each new
   * leader gets a fencing token greater than every earlier leader's of the name. The wait
   * ends only when this candidate leads, the call is cancelled (the candidacy is withdrawn),
   * or wait_ms runs out or the deadline comes near: then ABORTED, naming the current leader.
   * A session that already campaigns for the name: FAILED_PRECONDITION.
   */
  Campaign(argument: _latchkey_v1_CampaignRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  Campaign(argument: _latchkey_v1_CampaignRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  Campaign(argument: _latchkey_v1_CampaignRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  Campaign(argument: _latchkey_v1_CampaignRequest, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  /**
   * Campaign for election `name`: waits until this candidate leads, then answers its
   * Leadership. Candidates lead one at a time, in the order they campaigned (FIFO); each new
   * leader gets a fencing token greater than every earlier leader's of the name. The wait
   * ends only when this candidate leads, the call is cancelled (the candidacy is withdrawn),
   * or wait_ms runs out or the deadline comes near: then ABORTED, naming the current leader.
   * A session that already campaigns for the name: FAILED_PRECONDITION.
   */
  campaign(argument: _latchkey_v1_CampaignRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  campaign(argument: _latchkey_v1_CampaignRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  campaign(argument: _latchkey_v1_CampaignRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  campaign(argument: _latchkey_v1_CampaignRequest, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  
  /**
   * Renews the session a leadership lives in (the one a Campaign without `session_id` got;
   * a Locks/Session session is renewed by its own keepalive instead) and answers the
   * leadership with its new expiry. Send one well within the session's TTL. A leadership
   * that is no longer the current one: FAILED_PRECONDITION.
   */
  KeepAlive(argument: _latchkey_v1_KeepAliveRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  KeepAlive(argument: _latchkey_v1_KeepAliveRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  KeepAlive(argument: _latchkey_v1_KeepAliveRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  KeepAlive(argument: _latchkey_v1_KeepAliveRequest, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  /**
   * Renews the session a leadership lives in (the one a Campaign without `session_id` got;
   * a Locks/Session session is renewed by its own keepalive instead) and answers the
   * leadership with its new expiry. Send one well within the session's TTL. A leadership
   * that is no longer the current one: FAILED_PRECONDITION.
   */
  keepAlive(argument: _latchkey_v1_KeepAliveRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  keepAlive(argument: _latchkey_v1_KeepAliveRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  keepAlive(argument: _latchkey_v1_KeepAliveRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  keepAlive(argument: _latchkey_v1_KeepAliveRequest, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  
  /**
   * Who leads election `name` now.
   */
  Leader(argument: _latchkey_v1_LeaderRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_LeaderState__Output>): grpc.ClientUnaryCall;
  Leader(argument: _latchkey_v1_LeaderRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_LeaderState__Output>): grpc.ClientUnaryCall;
  Leader(argument: _latchkey_v1_LeaderRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_LeaderState__Output>): grpc.ClientUnaryCall;
  Leader(argument: _latchkey_v1_LeaderRequest, callback: grpc.requestCallback<_latchkey_v1_LeaderState__Output>): grpc.ClientUnaryCall;
  /**
   * Who leads election `name` now.
   */
  leader(argument: _latchkey_v1_LeaderRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_LeaderState__Output>): grpc.ClientUnaryCall;
  leader(argument: _latchkey_v1_LeaderRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_LeaderState__Output>): grpc.ClientUnaryCall;
  leader(argument: _latchkey_v1_LeaderRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_LeaderState__Output>): grpc.ClientUnaryCall;
  leader(argument: _latchkey_v1_LeaderRequest, callback: grpc.requestCallback<_latchkey_v1_LeaderState__Output>): grpc.ClientUnaryCall;
  
  /**
   * Follow election `name`: first its current leader (or none), then one message per change,
   * in order: a new leader, a value proclaimed, nobody leading. Until the caller cancels or
   * the server shuts down (the stream then ends cleanly).
   */
  Observe(argument: _latchkey_v1_ObserveRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_latchkey_v1_LeaderState__Output>;
  Observe(argument: _latchkey_v1_ObserveRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_latchkey_v1_LeaderState__Output>;
  /**
   * Follow election `name`: first its current leader (or none), then one message per change,
   * in order: a new leader, a value proclaimed, nobody leading. Until the caller cancels or
   * the server shuts down (the stream then ends cleanly).
   */
  observe(argument: _latchkey_v1_ObserveRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_latchkey_v1_LeaderState__Output>;
  observe(argument: _latchkey_v1_ObserveRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_latchkey_v1_LeaderState__Output>;
  
  /**
   * The leader changes its value, keeping its leadership and token; observers see it. A
   * leadership that is no longer the current one: FAILED_PRECONDITION.
   */
  Proclaim(argument: _latchkey_v1_ProclaimRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  Proclaim(argument: _latchkey_v1_ProclaimRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  Proclaim(argument: _latchkey_v1_ProclaimRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  Proclaim(argument: _latchkey_v1_ProclaimRequest, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  /**
   * The leader changes its value, keeping its leadership and token; observers see it. A
   * leadership that is no longer the current one: FAILED_PRECONDITION.
   */
  proclaim(argument: _latchkey_v1_ProclaimRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  proclaim(argument: _latchkey_v1_ProclaimRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  proclaim(argument: _latchkey_v1_ProclaimRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  proclaim(argument: _latchkey_v1_ProclaimRequest, callback: grpc.requestCallback<_latchkey_v1_Leadership__Output>): grpc.ClientUnaryCall;
  
  /**
   * Step down: the next candidate in FIFO order leads. A Campaign made without a session
   * also ends the session the server opened for it. A leadership that is no longer the
   * current one: FAILED_PRECONDITION, nothing changed.
   */
  Resign(argument: _latchkey_v1_ResignRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_ResignResponse__Output>): grpc.ClientUnaryCall;
  Resign(argument: _latchkey_v1_ResignRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_ResignResponse__Output>): grpc.ClientUnaryCall;
  Resign(argument: _latchkey_v1_ResignRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_ResignResponse__Output>): grpc.ClientUnaryCall;
  Resign(argument: _latchkey_v1_ResignRequest, callback: grpc.requestCallback<_latchkey_v1_ResignResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Step down: the next candidate in FIFO order leads. A Campaign made without a session
   * also ends the session the server opened for it. A leadership that is no longer the
   * current one: FAILED_PRECONDITION, nothing changed.
   */
  resign(argument: _latchkey_v1_ResignRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_ResignResponse__Output>): grpc.ClientUnaryCall;
  resign(argument: _latchkey_v1_ResignRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_latchkey_v1_ResignResponse__Output>): grpc.ClientUnaryCall;
  resign(argument: _latchkey_v1_ResignRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_latchkey_v1_ResignResponse__Output>): grpc.ClientUnaryCall;
  resign(argument: _latchkey_v1_ResignRequest, callback: grpc.requestCallback<_latchkey_v1_ResignResponse__Output>): grpc.ClientUnaryCall;
  
}

/**
 * Leader election: candidates campaign for a name, one leads at a time (FIFO among the
 * rest), the leader proclaims values and resigns, and anyone can ask who leads or follow the
 * changes. Retries: Leader and KeepAlive are marked with `idempotency_level` (a client may send
 * them again when an attempt's outcome is unknown); a repeated Campaign could stand a second
 * candidate, and a repeated Resign answer FAILED_PRECONDITION: neither is marked.
 */
export interface ElectionsHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Campaign for election `name`: waits until this candidate leads, then answers its
   * Leadership. Candidates lead one at a time, in the order they campaigned (FIFO); each new
   * leader gets a fencing token greater than every earlier leader's of the name. The wait
   * ends only when this candidate leads, the call is cancelled (the candidacy is withdrawn),
   * or wait_ms runs out or the deadline comes near: then ABORTED, naming the current leader.
   * A session that already campaigns for the name: FAILED_PRECONDITION.
   */
  Campaign: grpc.handleUnaryCall<_latchkey_v1_CampaignRequest__Output, _latchkey_v1_Leadership>;
  
  /**
   * Renews the session a leadership lives in (the one a Campaign without `session_id` got;
   * a Locks/Session session is renewed by its own keepalive instead) and answers the
   * leadership with its new expiry. Send one well within the session's TTL. A leadership
   * that is no longer the current one: FAILED_PRECONDITION.
   */
  KeepAlive: grpc.handleUnaryCall<_latchkey_v1_KeepAliveRequest__Output, _latchkey_v1_Leadership>;
  
  /**
   * Who leads election `name` now.
   */
  Leader: grpc.handleUnaryCall<_latchkey_v1_LeaderRequest__Output, _latchkey_v1_LeaderState>;
  
  /**
   * Follow election `name`: first its current leader (or none), then one message per change,
   * in order: a new leader, a value proclaimed, nobody leading. Until the caller cancels or
   * the server shuts down (the stream then ends cleanly).
   */
  Observe: grpc.handleServerStreamingCall<_latchkey_v1_ObserveRequest__Output, _latchkey_v1_LeaderState>;
  
  /**
   * The leader changes its value, keeping its leadership and token; observers see it. A
   * leadership that is no longer the current one: FAILED_PRECONDITION.
   */
  Proclaim: grpc.handleUnaryCall<_latchkey_v1_ProclaimRequest__Output, _latchkey_v1_Leadership>;
  
  /**
   * Step down: the next candidate in FIFO order leads. A Campaign made without a session
   * also ends the session the server opened for it. A leadership that is no longer the
   * current one: FAILED_PRECONDITION, nothing changed.
   */
  Resign: grpc.handleUnaryCall<_latchkey_v1_ResignRequest__Output, _latchkey_v1_ResignResponse>;
  
}

export interface ElectionsDefinition extends grpc.ServiceDefinition {
  Campaign: MethodDefinition<_latchkey_v1_CampaignRequest, _latchkey_v1_Leadership, _latchkey_v1_CampaignRequest__Output, _latchkey_v1_Leadership__Output>
  KeepAlive: MethodDefinition<_latchkey_v1_KeepAliveRequest, _latchkey_v1_Leadership, _latchkey_v1_KeepAliveRequest__Output, _latchkey_v1_Leadership__Output>
  Leader: MethodDefinition<_latchkey_v1_LeaderRequest, _latchkey_v1_LeaderState, _latchkey_v1_LeaderRequest__Output, _latchkey_v1_LeaderState__Output>
  Observe: MethodDefinition<_latchkey_v1_ObserveRequest, _latchkey_v1_LeaderState, _latchkey_v1_ObserveRequest__Output, _latchkey_v1_LeaderState__Output>
  Proclaim: MethodDefinition<_latchkey_v1_ProclaimRequest, _latchkey_v1_Leadership, _latchkey_v1_ProclaimRequest__Output, _latchkey_v1_Leadership__Output>
  Resign: MethodDefinition<_latchkey_v1_ResignRequest, _latchkey_v1_ResignResponse, _latchkey_v1_ResignRequest__Output, _latchkey_v1_ResignResponse__Output>
}
