// Every field of every RPC, sent wrong: the caller gets INVALID_ARGUMENT (or the code the
// .proto documents) with a message that names the field, and the server keeps serving
// without logging an internal error. Invalid UTF-8 and non-protobuf bytes go through a
// generic client as raw bytes, since no well-behaved client can produce them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Lease__Output as Lease, LockState__Output as LockState } from '../../client/common/index.js';
import { MAX_CACHE_TTL_MS } from '../../src/cache/service.js';
import { startServer, type TestServer } from '../support/server.js';

const CALL_TIMEOUT_MS = 10_000;
const LIMITS = { defaultTtlMs: 20_000, maxTtlMs: 60_000, maxWaitMs: 30_000, maxValueBytes: 16 } as const;
const UINT64_MAX = '18446744073709551615';
const INT64_MIN = '-9223372036854775808';

type Service = 'Locks' | 'Cache';
type Method =
  | 'Acquire'
  | 'Refresh'
  | 'Release'
  | 'Describe'
  | 'Get'
  | 'Set'
  | 'Cas'
  | 'Add'
  | 'Delete'
  | 'Incr'
  | 'Touch';

interface RpcSpec {
  readonly service: Service;
  /** The name/key field: its proto name and field number. */
  readonly nameField: 'name' | 'key';
  readonly nameNumber: number;
  /** The backend/store field. */
  readonly targetField: 'backend' | 'store';
  /** A request that passes validation, given the name/key. */
  valid(name: string): Record<string, unknown>;
  /** Hand-encoded fields besides name/key that keep a raw request otherwise valid. */
  readonly rawRest: Buffer;
}

// --- hand encoding: just enough protobuf to send bytes no protobuf library would write ---

function varint(value: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return Buffer.from(out);
}
const lengthDelimited = (field: number, bytes: Buffer) =>
  Buffer.concat([varint(BigInt((field << 3) | 2)), varint(BigInt(bytes.length)), bytes]);
const varintField = (field: number, value: bigint) => Buffer.concat([varint(BigInt(field << 3)), varint(value)]);

const RPCS: Record<Method, RpcSpec> = {
  Acquire: {
    service: 'Locks',
    nameField: 'name',
    nameNumber: 1,
    targetField: 'backend',
    valid: (name) => ({ name, ttl_ms: 1_000 }),
    rawRest: varintField(3, 1_000n),
  },
  Refresh: {
    service: 'Locks',
    nameField: 'name',
    nameNumber: 1,
    targetField: 'backend',
    valid: (name) => ({ name, lease_id: 'no-such-lease' }),
    rawRest: lengthDelimited(3, Buffer.from('no-such-lease')),
  },
  Release: {
    service: 'Locks',
    nameField: 'name',
    nameNumber: 1,
    targetField: 'backend',
    valid: (name) => ({ name, lease_id: 'no-such-lease' }),
    rawRest: lengthDelimited(3, Buffer.from('no-such-lease')),
  },
  Describe: {
    service: 'Locks',
    nameField: 'name',
    nameNumber: 1,
    targetField: 'backend',
    valid: (name) => ({ name }),
    rawRest: Buffer.alloc(0),
  },
  Get: {
    service: 'Cache',
    nameField: 'key',
    nameNumber: 2,
    targetField: 'store',
    valid: (key) => ({ key }),
    rawRest: Buffer.alloc(0),
  },
  Set: {
    service: 'Cache',
    nameField: 'key',
    nameNumber: 2,
    targetField: 'store',
    valid: (key) => ({ key, value: Buffer.from('v') }),
    rawRest: lengthDelimited(3, Buffer.from('v')),
  },
  Cas: {
    service: 'Cache',
    nameField: 'key',
    nameNumber: 2,
    targetField: 'store',
    valid: (key) => ({ key, value: Buffer.from('v'), cas: '1' }),
    rawRest: Buffer.concat([lengthDelimited(3, Buffer.from('v')), varintField(4, 1n)]),
  },
  Add: {
    service: 'Cache',
    nameField: 'key',
    nameNumber: 2,
    targetField: 'store',
    valid: (key) => ({ key, value: Buffer.from('v') }),
    rawRest: lengthDelimited(3, Buffer.from('v')),
  },
  Delete: {
    service: 'Cache',
    nameField: 'key',
    nameNumber: 2,
    targetField: 'store',
    valid: (key) => ({ key }),
    rawRest: Buffer.alloc(0),
  },
  Incr: {
    service: 'Cache',
    nameField: 'key',
    nameNumber: 2,
    targetField: 'store',
    valid: (key) => ({ key, delta: '1' }),
    rawRest: varintField(3, 1n),
  },
  Touch: {
    service: 'Cache',
    nameField: 'key',
    nameNumber: 2,
    targetField: 'store',
    valid: (key) => ({ key }),
    rawRest: Buffer.alloc(0),
  },
};
const METHODS = Object.keys(RPCS) as Method[];

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Names and keys that must be refused, with what the message must say after the field name. */
const BAD_NAMES: readonly { label: string; value: string; says: string }[] = [
  { label: 'empty', value: '', says: 'is required: send 1-250 bytes of UTF-8' },
  { label: '251 ASCII bytes', value: 'a'.repeat(251), says: 'is 251 bytes; the limit is 250 bytes' },
  {
    label: '126 two-byte characters (252 bytes)',
    value: 'é'.repeat(126),
    says: 'is 252 bytes; the limit is 250 bytes',
  },
  {
    label: '63 four-byte characters (252 bytes)',
    value: '🔒'.repeat(63),
    says: 'is 252 bytes; the limit is 250 bytes',
  },
  { label: 'a space', value: 'a b', says: 'contains character U+0020 at index 1' },
  { label: 'a tab', value: 'a\tb', says: 'contains character U+0009 at index 1' },
  { label: 'a trailing newline', value: 'lock\n', says: 'contains character U+000A at index 4' },
  { label: 'a carriage return', value: 'a\rb', says: 'contains character U+000D at index 1' },
  { label: 'a no-break space', value: 'a\u00a0b', says: 'contains character U+00A0 at index 1' },
  { label: 'a line separator', value: 'a\u2028b', says: 'contains character U+2028 at index 1' },
  { label: 'an ideographic space', value: 'a\u3000b', says: 'contains character U+3000 at index 1' },
  { label: 'NUL', value: 'a\u0000b', says: 'contains character U+0000 at index 1' },
  { label: 'DEL', value: 'a\u007fb', says: 'contains character U+007F at index 1' },
  { label: 'a C1 control (NEL)', value: 'a\u0085b', says: 'contains character U+0085 at index 1' },
  { label: 'a terminal escape', value: '\u001b[31mred', says: 'contains character U+001B at index 0' },
];

/** Byte sequences that are not UTF-8; each is sent inside an otherwise valid name. */
const INVALID_UTF8: readonly { label: string; bytes: number[] }[] = [
  { label: 'a lone 0xff', bytes: [0x61, 0xff, 0x62] },
  { label: 'a lone continuation byte', bytes: [0x61, 0x80] },
  { label: 'an overlong NUL (C0 80)', bytes: [0xc0, 0x80] },
  { label: 'an encoded surrogate (ED A0 80)', bytes: [0x61, 0xed, 0xa0, 0x80] },
  { label: 'a truncated 3-byte sequence', bytes: [0x61, 0xe2, 0x82] },
  { label: 'a 5-byte sequence', bytes: [0xf8, 0x88, 0x80, 0x80, 0x80] },
  { label: 'a code point above U+10FFFF', bytes: [0xf4, 0x90, 0x80, 0x80] },
];

const GOOD_NAMES: readonly string[] = [
  'a',
  'a'.repeat(250),
  'é'.repeat(125),
  `${'🔒'.repeat(62)}ab`,
  'orders/42:lock#1',
  'ключ-замок',
  '名前',
  'x\u200by',
];

describe('request validation', () => {
  let s: TestServer;
  let raw: grpc.Client;

  before(async () => {
    s = await startServer(LIMITS);
    raw = new grpc.Client(s.address, grpc.credentials.createInsecure());
  });

  after(async () => {
    raw?.close();
    // Throws if the server logged an internal error while answering any of the above.
    await s?.[Symbol.asyncDispose]();
  });

  const options = (): grpc.CallOptions => ({ deadline: Date.now() + CALL_TIMEOUT_MS });
  const clientOf = (service: Service): grpc.Client => (service === 'Locks' ? s.locks : s.cache);
  const call = <Res>(method: Method, request: object) =>
    s.call<Res>(clientOf(RPCS[method].service), method, request, options());

  function rawCall(path: string, bytes: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      raw.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        new grpc.Metadata(),
        options(),
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  async function expectStatus(
    promise: Promise<unknown>,
    code: grpc.status,
    message: RegExp,
  ): Promise<grpc.ServiceError> {
    let caught: grpc.ServiceError | undefined;
    await assert.rejects(promise, (err: grpc.ServiceError) => {
      caught = err;
      assert.equal(grpc.status[err.code], grpc.status[code], `${err.code} ${err.details}`);
      assert.match(err.details, message);
      return true;
    });
    return caught!;
  }

  async function invalid(method: Method, request: object, message: RegExp): Promise<void> {
    await expectStatus(call(method, request), grpc.status.INVALID_ARGUMENT, message);
  }

  describe('names and keys', () => {
    for (const method of METHODS) {
      const spec = RPCS[method];
      test(`${method}: a bad ${spec.nameField} is INVALID_ARGUMENT naming ${spec.nameField}`, async (t) => {
        for (const bad of BAD_NAMES) {
          await t.test(bad.label, async () => {
            await invalid(method, spec.valid(bad.value), new RegExp(`^${spec.nameField} ${escapeRegExp(bad.says)}`));
          });
        }
      });

      test(`${method}: invalid UTF-8 in ${spec.nameField} (raw bytes) is INVALID_ARGUMENT naming ${spec.nameField}`, async (t) => {
        for (const bad of INVALID_UTF8) {
          await t.test(bad.label, async () => {
            const request = Buffer.concat([lengthDelimited(spec.nameNumber, Buffer.from(bad.bytes)), spec.rawRest]);
            await expectStatus(
              rawCall(`/latchkey.v1.${spec.service}/${method}`, request),
              grpc.status.INVALID_ARGUMENT,
              new RegExp(`^${spec.nameField} contains invalid UTF-8 at index \\d+`),
            );
          });
        }
      });

      test(`${method}: an unknown ${spec.targetField} is INVALID_ARGUMENT listing the enabled ones`, async (t) => {
        const enabled = spec.targetField === 'backend' ? 'memory' : 'lru';
        for (const target of ['nope', enabled.toUpperCase(), `${enabled} `]) {
          await t.test(JSON.stringify(target), () =>
            invalid(
              method,
              { ...spec.valid('v-target'), [spec.targetField]: target },
              new RegExp(
                `^${spec.targetField} "${escapeRegExp(target)}" is not enabled on this server; use one of: ${enabled} \\(or leave it empty for ${enabled}\\)`,
              ),
            ),
          );
        }
        await t.test('invalid UTF-8 (raw bytes)', async () => {
          await expectStatus(
            rawCall(
              `/latchkey.v1.${spec.service}/${method}`,
              Buffer.concat([
                lengthDelimited(spec.nameNumber, Buffer.from('v-target')),
                lengthDelimited(spec.service === 'Locks' ? 2 : 1, Buffer.from([0xff])),
                spec.rawRest,
              ]),
            ),
            grpc.status.INVALID_ARGUMENT,
            new RegExp(`^${spec.targetField} ".*" is not enabled on this server; use one of: ${enabled}`),
          );
        });
      });
    }

    test('names at the limits are accepted and come back byte for byte', async (t) => {
      for (const name of GOOD_NAMES) {
        await t.test(`${Buffer.byteLength(name)} bytes: ${JSON.stringify(name.slice(0, 12))}`, async () => {
          const lease = await call<Lease>('Acquire', { name, ttl_ms: 30_000 });
          assert.equal(lease.name, name);
          const state = await call<LockState>('Describe', { name });
          assert.equal(state.name, name);
          assert.equal(state.held, true);
          await call('Release', { name, lease_id: lease.lease_id });
          await call('Set', { key: name, value: Buffer.from('v') });
          const got = await call<{ found: boolean; value: Buffer }>('Get', { key: name });
          assert.equal(got.found, true);
          await call('Delete', { key: name });
        });
      }
    });
  });

  describe('Locks', () => {
    test('Acquire: ttl_ms 0 means --default-ttl-ms', async () => {
      const before = Date.now();
      const lease = await call<Lease>('Acquire', { name: 'v-default-ttl', ttl_ms: 0 });
      const after = Date.now();
      const expiresAt = Number(lease.expires_at_ms);
      assert.ok(
        expiresAt >= before + LIMITS.defaultTtlMs && expiresAt <= after + LIMITS.defaultTtlMs,
        `expires_at_ms ${expiresAt} is not about now + ${LIMITS.defaultTtlMs}`,
      );
      await call('Release', { name: 'v-default-ttl', lease_id: lease.lease_id });
    });

    test('Acquire: ttl_ms, wait_ms and owner out of bounds are INVALID_ARGUMENT naming the field', async (t) => {
      const cases: [string, object, RegExp][] = [
        ['ttl_ms below 10', { ttl_ms: 9 }, /^ttl_ms must be between 10 and 60000 ms, got 9$/],
        [
          'ttl_ms above --max-ttl-ms',
          { ttl_ms: LIMITS.maxTtlMs + 1 },
          /^ttl_ms must be between 10 and 60000 ms, got 60001$/,
        ],
        [
          'ttl_ms = 2^64-1',
          { ttl_ms: UINT64_MAX },
          new RegExp(`^ttl_ms must be between 10 and 60000 ms, got ${UINT64_MAX}$`),
        ],
        [
          'wait_ms above --max-wait-ms',
          { wait_ms: LIMITS.maxWaitMs + 1 },
          /^wait_ms must be between 0 and 30000 ms, got 30001$/,
        ],
        [
          'wait_ms = 2^64-1',
          { wait_ms: UINT64_MAX },
          new RegExp(`^wait_ms must be between 0 and 30000 ms, got ${UINT64_MAX}$`),
        ],
        ['owner of 1025 bytes', { owner: 'o'.repeat(1025) }, /^owner is 1025 bytes; the limit is 1024$/],
      ];
      for (const [label, fields, message] of cases) {
        await t.test(label, () => invalid('Acquire', { name: 'v-acquire-bounds', ...fields }, message));
      }
    });

    test('Acquire: values at the bounds are accepted; an empty owner becomes the peer address', async () => {
      // A 10 ms lease may be gone before the next call on a busy machine: it is left to expire.
      const shortest = await call<Lease>('Acquire', { name: 'v-acquire-ttl-10', ttl_ms: 10 });
      assert.ok(Number(shortest.expires_at_ms) - Date.now() <= 10);
      const longest = await call<Lease>('Acquire', {
        name: 'v-acquire-max',
        ttl_ms: LIMITS.maxTtlMs,
        wait_ms: LIMITS.maxWaitMs,
        owner: 'o'.repeat(1024),
      });
      assert.equal(longest.owner, 'o'.repeat(1024));
      await call('Release', { name: 'v-acquire-max', lease_id: longest.lease_id });
      const anonymous = await call<Lease>('Acquire', { name: 'v-acquire-peer', ttl_ms: 30_000, owner: '' });
      assert.match(anonymous.owner, /127\.0\.0\.1:\d+/);
      await call('Release', { name: 'v-acquire-peer', lease_id: anonymous.lease_id });
    });

    test('Refresh: ttl_ms and lease_id out of bounds are INVALID_ARGUMENT naming the field', async (t) => {
      const lease = await call<Lease>('Acquire', { name: 'v-refresh', ttl_ms: 30_000 });
      const cases: [string, object, RegExp][] = [
        ['ttl_ms below 10', { ttl_ms: 9 }, /^ttl_ms must be between 10 and 60000 ms, got 9$/],
        ['ttl_ms above --max-ttl-ms', { ttl_ms: LIMITS.maxTtlMs + 1 }, /^ttl_ms must be between 10 and 60000 ms/],
        ['ttl_ms = 2^64-1', { ttl_ms: UINT64_MAX }, /^ttl_ms must be between 10 and 60000 ms/],
        ['empty lease_id', { lease_id: '' }, /^lease_id is required: send the lease_id that Acquire returned$/],
        ['lease_id of 1025 bytes', { lease_id: 'x'.repeat(1025) }, /^lease_id is 1025 bytes; the limit is 1024$/],
      ];
      for (const [label, fields, message] of cases) {
        await t.test(label, () =>
          invalid('Refresh', { name: 'v-refresh', lease_id: lease.lease_id, ...fields }, message),
        );
      }
      // ttl_ms 0 keeps the lease's own TTL; none of the refused calls touched the lease.
      const before = Date.now();
      const refreshed = await call<Lease>('Refresh', { name: 'v-refresh', lease_id: lease.lease_id, ttl_ms: 0 });
      assert.equal(refreshed.fencing_token, lease.fencing_token);
      assert.ok(
        Number(refreshed.expires_at_ms) >= before + 30_000 && Number(refreshed.expires_at_ms) <= Date.now() + 30_000,
        'ttl_ms 0 keeps the 30000 ms TTL',
      );
      await call('Release', { name: 'v-refresh', lease_id: lease.lease_id });
    });

    test('Release: an empty or oversized lease_id is INVALID_ARGUMENT naming lease_id', async () => {
      await invalid('Release', { name: 'v-release', lease_id: '' }, /^lease_id is required/);
      await invalid(
        'Release',
        { name: 'v-release', lease_id: 'x'.repeat(1025) },
        /^lease_id is 1025 bytes; the limit is 1024$/,
      );
    });

    test('Release and Refresh with a wrong lease are FAILED_PRECONDITION and the holder keeps the lock', async () => {
      const name = 'v-wrong-lease';
      const lease = await call<Lease>('Acquire', { name, ttl_ms: 30_000, owner: 'the-holder' });
      const other = await call<Lease>('Acquire', { name: 'v-wrong-lease-other', ttl_ms: 30_000 });
      const wrongIds = ['not-a-lease', other.lease_id, lease.lease_id.toUpperCase(), `${lease.lease_id}x`];
      for (const leaseId of wrongIds) {
        for (const method of ['Release', 'Refresh'] as const) {
          const err = await expectStatus(
            call(method, { name, lease_id: leaseId }),
            grpc.status.FAILED_PRECONDITION,
            /does not hold lock "v-wrong-lease": it is held by the-holder/,
          );
          // It may echo what the caller sent, but never the holder's lease_id.
          assert.ok(
            !err.details.replace(leaseId, '').includes(lease.lease_id),
            `the error reveals the holder's lease_id: ${err.details}`,
          );
        }
      }
      // Raw bytes that are not UTF-8 cannot name a lease either.
      await expectStatus(
        rawCall(
          '/latchkey.v1.Locks/Release',
          Buffer.concat([lengthDelimited(1, Buffer.from(name)), lengthDelimited(3, Buffer.from([0xff, 0xfe]))]),
        ),
        grpc.status.FAILED_PRECONDITION,
        /does not hold lock/,
      );

      const state = await call<LockState>('Describe', { name });
      assert.equal(state.held, true);
      assert.equal(state.owner, 'the-holder');
      assert.equal(state.fencing_token, lease.fencing_token);
      assert.equal(state.expires_at_ms, lease.expires_at_ms, 'a refused Refresh must not extend the lease');
      // The real lease still works, exactly once.
      await call('Refresh', { name, lease_id: lease.lease_id, ttl_ms: 30_000 });
      assert.deepEqual(await call('Release', { name, lease_id: lease.lease_id }), { released: true });
      await expectStatus(
        call('Release', { name, lease_id: lease.lease_id }),
        grpc.status.FAILED_PRECONDITION,
        /does not hold lock "v-wrong-lease": it is not held/,
      );
      await call('Release', { name: 'v-wrong-lease-other', lease_id: other.lease_id });
    });
  });

  describe('Cache', () => {
    test('a value over --max-value-bytes is INVALID_ARGUMENT naming value and the flag', async (t) => {
      for (const method of ['Set', 'Cas', 'Add'] as const) {
        await t.test(method, async () => {
          await invalid(
            method,
            { ...RPCS[method].valid('v-big'), value: Buffer.alloc(LIMITS.maxValueBytes + 1) },
            /^value is 17 bytes; the limit is 16 \(--max-value-bytes\)$/,
          );
          await invalid(
            method,
            { ...RPCS[method].valid('v-big'), value: Buffer.alloc(1024 * 1024) },
            /^value is 1048576 bytes; the limit is 16/,
          );
        });
      }
      // Exactly the limit is fine, and nothing was stored by the refused calls.
      assert.equal((await call<{ found: boolean }>('Get', { key: 'v-big' })).found, false);
      await call('Set', { key: 'v-big', value: Buffer.alloc(LIMITS.maxValueBytes, 1) });
      assert.equal((await call<{ value: Buffer }>('Get', { key: 'v-big' })).value.length, LIMITS.maxValueBytes);
    });

    test('ttl_ms above 365 days is INVALID_ARGUMENT naming ttl_ms', async (t) => {
      for (const method of ['Set', 'Cas', 'Add', 'Incr', 'Touch'] as const) {
        await t.test(method, async () => {
          for (const ttl of [String(MAX_CACHE_TTL_MS + 1), UINT64_MAX]) {
            await invalid(
              method,
              { ...RPCS[method].valid('v-ttl'), ttl_ms: ttl },
              new RegExp(`^ttl_ms must be between 0 and ${MAX_CACHE_TTL_MS} ms, got ${ttl}$`),
            );
          }
        });
      }
      await call('Set', { key: 'v-ttl', value: Buffer.from('v'), ttl_ms: MAX_CACHE_TTL_MS });
    });

    test('Cas: cas = 0 is INVALID_ARGUMENT naming cas', async () => {
      await call('Set', { key: 'v-cas', value: Buffer.from('v') });
      await invalid(
        'Cas',
        { key: 'v-cas', value: Buffer.from('w'), cas: '0' },
        /^cas is required: send the cas from a Get/,
      );
      assert.equal((await call<{ value: Buffer }>('Get', { key: 'v-cas' })).value.toString(), 'v');
    });

    test('Incr: delta and initial take their whole 64-bit ranges', async () => {
      // int64/uint64 on the wire cannot hold anything outside these ranges, so the bounds
      // themselves are what there is to check: memcached's wrap on incr, floor at 0 on decr.
      const INT64_MAX = '9223372036854775807';
      const steps: [delta: string, want: string][] = [
        ['1', '0'],
        [INT64_MIN, '0'],
        [INT64_MAX, INT64_MAX],
        [INT64_MAX, (2n ** 64n - 2n).toString()],
        [INT64_MIN, (2n ** 63n - 2n).toString()],
      ];
      const created = await call<{ value: string }>('Incr', { key: 'v-incr', delta: '1', initial: UINT64_MAX });
      assert.equal(created.value, UINT64_MAX, 'an absent key takes initial; delta is not applied');
      for (const [delta, want] of steps) {
        assert.equal((await call<{ value: string }>('Incr', { key: 'v-incr', delta })).value, want, `Incr by ${delta}`);
      }
    });
  });

  describe('bytes that are not a request', () => {
    const deserializationFailed = /^Error deserializing request/;

    /**
     * What random bytes may get: refused by deserialization (INTERNAL), decoded into a
     * request that fails validation or a precondition, or, rarely, decoded into a valid
     * request. Never an INTERNAL from a handler, never anything else.
     */
    async function answered(path: string, bytes: Buffer): Promise<string> {
      try {
        await rawCall(path, bytes);
        return 'OK';
      } catch (e) {
        const err = e as grpc.ServiceError;
        const label = `${grpc.status[err.code]} for ${bytes.toString('hex')}: ${err.details}`;
        if (err.code === grpc.status.INTERNAL) assert.match(err.details, deserializationFailed, label);
        else assert.ok([grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION].includes(err.code), label);
        return grpc.status[err.code]!;
      }
    }

    for (const method of METHODS) {
      const path = `/latchkey.v1.${RPCS[method].service}/${method}`;
      test(`${method}: bytes that are not protobuf are refused by deserialization (INTERNAL)`, async (t) => {
        const garbage: [string, number[]][] = [
          ['four 0xff bytes', [0xff, 0xff, 0xff, 0xff]],
          ['an end-group tag with no group', [0x0c]],
          ['wire type 7 (does not exist)', [0x7f, 0x00]],
          ['a length that runs past the end of an unknown field', [0x7a, 0x7f, 0x00]],
        ];
        for (const [label, bytes] of garbage) {
          await t.test(label, async () => {
            await expectStatus(rawCall(path, Buffer.from(bytes)), grpc.status.INTERNAL, deserializationFailed);
          });
        }
      });

      test(`${method}: 300 random byte strings all get an answer, none an internal error`, async (t) => {
        // Deterministic (xorshift, fixed seed): the same strings every run.
        let state = 0x2545f491 ^ method.length;
        const next = () => {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          return state >>> 0;
        };
        const codes = new Map<string, number>();
        for (let i = 0; i < 300; i++) {
          const bytes = Buffer.from(Array.from({ length: 1 + (next() % 40) }, () => next() & 0xff));
          const code = await answered(path, bytes);
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
        t.diagnostic(`answers: ${[...codes].map(([code, n]) => `${code} ${n}`).join(', ')}`);
      });
    }

    test('unknown fields are skipped, as proto3 requires', async () => {
      const request = Buffer.concat([
        lengthDelimited(2, Buffer.from('v-unknown')),
        varintField(99, 7n),
        lengthDelimited(100, Buffer.from('x')),
      ]);
      await rawCall('/latchkey.v1.Cache/Get', request);
    });

    test('a method the server does not have is UNIMPLEMENTED', async () => {
      await expectStatus(rawCall('/latchkey.v1.Locks/Steal', Buffer.alloc(0)), grpc.status.UNIMPLEMENTED, /Steal/);
    });
  });

  test('after all of that the server still serves every RPC', async () => {
    const lease = await call<Lease>('Acquire', { name: 'v-still-serving', ttl_ms: 30_000 });
    await call('Refresh', { name: 'v-still-serving', lease_id: lease.lease_id });
    assert.equal((await call<LockState>('Describe', { name: 'v-still-serving' })).held, true);
    await call('Release', { name: 'v-still-serving', lease_id: lease.lease_id });
    const set = await call<{ cas: string }>('Set', { key: 'v-still-serving', value: Buffer.from('1') });
    assert.equal(
      (await call<{ outcome: string }>('Cas', { key: 'v-still-serving', value: Buffer.from('2'), cas: set.cas }))
        .outcome,
      'STORED',
    );
    assert.equal(
      (await call<{ outcome: string }>('Add', { key: 'v-still-serving', value: Buffer.from('3') })).outcome,
      'EXISTS',
    );
    assert.equal((await call<{ value: string }>('Incr', { key: 'v-still-serving', delta: '5' })).value, '7');
    assert.equal(
      (await call<{ outcome: string }>('Touch', { key: 'v-still-serving', ttl_ms: 60_000 })).outcome,
      'TOUCHED',
    );
    assert.equal((await call<{ value: Buffer }>('Get', { key: 'v-still-serving' })).value.toString(), '7');
    assert.equal((await call<{ outcome: string }>('Delete', { key: 'v-still-serving' })).outcome, 'DELETED');
  });
});
