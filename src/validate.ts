// Request field checks shared by the lock and cache services. Each throws
// InvalidArgumentError with a message that names the field and says what to send instead.
import { InvalidArgumentError } from './errors.js';

export const MAX_NAME_BYTES = 250;

// Whitespace, C0/C1 controls, and U+FFFD (what protobuf decoding leaves of invalid UTF-8).
const FORBIDDEN = /[\s\p{Cc}\uFFFD]/u;

/** Lock names and cache keys: 1–250 bytes of UTF-8, no whitespace or control characters. */
export function checkName(field: string, value: string): string {
  if (value.length === 0)
    throw new InvalidArgumentError(`${field} is required: send 1-${MAX_NAME_BYTES} bytes of UTF-8`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > MAX_NAME_BYTES)
    throw new InvalidArgumentError(`${field} is ${bytes} bytes; the limit is ${MAX_NAME_BYTES} bytes of UTF-8`);
  const bad = FORBIDDEN.exec(value);
  if (bad !== null) {
    const what =
      bad[0] === '\uFFFD'
        ? 'invalid UTF-8'
        : `character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    throw new InvalidArgumentError(
      `${field} contains ${what} at index ${bad.index}; whitespace, control characters and invalid UTF-8 are not allowed`,
    );
  }
  return value;
}

/** A uint64 millisecond field (a decimal string from the loader) as a number within bounds. */
export function checkMs(field: string, value: string | number, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new InvalidArgumentError(`${field} must be between ${min} and ${max} ms, got ${value}`);
  }
  return n;
}

/** A 64-bit integer field as a bigint. */
export function toBigInt(value: string | number): bigint {
  return BigInt(value);
}

export function checkText(field: string, value: string, maxBytes: number): string {
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > maxBytes) throw new InvalidArgumentError(`${field} is ${bytes} bytes; the limit is ${maxBytes}`);
  return value;
}

/** Characters of a client's string that an error message quotes, at most. */
const MAX_QUOTED_CHARS = 64;

/**
 * A client's string as an error message quotes it: in double quotes, cut after 64 characters
 * (whole code points) with its size in bytes. NOTE: a status message travels in the
 * grpc-message trailer; grpc-js clients cannot take a header block of about 64 KiB, and one
 * that large leaves the call, and every call after it on that connection, without an answer.
 */
export function quoted(value: string): string {
  const chars = Array.from(value);
  if (chars.length <= MAX_QUOTED_CHARS) return `"${value}"`;
  return `"${chars.slice(0, MAX_QUOTED_CHARS).join('')}…" (${Buffer.byteLength(value, 'utf8')} bytes)`;
}
