import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { CampaignRequest as _latchkey_v1_CampaignRequest, CampaignRequest__Output as _latchkey_v1_CampaignRequest__Output } from './latchkey/v1/CampaignRequest.js';
import type { ElectionsClient as _latchkey_v1_ElectionsClient, ElectionsDefinition as _latchkey_v1_ElectionsDefinition } from './latchkey/v1/Elections.js';
import type { KeepAliveRequest as _latchkey_v1_KeepAliveRequest, KeepAliveRequest__Output as _latchkey_v1_KeepAliveRequest__Output } from './latchkey/v1/KeepAliveRequest.js';
import type { LeaderRequest as _latchkey_v1_LeaderRequest, LeaderRequest__Output as _latchkey_v1_LeaderRequest__Output } from './latchkey/v1/LeaderRequest.js';
import type { LeaderState as _latchkey_v1_LeaderState, LeaderState__Output as _latchkey_v1_LeaderState__Output } from './latchkey/v1/LeaderState.js';
import type { Leadership as _latchkey_v1_Leadership, Leadership__Output as _latchkey_v1_Leadership__Output } from './latchkey/v1/Leadership.js';
import type { ObserveRequest as _latchkey_v1_ObserveRequest, ObserveRequest__Output as _latchkey_v1_ObserveRequest__Output } from './latchkey/v1/ObserveRequest.js';
import type { ProclaimRequest as _latchkey_v1_ProclaimRequest, ProclaimRequest__Output as _latchkey_v1_ProclaimRequest__Output } from './latchkey/v1/ProclaimRequest.js';
import type { ResignRequest as _latchkey_v1_ResignRequest, ResignRequest__Output as _latchkey_v1_ResignRequest__Output } from './latchkey/v1/ResignRequest.js';
import type { ResignResponse as _latchkey_v1_ResignResponse, ResignResponse__Output as _latchkey_v1_ResignResponse__Output } from './latchkey/v1/ResignResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  latchkey: {
    v1: {
      CampaignRequest: MessageTypeDefinition<_latchkey_v1_CampaignRequest, _latchkey_v1_CampaignRequest__Output>
      /**
       * Leader election: candidates campaign for a name, one leads at a time (FIFO among the
       * rest), the leader proclaims values and resigns, and anyone can ask who leads or follow the
       * changes. Retries: Leader and KeepAlive are marked with `idempotency_level` (a client may send
       * them again when an attempt's outcome is unknown); a repeated Campaign could stand a second
       * candidate, and a repeated Resign answer FAILED_PRECONDITION: neither is marked.
       */
      Elections: SubtypeConstructor<typeof grpc.Client, _latchkey_v1_ElectionsClient> & { service: _latchkey_v1_ElectionsDefinition }
      KeepAliveRequest: MessageTypeDefinition<_latchkey_v1_KeepAliveRequest, _latchkey_v1_KeepAliveRequest__Output>
      LeaderRequest: MessageTypeDefinition<_latchkey_v1_LeaderRequest, _latchkey_v1_LeaderRequest__Output>
      LeaderState: MessageTypeDefinition<_latchkey_v1_LeaderState, _latchkey_v1_LeaderState__Output>
      Leadership: MessageTypeDefinition<_latchkey_v1_Leadership, _latchkey_v1_Leadership__Output>
      ObserveRequest: MessageTypeDefinition<_latchkey_v1_ObserveRequest, _latchkey_v1_ObserveRequest__Output>
      ProclaimRequest: MessageTypeDefinition<_latchkey_v1_ProclaimRequest, _latchkey_v1_ProclaimRequest__Output>
      ResignRequest: MessageTypeDefinition<_latchkey_v1_ResignRequest, _latchkey_v1_ResignRequest__Output>
      ResignResponse: MessageTypeDefinition<_latchkey_v1_ResignResponse, _latchkey_v1_ResignResponse__Output>
    }
  }
}

