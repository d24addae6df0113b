// The wire module: what the server (src/) and the SDK (client/) share about the protocol,
// and the only part of client/ that src/ imports besides the SDK itself (the CLI uses the
// SDK). It depends on nothing of either side, so the SDK ships without server code.
// - the wire types generated from proto/ (./generated, by `npm run gen`);
// - the one loader of the .proto files, and the retry policy they declare;
// - the compiled descriptors server reflection serves;
// - the table of error reasons;
// - the protocol-buffer wire primitives of the session codecs.
export type * from './generated/index.js';
export { fileDescriptorProtos } from './descriptors.js';
export {
  LOADER_OPTIONS,
  loadPackageDefinition,
  PROTO_FILES,
  protoRoot,
  repeatableMethods,
  type ServiceName,
} from './proto.js';
export { ERROR_REASONS, ERROR_TRAILER, isErrorReason, type ErrorReason } from './reasons.js';
export {
  FALLBACK,
  key,
  LEN,
  messageFieldSize,
  stringFieldSize,
  uint64FieldSize,
  uint64Size,
  uint64Value,
  VARINT,
  varintFieldSize,
  varintSize,
  WireReader,
  WireWriter,
  withFallback,
} from './protowire.js';
