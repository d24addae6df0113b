// The server's view of the latchkey .proto files: loaded once, through the SDK's loader
// (client/proto.ts) so both sides use the same options, and typed by client/generated/.
import * as grpc from '@grpc/grpc-js';
import type { ProtoGrpcType as CacheProto } from '../client/generated/cache.js';
import type { ProtoGrpcType as LocksProto } from '../client/generated/locks.js';
import { loadPackageDefinition } from '../client/proto.js';

export type LatchkeyProto = LocksProto & CacheProto;

export function packageDefinition() {
  return loadPackageDefinition();
}

export function loadProto(): LatchkeyProto {
  return grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as LatchkeyProto;
}
