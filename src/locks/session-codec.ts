// The server's hand-written codec for Locks/Session frames: the frames of ops it reads and the
// frames of results it writes, the mirror of the SDK's (client/session-encode.ts and
// session-decode.ts), on the same wire primitives (client/common/protowire.ts). protobuf.js
// builds every message twice on each side (decode + toObject, fromObject + encode) and puts
// every 64-bit field through a Long; on a memory lock cycle that was a seventh of the
// server's CPU.
//
// Each direction takes only the common frames and hands any other to protobuf.js whole:
// - read: frames of acquire, release, keepalive and cancel ops (with `end` or not). A frame
//   with `open`, a Describe, an op's trace_context, or anything malformed goes to protobuf.js,
//   so that what the handler sees, and any error, is protobuf.js's own.
// - write: frames of lease, released, kept_alive and error results whose values have the
//   types the service gives them. `opened`, a Describe's LockState or an unexpected value
//   goes to protobuf.js.
// test/locks/session-codec.test.ts checks both against protobuf.js on random frames.
import type * as grpc from '@grpc/grpc-js';
import type {
  AcquireRequest__Output,
  Lease,
  LockMode__Output,
  ReleaseRequest__Output,
  SessionOp__Output,
  SessionRequest__Output,
  SessionResponse,
  SessionResult,
} from '../../client/common/index.js';
import {
  FALLBACK,
  LEN,
  messageFieldSize,
  stringFieldSize,
  uint64FieldSize,
  uint64Value,
  varintFieldSize,
  WireReader,
  WireWriter,
  withFallback,
} from '../../client/common/index.js';

type Fallback = typeof FALLBACK;

const LOCK_MODES: readonly LockMode__Output[] = ['EXCLUSIVE', 'SHARED'];
const MODES: Readonly<Record<string, number>> = { EXCLUSIVE: 0, SHARED: 1 };
const TWO_32 = 2 ** 32;

// ---- reading ops ------------------------------------------------------------------------

function acquireRequest(r: WireReader): AcquireRequest__Output {
  const out: AcquireRequest__Output = {
    name: '',
    backend: '',
    ttl_ms: '0',
    wait_ms: '0',
    owner: '',
    limit: 0,
    mode: 'EXCLUSIVE',
  };
  while (r.pos < r.end) {
    const k = r.uint32();
    switch (k) {
      case (1 << 3) | LEN:
        out.name = r.string();
        break;
      case (2 << 3) | LEN:
        out.backend = r.string();
        break;
      case 3 << 3:
        out.ttl_ms = r.uint64();
        break;
      case 4 << 3:
        out.wait_ms = r.uint64();
        break;
      case (5 << 3) | LEN:
        out.owner = r.string();
        break;
      case 6 << 3:
        out.limit = r.uint32();
        break;
      case 7 << 3: {
        const mode = r.uint32() | 0;
        // As protobuf.js: a value the enum does not name stays a number (validation refuses it).
        out.mode = LOCK_MODES[mode] ?? (mode as unknown as LockMode__Output);
        break;
      }
      default:
        if (!r.skip(k & 7)) throw new RangeError(`wire type ${k & 7} in AcquireRequest`);
    }
  }
  return out;
}

function releaseRequest(r: WireReader): ReleaseRequest__Output {
  const out: ReleaseRequest__Output = { name: '', backend: '', lease_id: '' };
  while (r.pos < r.end) {
    const k = r.uint32();
    if (k === ((1 << 3) | LEN)) out.name = r.string();
    else if (k === ((2 << 3) | LEN)) out.backend = r.string();
    else if (k === ((3 << 3) | LEN)) out.lease_id = r.string();
    else if (!r.skip(k & 7)) throw new RangeError(`wire type ${k & 7} in ReleaseRequest`);
  }
  return out;
}

function sessionOp(r: WireReader): SessionOp__Output | Fallback {
  let tag = '0';
  let out: SessionOp__Output = { trace_context: {}, tag };
  while (r.pos < r.end) {
    const k = r.uint32();
    if (k === 1 << 3) {
      tag = r.uint64();
      continue;
    }
    const field = k >>> 3;
    if (field >= 2 && field <= 7 && (k & 7) !== LEN) return FALLBACK;
    // NOTE: as protobuf.js: a oneof member seen later replaces one seen earlier.
    switch (field) {
      case 2:
        out = { trace_context: {}, tag, acquire: acquireRequest(r.message()), op: 'acquire' };
        break;
      case 3:
        out = { trace_context: {}, tag, release: releaseRequest(r.message()), op: 'release' };
        break;
      case 5: {
        const inner = r.message();
        while (inner.pos < inner.end) if (!inner.skip(inner.uint32() & 7)) return FALLBACK;
        out = { trace_context: {}, tag, keepalive: {}, op: 'keepalive' };
        break;
      }
      case 6: {
        const inner = r.message();
        let target = '0';
        while (inner.pos < inner.end) {
          const kk = inner.uint32();
          if (kk === 1 << 3) target = inner.uint64();
          else if (!inner.skip(kk & 7)) return FALLBACK;
        }
        out = { trace_context: {}, tag, cancel: { tag: target }, op: 'cancel' };
        break;
      }
      case 1: // a tag of another wire type
      case 4: // describe
      case 7: // trace_context
        return FALLBACK;
      default:
        if (!r.skip(k & 7)) return FALLBACK;
    }
  }
  out.tag = tag;
  return out;
}

function readRequest(buf: Buffer): SessionRequest__Output | Fallback {
  const r = new WireReader(buf, 0, buf.length);
  const ops: SessionOp__Output[] = [];
  let end = false;
  while (r.pos < r.end) {
    const k = r.uint32();
    if (k === ((2 << 3) | LEN)) {
      const op = sessionOp(r.message());
      if (op === FALLBACK) return FALLBACK;
      ops.push(op);
    } else if (k === 3 << 3) end = r.uint32() !== 0;
    else if (k >>> 3 <= 3 || !r.skip(k & 7)) return FALLBACK; // `open`, or a malformed frame
  }
  return { ops, open: null, end };
}

/** Wraps the loader's deserializer of SessionRequest (see the top of this file). */
export function sessionRequestDecoder(
  loader: (buf: Buffer) => SessionRequest__Output,
): (buf: Buffer) => SessionRequest__Output {
  return withFallback(readRequest, loader);
}

// ---- writing results --------------------------------------------------------------------

const text = (value: unknown): string | undefined =>
  value === undefined || value === null ? '' : typeof value === 'string' ? value : undefined;
const uint32 = (value: unknown): number | undefined =>
  value === undefined || value === null
    ? 0
    : typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < TWO_32
      ? value
      : undefined;
const uint64 = (value: unknown) => (value === undefined || value === null ? 0 : uint64Value(value));

interface LeaseFields {
  name: string;
  backend: string;
  lease_id: string;
  fencing: number | bigint;
  expires: number | bigint;
  owner: string;
  ttl: number | bigint;
  mode: number;
  limit: number;
}

function leaseFields(lease: Lease): LeaseFields | undefined {
  const name = text(lease.name);
  const backend = text(lease.backend);
  const lease_id = text(lease.lease_id);
  const owner = text(lease.owner);
  const fencing = uint64(lease.fencing_token);
  const expires = uint64(lease.expires_at_ms);
  const ttl = uint64(lease.ttl_ms);
  const limit = uint32(lease.limit);
  const mode = lease.mode === undefined ? 0 : typeof lease.mode === 'string' ? MODES[lease.mode] : undefined;
  if (name === undefined || backend === undefined || lease_id === undefined || owner === undefined) return undefined;
  if (fencing === undefined || expires === undefined || ttl === undefined) return undefined;
  if (limit === undefined || mode === undefined) return undefined;
  return { name, backend, lease_id, fencing, expires, owner, ttl, mode, limit };
}

const leaseSize = (l: LeaseFields) =>
  stringFieldSize(l.name) +
  stringFieldSize(l.backend) +
  stringFieldSize(l.lease_id) +
  uint64FieldSize(l.fencing) +
  uint64FieldSize(l.expires) +
  stringFieldSize(l.owner) +
  uint64FieldSize(l.ttl) +
  varintFieldSize(l.mode) +
  varintFieldSize(l.limit);

/** A result checked and sized: what the writing pass needs. */
type Sized = { tag: number | bigint; size: number; inner: number } & (
  | { kind: 'lease'; lease: LeaseFields }
  | { kind: 'released'; released: boolean }
  | { kind: 'kept_alive'; expires: number | bigint; ttl: number | bigint }
  | { kind: 'error'; code: number; message: string; reason: string }
  | { kind: 'none' }
);

function sizeResult(result: SessionResult): Sized | undefined {
  const tag = uint64(result.tag);
  if (tag === undefined || result.state != null) return undefined;
  const tagSize = uint64FieldSize(tag);
  const set = (result.lease != null ? 1 : 0) + (result.released != null ? 1 : 0);
  if (set + (result.kept_alive != null ? 1 : 0) + (result.error != null ? 1 : 0) > 1) return undefined;
  if (result.lease != null) {
    const lease = leaseFields(result.lease);
    if (lease === undefined) return undefined;
    const inner = leaseSize(lease);
    return { kind: 'lease', tag, inner, size: tagSize + messageFieldSize(inner), lease };
  }
  if (result.released != null) {
    const { released } = result.released;
    if (released !== undefined && typeof released !== 'boolean') return undefined;
    const inner = released ? 2 : 0;
    return { kind: 'released', tag, inner, size: tagSize + messageFieldSize(inner), released: released === true };
  }
  if (result.kept_alive != null) {
    const expires = uint64(result.kept_alive.expires_at_ms);
    const ttl = uint64(result.kept_alive.ttl_ms);
    if (expires === undefined || ttl === undefined) return undefined;
    const inner = uint64FieldSize(expires) + uint64FieldSize(ttl);
    return { kind: 'kept_alive', tag, inner, size: tagSize + messageFieldSize(inner), expires, ttl };
  }
  if (result.error != null) {
    const code = uint32(result.error.code);
    const message = text(result.error.message);
    const reason = text(result.error.reason);
    if (code === undefined || message === undefined || reason === undefined) return undefined;
    const inner = varintFieldSize(code) + stringFieldSize(message) + stringFieldSize(reason);
    return { kind: 'error', tag, inner, size: tagSize + messageFieldSize(inner), code, message, reason };
  }
  return { kind: 'none', tag, inner: 0, size: tagSize };
}

function writeResponse(results: readonly Sized[], total: number): Buffer {
  const w = new WireWriter(Buffer.allocUnsafe(total));
  for (const r of results) {
    w.message(2, r.size); // SessionResponse.results
    w.uint64Field(1, r.tag);
    switch (r.kind) {
      case 'lease': {
        const l = r.lease;
        w.message(2, r.inner);
        w.stringField(1, l.name);
        w.stringField(2, l.backend);
        w.stringField(3, l.lease_id);
        w.uint64Field(4, l.fencing);
        w.uint64Field(5, l.expires);
        w.stringField(6, l.owner);
        w.uint64Field(7, l.ttl);
        w.varintField(8, l.mode);
        w.varintField(9, l.limit);
        break;
      }
      case 'released':
        w.message(3, r.inner);
        w.varintField(1, r.released ? 1 : 0);
        break;
      case 'kept_alive':
        w.message(5, r.inner);
        w.uint64Field(1, r.expires);
        w.uint64Field(2, r.ttl);
        break;
      case 'error':
        w.message(6, r.inner);
        w.varintField(1, r.code);
        w.stringField(2, r.message);
        w.stringField(3, r.reason);
        break;
      case 'none':
        break;
    }
  }
  if (w.pos !== total) throw new Error(`session answer encoder wrote ${w.pos} of ${total} bytes`);
  return w.buf;
}

/** Wraps the loader's serializer of SessionResponse (see the top of this file). */
export function sessionResponseEncoder(loader: (value: SessionResponse) => Buffer): (value: SessionResponse) => Buffer {
  return (value) => {
    if (value.opened != null || value.results === undefined) return loader(value);
    const results: Sized[] = [];
    let total = 0;
    for (const result of value.results) {
      const sized = sizeResult(result);
      if (sized === undefined) return loader(value);
      results.push(sized);
      total += messageFieldSize(sized.size);
    }
    return writeResponse(results, total);
  };
}

/** The Locks service with Session's frames read and written by this codec; a copy. */
export function withSessionCodec(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const session = service.Session!;
  return {
    ...service,
    Session: {
      ...session,
      requestDeserialize: sessionRequestDecoder(session.requestDeserialize as (buf: Buffer) => SessionRequest__Output),
      responseSerialize: sessionResponseEncoder(session.responseSerialize as (value: SessionResponse) => Buffer),
    },
  };
}
