// The value of a uint64 field of a reply, in the form protobufjs encodes fastest.
//
// NOTE: why not the decimal string the loader's `longs: String` hands out: protobufjs turns
// every 64-bit field of a reply into a Long first, and Long.fromString parses a decimal
// string with a loop of Long multiplications and additions (the largest single cost of
// encoding a lease), where Long.fromNumber is two divisions. A safe integer goes as a number;
// anything else (past 2^53, negative, a fractional ms from a test clock) goes as the string it
// was before: Long.fromNumber would not read those as Long.fromString does. The bytes on the
// wire are the same either way.

/** `value` as a uint64 reply field: a number when it is a safe integer, else its decimal string. */
export function uint64(value: bigint | number | string): number | string {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : String(value);
  if (typeof value === 'bigint') return value >= 0n && value <= MAX_SAFE ? Number(value) : value.toString();
  // A decimal string as the loader decodes one (a tag): a number when it is short enough to
  // be safe, and canonical (no leading zero), so that String() of it gives it back.
  if (value.length < 16 && CANONICAL.test(value)) return Number(value);
  return value;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const CANONICAL = /^(?:0|[1-9][0-9]*)$/;
