// The .proto files as a compiler wrote them: encoded google.protobuf.FileDescriptorProtos,
// one per file, with their comments (source info). Server reflection serves these, so
// grpcurl and buf curl see the same files, names and documentation as a reader of proto/.
import { DESCRIPTOR_SET_BASE64 } from './generated/descriptor-set.js';

let files: readonly Buffer[] | undefined;

/**
 * The files of proto/ and grpc/health/v1/health.proto, each an encoded FileDescriptorProto,
 * as `buf build` compiled them (see test/support/generate.ts). The set is split by hand, not
 * decoded and re-encoded, so the bytes are the compiler's own.
 */
export function fileDescriptorProtos(): readonly Buffer[] {
  files ??= splitDescriptorSet(Buffer.from(DESCRIPTOR_SET_BASE64, 'base64'));
  return files;
}

/** FileDescriptorSet is `repeated FileDescriptorProto file = 1`: a run of (tag 0x0a, length, bytes). */
function splitDescriptorSet(set: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < set.length) {
    if (set[at++] !== 0x0a) throw new Error(`latchkey: descriptor set: unexpected field tag at byte ${at - 1}`);
    let length = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = set[at++];
      if (byte === undefined || shift > 28) throw new Error('latchkey: descriptor set: bad length');
      length += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
    }
    if (at + length > set.length) throw new Error('latchkey: descriptor set: truncated');
    out.push(set.subarray(at, at + length));
    at += length;
  }
  return out;
}
