// fast-check arbitraries of latchkey requests as bytes on the wire, derived from the .proto
// (protowire.ts reads each request type's fields from it), with the values that break
// servers: empty and huge names, invalid UTF-8, control characters, negative and enormous
// integers, fences with garbage, unknown fields, duplicated fields, wrong wire types,
// truncated and corrupted messages, and bytes that are not protobuf at all.
//
// An arbitrary yields a plan, not bytes: a plan can refer to what the server handed out
// earlier in the run (a lease_id, a fencing token), which only exists at send time, and
// encode() turns it into bytes then. The plan alone is what fast-check prints and replays.
import fc from 'fast-check';
import protobuf from 'protobufjs';
import {
  bytesField,
  fixed32Field,
  fixed64Field,
  groupField,
  varintField,
  wireTypeOf,
  type WireType,
} from './protowire.js';

/** Lock names and cache keys most requests use, so requests meet each other's state. */
export const NAME_POOL = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'] as const;

export type Value =
  | { readonly t: 'bytes'; readonly b: Uint8Array }
  | { readonly t: 'varint'; readonly v: bigint }
  | { readonly t: 'fixed64'; readonly b: Uint8Array }
  | { readonly t: 'fixed32'; readonly b: Uint8Array }
  | { readonly t: 'group'; readonly fields: readonly FieldPlan[] }
  /** A lease_id the server granted earlier in the run (index into the pool, modulo its size). */
  | { readonly t: 'lease'; readonly i: number }
  /** A fencing token the server granted earlier, plus delta (so stale and future tokens too). */
  | { readonly t: 'token'; readonly i: number; readonly delta: bigint }
  /** A pipeline tag: a fresh number per operation, so every answer can be matched. */
  | { readonly t: 'tag' }
  | { readonly t: 'message'; readonly fields: readonly FieldPlan[] };

export interface FieldPlan {
  readonly field: number;
  readonly wire: WireType;
  readonly value: Value;
}

export interface RequestPlan {
  /** How the bytes were made: structured (field by field), or broken after that. */
  readonly kind: 'structured' | 'truncated' | 'corrupted' | 'random' | 'empty';
  readonly fields: readonly FieldPlan[];
  /** truncated: keep this fraction (0..1) of the bytes. */
  readonly cut?: number;
  /** corrupted: [position as a fraction 0..1, byte] pairs to overwrite. */
  readonly flips?: readonly (readonly [number, number])[];
  readonly raw?: Uint8Array;
  /**
   * Valid protobuf of the right shape (whatever the values): the server must decode it, so
   * it must never get grpc-js's "Error deserializing request".
   */
  readonly wellFormed: boolean;
}

/** What encode() needs from the run, and what it reports back. */
export interface Pools {
  readonly leaseIds: readonly string[];
  readonly tokens: readonly bigint[];
  /** Next pipeline tag; encode() advances it. */
  nextTag: bigint;
}

export interface Encoded {
  readonly bytes: Buffer;
  /** The tags of PipelineOps (top level of a PipelineRequest), with the op each one runs (undefined: none set). */
  readonly tags: readonly { readonly tag: string; readonly op: string | undefined }[];
}

/** Server limits the generators aim at (both sides of each). */
export interface Limits {
  readonly maxTtlMs: number;
  readonly maxWaitMs: number;
  readonly maxValueBytes: number;
  readonly maxBatch: number;
  /** Values of `backend` / `store` the server has enabled. */
  readonly backends: readonly string[];
  readonly stores: readonly string[];
}

const UINT64_MAX = 2n ** 64n - 1n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const DAY_MS = 86_400_000n;

const bytesValue = (b: Uint8Array): Value => ({ t: 'bytes', b });
const varintValue = (v: bigint): Value => ({ t: 'varint', v });

/** `unit` repeated to exactly n UTF-8 bytes or just over (multi-byte units may overshoot by a few). */
function sized(unit: string, n: number): Uint8Array {
  const unitBytes = Buffer.byteLength(unit);
  return utf8(unit.repeat(Math.ceil(n / unitBytes)));
}

function nameArb(): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...NAME_POOL).map(utf8) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 }).map(utf8) },
    // Any code point: controls, whitespace, noncharacters, lone surrogates (sent as U+FFFD).
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }).map(utf8) },
    // Raw bytes: mostly invalid UTF-8.
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 32 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom('a', 'é', '€', '🔒', '\u0000', ' '),
          fc.constantFrom(1, 249, 250, 251, 252, 1_024, 4_096, 60_000),
        )
        .map(([unit, n]) => sized(unit, n)),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          '',
          ' ',
          'a b',
          'a\tb',
          'k0\n',
          '\r',
          '\u00a0',
          '\u2028',
          '\u3000',
          '\ufeffk0',
          'a\u200bb',
          '\u001b[2J',
          '\u007f',
          '\u0085',
          '\ufffd',
          '..',
          '/',
          'a/b',
          '%s%n',
          '${x}',
          '\\',
          '*',
        )
        .map(utf8),
    },
  );
}

function targetArb(enabled: readonly string[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 10, arbitrary: fc.constant(new Uint8Array()) },
    { weight: 4, arbitrary: fc.constantFrom(...enabled).map(utf8) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom('memory', 'file', 'etcd', 'lru', 'memcached', 'MEMORY', 'lru ', ' ', '\u0000', 'x'.repeat(300))
        .map(utf8),
    },
    // Unknown targets are named in the error: a huge one must not make a huge status.
    { weight: 1, arbitrary: fc.constantFrom(5_000, 100_000).map((n) => sized('x', n)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 16 }) },
  );
}

function textArb(): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(new Uint8Array()) },
    { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 24 }).map(utf8) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }).map(utf8) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 32 }) },
    { weight: 1, arbitrary: fc.constantFrom(1_023, 1_024, 1_025, 10_000).map((n) => sized('o', n)) },
  );
}

function leaseIdArb(): fc.Arbitrary<Value> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.nat().map((i): Value => ({ t: 'lease', i })) },
    { weight: 2, arbitrary: textArb().map(bytesValue) },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: 16, maxLength: 16 })
        .map((b) => bytesValue(utf8(Buffer.from(b).toString('hex')))),
    },
  );
}

function valueBytesArb(limits: Limits): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.uint8Array({ maxLength: 32 }) },
    // What Incr reads: decimal or not quite.
    {
      weight: 3,
      arbitrary: fc
        .constantFrom(
          '0',
          '1',
          '42',
          '18446744073709551615',
          '18446744073709551616',
          '99999999999999999999',
          '-1',
          '+1',
          ' 1',
          '1 ',
          '01',
          '0x10',
          '1e3',
          '١٢',
          '',
        )
        .map(utf8),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(limits.maxValueBytes - 1, limits.maxValueBytes, limits.maxValueBytes + 1, 50_000)
        .map((n) => new Uint8Array(n).fill(0x31)),
    },
  );
}

/** Unsigned 64-bit: the usual small ones, the edges of every range a server converts through, and anything. */
function u64Arb(small: fc.Arbitrary<bigint>, edges: readonly bigint[]): fc.Arbitrary<bigint> {
  return fc.oneof(
    { weight: 6, arbitrary: small },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        0n,
        1n,
        2n ** 31n - 1n,
        2n ** 32n,
        2n ** 53n - 1n,
        2n ** 53n,
        2n ** 53n + 1n,
        INT64_MAX,
        2n ** 63n,
        UINT64_MAX,
        ...edges,
      ),
    },
    { weight: 1, arbitrary: fc.bigInt(0n, UINT64_MAX) },
  );
}

function ttlArb(limits: Limits): fc.Arbitrary<bigint> {
  const max = BigInt(limits.maxTtlMs);
  return u64Arb(fc.oneof(fc.constant(0n), fc.bigInt(10n, 5_000n)), [
    9n,
    10n,
    max,
    max + 1n,
    365n * DAY_MS,
    365n * DAY_MS + 1n,
  ]);
}

function waitArb(limits: Limits): fc.Arbitrary<bigint> {
  const max = BigInt(limits.maxWaitMs);
  return u64Arb(fc.oneof({ weight: 3, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: fc.bigInt(1n, max) }), [
    max,
    max + 1n,
  ]);
}

function i64Arb(): fc.Arbitrary<bigint> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.bigInt(-1_000n, 1_000n) },
    { weight: 2, arbitrary: fc.constantFrom(INT64_MIN, INT64_MIN + 1n, -1n, 0n, 1n, INT64_MAX, -(2n ** 53n)) },
    { weight: 1, arbitrary: fc.bigInt(INT64_MIN, INT64_MAX) },
  );
}

/**
 * A varint for a 32-bit field (uint32, int32, bool, enum). NOTE: protobufjs reads these with
 * a 32-bit reader that handles 1-5 and 10-byte varints only; a 6-9-byte one (a uint64 value
 * in a uint32 field, which the protobuf spec says to truncate) throws or misreads what
 * follows. Such values still go out, but as not well-formed: grpc-js may refuse them.
 */
function varint32Arb(): fc.Arbitrary<{ value: Value; wellFormed: boolean }> {
  return fc
    .oneof(
      { weight: 6, arbitrary: fc.bigInt(0n, 3n) },
      { weight: 2, arbitrary: fc.constantFrom(2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, -1n, -(2n ** 31n)) },
      { weight: 1, arbitrary: fc.bigInt(0n, UINT64_MAX) },
    )
    .map((v) => {
      const bytes = BigInt.asUintN(64, v);
      return { value: varintValue(v), wellFormed: bytes < 2n ** 35n || bytes >= 2n ** 63n };
    });
}

function tokenArb(): fc.Arbitrary<Value> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.nat(), fc.constantFrom(0n, 0n, 0n, -1n, 1n, 1_000n))
        .map(([i, delta]): Value => ({ t: 'token', i, delta })),
    },
    { weight: 2, arbitrary: u64Arb(fc.bigInt(0n, 100n), []).map(varintValue) },
  );
}

/** A field's payload for a given wire type, when the wire type is not the one the .proto wants. */
function foreignPayloadArb(wire: WireType): fc.Arbitrary<Value> {
  switch (wire) {
    case 0:
      return fc.bigInt(0n, UINT64_MAX).map(varintValue);
    case 1:
      return fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b): Value => ({ t: 'fixed64', b }));
    case 5:
      return fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b): Value => ({ t: 'fixed32', b }));
    case 3:
      return fc
        .array(fc.record({ field: fc.integer({ min: 1, max: 20 }), value: fc.bigInt(0n, 1_000n) }), { maxLength: 2 })
        .map(
          (inner): Value => ({
            t: 'group',
            fields: inner.map((f) => ({ field: f.field, wire: 0 as WireType, value: varintValue(f.value) })),
          }),
        );
    default:
      return fc.uint8Array({ maxLength: 24 }).map(bytesValue);
  }
}

/** Fields the .proto does not have, framed correctly: a proto3 decoder must skip them. */
function unknownFieldArb(known: ReadonlySet<number>): fc.Arbitrary<FieldPlan> {
  return fc
    .tuple(
      fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 2 ** 29 - 1 })).filter((n) => !known.has(n)),
      fc.constantFrom<WireType>(0, 1, 2, 3, 5),
    )
    .chain(([field, wire]) => foreignPayloadArb(wire).map((value): FieldPlan => ({ field, wire, value })));
}

interface Generated {
  readonly fields: FieldPlan[];
  readonly wellFormed: boolean;
}

/**
 * Builds the arbitrary of one message type's fields. `depth` bounds nesting (fences, items,
 * pipeline ops). Each field is absent, present once, or present twice (proto3: the last one
 * wins); now and then with the wrong wire type; unknown fields come along now and then.
 */
export class RequestArbitraries {
  readonly #limits: Limits;
  readonly #cache = new Map<string, fc.Arbitrary<Generated>>();

  constructor(limits: Limits) {
    this.#limits = limits;
  }

  /** A whole request of this type, possibly broken after encoding. */
  request(type: protobuf.Type): fc.Arbitrary<RequestPlan> {
    const structured = this.#message(type, 0);
    return fc.oneof(
      {
        weight: 14,
        arbitrary: structured.map(
          (g): RequestPlan => ({ kind: 'structured', fields: g.fields, wellFormed: g.wellFormed }),
        ),
      },
      {
        weight: 2,
        arbitrary: fc
          .tuple(structured, fc.double({ min: 0, max: 1, noNaN: true }))
          .map(([g, cut]): RequestPlan => ({ kind: 'truncated', fields: g.fields, cut, wellFormed: false })),
      },
      {
        weight: 1,
        arbitrary: fc
          .tuple(
            structured,
            fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 })), {
              minLength: 1,
              maxLength: 3,
            }),
          )
          .map(([g, flips]): RequestPlan => ({ kind: 'corrupted', fields: g.fields, flips, wellFormed: false })),
      },
      {
        weight: 2,
        arbitrary: fc
          .uint8Array({ minLength: 1, maxLength: 64 })
          .map((raw): RequestPlan => ({ kind: 'random', fields: [], raw, wellFormed: false })),
      },
      { weight: 1, arbitrary: fc.constant<RequestPlan>({ kind: 'empty', fields: [], wellFormed: true }) },
    );
  }

  #message(type: protobuf.Type, depth: number): fc.Arbitrary<Generated> {
    const cacheKey = `${type.fullName}@${depth}`;
    const cached = this.#cache.get(cacheKey);
    if (cached !== undefined) return cached;
    const known = new Set(type.fieldsArray.map((f) => f.id));
    const perField: fc.Arbitrary<Generated>[] = [];
    // A oneof (PipelineOp.op): usually exactly one member, sometimes none or two.
    const oneofMembers = new Set<protobuf.Field>();
    for (const oneof of type.oneofsArray) {
      const members = oneof.fieldsArray;
      members.forEach((m) => oneofMembers.add(m));
      perField.push(
        fc
          .oneof(
            { weight: 1, arbitrary: fc.constant(0) },
            { weight: 12, arbitrary: fc.constant(1) },
            { weight: 1, arbitrary: fc.constant(2) },
          )
          .chain((n) => fc.shuffledSubarray(members, { minLength: n, maxLength: n }))
          .chain((chosen) =>
            chosen.length === 0
              ? fc.constant(joined([]))
              : fc.tuple(...chosen.map((m) => this.#once(m, depth, depth === 0))).map(joined),
          ),
      );
    }
    for (const field of type.fieldsArray) {
      if (oneofMembers.has(field)) continue;
      perField.push(this.#occurrences(type, field, depth));
    }
    perField.push(
      fc.oneof(
        { weight: 8, arbitrary: fc.constant(joined([])) },
        {
          weight: 1,
          arbitrary: fc
            .array(unknownFieldArb(known), { minLength: 1, maxLength: 3 })
            .map((fields) => ({ fields, wellFormed: true })),
        },
      ),
    );
    const arb = fc.tuple(fc.tuple(...perField), fc.boolean()).map(([parts, reverse]) => {
      const all = joined(parts);
      // Field order is free in protobuf; a decoder must not depend on it.
      return reverse ? { fields: [...all.fields].reverse(), wellFormed: all.wellFormed } : all;
    });
    this.#cache.set(cacheKey, arb);
    return arb;
  }

  #occurrences(type: protobuf.Type, field: protobuf.Field, depth: number): fc.Arbitrary<Generated> {
    if (field.repeated) {
      // Around --max-batch, so both sides of it come up.
      const max = depth === 0 ? this.#limits.maxBatch + 5 : 3;
      return fc.array(this.#once(field, depth, false), { maxLength: max }).map(joined);
    }
    // Pipeline and session tags are always set once, so every answer can be matched to its operation.
    if ((type.name === 'PipelineOp' || type.name === 'SessionOp') && field.name === 'tag')
      return fc.constant({
        fields: [{ field: field.id, wire: 0 as WireType, value: { t: 'tag' } as Value }],
        wellFormed: true,
      });
    // A message field (a fence) is left out more often, so the plain paths get their share.
    const absent = field.resolvedType instanceof protobuf.Type ? 6 : 3;
    return fc.oneof(
      { weight: absent, arbitrary: fc.constant(joined([])) },
      { weight: 6, arbitrary: this.#once(field, depth, depth === 0) },
      {
        weight: 1,
        arbitrary: fc.tuple(this.#once(field, depth, depth === 0), this.#once(field, depth, depth === 0)).map(joined),
      },
    );
  }

  /**
   * One occurrence of a field: its natural wire type and a value for it, or (rarely) a
   * foreign one. Not `noisy` (nested and repeated fields, of which a frame of 25 operations
   * has hundreds): far more rarely, or hardly a batch would decode.
   */
  #once(field: protobuf.Field, depth: number, noisy: boolean): fc.Arbitrary<Generated> {
    const natural = wireTypeOf(field);
    const foreign = fc
      .constantFrom<WireType>(0, 1, 2, 3, 5)
      .filter((w) => w !== natural)
      .chain((wire) =>
        foreignPayloadArb(wire).map(
          (value): Generated => ({ fields: [{ field: field.id, wire, value }], wellFormed: false }),
        ),
      );
    const proper = this.#value(field, depth, noisy).map(
      ({ value, wellFormed }): Generated => ({ fields: [{ field: field.id, wire: natural, value }], wellFormed }),
    );
    return fc.oneof({ weight: noisy ? 30 : 1_000, arbitrary: proper }, { weight: 1, arbitrary: foreign });
  }

  #value(field: protobuf.Field, depth: number, noisy: boolean): fc.Arbitrary<{ value: Value; wellFormed: boolean }> {
    const ok = (arb: fc.Arbitrary<Value>) => arb.map((value) => ({ value, wellFormed: true }));
    const limits = this.#limits;
    const nested = field.resolvedType;
    if (nested instanceof protobuf.Type) {
      if (depth >= 3) return fc.constant({ value: { t: 'message', fields: [] } as Value, wellFormed: true });
      return fc.oneof(
        {
          weight: noisy ? 12 : 500,
          arbitrary: this.#message(nested, depth + 1).map((g) => ({
            value: { t: 'message', fields: g.fields } as Value,
            wellFormed: g.wellFormed,
          })),
        },
        // Bytes that are not a message of that type (a fence with garbage in it).
        {
          weight: 1,
          arbitrary: fc
            .uint8Array({ minLength: 1, maxLength: 24 })
            .map((b) => ({ value: bytesValue(b), wellFormed: false })),
        },
      );
    }
    switch (field.name) {
      case 'name':
      case 'key':
      case 'keys':
      case 'lock':
        return ok(nameArb().map(bytesValue));
      case 'backend':
        return ok(targetArb(limits.backends).map(bytesValue));
      case 'store':
        return ok(targetArb(limits.stores).map(bytesValue));
      case 'owner':
        return ok(textArb().map(bytesValue));
      case 'lease_id':
        return ok(leaseIdArb());
      case 'value':
        return ok(valueBytesArb(limits).map(bytesValue));
      case 'ttl_ms':
        return ok(ttlArb(limits).map(varintValue));
      case 'wait_ms':
        return ok(waitArb(limits).map(varintValue));
      case 'token':
        return ok(tokenArb());
      case 'delta':
        return ok(i64Arb().map(varintValue));
      case 'cas':
      case 'initial':
        return ok(u64Arb(fc.bigInt(0n, 200n), []).map(varintValue));
    }
    switch (field.type) {
      case 'string':
        return ok(textArb().map(bytesValue));
      case 'bytes':
        return ok(fc.uint8Array({ maxLength: 32 }).map(bytesValue));
      case 'int64':
      case 'sint64':
        return ok(i64Arb().map(varintValue));
      case 'uint64':
        return ok(u64Arb(fc.bigInt(0n, 3n), []).map(varintValue));
      default:
        // 32-bit integers, bool and enums (in range and not).
        return varint32Arb();
    }
  }
}

function joined(parts: readonly Generated[]): Generated {
  return { fields: parts.flatMap((p) => p.fields), wellFormed: parts.every((p) => p.wellFormed) };
}

/** The oneof member a decoder keeps when a PipelineOp carries several: protobufjs reports the last in .proto order. */
function effectiveOp(op: readonly FieldPlan[], opType: protobuf.Type): string | undefined {
  const oneof = opType.oneofsArray[0];
  if (oneof === undefined) return undefined;
  let chosen: protobuf.Field | undefined;
  for (const member of oneof.fieldsArray) if (op.some((f) => f.field === member.id && f.wire === 2)) chosen = member;
  return chosen?.name;
}

/**
 * Encodes a plan against the run's pools. For a PipelineRequest or a SessionRequest
 * (`pipelineOp` given: its op type; `opsField`: the request's field of ops, 1 in a
 * PipelineRequest, 2 in a SessionRequest) it reports each top-level operation's tag and the
 * operation it runs.
 */
export function encode(plan: RequestPlan, pools: Pools, pipelineOp?: protobuf.Type, opsField = 1): Encoded {
  if (plan.kind === 'random') return { bytes: Buffer.from(plan.raw!), tags: [] };
  const tags: { tag: string; op: string | undefined }[] = [];
  const fieldBytes = (f: FieldPlan, top: boolean): Buffer => {
    const v = f.value;
    switch (v.t) {
      case 'bytes':
        return bytesField(f.field, Buffer.from(v.b));
      case 'varint':
        return varintField(f.field, v.v);
      case 'fixed64':
        return fixed64Field(f.field, Buffer.from(v.b));
      case 'fixed32':
        return fixed32Field(f.field, Buffer.from(v.b));
      case 'group':
        return groupField(f.field, Buffer.concat(v.fields.map((g) => fieldBytes(g, false))));
      case 'lease': {
        const id = pools.leaseIds.length === 0 ? 'no-lease-yet' : pools.leaseIds[v.i % pools.leaseIds.length]!;
        return bytesField(f.field, Buffer.from(id));
      }
      case 'token': {
        const base = pools.tokens.length === 0 ? 1n : pools.tokens[v.i % pools.tokens.length]!;
        return varintField(f.field, BigInt.asUintN(64, base + v.delta));
      }
      case 'tag':
        return varintField(f.field, pools.nextTag++);
      case 'message': {
        // A top-level PipelineRequest.ops entry: note its tag (the one tag field it always has).
        if (top && pipelineOp !== undefined && f.field === opsField && f.wire === 2) {
          const before = pools.nextTag;
          const inner = Buffer.concat(v.fields.map((g) => fieldBytes(g, false)));
          if (pools.nextTag !== before) tags.push({ tag: before.toString(), op: effectiveOp(v.fields, pipelineOp) });
          return bytesField(f.field, inner);
        }
        return bytesField(f.field, Buffer.concat(v.fields.map((g) => fieldBytes(g, false))));
      }
    }
  };
  // A field with a foreign wire type carries a value framed for that wire type, so its own
  // framing is the wire type its key announces.
  const whole = Buffer.concat(plan.fields.map((f) => fieldBytes(f, true)));
  switch (plan.kind) {
    case 'truncated':
      return { bytes: whole.subarray(0, Math.floor(whole.length * plan.cut!)), tags: [] };
    case 'corrupted': {
      const out = Buffer.from(whole);
      if (out.length === 0) return { bytes: Buffer.from([plan.flips![0]![1]]), tags: [] };
      for (const [at, byte] of plan.flips!) out[Math.min(out.length - 1, Math.floor(at * out.length))] = byte;
      return { bytes: out, tags: [] };
    }
    default:
      return { bytes: whole, tags: plan.wellFormed ? tags : [] };
  }
}
