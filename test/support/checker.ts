// Checkers of recorded histories (history.ts), decided from outside the system, Jepsen style.
//
// Locks and elections (checkLocks): per lock name, and per election name (a leadership is
// held as a lock is: a Campaign's win is a grant, a Resign its Release, and the session the
// leadership lives in its lease; lock "x" and election "x" are two things), from the clients'
// side of each call:
//   - overlap:     no two holders (leaders) with valid leases (sessions) at once. A grant is
//                  held from its Acquire's (Campaign's) return until the holder invokes its
//                  Release (Resign) or the lease's expiry as the server last stated it
//                  (expires_at_ms: the earliest the lease can run out), whichever is first;
//                  two such intervals of one name must not intersect.
//   - token order: fencing tokens strictly increase in grant order (with every new leader). A grant whose Acquire
//                  returned before another's was invoked came first; so did the earlier of two
//                  grants with non-empty hold intervals (holds do not overlap, so grant order is
//                  hold order). Two leases never share a token.
//   - lease lost:  a Release (Resign) answered "not holder / expired" before the lease's stated
//                  expiry, with no earlier Release of it that may have landed, means the lock
//                  (leadership) was taken away from a holder that could not know.
//   - fencing:     a fenced write refused must have carried an older token than one written
//                  (or possibly written) to its key before the refusal; a fenced write stored
//                  must not follow, in real time, a stored write with a newer token.
//                  (Keys written with fences are written only with fences.)
//
// Cache (checkCache): each key's history of get / set / cas / add / delete / incr must be
// linearizable against a register that holds a value (or nothing), a cas unique that every
// write replaces with one never seen before, and the fence of its last fenced write. An
// operation with an unknown outcome may take effect at any time after its invoke, or never.
// The search is Wing & Gong's, with Lowe's memo of (operations placed, state) pairs
// (porcupine's checkSingle): it places, in real-time order, an operation whose call is
// pending and that the register accepts, and backtracks when a return is reached before its
// operation is placed. It is bounded (maxSteps per key): a search past the bound is reported,
// not passed, so histories must stay small per key (spread the load over keys).
//
// A cas unique of a write whose outcome is unknown is not known either: the register holds a
// symbol for it, bound to the first value an observation (a get) gives it, and that value
// must be no other write's.
import type { Op } from './history.js';

export interface Violation {
  readonly rule: string;
  readonly message: string;
}

// ---- locks ------------------------------------------------------------------------------------

export type LockInput =
  | {
      readonly op: 'acquire';
      readonly name: string;
      readonly waitMs: number;
      readonly ttlMs: number;
      readonly via: string;
    }
  | { readonly op: 'release'; readonly name: string; readonly leaseId: string; readonly via: string }
  | { readonly op: 'campaign'; readonly election: string; readonly ttlMs: number; readonly via: string }
  /** A leadership is named by its session and its token (a session may lead an election again). */
  | {
      readonly op: 'resign';
      readonly election: string;
      readonly sessionId: string;
      readonly token: bigint;
      readonly via: string;
    }
  | {
      readonly op: 'fenced-write';
      readonly key: string;
      /** The fence: a lock's token, or (`election` instead) a leadership's. */
      readonly lock?: string;
      readonly election?: string;
      readonly token: bigint;
      readonly value: string;
      readonly via: string;
    };

export type LockOutput =
  | {
      readonly op: 'acquire';
      readonly leaseId: string;
      readonly token: bigint;
      /** The lease's stated expiry (expires_at_ms) on the history's clock. */
      readonly validUntilMs: number;
    }
  | { readonly op: 'release' }
  | {
      readonly op: 'campaign';
      readonly sessionId: string;
      readonly token: bigint;
      /** The session's stated expiry (expires_at_ms) on the history's clock, the last one before the hold ended. */
      readonly validUntilMs: number;
    }
  | { readonly op: 'resign' }
  | { readonly op: 'fenced-write'; readonly stored: boolean };

export type LockOp = Op<LockInput, LockOutput>;

export interface LockStats {
  readonly acquires: number;
  readonly grants: number;
  /** Acquires answered "not granted" (ABORTED). */
  readonly refused: number;
  /** Acquires whose outcome is unknown. */
  readonly unknownAcquires: number;
  readonly releases: number;
  readonly campaigns: number;
  /** Campaigns won: leaderships. */
  readonly elected: number;
  readonly resigns: number;
  readonly fencedStored: number;
  readonly fencedRefused: number;
  readonly fencedUnknown: number;
}

interface Hold {
  readonly acquire: LockOp;
  readonly token: bigint;
  readonly leaseId: string;
  readonly fromMs: number;
  readonly untilMs: number;
}

/** What a grant holds, for messages and grouping: 'lock "x"' or 'election "x"'. */
const subjectOf = (input: LockInput): string | undefined =>
  input.op === 'acquire' || input.op === 'release'
    ? `lock "${input.name}"`
    : input.op === 'campaign' || input.op === 'resign'
      ? `election "${input.election}"`
      : undefined;

/**
 * An Acquire's or a Campaign's grant: what it holds, the id its Release (Resign) names, its
 * token and stated expiry; undefined for anything else, or a grant not known to be made.
 */
export function grantOf(op: LockOp): { subject: string; id: string; token: bigint; validUntilMs: number } | undefined {
  if (op.outcome?.status !== 'ok') return undefined;
  const value = op.outcome.value;
  if (op.input.op === 'acquire' && value.op === 'acquire')
    return { subject: subjectOf(op.input)!, id: value.leaseId, token: value.token, validUntilMs: value.validUntilMs };
  if (op.input.op === 'campaign' && value.op === 'campaign')
    return {
      subject: subjectOf(op.input)!,
      id: `${value.sessionId}#${value.token}`,
      token: value.token,
      validUntilMs: value.validUntilMs,
    };
  return undefined;
}

/** The grant a Release or a Resign ends, as grantOf names it; undefined for anything else. */
export function endOf(op: LockOp): { subject: string; id: string } | undefined {
  if (op.input.op === 'release') return { subject: subjectOf(op.input)!, id: op.input.leaseId };
  if (op.input.op === 'resign') return { subject: subjectOf(op.input)!, id: `${op.input.sessionId}#${op.input.token}` };
  return undefined;
}

const describeOp = (op: LockOp | CacheOp): string => {
  const input = JSON.stringify(op.input, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
  const outcome =
    op.outcome === undefined
      ? 'running'
      : op.outcome.status === 'ok'
        ? JSON.stringify(op.outcome.value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))
        : `${op.outcome.status} ${op.outcome.code}`;
  return `#${op.id} ${op.client} ${input} [${op.invokeMs.toFixed(1)}, ${(op.returnMs ?? Infinity).toFixed(1)}] → ${outcome}`;
};

export function checkLocks(ops: readonly LockOp[]): { violations: Violation[]; stats: LockStats } {
  const violations: Violation[] = [];
  const done = ops.filter((op) => op.outcome !== undefined);
  const acquires = done.filter((op) => op.input.op === 'acquire');
  const releases = done.filter((op) => op.input.op === 'release');
  const campaigns = done.filter((op) => op.input.op === 'campaign');
  const resigns = done.filter((op) => op.input.op === 'resign');
  const writes = done.filter((op) => op.input.op === 'fenced-write');

  // Releases (Resigns) of each grant, in invoke order.
  const endsOf = new Map<string, LockOp[]>();
  for (const op of [...releases, ...resigns].sort((a, b) => a.invokeMs - b.invokeMs)) {
    const end = endOf(op)!;
    const key = `${end.subject}\u0000${end.id}`;
    endsOf.set(key, [...(endsOf.get(key) ?? []), op]);
  }

  const holdsBySubject = new Map<string, Hold[]>();
  for (const op of [...acquires, ...campaigns]) {
    const grant = grantOf(op);
    if (grant === undefined) continue;
    const { subject } = grant;
    const mine = endsOf.get(`${subject}\u0000${grant.id}`) ?? [];
    const released = mine[0]?.invokeMs ?? Infinity;
    const hold: Hold = {
      acquire: op,
      token: grant.token,
      leaseId: grant.id,
      fromMs: op.returnMs!,
      untilMs: Math.min(released, grant.validUntilMs),
    };
    holdsBySubject.set(subject, [...(holdsBySubject.get(subject) ?? []), hold]);

    // A first Release (Resign) that says the lease is gone, answered while it was still valid.
    const first = mine[0];
    if (
      first?.outcome?.status === 'fail' &&
      first.outcome.code === 'FAILED_PRECONDITION' &&
      first.returnMs! < grant.validUntilMs
    )
      violations.push({
        rule: 'lease lost',
        message: `${subject}: ${op.input.op === 'campaign' ? 'the leadership' : 'lease'} ${grant.id} (token ${grant.token}) was refused as ${first.outcome.message} ${(grant.validUntilMs - first.returnMs!).toFixed(0)} ms before its stated expiry: ${describeOp(first)}`,
      });
  }

  for (const [subject, holds] of holdsBySubject) {
    const holders = subject.startsWith('election') ? 'leaders' : 'holders';
    // Overlap: sweep the non-empty holds by start.
    const nonEmpty = holds.filter((h) => h.untilMs > h.fromMs).sort((a, b) => a.fromMs - b.fromMs);
    let widest: Hold | undefined;
    for (const hold of nonEmpty) {
      if (widest !== undefined && hold.fromMs < widest.untilMs)
        violations.push({
          rule: 'overlap',
          message: `${subject}: two ${holders} at once for ${(Math.min(widest.untilMs, hold.untilMs) - hold.fromMs).toFixed(1)} ms: ${describeOp(widest.acquire)} held until ${widest.untilMs.toFixed(1)}, and ${describeOp(hold.acquire)} from ${hold.fromMs.toFixed(1)}`,
        });
      if (widest === undefined || hold.untilMs > widest.untilMs) widest = hold;
    }
    // Token order along the holds.
    for (let i = 1; i < nonEmpty.length; i++) {
      const [a, b] = [nonEmpty[i - 1]!, nonEmpty[i]!];
      if (a.token >= b.token)
        violations.push({
          rule: 'token order',
          message: `${subject}: token ${b.token} held after token ${a.token}: ${describeOp(a.acquire)} then ${describeOp(b.acquire)}`,
        });
    }
    // Token order in real time: the largest token of the grants returned before each invoke.
    const byReturn = [...holds].sort((a, b) => a.acquire.returnMs! - b.acquire.returnMs!);
    const byInvoke = [...holds].sort((a, b) => a.acquire.invokeMs - b.acquire.invokeMs);
    let at = 0;
    let largest: Hold | undefined;
    for (const hold of byInvoke) {
      while (at < byReturn.length && byReturn[at]!.acquire.returnMs! < hold.acquire.invokeMs) {
        const before = byReturn[at++]!;
        if (largest === undefined || before.token > largest.token) largest = before;
      }
      if (largest !== undefined && largest.token >= hold.token)
        violations.push({
          rule: 'token order',
          message: `${subject}: token ${hold.token} granted after token ${largest.token} had been: ${describeOp(largest.acquire)} returned before ${describeOp(hold.acquire)} was invoked`,
        });
    }
    // No token twice.
    const seen = new Map<bigint, Hold>();
    for (const hold of holds) {
      const other = seen.get(hold.token);
      if (other !== undefined && other.leaseId !== hold.leaseId)
        violations.push({
          rule: 'token reuse',
          message: `${subject}: token ${hold.token} granted twice: ${describeOp(other.acquire)} and ${describeOp(hold.acquire)}`,
        });
      seen.set(hold.token, hold);
    }
  }

  // Fenced writes, per key.
  const writesByKey = new Map<string, LockOp[]>();
  for (const op of writes) {
    const key = (op.input as Extract<LockInput, { op: 'fenced-write' }>).key;
    writesByKey.set(key, [...(writesByKey.get(key) ?? []), op]);
  }
  const tokenOf = (op: LockOp) => (op.input as Extract<LockInput, { op: 'fenced-write' }>).token;
  const stored = (op: LockOp) =>
    op.outcome?.status === 'ok' && (op.outcome.value as Extract<LockOutput, { op: 'fenced-write' }>).stored;
  const refused = (op: LockOp) =>
    op.outcome?.status === 'ok' && !(op.outcome.value as Extract<LockOutput, { op: 'fenced-write' }>).stored;
  for (const [key, keyWrites] of writesByKey) {
    for (const write of keyWrites) {
      if (refused(write)) {
        const newer = keyWrites.find(
          (w) =>
            w !== write &&
            (stored(w) || w.outcome?.status === 'unknown') &&
            tokenOf(w) > tokenOf(write) &&
            w.invokeMs < write.returnMs!,
        );
        if (newer === undefined)
          violations.push({
            rule: 'fencing',
            message: `key "${key}": a fenced write with token ${tokenOf(write)} was refused, but no write with a newer token had been made: ${describeOp(write)}`,
          });
      } else if (stored(write)) {
        const newer = keyWrites.find((w) => stored(w) && tokenOf(w) > tokenOf(write) && w.returnMs! < write.invokeMs);
        if (newer !== undefined)
          violations.push({
            rule: 'fencing',
            message: `key "${key}": a fenced write with token ${tokenOf(write)} was stored after one with token ${tokenOf(newer)} had been: ${describeOp(newer)} then ${describeOp(write)}`,
          });
      }
    }
  }

  const count = (list: LockOp[], pick: (op: LockOp) => boolean) => list.filter(pick).length;
  return {
    violations,
    stats: {
      acquires: acquires.length,
      grants: count(acquires, (op) => op.outcome!.status === 'ok'),
      refused: count(acquires, (op) => op.outcome!.status === 'fail'),
      unknownAcquires: count(acquires, (op) => op.outcome!.status === 'unknown'),
      releases: releases.length,
      campaigns: campaigns.length,
      elected: count(campaigns, (op) => op.outcome!.status === 'ok'),
      resigns: resigns.length,
      fencedStored: count(writes, stored),
      fencedRefused: count(writes, refused),
      fencedUnknown: count(writes, (op) => op.outcome!.status === 'unknown'),
    },
  };
}

// ---- cache ------------------------------------------------------------------------------------

export type CacheInput =
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'set'; readonly key: string; readonly value: string; readonly fence?: bigint }
  | { readonly op: 'cas'; readonly key: string; readonly value: string; readonly cas: bigint; readonly fence?: bigint }
  | { readonly op: 'add'; readonly key: string; readonly value: string }
  /** cas 0n: whatever is there. */
  | { readonly op: 'delete'; readonly key: string; readonly cas: bigint }
  | { readonly op: 'incr'; readonly key: string; readonly delta: bigint; readonly initial: bigint };

/** What came back; the fields an operation's answer has. */
export interface CacheOutput {
  /** get */
  readonly found?: boolean;
  /** get (when found); incr: the new value in decimal. */
  readonly value?: string;
  /** get (when found); the new unique of set, cas / add STORED, incr. */
  readonly cas?: bigint;
  /** cas, add, delete. */
  readonly outcome?: 'STORED' | 'EXISTS' | 'NOT_FOUND' | 'DELETED';
  /** A fenced set or cas refused (a newer token has written). */
  readonly refused?: boolean;
}

export type CacheOp = Op<CacheInput, CacheOutput>;

/** The register. `cas`: 'k<n>' a known unique, 's<id>' the unknown unique of operation <id>. */
interface Register {
  readonly value: string | undefined;
  readonly cas: string | undefined;
  readonly fence: bigint | undefined;
  /** Symbols bound by an observation: [operation id, unique], sorted by id. */
  readonly binds: readonly (readonly [number, bigint])[];
}

const EMPTY: Register = { value: undefined, cas: undefined, fence: undefined, binds: [] };
const U64 = 1n << 64n;
const DECIMAL = /^\d{1,20}$/;

interface KeyModel {
  /** Uniques returned by writes, and whose they are. */
  readonly writerOf: ReadonlyMap<bigint, number>;
}

/** Whether the register's unique can be `cas` (binding its symbol if unbound); undefined if not. */
function uniqueIs(model: KeyModel, reg: Register, cas: bigint): Register | undefined {
  if (reg.cas === undefined) return undefined;
  if (reg.cas.startsWith('k')) return BigInt(reg.cas.slice(1)) === cas ? reg : undefined;
  const id = Number(reg.cas.slice(1));
  const bound = reg.binds.find(([op]) => op === id);
  if (bound !== undefined) return bound[1] === cas ? reg : undefined;
  // Unbound: it can be any unique no other write has.
  if (model.writerOf.has(cas) || reg.binds.some(([, unique]) => unique === cas)) return undefined;
  const binds = [...reg.binds, [id, cas] as const].sort((a, b) => a[0] - b[0]);
  return { ...reg, binds };
}

/** Certainly is (known, or bound, and equal). */
const surelyIs = (reg: Register, cas: bigint) => {
  if (reg.cas === undefined) return false;
  if (reg.cas.startsWith('k')) return BigInt(reg.cas.slice(1)) === cas;
  const bound = reg.binds.find(([op]) => op === Number(reg.cas!.slice(1)));
  return bound !== undefined && bound[1] === cas;
};

/**
 * The register after `op`, or undefined if `op`, with its answer, cannot happen in `reg`.
 * An operation of unknown outcome is applied as it would be (the search may also leave it
 * out); one that would change nothing (a cas that cannot match, a refused write) is
 * returned unchanged.
 */
function step(model: KeyModel, reg: Register, op: CacheOp): Register | undefined {
  const input = op.input;
  const known = op.outcome?.status === 'ok' ? op.outcome.value : undefined;
  const newCas = known?.cas !== undefined ? `k${known.cas}` : `s${op.id}`;
  const present = reg.value !== undefined;
  switch (input.op) {
    case 'get': {
      if (known === undefined) return reg;
      if (!known.found) return present ? undefined : reg;
      if (!present || known.value !== reg.value) return undefined;
      return uniqueIs(model, reg, known.cas!);
    }
    case 'set':
    case 'cas': {
      const fenced = input.fence !== undefined && reg.fence !== undefined && input.fence < reg.fence;
      if (known?.refused) return fenced ? reg : undefined;
      if (fenced) return known === undefined ? reg : undefined;
      const written: Register = { value: input.value, cas: newCas, fence: input.fence, binds: reg.binds };
      if (input.op === 'set') return written;
      if (known === undefined) {
        // Applied: stored if the unique can be the one given; else it changes nothing.
        if (!present) return reg;
        const matched = uniqueIs(model, reg, input.cas);
        return matched === undefined ? reg : { ...written, binds: matched.binds };
      }
      if (known.outcome === 'NOT_FOUND') return present ? undefined : reg;
      if (!present) return undefined;
      if (known.outcome === 'EXISTS') return surelyIs(reg, input.cas) ? undefined : reg;
      const matched = uniqueIs(model, reg, input.cas);
      return matched === undefined ? undefined : { ...written, binds: matched.binds };
    }
    case 'add': {
      if (present) return known === undefined || known.outcome === 'EXISTS' ? reg : undefined;
      if (known?.outcome === 'EXISTS') return undefined;
      return { value: input.value, cas: newCas, fence: undefined, binds: reg.binds };
    }
    case 'delete': {
      if (!present) return known === undefined || known.outcome === 'NOT_FOUND' ? reg : undefined;
      if (known?.outcome === 'NOT_FOUND') return undefined;
      const deleted: Register = { ...EMPTY, binds: reg.binds };
      if (input.cas === 0n) return known === undefined || known.outcome === 'DELETED' ? deleted : undefined;
      if (known?.outcome === 'EXISTS') return surelyIs(reg, input.cas) ? undefined : reg;
      const matched = uniqueIs(model, reg, input.cas);
      if (known === undefined) return matched === undefined ? reg : { ...deleted, binds: matched.binds };
      return matched === undefined ? undefined : { ...deleted, binds: matched.binds };
    }
    case 'incr': {
      let next: bigint;
      if (!present) next = input.initial;
      else {
        // A fenced item is an envelope, not a number: incr fails on it, and so on any text.
        if (reg.fence !== undefined || !DECIMAL.test(reg.value!)) return known === undefined ? reg : undefined;
        const sum = BigInt(reg.value!) + input.delta;
        next = input.delta >= 0n ? sum % U64 : sum < 0n ? 0n : sum;
      }
      if (known !== undefined && known.value !== next.toString()) return undefined;
      return { value: next.toString(), cas: newCas, fence: reg.fence, binds: reg.binds };
    }
  }
}

const registerKey = (reg: Register) =>
  `${reg.value === undefined ? '-' : JSON.stringify(reg.value)}|${reg.cas ?? '-'}|${reg.fence ?? '-'}|${reg.binds.map(([id, u]) => `${id}=${u}`).join(',')}`;

interface Node {
  readonly op: number;
  readonly call: boolean;
  readonly time: number;
  match: Node | undefined;
  prev: Node | undefined;
  next: Node | undefined;
}

export interface LinearizableResult {
  readonly ok: boolean;
  /** The search ran past its bound: neither proven nor refuted. */
  readonly inconclusive: boolean;
  readonly steps: number;
  /** When not ok: the most operations a linearization could place, and the ops left then. */
  readonly placed?: number;
  readonly stuck?: readonly CacheOp[];
}

/** Wing & Gong's search with Lowe's memo, for one key's operations. */
export function linearizable(ops: readonly CacheOp[], maxSteps = 200_000): LinearizableResult {
  // Definite failures changed nothing and observed nothing; an unknown get observed nothing.
  const kept = ops.filter(
    (op) =>
      op.outcome !== undefined &&
      op.outcome.status !== 'fail' &&
      !(op.outcome.status === 'unknown' && op.input.op === 'get'),
  );
  const writerOf = new Map<bigint, number>();
  for (const op of kept)
    if (
      op.outcome!.status === 'ok' &&
      op.input.op !== 'get' &&
      op.outcome!.value.cas !== undefined &&
      op.outcome!.value.cas !== 0n
    )
      writerOf.set(op.outcome!.value.cas, op.id);
  const model: KeyModel = { writerOf };

  const events: Node[] = [];
  for (const [index, op] of kept.entries()) {
    const end = op.outcome!.status === 'unknown' ? Infinity : op.returnMs!;
    const call: Node = { op: index, call: true, time: op.invokeMs, match: undefined, prev: undefined, next: undefined };
    const ret: Node = { op: index, call: false, time: end, match: undefined, prev: undefined, next: undefined };
    call.match = ret;
    events.push(call, ret);
  }
  // Calls before returns at the same instant: two operations that touch are concurrent.
  events.sort((a, b) => a.time - b.time || Number(b.call) - Number(a.call));
  const head: Node = { op: -1, call: false, time: -Infinity, match: undefined, prev: undefined, next: undefined };
  let last = head;
  for (const node of events) {
    node.prev = last;
    last.next = node;
    last = node;
  }
  const lift = (node: Node) => {
    for (const n of [node, node.match!]) {
      n.prev!.next = n.next;
      if (n.next !== undefined) n.next.prev = n.prev;
    }
  };
  const unlift = (node: Node) => {
    for (const n of [node.match!, node]) {
      n.prev!.next = n;
      if (n.next !== undefined) n.next.prev = n;
    }
  };

  let finiteLeft = kept.filter((op) => op.outcome!.status !== 'unknown').length;
  const memo = new Set<string>();
  const stack: { node: Node; reg: Register }[] = [];
  let placed = 0n;
  let reg = EMPTY;
  let entry = head.next;
  let steps = 0;
  let deepest = 0;
  let deepestPlaced = 0n;
  while (entry !== undefined && finiteLeft > 0) {
    if (++steps > maxSteps) return { ok: false, inconclusive: true, steps };
    if (entry.call) {
      const next = step(model, reg, kept[entry.op]!);
      if (next !== undefined) {
        const bit = 1n << BigInt(entry.op);
        const key = `${(placed | bit).toString(36)}#${registerKey(next)}`;
        if (!memo.has(key)) {
          memo.add(key);
          stack.push({ node: entry, reg });
          placed |= bit;
          reg = next;
          if (kept[entry.op]!.outcome!.status !== 'unknown') finiteLeft--;
          lift(entry);
          if (stack.length > deepest) {
            deepest = stack.length;
            deepestPlaced = placed;
          }
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // Only unknown operations are left past an infinite return.
      if (entry.time === Infinity) break;
      const top = stack.pop();
      if (top === undefined) {
        const stuck = kept.filter((_, i) => (deepestPlaced & (1n << BigInt(i))) === 0n);
        return { ok: false, inconclusive: false, steps, placed: deepest, stuck };
      }
      placed &= ~(1n << BigInt(top.node.op));
      if (kept[top.node.op]!.outcome!.status !== 'unknown') finiteLeft++;
      reg = top.reg;
      unlift(top.node);
      entry = top.node.next;
    }
  }
  return { ok: true, inconclusive: false, steps };
}

export interface CacheStats {
  readonly keys: number;
  readonly ops: number;
  readonly unknown: number;
  /** The most search steps one key took. */
  readonly maxSteps: number;
}

/** Every key's history must be linearizable (see the top of this file). */
export function checkCache(ops: readonly CacheOp[], maxSteps?: number): { violations: Violation[]; stats: CacheStats } {
  const byKey = new Map<string, CacheOp[]>();
  for (const op of ops) byKey.set(op.input.key, [...(byKey.get(op.input.key) ?? []), op]);
  const violations: Violation[] = [];
  let most = 0;
  for (const [key, keyOps] of byKey) {
    const result = linearizable(keyOps, maxSteps);
    most = Math.max(most, result.steps);
    if (result.ok) continue;
    const listing = keyOps
      .filter((op) => op.outcome !== undefined)
      .sort((a, b) => a.invokeMs - b.invokeMs)
      .slice(0, 40)
      .map((op) => `  ${describeOp(op)}`)
      .join('\n');
    violations.push(
      result.inconclusive
        ? {
            rule: 'search bound',
            message: `key "${key}": ${keyOps.length} operations took over ${result.steps - 1} search steps; keep histories smaller per key:\n${listing}`,
          }
        : {
            rule: 'linearizable',
            message: `key "${key}" is not linearizable: at most ${result.placed} of its operations can be placed; none of these fits next:\n${result
              .stuck!.slice(0, 8)
              .map((op) => `  ${describeOp(op)}`)
              .join('\n')}\nits history:\n${listing}`,
          },
    );
  }
  return {
    violations,
    stats: {
      keys: byKey.size,
      ops: ops.length,
      unknown: ops.filter((op) => op.outcome?.status === 'unknown').length,
      maxSteps: most,
    },
  };
}

/** For assertion messages: the violations, one per paragraph (the first `limit`). */
export function formatViolations(violations: readonly Violation[], limit = 5): string {
  const shown = violations.slice(0, limit).map((v) => `[${v.rule}] ${v.message}`);
  if (violations.length > limit) shown.push(`... and ${violations.length - limit} more`);
  return shown.join('\n\n');
}
