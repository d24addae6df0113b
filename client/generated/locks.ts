import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AcquireRequest as _latchkey_v1_AcquireRequest, AcquireRequest__Output as _latchkey_v1_AcquireRequest__Output } from './latchkey/v1/AcquireRequest.js';
import type { BackendCapabilities as _latchkey_v1_BackendCapabilities, BackendCapabilities__Output as _latchkey_v1_BackendCapabilities__Output } from './latchkey/v1/BackendCapabilities.js';
import type { DescribeRequest as _latchkey_v1_DescribeRequest, DescribeRequest__Output as _latchkey_v1_DescribeRequest__Output } from './latchkey/v1/DescribeRequest.js';
import type { Lease as _latchkey_v1_Lease, Lease__Output as _latchkey_v1_Lease__Output } from './latchkey/v1/Lease.js';
import type { LockState as _latchkey_v1_LockState, LockState__Output as _latchkey_v1_LockState__Output } from './latchkey/v1/LockState.js';
import type { LocksClient as _latchkey_v1_LocksClient, LocksDefinition as _latchkey_v1_LocksDefinition } from './latchkey/v1/Locks.js';
import type { RefreshRequest as _latchkey_v1_RefreshRequest, RefreshRequest__Output as _latchkey_v1_RefreshRequest__Output } from './latchkey/v1/RefreshRequest.js';
import type { ReleaseRequest as _latchkey_v1_ReleaseRequest, ReleaseRequest__Output as _latchkey_v1_ReleaseRequest__Output } from './latchkey/v1/ReleaseRequest.js';
import type { ReleaseResponse as _latchkey_v1_ReleaseResponse, ReleaseResponse__Output as _latchkey_v1_ReleaseResponse__Output } from './latchkey/v1/ReleaseResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  latchkey: {
    v1: {
      AcquireRequest: MessageTypeDefinition<_latchkey_v1_AcquireRequest, _latchkey_v1_AcquireRequest__Output>
      BackendCapabilities: MessageTypeDefinition<_latchkey_v1_BackendCapabilities, _latchkey_v1_BackendCapabilities__Output>
      DescribeRequest: MessageTypeDefinition<_latchkey_v1_DescribeRequest, _latchkey_v1_DescribeRequest__Output>
      Lease: MessageTypeDefinition<_latchkey_v1_Lease, _latchkey_v1_Lease__Output>
      LockState: MessageTypeDefinition<_latchkey_v1_LockState, _latchkey_v1_LockState__Output>
      Locks: SubtypeConstructor<typeof grpc.Client, _latchkey_v1_LocksClient> & { service: _latchkey_v1_LocksDefinition }
      RefreshRequest: MessageTypeDefinition<_latchkey_v1_RefreshRequest, _latchkey_v1_RefreshRequest__Output>
      ReleaseRequest: MessageTypeDefinition<_latchkey_v1_ReleaseRequest, _latchkey_v1_ReleaseRequest__Output>
      ReleaseResponse: MessageTypeDefinition<_latchkey_v1_ReleaseResponse, _latchkey_v1_ReleaseResponse__Output>
    }
  }
}

