// Conversions at the SDK's edge between the friendly public types (bigint, Date, number ms)
// and the wire shapes of client/common/generated/ (64-bit integers as decimal strings, under the
// loader's `longs: String`).
import { InvalidArgumentError } from './errors.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * A millisecond option as a uint64 field. Checked here because the wire cannot carry a
 * fraction or a negative number: protobuf.js would silently truncate or wrap it.
 */
export function msField(field: string, value: number): string {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InvalidArgumentError(`${field} must be a whole number of milliseconds >= 0, got ${value}`);
  return String(value);
}

export function int64Field(field: string, value: bigint | number): string {
  return integerField(field, value, INT64_MIN, INT64_MAX);
}

export function uint64Field(field: string, value: bigint | number): string {
  return integerField(field, value, 0n, UINT64_MAX);
}

function integerField(field: string, value: bigint | number, min: bigint, max: bigint): string {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new InvalidArgumentError(`${field} must be a safe integer or a bigint, got ${value}`);
  }
  const n = BigInt(value);
  if (n < min || n > max) throw new InvalidArgumentError(`${field} must be between ${min} and ${max}, got ${n}`);
  return n.toString();
}

/** An `*_at_ms` field; "0" means "none". */
export function toDate(ms: string): Date | undefined {
  return ms === '0' ? undefined : new Date(Number(ms));
}

export function toBuffer(value: Uint8Array | string): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}
