// Protocol-buffer wire primitives for the hand-written codecs of the Locks/Session frames
// (client/session-decode.ts and session-encode.ts in the SDK, src/locks/session-codec.ts in
// the server): the messages both sides read and write most. Values come and go in the shapes
// the loader gives (LOADER_OPTIONS: 64-bit integers as decimal strings).

const TWO_32 = 2 ** 32;
const DECIMAL = /^\d{1,20}$/;

/** Wire types. */
export const VARINT = 0;
export const LEN = 2;

/** A field's key byte(s): field number and wire type. */
export const key = (field: number, wireType: number) => (field << 3) | wireType;

/** A cursor over one message's bytes, [pos, end) of buf. Throws RangeError on a truncated field. */
export class WireReader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint as uint32 (keys, lengths, enums, uint32, bool): its low 32 bits, as protobuf.js. */
  uint32(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new RangeError('truncated varint');
      const byte = this.buf[this.pos++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value >>> 0;
    }
    // A longer varint (a negative int32 is sign-extended to 10 bytes): its low 32 bits.
    this.skipVarint();
    return value >>> 0;
  }

  /** A uint64 varint as the loader's decimal string. */
  uint64(): string {
    // Up to 7 bytes (49 bits: tags, ms timestamps, revisions), a double sums them exactly.
    const { buf, end } = this;
    let pos = this.pos;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 7 && pos < end; i++) {
      const byte = buf[pos++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        this.pos = pos;
        return String(value);
      }
      scale *= 128;
    }
    return this.#uint64Wide();
  }

  /** uint64() past 7 bytes, from the start of the varint: 32-bit halves, BigInt above 2^53. */
  #uint64Wide(): string {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError('truncated varint');
      const byte = this.buf[this.pos++]!;
      const bits = byte & 0x7f;
      if (i < 4) lo += bits * 2 ** (7 * i);
      else if (i === 4) {
        lo += (bits & 0x0f) * 2 ** 28;
        hi += bits >>> 4;
      } else hi += bits * 2 ** (7 * i - 32);
      if (byte < 0x80) {
        hi %= TWO_32;
        // Below 2^53 a double is exact; above, BigInt.
        return hi < 2 ** 21 ? String(hi * TWO_32 + lo) : ((BigInt(hi) << 32n) | BigInt(lo)).toString();
      }
    }
    throw new RangeError('varint longer than 10 bytes');
  }

  /** A length-delimited field: its payload's start; the cursor moves past it. */
  bytes(): number {
    const length = this.uint32();
    const start = this.pos;
    if (start + length > this.end) throw new RangeError('truncated length-delimited field');
    this.pos = start + length;
    return start;
  }

  /** A length-delimited field's payload as a reader of its own. */
  message(): WireReader {
    const start = this.bytes();
    return new WireReader(this.buf, start, this.pos);
  }

  string(): string {
    const start = this.bytes();
    return this.buf.toString('utf8', start, this.pos);
  }

  skipVarint(): void {
    while (this.pos < this.end && this.buf[this.pos++]! >= 0x80);
  }

  /** Skips a field the message does not know; false for a wire type proto3 does not have. */
  skip(wireType: number): boolean {
    switch (wireType) {
      case 0:
        this.skipVarint();
        return true;
      case 1:
        this.pos += 8;
        return this.pos <= this.end;
      case 2:
        this.bytes();
        return true;
      case 5:
        this.pos += 4;
        return this.pos <= this.end;
      default:
        return false; // groups (3, 4)
    }
  }
}

/** Bytes of a varint of a non-negative safe integer. */
export function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 128)) size++;
  return size;
}

/**
 * A uint64 field's value as the encoders take it: a safe integer, a bigint at or above 2^53,
 * or undefined for anything protobuf.js should judge (a fraction, a negative, a Long, text).
 */
export function uint64Value(value: unknown): number | bigint | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string' || !DECIMAL.test(value)) return undefined;
  if (value.length <= 15) return Number(value);
  const big = BigInt(value);
  return big < 2n ** 64n ? (big < 2n ** 53n ? Number(big) : big) : undefined;
}

export function uint64Size(value: number | bigint): number {
  if (typeof value === 'number') return varintSize(value);
  let size = 1;
  for (let v = value; v >= 0x80n; v >>= 7n) size++;
  return size;
}

/** A string field's bytes (key, length, payload); 0 when empty, as proto3 writes nothing then. */
export function stringFieldSize(value: string): number {
  if (value === '') return 0;
  const length = Buffer.byteLength(value);
  return 1 + varintSize(length) + length;
}

/** A uint64 field's bytes; 0 when zero. */
export const uint64FieldSize = (value: number | bigint) => (value === 0 ? 0 : 1 + uint64Size(value));

/** A varint field's bytes (uint32, enum, bool); 0 when zero. */
export const varintFieldSize = (value: number) => (value === 0 ? 0 : 1 + varintSize(value));

/** A message field's bytes around a payload of `size`. */
export const messageFieldSize = (size: number) => 1 + varintSize(size) + size;

/** Writes into one buffer sized beforehand. Field numbers here are all below 16: one key byte. */
export class WireWriter {
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

  /** A message field's key and length; its payload is written next. */
  message(field: number, size: number): void {
    this.buf[this.pos++] = key(field, LEN);
    this.varint(size);
  }

  stringField(field: number, value: string): void {
    if (value === '') return;
    this.buf[this.pos++] = key(field, LEN);
    const length = Buffer.byteLength(value);
    this.varint(length);
    this.pos += this.buf.write(value, this.pos, length, 'utf8');
  }

  uint64Field(field: number, value: number | bigint): void {
    if (value === 0) return;
    this.buf[this.pos++] = key(field, VARINT);
    this.uint64(value);
  }

  varintField(field: number, value: number): void {
    if (value === 0) return;
    this.buf[this.pos++] = key(field, VARINT);
    this.varint(value);
  }
}

/** What a fast path returns for a message it leaves to the loader. */
export const FALLBACK: unique symbol = Symbol('fallback');

/**
 * A deserializer that tries `fast` first and takes the loader's answer where `fast` returns
 * FALLBACK or throws (a malformed message: the error, if any, is then the loader's own).
 */
export function withFallback<T>(
  fast: (buf: Buffer) => T | typeof FALLBACK,
  loader: (buf: Buffer) => T,
): (buf: Buffer) => T {
  return (buf) => {
    let decoded: T | typeof FALLBACK;
    try {
      decoded = fast(buf);
    } catch {
      decoded = FALLBACK;
    }
    return decoded === FALLBACK ? loader(buf) : decoded;
  };
}
