// A hand-written encoder for the frames an SDK writes on a Locks/Session stream, the other
// half of session-decode.ts: a lock cycle writes an acquire and a release, and protobuf.js
// builds each op twice (fromObject, then encode) and writes it field by field through a
// chain of small buffers. This writes the wire bytes straight from the objects session.ts
// makes.
//
// Only frames of ops take this path: acquire, release, keepalive and cancel ops, with no
// trace_context, and every value of the type session.ts gives it (strings, safe-integer or
// decimal-string uint64s, a LockMode name). Anything else (the `open` and `end` frames,
// Describe, traced ops, a value of another type) goes to protobuf.js whole, so the bytes
// never depend on a case this encoder guessed at. test/sdk/session-encode.test.ts checks
// that protobuf.js reads back what protobuf.js itself would have written.
import type { AcquireRequest, ReleaseRequest, SessionOp, SessionRequest } from './common/index.js';

/** Returned by the sizing pass for a frame it leaves to protobuf.js. */
const FALLBACK = -1;

const MODES: Readonly<Record<string, number>> = { EXCLUSIVE: 0, SHARED: 1 };
const DECIMAL = /^\d{1,20}$/;
const TWO_32 = 2 ** 32;

/** Bytes of a varint of a non-negative safe integer. */
function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 128)) size++;
  return size;
}

/** A uint64 field value as a safe integer, a bigint above 2^53, or undefined if not one. */
function uint64(value: unknown): number | bigint | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string' || !DECIMAL.test(value)) return undefined;
  if (value.length <= 15) return Number(value);
  const big = BigInt(value);
  return big < 2n ** 64n ? big : undefined;
}

function uint64Size(value: number | bigint): number {
  if (typeof value === 'number') return varintSize(value);
  let size = 1;
  for (let v = value; v >= 0x80n; v >>= 7n) size++;
  return size;
}

/** Sizes of one frame's parts, computed once and written from. */
interface Sized {
  ops: { op: SessionOp; size: number; inner: number; tag: number | bigint; target: number | bigint }[];
  total: number;
}

const isString = (value: unknown): value is string | undefined => value === undefined || typeof value === 'string';
/** A string field's bytes: tag, length, payload; 0 when it is empty (proto3 writes nothing). */
const stringSize = (value: string | undefined) => {
  if (value === undefined || value === '') return 0;
  const length = Buffer.byteLength(value);
  return 1 + varintSize(length) + length;
};

function acquireSize(request: AcquireRequest): number {
  const { name, backend, owner, mode, limit } = request;
  if (!isString(name) || !isString(backend) || !isString(owner)) return FALLBACK;
  const ttl = request.ttl_ms === undefined ? 0 : uint64(request.ttl_ms);
  const wait = request.wait_ms === undefined ? 0 : uint64(request.wait_ms);
  if (ttl === undefined || wait === undefined) return FALLBACK;
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0 && limit < TWO_32)) return FALLBACK;
  if (mode !== undefined && (typeof mode !== 'string' || MODES[mode] === undefined)) return FALLBACK;
  let size = stringSize(name) + stringSize(backend) + stringSize(owner);
  if (ttl !== 0) size += 1 + uint64Size(ttl);
  if (wait !== 0) size += 1 + uint64Size(wait);
  if (limit) size += 1 + varintSize(limit);
  if (mode !== undefined && MODES[mode] !== 0) size += 2;
  return size;
}

function releaseSize(request: ReleaseRequest): number {
  const { name, backend, lease_id } = request;
  if (!isString(name) || !isString(backend) || !isString(lease_id)) return FALLBACK;
  return stringSize(name) + stringSize(backend) + stringSize(lease_id);
}

/** Sizes `request`, or returns undefined for a frame this encoder leaves to protobuf.js. */
function size(request: SessionRequest): Sized | undefined {
  if (request.open != null || request.end === true || request.ops === undefined) return undefined;
  const sized: Sized = { ops: [], total: 0 };
  for (const op of request.ops) {
    if (op.trace_context !== undefined && Object.keys(op.trace_context).length > 0) return undefined;
    const tag = op.tag === undefined ? 0 : uint64(op.tag);
    if (tag === undefined) return undefined;
    let inner: number;
    let target: number | bigint = 0;
    let present = 0;
    if (op.acquire != null) present++;
    if (op.release != null) present++;
    if (op.keepalive != null) present++;
    if (op.cancel != null) present++;
    if (present !== 1 || op.describe != null) return undefined;
    if (op.acquire != null) inner = acquireSize(op.acquire);
    else if (op.release != null) inner = releaseSize(op.release);
    else if (op.keepalive != null) inner = 0;
    else {
      const t = op.cancel!.tag === undefined ? 0 : uint64(op.cancel!.tag);
      if (t === undefined) return undefined;
      target = t;
      inner = t === 0 ? 0 : 1 + uint64Size(t);
    }
    if (inner === FALLBACK) return undefined;
    const opSize = (tag === 0 ? 0 : 1 + uint64Size(tag)) + 1 + varintSize(inner) + inner;
    sized.ops.push({ op, size: opSize, inner, tag, target });
    sized.total += 1 + varintSize(opSize) + opSize;
  }
  return sized;
}

/** Writes into one preallocated buffer. */
class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(value: number): void {
    let v = value;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  uint64(value: number | bigint): void {
    if (typeof value === 'number') return this.varint(value);
    let v = value;
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  string(key: number, value: string | undefined): void {
    if (value === undefined || value === '') return;
    this.buf[this.pos++] = key;
    const length = Buffer.byteLength(value);
    this.varint(length);
    this.pos += this.buf.write(value, this.pos, length, 'utf8');
  }
}

function write(sized: Sized): Buffer {
  const w = new Writer(Buffer.allocUnsafe(sized.total));
  for (const { op, size, inner, tag, target } of sized.ops) {
    w.buf[w.pos++] = (2 << 3) | 2; // SessionRequest.ops
    w.varint(size);
    if (tag !== 0) {
      w.buf[w.pos++] = 1 << 3; // SessionOp.tag
      w.uint64(tag);
    }
    if (op.acquire != null) {
      const a = op.acquire;
      w.buf[w.pos++] = (2 << 3) | 2;
      w.varint(inner);
      w.string((1 << 3) | 2, a.name);
      w.string((2 << 3) | 2, a.backend);
      const ttl = a.ttl_ms === undefined ? 0 : uint64(a.ttl_ms)!;
      if (ttl !== 0) {
        w.buf[w.pos++] = 3 << 3;
        w.uint64(ttl);
      }
      const wait = a.wait_ms === undefined ? 0 : uint64(a.wait_ms)!;
      if (wait !== 0) {
        w.buf[w.pos++] = 4 << 3;
        w.uint64(wait);
      }
      w.string((5 << 3) | 2, a.owner);
      if (a.limit) {
        w.buf[w.pos++] = 6 << 3;
        w.varint(a.limit);
      }
      const mode = a.mode === undefined ? 0 : MODES[a.mode as string]!;
      if (mode !== 0) {
        w.buf[w.pos++] = 7 << 3;
        w.varint(mode);
      }
    } else if (op.release != null) {
      const r = op.release;
      w.buf[w.pos++] = (3 << 3) | 2;
      w.varint(inner);
      w.string((1 << 3) | 2, r.name);
      w.string((2 << 3) | 2, r.backend);
      w.string((3 << 3) | 2, r.lease_id);
    } else if (op.keepalive != null) {
      w.buf[w.pos++] = (5 << 3) | 2;
      w.varint(0);
    } else {
      w.buf[w.pos++] = (6 << 3) | 2;
      w.varint(inner);
      if (target !== 0) {
        w.buf[w.pos++] = 1 << 3; // SessionCancel.tag
        w.uint64(target);
      }
    }
  }
  if (w.pos !== sized.total) throw new Error(`session frame encoder wrote ${w.pos} of ${sized.total} bytes`);
  return w.buf;
}

/** Wraps the loader's serializer of SessionRequest: the fast path where it applies, the loader's otherwise. */
export function sessionRequestEncoder(loader: (value: SessionRequest) => Buffer): (value: SessionRequest) => Buffer {
  return (value) => {
    const sized = size(value);
    return sized === undefined ? loader(value) : write(sized);
  };
}
