// The server's view of the latchkey .proto files: loaded through the wire module's one
// loader (client/common), typed by its generated types; and what server reflection serves.
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import {
  type CacheProto,
  type ElectionsProto,
  fileDescriptorProtos,
  loadPackageDefinition,
  type LocksProto,
} from '../client/common/index.js';

export type LatchkeyProto = LocksProto & CacheProto & ElectionsProto;

/**
 * What server reflection describes: latchkey's services and grpc.health.v1.Health, as the
 * compiler wrote their files (names as in proto/, map entries as protobuf-go requires them,
 * the .proto comments as source info), so grpcurl and buf curl can describe and call them
 * without a .proto file.
 * NOTE: @grpc/reflection takes a PackageDefinition, but reads nothing of it except the
 * `fileDescriptorProtos` of its entries; it indexes every symbol of those files itself. Handing
 * it the package definition that proto-loader builds would serve protobufjs's rendering of
 * the files instead (see test/support/generate.ts for what goes wrong with that).
 */
export function reflectionDefinition(): protoLoader.PackageDefinition {
  const carrier: protoLoader.EnumTypeDefinition = {
    format: 'Protocol Buffer 3 EnumDescriptorProto',
    type: {},
    fileDescriptorProtos: fileDescriptorProtos().map((file) => Buffer.from(file)),
  };
  return { 'latchkey.compiled': carrier };
}

export function loadProto(): LatchkeyProto {
  return grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as LatchkeyProto;
}
