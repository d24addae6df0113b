// Protobuf by hand, for tests that must send bytes no protobuf library would write (invalid
// UTF-8 in string fields, wrong wire types, truncated or duplicated fields), plus the
// latchkey .proto files as protobufjs reflection, so such tests read each request's fields
// from the contract instead of restating them.
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_FILES, protoRoot } from '../../client/common/index.js';

/** 0 varint, 1 fixed64, 2 length-delimited, 3 start group, 4 end group, 5 fixed32 (6 and 7 do not exist). */
export type WireType = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** A base-128 varint of the value's low 64 bits (so a negative int64 takes ten bytes, as on the wire). */
export function varint(value: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return Buffer.from(out);
}

export const key = (field: number, wire: WireType): Buffer => varint((BigInt(field) << 3n) | BigInt(wire));
export const varintField = (field: number, value: bigint): Buffer => Buffer.concat([key(field, 0), varint(value)]);
export const bytesField = (field: number, bytes: Buffer): Buffer =>
  Buffer.concat([key(field, 2), varint(BigInt(bytes.length)), bytes]);
export const fixed64Field = (field: number, bytes8: Buffer): Buffer =>
  Buffer.concat([key(field, 1), bytes8.subarray(0, 8), Buffer.alloc(Math.max(0, 8 - bytes8.length))]);
export const fixed32Field = (field: number, bytes4: Buffer): Buffer =>
  Buffer.concat([key(field, 5), bytes4.subarray(0, 4), Buffer.alloc(Math.max(0, 4 - bytes4.length))]);
/** A (deprecated, still decodable) group: start tag, the inner fields, the matching end tag. */
export const groupField = (field: number, inner: Buffer): Buffer =>
  Buffer.concat([key(field, 3), inner, key(field, 4)]);

/** The wire type protobuf uses for a field of this .proto type. */
export function wireTypeOf(field: protobuf.Field): WireType {
  if (field.resolvedType instanceof protobuf.Type) return 2;
  switch (field.type) {
    case 'string':
    case 'bytes':
      return 2;
    case 'fixed64':
    case 'sfixed64':
    case 'double':
      return 1;
    case 'fixed32':
    case 'sfixed32':
    case 'float':
      return 5;
    default:
      return 0; // (u)int32/64, sint, bool, enums
  }
}

let root: protobuf.Root | undefined;

/** latchkey's .proto files, resolved, with the snake_case field names of the contract. */
export function latchkeyRoot(): protobuf.Root {
  if (root === undefined) {
    const dir = protoRoot();
    const loaded = new protobuf.Root();
    loaded.resolvePath = (_origin, target) => (target.startsWith(dir) ? target : join(dir, target));
    loaded.loadSync([...PROTO_FILES], { keepCase: true });
    loaded.resolveAll();
    root = loaded;
  }
  return root;
}

export interface MethodInfo {
  /** "Locks" or "Cache". */
  readonly service: string;
  readonly name: string;
  /** The HTTP/2 path, e.g. "/latchkey.v1.Locks/Acquire". */
  readonly path: string;
  readonly requestType: protobuf.Type;
  readonly responseType: protobuf.Type;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** Every method of latchkey.v1.<service>, in .proto order. */
export function methodsOf(service: string): MethodInfo[] {
  const svc = latchkeyRoot().lookupService(`latchkey.v1.${service}`);
  return svc.methodsArray.map((m) => {
    m.resolve();
    return {
      service,
      name: m.name,
      path: `/latchkey.v1.${service}/${m.name}`,
      requestType: m.resolvedRequestType!,
      responseType: m.resolvedResponseType!,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
    };
  });
}

/** Decodes a response the way the SDK's loader options shape it (64-bit integers as decimal strings). */
export function decodeAs<T>(type: protobuf.Type, bytes: Buffer): T {
  return type.toObject(type.decode(bytes), {
    longs: String,
    enums: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  }) as T;
}
