// The server's view of the latchkey .proto files: loaded once, through the SDK's loader
// (client/proto.ts) so both sides use the same options, and typed by client/generated/.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import type { ProtoGrpcType as CacheProto } from '../client/generated/cache.js';
import type { ProtoGrpcType as ElectionsProto } from '../client/generated/elections.js';
import type { ProtoGrpcType as LocksProto } from '../client/generated/locks.js';
import { LOADER_OPTIONS, loadPackageDefinition } from '../client/proto.js';

export type LatchkeyProto = LocksProto & CacheProto & ElectionsProto;

/**
 * What server reflection describes: latchkey's services and grpc.health.v1.Health, so
 * grpcurl can call Health/Check without a .proto file. Each package is a file of its own
 * with no imports, which grpcurl resolves without trouble.
 */
export function reflectionDefinition(): protoLoader.PackageDefinition {
  return { ...loadPackageDefinition(), ...protoLoader.loadSync(healthProtoPath, LOADER_OPTIONS) };
}

export function loadProto(): LatchkeyProto {
  return grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as LatchkeyProto;
}
