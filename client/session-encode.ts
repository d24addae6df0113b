// A hand-written encoder for the frames an SDK writes on a Locks/Session stream, the other
// half of session-decode.ts: a lock cycle writes an acquire and a release, and protobuf.js
// builds each op twice (fromObject, then encode) and writes it field by field through a
// chain of small buffers. This sizes a frame once and writes it into one buffer.
//
// Only frames of ops take this path: acquire, release, keepalive and cancel ops, with no
// trace_context, and every value of the type session.ts gives it (strings, safe-integer or
// decimal-string uint64s, a LockMode name). Anything else (the `open` and `end` frames,
// Describe, traced ops, a value of another type) goes to protobuf.js whole, so the bytes
// never depend on a case this encoder guessed at. test/sdk/session-encode.test.ts checks
// that protobuf.js reads back what protobuf.js itself would have written.
import type { AcquireRequest, ReleaseRequest, SessionOp, SessionRequest } from './common/index.js';
import {
  messageFieldSize,
  stringFieldSize,
  uint64FieldSize,
  uint64Value,
  varintFieldSize,
  WireWriter,
} from './common/protowire.js';

const MODES: Readonly<Record<string, number>> = { EXCLUSIVE: 0, SHARED: 1 };
const TWO_32 = 2 ** 32;

/** An op checked and sized: what the writing pass needs. */
type Sized =
  | { kind: 'acquire'; tag: number | bigint; size: number; inner: number; a: Acquire }
  | { kind: 'release'; tag: number | bigint; size: number; inner: number; r: Required<ReleaseRequest> }
  | { kind: 'keepalive'; tag: number | bigint; size: number }
  | { kind: 'cancel'; tag: number | bigint; size: number; inner: number; target: number | bigint };

interface Acquire {
  name: string;
  backend: string;
  ttl: number | bigint;
  wait: number | bigint;
  owner: string;
  limit: number;
  mode: number;
}

const text = (value: unknown): string | undefined =>
  value === undefined ? '' : typeof value === 'string' ? value : undefined;

function acquire(request: AcquireRequest): Acquire | undefined {
  const name = text(request.name);
  const backend = text(request.backend);
  const owner = text(request.owner);
  const ttl = request.ttl_ms === undefined ? 0 : uint64Value(request.ttl_ms);
  const wait = request.wait_ms === undefined ? 0 : uint64Value(request.wait_ms);
  const limit = request.limit ?? 0;
  const mode = request.mode === undefined ? 0 : typeof request.mode === 'string' ? MODES[request.mode] : undefined;
  if (name === undefined || backend === undefined || owner === undefined) return undefined;
  if (ttl === undefined || wait === undefined || mode === undefined) return undefined;
  if (!(Number.isInteger(limit) && limit >= 0 && limit < TWO_32)) return undefined;
  return { name, backend, ttl, wait, owner, limit, mode };
}

function release(request: ReleaseRequest): Required<ReleaseRequest> | undefined {
  const name = text(request.name);
  const backend = text(request.backend);
  const lease_id = text(request.lease_id);
  if (name === undefined || backend === undefined || lease_id === undefined) return undefined;
  return { name, backend, lease_id };
}

/** One op checked and sized, or undefined for one this encoder leaves to protobuf.js. */
function sizeOp(op: SessionOp): Sized | undefined {
  if (op.trace_context !== undefined && Object.keys(op.trace_context).length > 0) return undefined;
  const tag = op.tag === undefined ? 0 : uint64Value(op.tag);
  if (tag === undefined) return undefined;
  // Exactly one member of the oneof (counted without an array: this runs for every op).
  const members =
    (op.acquire != null ? 1 : 0) +
    (op.release != null ? 1 : 0) +
    (op.describe != null ? 1 : 0) +
    (op.keepalive != null ? 1 : 0) +
    (op.cancel != null ? 1 : 0);
  if (members !== 1) return undefined;
  const tagSize = uint64FieldSize(tag);
  if (op.acquire != null) {
    const a = acquire(op.acquire);
    if (a === undefined) return undefined;
    const inner =
      stringFieldSize(a.name) +
      stringFieldSize(a.backend) +
      uint64FieldSize(a.ttl) +
      uint64FieldSize(a.wait) +
      stringFieldSize(a.owner) +
      varintFieldSize(a.limit) +
      varintFieldSize(a.mode);
    return { kind: 'acquire', tag, inner, size: tagSize + messageFieldSize(inner), a };
  }
  if (op.release != null) {
    const r = release(op.release);
    if (r === undefined) return undefined;
    const inner = stringFieldSize(r.name) + stringFieldSize(r.backend) + stringFieldSize(r.lease_id);
    return { kind: 'release', tag, inner, size: tagSize + messageFieldSize(inner), r };
  }
  if (op.keepalive != null) return { kind: 'keepalive', tag, size: tagSize + messageFieldSize(0) };
  if (op.cancel != null) {
    const target = op.cancel.tag === undefined ? 0 : uint64Value(op.cancel.tag);
    if (target === undefined) return undefined;
    const inner = uint64FieldSize(target);
    return { kind: 'cancel', tag, inner, size: tagSize + messageFieldSize(inner), target };
  }
  return undefined; // describe
}

function write(ops: readonly Sized[], total: number): Buffer {
  const w = new WireWriter(Buffer.allocUnsafe(total));
  for (const op of ops) {
    w.message(2, op.size); // SessionRequest.ops
    w.uint64Field(1, op.tag); // SessionOp.tag
    switch (op.kind) {
      case 'acquire': {
        const { a } = op;
        w.message(2, op.inner);
        w.stringField(1, a.name);
        w.stringField(2, a.backend);
        w.uint64Field(3, a.ttl);
        w.uint64Field(4, a.wait);
        w.stringField(5, a.owner);
        w.varintField(6, a.limit);
        w.varintField(7, a.mode);
        break;
      }
      case 'release':
        w.message(3, op.inner);
        w.stringField(1, op.r.name);
        w.stringField(2, op.r.backend);
        w.stringField(3, op.r.lease_id);
        break;
      case 'keepalive':
        w.message(5, 0);
        break;
      case 'cancel':
        w.message(6, op.inner);
        w.uint64Field(1, op.target);
        break;
    }
  }
  if (w.pos !== total) throw new Error(`session frame encoder wrote ${w.pos} of ${total} bytes`);
  return w.buf;
}

/** Wraps the loader's serializer of SessionRequest: the fast path where it applies, the loader's otherwise. */
export function sessionRequestEncoder(loader: (value: SessionRequest) => Buffer): (value: SessionRequest) => Buffer {
  return (value) => {
    if (value.open != null || value.end === true || value.ops === undefined) return loader(value);
    const ops: Sized[] = [];
    let total = 0;
    for (const op of value.ops) {
      const sized = sizeOp(op);
      if (sized === undefined) return loader(value);
      ops.push(sized);
      total += messageFieldSize(sized.size);
    }
    return write(ops, total);
  };
}
