// A hand-written decoder for the answers of a Locks/Session stream, the messages an SDK reads
// most: a lock cycle through a session reads two results. protobuf.js decodes each uint64 into
// a Long and the loader's `longs: String` then turns it into a decimal string by long division
// (four of them per lease), and builds every message twice (decode, then toObject): a sixth
// of the SDK's CPU in a lock cycle. This reads the wire format straight into the shapes
// client/common/generated/ declares (SessionResponse__Output, with the loader's defaults).
//
// Only frames of lease, released, kept_alive and error results take this path (fields it
// does not know are skipped, as protobuf.js skips them). A frame with anything else (the
// session's `opened`, a Describe's LockState) or a malformed one goes to protobuf.js whole,
// so this never has to keep up with the rest of the protocol.
// test/sdk/session-decode.test.ts checks both give the same objects.
import { FALLBACK, WireReader as Reader, withFallback } from './common/protowire.js';
import type {
  Lease__Output,
  LockMode__Output,
  SessionResponse__Output,
  SessionResult__Output,
} from './common/index.js';

type Fallback = typeof FALLBACK;

const LOCK_MODES: readonly LockMode__Output[] = ['EXCLUSIVE', 'SHARED'];

function lease(r: Reader): Lease__Output {
  const out: Lease__Output = {
    name: '',
    backend: '',
    lease_id: '',
    fencing_token: '0',
    expires_at_ms: '0',
    owner: '',
    ttl_ms: '0',
    mode: 'EXCLUSIVE',
    limit: 0,
  };
  while (r.pos < r.end) {
    const key = r.uint32();
    switch (key) {
      case (1 << 3) | 2:
        out.name = r.string();
        break;
      case (2 << 3) | 2:
        out.backend = r.string();
        break;
      case (3 << 3) | 2:
        out.lease_id = r.string();
        break;
      case 4 << 3:
        out.fencing_token = r.uint64();
        break;
      case 5 << 3:
        out.expires_at_ms = r.uint64();
        break;
      case (6 << 3) | 2:
        out.owner = r.string();
        break;
      case 7 << 3:
        out.ttl_ms = r.uint64();
        break;
      case 8 << 3: {
        const mode = r.uint32() | 0;
        // As protobuf.js: a value the enum does not name stays a number.
        out.mode = LOCK_MODES[mode] ?? (mode as unknown as LockMode__Output);
        break;
      }
      case 9 << 3:
        out.limit = r.uint32();
        break;
      default:
        if (!r.skip(key & 7)) throw new RangeError(`wire type ${key & 7} in Lease`);
    }
  }
  return out;
}

/** One SessionResult, or FALLBACK for a result this decoder leaves to protobuf.js. */
function result(r: Reader): SessionResult__Output | Fallback {
  let tag = '0';
  let out: SessionResult__Output | undefined;
  while (r.pos < r.end) {
    const key = r.uint32();
    if (key === 1 << 3) {
      tag = r.uint64();
      continue;
    }
    if ((key & 7) !== 2) {
      if (key >>> 3 <= 6 || !r.skip(key & 7)) return FALLBACK;
      continue;
    }
    const inner = r.message();
    // NOTE: as protobuf.js: a oneof member seen later replaces one seen earlier.
    switch (key >>> 3) {
      case 2:
        out = { tag, lease: lease(inner), result: 'lease' };
        break;
      case 3: {
        let released = false;
        while (inner.pos < inner.end) {
          const k = inner.uint32();
          if (k === 1 << 3) released = inner.uint32() !== 0;
          else if (!inner.skip(k & 7)) return FALLBACK;
        }
        out = { tag, released: { released }, result: 'released' };
        break;
      }
      case 5: {
        const kept_alive = { expires_at_ms: '0', ttl_ms: '0' };
        while (inner.pos < inner.end) {
          const k = inner.uint32();
          if (k === 1 << 3) kept_alive.expires_at_ms = inner.uint64();
          else if (k === 2 << 3) kept_alive.ttl_ms = inner.uint64();
          else if (!inner.skip(k & 7)) return FALLBACK;
        }
        out = { tag, kept_alive, result: 'kept_alive' };
        break;
      }
      case 6: {
        const error = { code: 0, message: '', reason: '' };
        while (inner.pos < inner.end) {
          const k = inner.uint32();
          if (k === 1 << 3) error.code = inner.uint32();
          else if (k === ((2 << 3) | 2)) error.message = inner.string();
          else if (k === ((3 << 3) | 2)) error.reason = inner.string();
          else if (!inner.skip(k & 7)) return FALLBACK;
        }
        out = { tag, error, result: 'error' };
        break;
      }
      case 4: // a LockState (Describe)
        return FALLBACK;
      default:
        if (key >>> 3 <= 6) return FALLBACK;
      // an unknown field: skipped (r.bytes() moved past it)
    }
  }
  if (out === undefined) return { tag }; // no result set
  out.tag = tag;
  return out;
}

function fast(buf: Buffer): SessionResponse__Output | Fallback {
  const r = new Reader(buf, 0, buf.length);
  const results: SessionResult__Output[] = [];
  while (r.pos < r.end) {
    const key = r.uint32();
    if (key === ((2 << 3) | 2)) {
      const decoded = result(r.message());
      if (decoded === FALLBACK) return FALLBACK;
      results.push(decoded);
    } else if (key >>> 3 === 1 || !r.skip(key & 7)) return FALLBACK; // `opened`, or a malformed frame
  }
  return { opened: null, results };
}

/**
 * Wraps the loader's deserializer of SessionResponse: the fast path where it applies, the
 * loader's otherwise (and for anything the fast path finds malformed, so that the error, if
 * any, is the loader's).
 */
export function sessionResponseDecoder(
  loader: (buf: Buffer) => SessionResponse__Output,
): (buf: Buffer) => SessionResponse__Output {
  return withFallback(fast, loader);
}
