// Random Locks/Session frames, for the tests of the hand-written session codecs (the SDK's,
// client/session-decode.ts and session-encode.ts, and the server's, src/locks/session-codec.ts)
// against protobuf.js: the frames of ops an SDK writes and of results a server answers, with
// the values that matter to a codec (64-bit edges on both sides of 2^53, empty, long and
// non-ASCII strings, optional fields present or not).
import type { SessionOp, SessionRequest, SessionResponse } from '../../client/common/index.js';

/** uint64 values, as numbers (safe integers) and as decimal strings past 2^53. */
export const U64_EDGES: readonly (number | string)[] = [
  0,
  1,
  127,
  128,
  16383,
  16384,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  '9007199254740992',
  '9007199254740993',
  '12345678901234567890',
  '18446744073709551615',
];

/** A small deterministic generator: a frame is reproducible from its seed. */
function generator(seed: number) {
  let x = seed;
  const rand = (n: number) => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % n;
  };
  const u64 = () => (rand(3) === 0 ? U64_EDGES[rand(U64_EDGES.length)]! : rand(2 ** 30));
  const text = () => ['', 'a', 'orders/42', 'ключ', '鍵 🔑', 'x'.repeat(rand(300))][rand(6)]!;
  return { rand, u64, text };
}

/**
 * A frame of acquire, release, keepalive and cancel ops. Any client's frames (the default)
 * also have ops with none, and `end` sometimes; the SDK's (`sdk: true`) never do.
 */
export function randomSessionRequest(seed: number, { sdk = false } = {}): SessionRequest {
  const { rand, u64, text } = generator(seed);
  const ops: SessionOp[] = [];
  for (let i = rand(12); i > 0; i--) {
    const tag = u64();
    switch (rand(sdk ? 4 : 5)) {
      case 0: {
        const acquire: NonNullable<SessionOp['acquire']> = { name: text(), ttl_ms: u64(), wait_ms: u64() };
        if (rand(2) === 0) acquire.backend = text();
        if (rand(2) === 0) acquire.owner = text();
        if (rand(2) === 0) acquire.limit = [0, 1, 7, 2 ** 32 - 1][rand(4)]!;
        if (rand(2) === 0) acquire.mode = rand(2) === 0 ? 'EXCLUSIVE' : 'SHARED';
        ops.push({ tag, acquire });
        break;
      }
      case 1:
        ops.push({ tag, release: { name: text(), backend: text(), lease_id: text() } });
        break;
      case 2:
        ops.push({ tag, keepalive: {} });
        break;
      case 3:
        ops.push({ tag: 0, cancel: { tag: u64() } });
        break;
      default:
        ops.push({ tag });
    }
  }
  return !sdk && rand(5) === 0 ? { ops, end: true } : { ops };
}

/** A frame of lease, released, kept_alive and error results (and results with none). */
export function randomSessionResponse(seed: number): SessionResponse {
  const { rand, u64, text } = generator(seed);
  const results: NonNullable<SessionResponse['results']> = [];
  for (let i = rand(12); i > 0; i--) {
    const tag = u64();
    switch (rand(5)) {
      case 0:
        results.push({
          tag,
          lease: {
            name: text(),
            backend: ['', 'memory', 'etcd'][rand(3)],
            lease_id: text(),
            fencing_token: u64(),
            expires_at_ms: u64(),
            owner: text(),
            ttl_ms: u64(),
            mode: rand(2) === 0 ? 'EXCLUSIVE' : 'SHARED',
            limit: [0, 1, 7, 2 ** 32 - 1][rand(4)]!,
          },
        });
        break;
      case 1:
        results.push({ tag, released: { released: rand(2) === 0 } });
        break;
      case 2:
        results.push({ tag, kept_alive: { expires_at_ms: u64(), ttl_ms: u64() } });
        break;
      case 3:
        results.push({ tag, error: { code: rand(17), message: text(), reason: text() } });
        break;
      default:
        results.push({ tag });
    }
  }
  return { results };
}
