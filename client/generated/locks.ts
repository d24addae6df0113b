import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { AcquireRequest as _latchkey_v1_AcquireRequest, AcquireRequest__Output as _latchkey_v1_AcquireRequest__Output } from './latchkey/v1/AcquireRequest.js';
import type { BackendCapabilities as _latchkey_v1_BackendCapabilities, BackendCapabilities__Output as _latchkey_v1_BackendCapabilities__Output } from './latchkey/v1/BackendCapabilities.js';
import type { DescribeRequest as _latchkey_v1_DescribeRequest, DescribeRequest__Output as _latchkey_v1_DescribeRequest__Output } from './latchkey/v1/DescribeRequest.js';
import type { Holder as _latchkey_v1_Holder, Holder__Output as _latchkey_v1_Holder__Output } from './latchkey/v1/Holder.js';
import type { Lease as _latchkey_v1_Lease, Lease__Output as _latchkey_v1_Lease__Output } from './latchkey/v1/Lease.js';
import type { LockEvent as _latchkey_v1_LockEvent, LockEvent__Output as _latchkey_v1_LockEvent__Output } from './latchkey/v1/LockEvent.js';
import type { LockState as _latchkey_v1_LockState, LockState__Output as _latchkey_v1_LockState__Output } from './latchkey/v1/LockState.js';
import type { LocksClient as _latchkey_v1_LocksClient, LocksDefinition as _latchkey_v1_LocksDefinition } from './latchkey/v1/Locks.js';
import type { RefreshRequest as _latchkey_v1_RefreshRequest, RefreshRequest__Output as _latchkey_v1_RefreshRequest__Output } from './latchkey/v1/RefreshRequest.js';
import type { ReleaseRequest as _latchkey_v1_ReleaseRequest, ReleaseRequest__Output as _latchkey_v1_ReleaseRequest__Output } from './latchkey/v1/ReleaseRequest.js';
import type { ReleaseResponse as _latchkey_v1_ReleaseResponse, ReleaseResponse__Output as _latchkey_v1_ReleaseResponse__Output } from './latchkey/v1/ReleaseResponse.js';
import type { SessionCancel as _latchkey_v1_SessionCancel, SessionCancel__Output as _latchkey_v1_SessionCancel__Output } from './latchkey/v1/SessionCancel.js';
import type { SessionError as _latchkey_v1_SessionError, SessionError__Output as _latchkey_v1_SessionError__Output } from './latchkey/v1/SessionError.js';
import type { SessionKeepAlive as _latchkey_v1_SessionKeepAlive, SessionKeepAlive__Output as _latchkey_v1_SessionKeepAlive__Output } from './latchkey/v1/SessionKeepAlive.js';
import type { SessionKeptAlive as _latchkey_v1_SessionKeptAlive, SessionKeptAlive__Output as _latchkey_v1_SessionKeptAlive__Output } from './latchkey/v1/SessionKeptAlive.js';
import type { SessionOp as _latchkey_v1_SessionOp, SessionOp__Output as _latchkey_v1_SessionOp__Output } from './latchkey/v1/SessionOp.js';
import type { SessionOpen as _latchkey_v1_SessionOpen, SessionOpen__Output as _latchkey_v1_SessionOpen__Output } from './latchkey/v1/SessionOpen.js';
import type { SessionOpened as _latchkey_v1_SessionOpened, SessionOpened__Output as _latchkey_v1_SessionOpened__Output } from './latchkey/v1/SessionOpened.js';
import type { SessionRequest as _latchkey_v1_SessionRequest, SessionRequest__Output as _latchkey_v1_SessionRequest__Output } from './latchkey/v1/SessionRequest.js';
import type { SessionResponse as _latchkey_v1_SessionResponse, SessionResponse__Output as _latchkey_v1_SessionResponse__Output } from './latchkey/v1/SessionResponse.js';
import type { SessionResult as _latchkey_v1_SessionResult, SessionResult__Output as _latchkey_v1_SessionResult__Output } from './latchkey/v1/SessionResult.js';
import type { Waiter as _latchkey_v1_Waiter, Waiter__Output as _latchkey_v1_Waiter__Output } from './latchkey/v1/Waiter.js';
import type { WatchRequest as _latchkey_v1_WatchRequest, WatchRequest__Output as _latchkey_v1_WatchRequest__Output } from './latchkey/v1/WatchRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  latchkey: {
    v1: {
      AcquireRequest: MessageTypeDefinition<_latchkey_v1_AcquireRequest, _latchkey_v1_AcquireRequest__Output>
      BackendCapabilities: MessageTypeDefinition<_latchkey_v1_BackendCapabilities, _latchkey_v1_BackendCapabilities__Output>
      DescribeRequest: MessageTypeDefinition<_latchkey_v1_DescribeRequest, _latchkey_v1_DescribeRequest__Output>
      Holder: MessageTypeDefinition<_latchkey_v1_Holder, _latchkey_v1_Holder__Output>
      Lease: MessageTypeDefinition<_latchkey_v1_Lease, _latchkey_v1_Lease__Output>
      LockEvent: MessageTypeDefinition<_latchkey_v1_LockEvent, _latchkey_v1_LockEvent__Output>
      LockMode: EnumTypeDefinition
      LockState: MessageTypeDefinition<_latchkey_v1_LockState, _latchkey_v1_LockState__Output>
      Locks: SubtypeConstructor<typeof grpc.Client, _latchkey_v1_LocksClient> & { service: _latchkey_v1_LocksDefinition }
      RefreshRequest: MessageTypeDefinition<_latchkey_v1_RefreshRequest, _latchkey_v1_RefreshRequest__Output>
      ReleaseRequest: MessageTypeDefinition<_latchkey_v1_ReleaseRequest, _latchkey_v1_ReleaseRequest__Output>
      ReleaseResponse: MessageTypeDefinition<_latchkey_v1_ReleaseResponse, _latchkey_v1_ReleaseResponse__Output>
      SessionCancel: MessageTypeDefinition<_latchkey_v1_SessionCancel, _latchkey_v1_SessionCancel__Output>
      SessionError: MessageTypeDefinition<_latchkey_v1_SessionError, _latchkey_v1_SessionError__Output>
      SessionKeepAlive: MessageTypeDefinition<_latchkey_v1_SessionKeepAlive, _latchkey_v1_SessionKeepAlive__Output>
      SessionKeptAlive: MessageTypeDefinition<_latchkey_v1_SessionKeptAlive, _latchkey_v1_SessionKeptAlive__Output>
      SessionOp: MessageTypeDefinition<_latchkey_v1_SessionOp, _latchkey_v1_SessionOp__Output>
      SessionOpen: MessageTypeDefinition<_latchkey_v1_SessionOpen, _latchkey_v1_SessionOpen__Output>
      SessionOpened: MessageTypeDefinition<_latchkey_v1_SessionOpened, _latchkey_v1_SessionOpened__Output>
      SessionRequest: MessageTypeDefinition<_latchkey_v1_SessionRequest, _latchkey_v1_SessionRequest__Output>
      SessionResponse: MessageTypeDefinition<_latchkey_v1_SessionResponse, _latchkey_v1_SessionResponse__Output>
      SessionResult: MessageTypeDefinition<_latchkey_v1_SessionResult, _latchkey_v1_SessionResult__Output>
      Waiter: MessageTypeDefinition<_latchkey_v1_Waiter, _latchkey_v1_Waiter__Output>
      WatchRequest: MessageTypeDefinition<_latchkey_v1_WatchRequest, _latchkey_v1_WatchRequest__Output>
    }
  }
}

