import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { AddRequest as _latchkey_v1_AddRequest, AddRequest__Output as _latchkey_v1_AddRequest__Output } from './latchkey/v1/AddRequest.js';
import type { AddResponse as _latchkey_v1_AddResponse, AddResponse__Output as _latchkey_v1_AddResponse__Output } from './latchkey/v1/AddResponse.js';
import type { CacheClient as _latchkey_v1_CacheClient, CacheDefinition as _latchkey_v1_CacheDefinition } from './latchkey/v1/Cache.js';
import type { CasRequest as _latchkey_v1_CasRequest, CasRequest__Output as _latchkey_v1_CasRequest__Output } from './latchkey/v1/CasRequest.js';
import type { CasResponse as _latchkey_v1_CasResponse, CasResponse__Output as _latchkey_v1_CasResponse__Output } from './latchkey/v1/CasResponse.js';
import type { DeleteRequest as _latchkey_v1_DeleteRequest, DeleteRequest__Output as _latchkey_v1_DeleteRequest__Output } from './latchkey/v1/DeleteRequest.js';
import type { DeleteResponse as _latchkey_v1_DeleteResponse, DeleteResponse__Output as _latchkey_v1_DeleteResponse__Output } from './latchkey/v1/DeleteResponse.js';
import type { Fence as _latchkey_v1_Fence, Fence__Output as _latchkey_v1_Fence__Output } from './latchkey/v1/Fence.js';
import type { GetManyRequest as _latchkey_v1_GetManyRequest, GetManyRequest__Output as _latchkey_v1_GetManyRequest__Output } from './latchkey/v1/GetManyRequest.js';
import type { GetManyResponse as _latchkey_v1_GetManyResponse, GetManyResponse__Output as _latchkey_v1_GetManyResponse__Output } from './latchkey/v1/GetManyResponse.js';
import type { GetRequest as _latchkey_v1_GetRequest, GetRequest__Output as _latchkey_v1_GetRequest__Output } from './latchkey/v1/GetRequest.js';
import type { GetResponse as _latchkey_v1_GetResponse, GetResponse__Output as _latchkey_v1_GetResponse__Output } from './latchkey/v1/GetResponse.js';
import type { GetResult as _latchkey_v1_GetResult, GetResult__Output as _latchkey_v1_GetResult__Output } from './latchkey/v1/GetResult.js';
import type { IncrRequest as _latchkey_v1_IncrRequest, IncrRequest__Output as _latchkey_v1_IncrRequest__Output } from './latchkey/v1/IncrRequest.js';
import type { IncrResponse as _latchkey_v1_IncrResponse, IncrResponse__Output as _latchkey_v1_IncrResponse__Output } from './latchkey/v1/IncrResponse.js';
import type { OpError as _latchkey_v1_OpError, OpError__Output as _latchkey_v1_OpError__Output } from './latchkey/v1/OpError.js';
import type { PipelineOp as _latchkey_v1_PipelineOp, PipelineOp__Output as _latchkey_v1_PipelineOp__Output } from './latchkey/v1/PipelineOp.js';
import type { PipelineRequest as _latchkey_v1_PipelineRequest, PipelineRequest__Output as _latchkey_v1_PipelineRequest__Output } from './latchkey/v1/PipelineRequest.js';
import type { PipelineResponse as _latchkey_v1_PipelineResponse, PipelineResponse__Output as _latchkey_v1_PipelineResponse__Output } from './latchkey/v1/PipelineResponse.js';
import type { PipelineResult as _latchkey_v1_PipelineResult, PipelineResult__Output as _latchkey_v1_PipelineResult__Output } from './latchkey/v1/PipelineResult.js';
import type { SetItem as _latchkey_v1_SetItem, SetItem__Output as _latchkey_v1_SetItem__Output } from './latchkey/v1/SetItem.js';
import type { SetManyRequest as _latchkey_v1_SetManyRequest, SetManyRequest__Output as _latchkey_v1_SetManyRequest__Output } from './latchkey/v1/SetManyRequest.js';
import type { SetManyResponse as _latchkey_v1_SetManyResponse, SetManyResponse__Output as _latchkey_v1_SetManyResponse__Output } from './latchkey/v1/SetManyResponse.js';
import type { SetRequest as _latchkey_v1_SetRequest, SetRequest__Output as _latchkey_v1_SetRequest__Output } from './latchkey/v1/SetRequest.js';
import type { SetResponse as _latchkey_v1_SetResponse, SetResponse__Output as _latchkey_v1_SetResponse__Output } from './latchkey/v1/SetResponse.js';
import type { SetResult as _latchkey_v1_SetResult, SetResult__Output as _latchkey_v1_SetResult__Output } from './latchkey/v1/SetResult.js';
import type { TouchRequest as _latchkey_v1_TouchRequest, TouchRequest__Output as _latchkey_v1_TouchRequest__Output } from './latchkey/v1/TouchRequest.js';
import type { TouchResponse as _latchkey_v1_TouchResponse, TouchResponse__Output as _latchkey_v1_TouchResponse__Output } from './latchkey/v1/TouchResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  latchkey: {
    v1: {
      AddRequest: MessageTypeDefinition<_latchkey_v1_AddRequest, _latchkey_v1_AddRequest__Output>
      AddResponse: MessageTypeDefinition<_latchkey_v1_AddResponse, _latchkey_v1_AddResponse__Output>
      /**
       * Retries: a method marked with `idempotency_level` may be sent again when an attempt's
       * outcome is unknown (the SDK does so on UNAVAILABLE, within the call's deadline). Writes are
       * not marked: a copy that reached the server may still be applied after the retry, over a
       * newer write.
       */
      Cache: SubtypeConstructor<typeof grpc.Client, _latchkey_v1_CacheClient> & { service: _latchkey_v1_CacheDefinition }
      CasRequest: MessageTypeDefinition<_latchkey_v1_CasRequest, _latchkey_v1_CasRequest__Output>
      CasResponse: MessageTypeDefinition<_latchkey_v1_CasResponse, _latchkey_v1_CasResponse__Output>
      DeleteRequest: MessageTypeDefinition<_latchkey_v1_DeleteRequest, _latchkey_v1_DeleteRequest__Output>
      DeleteResponse: MessageTypeDefinition<_latchkey_v1_DeleteResponse, _latchkey_v1_DeleteResponse__Output>
      Fence: MessageTypeDefinition<_latchkey_v1_Fence, _latchkey_v1_Fence__Output>
      GetManyRequest: MessageTypeDefinition<_latchkey_v1_GetManyRequest, _latchkey_v1_GetManyRequest__Output>
      GetManyResponse: MessageTypeDefinition<_latchkey_v1_GetManyResponse, _latchkey_v1_GetManyResponse__Output>
      GetRequest: MessageTypeDefinition<_latchkey_v1_GetRequest, _latchkey_v1_GetRequest__Output>
      GetResponse: MessageTypeDefinition<_latchkey_v1_GetResponse, _latchkey_v1_GetResponse__Output>
      GetResult: MessageTypeDefinition<_latchkey_v1_GetResult, _latchkey_v1_GetResult__Output>
      IncrRequest: MessageTypeDefinition<_latchkey_v1_IncrRequest, _latchkey_v1_IncrRequest__Output>
      IncrResponse: MessageTypeDefinition<_latchkey_v1_IncrResponse, _latchkey_v1_IncrResponse__Output>
      OpError: MessageTypeDefinition<_latchkey_v1_OpError, _latchkey_v1_OpError__Output>
      Outcome: EnumTypeDefinition
      PipelineOp: MessageTypeDefinition<_latchkey_v1_PipelineOp, _latchkey_v1_PipelineOp__Output>
      PipelineRequest: MessageTypeDefinition<_latchkey_v1_PipelineRequest, _latchkey_v1_PipelineRequest__Output>
      PipelineResponse: MessageTypeDefinition<_latchkey_v1_PipelineResponse, _latchkey_v1_PipelineResponse__Output>
      PipelineResult: MessageTypeDefinition<_latchkey_v1_PipelineResult, _latchkey_v1_PipelineResult__Output>
      SetItem: MessageTypeDefinition<_latchkey_v1_SetItem, _latchkey_v1_SetItem__Output>
      SetManyRequest: MessageTypeDefinition<_latchkey_v1_SetManyRequest, _latchkey_v1_SetManyRequest__Output>
      SetManyResponse: MessageTypeDefinition<_latchkey_v1_SetManyResponse, _latchkey_v1_SetManyResponse__Output>
      SetRequest: MessageTypeDefinition<_latchkey_v1_SetRequest, _latchkey_v1_SetRequest__Output>
      SetResponse: MessageTypeDefinition<_latchkey_v1_SetResponse, _latchkey_v1_SetResponse__Output>
      SetResult: MessageTypeDefinition<_latchkey_v1_SetResult, _latchkey_v1_SetResult__Output>
      TouchRequest: MessageTypeDefinition<_latchkey_v1_TouchRequest, _latchkey_v1_TouchRequest__Output>
      TouchResponse: MessageTypeDefinition<_latchkey_v1_TouchResponse, _latchkey_v1_TouchResponse__Output>
    }
  }
}

