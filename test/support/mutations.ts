// Mutated copies of recorded histories, each with one defect the checkers (checker.ts) must
// reject: a stale read, a lost write, two overlapping holders (or leaders), swapped tokens, a
// fenced write refused without cause. Each finds a spot in the history where the defect is
// certain to be illegal (not merely odd), or returns undefined when the history has none.
import { endOf, grantOf, type CacheOp, type LockInput, type LockOp, type LockOutput } from './checker.js';

type GrantOut = Extract<LockOutput, { op: 'acquire' | 'campaign' }>;

const copy = <T extends LockOp | CacheOp>(ops: readonly T[]): T[] =>
  ops.map((op) => ({ ...op, outcome: op.outcome === undefined ? undefined : { ...op.outcome } }) as T);

const ok = <T extends LockOp | CacheOp>(op: T) => op.outcome?.status === 'ok';
const before = (a: LockOp | CacheOp, b: LockOp | CacheOp) => a.returnMs !== undefined && a.returnMs < b.invokeMs;

/** The acknowledged writes of a register key that stored a value (set, or cas / add STORED), with it. */
function storedWrites(ops: readonly CacheOp[]) {
  return ops.filter((op) => {
    if (op.outcome?.status !== 'ok' || op.outcome.value.refused) return false;
    return (
      op.input.op === 'set' ||
      ((op.input.op === 'cas' || op.input.op === 'add') && op.outcome.value.outcome === 'STORED')
    );
  });
}

/**
 * A stale read: a get that saw write W now sees an older write V instead, where V returned
 * before W was invoked and W returned before the get was invoked.
 */
export function staleRead(ops: readonly CacheOp[]): CacheOp[] | undefined {
  const mutated = copy(ops);
  for (const get of mutated) {
    const seen = get.outcome?.status === 'ok' ? get.outcome.value : undefined;
    if (get.input.op !== 'get' || !seen?.found) continue;
    const key = get.input.key;
    const writes = storedWrites(mutated.filter((op) => op.input.key === key));
    const latest = writes.find((w) => 'value' in w.input && w.input.value === seen?.value);
    if (latest === undefined || !before(latest, get)) continue;
    const older = writes.find(
      (w) => w !== latest && before(w, latest) && w.outcome!.status === 'ok' && w.outcome!.value.cas !== undefined,
    );
    if (older === undefined || !('value' in older.input) || older.outcome!.status !== 'ok') continue;
    get.outcome = { status: 'ok', value: { found: true, value: older.input.value, cas: older.outcome!.value.cas! } };
    return mutated;
  }
  return undefined;
}

/**
 * A lost write: an acknowledged incr of a counter has no effect on a later one (invoked after
 * it returned), whose value then lacks its delta. Every incr adds at least 1, so the value the
 * later one now returns is one an earlier incr returned too: no order explains both.
 */
export function lostWrite(ops: readonly CacheOp[]): CacheOp[] | undefined {
  const mutated = copy(ops);
  const incrs = mutated.filter((op) => op.input.op === 'incr' && ok(op));
  for (const first of incrs) {
    if (first.input.op !== 'incr') continue;
    const delta = first.input.delta;
    const next = incrs.find((op) => op.input.key === first.input.key && before(first, op));
    if (next === undefined || next.outcome!.status !== 'ok') continue;
    // A delete in between could reset the counter to a value seen before: not certain then.
    const reset = mutated.some(
      (op) =>
        op.input.op === 'delete' &&
        op.input.key === first.input.key &&
        op.invokeMs < next.returnMs! &&
        (op.returnMs ?? Infinity) > first.invokeMs,
    );
    if (reset) continue;
    const value = BigInt(next.outcome!.value.value!) - delta;
    // Only when the lowered value is one the first incr returned: then it certainly collides.
    if (first.outcome!.status !== 'ok' || value !== BigInt(first.outcome!.value.value!)) continue;
    next.outcome = { status: 'ok', value: { ...next.outcome!.value, value: value.toString() } };
    return mutated;
  }
  return undefined;
}

/** What a mutation of grants looks at: locks, leaderships of elections, or both. */
export type GrantKind = 'lock' | 'election';

/**
 * Two grants of one lock (or election), in order, whose holds do not touch (as a correct
 * history has): `a` returned before `b` was invoked, and was released (resigned) before `b`
 * returned.
 */
function sequentialGrants(ops: readonly LockOp[], kind: GrantKind | undefined) {
  const grants = ops.filter((op) => {
    const grant = grantOf(op);
    return grant !== undefined && (kind === undefined || grant.subject.startsWith(kind));
  });
  for (const a of grants)
    for (const b of grants) {
      const [ga, gb] = [grantOf(a)!, grantOf(b)!];
      if (a === b || ga.subject !== gb.subject || !before(a, b)) continue;
      const release = ops.find((op) => {
        const end = endOf(op);
        return end?.subject === ga.subject && end.id === ga.id && op.invokeMs < b.returnMs!;
      });
      if (release !== undefined) return { a, b, release };
    }
  return undefined;
}

/**
 * Two overlapping holders (leaders): the first of two grants of one name releases (resigns)
 * only after the second was granted, with a lease (session) still valid then.
 */
export function overlappingHolders(ops: readonly LockOp[], kind?: GrantKind): LockOp[] | undefined {
  const mutated = copy(ops);
  const found = sequentialGrants(mutated, kind);
  if (found === undefined) return undefined;
  const { a, b, release } = found;
  const shift = b.returnMs! + 5 - release.invokeMs;
  const grant = grantOf(a)!;
  for (const op of mutated) {
    const end = endOf(op);
    if (end?.subject === grant.subject && end.id === grant.id) {
      (op as { invokeMs: number }).invokeMs += shift;
      op.returnMs = (op.returnMs ?? op.invokeMs) + shift;
    }
  }
  const out = (a.outcome as { value: GrantOut }).value;
  a.outcome = { status: 'ok', value: { ...out, validUntilMs: Math.max(out.validUntilMs, b.returnMs! + 1_000) } };
  return mutated;
}

/**
 * Swapped tokens: two grants of one name, one before the other, exchange their fencing tokens
 * (and a leadership's Resign names it by the token it now has).
 */
export function swappedTokens(ops: readonly LockOp[], kind?: GrantKind): LockOp[] | undefined {
  const mutated = copy(ops);
  const found = sequentialGrants(mutated, kind);
  if (found === undefined) return undefined;
  const { a, b } = found;
  const [ga, gb] = [grantOf(a)!, grantOf(b)!];
  const [outA, outB] = [(a.outcome as { value: GrantOut }).value, (b.outcome as { value: GrantOut }).value];
  for (const op of mutated) {
    const end = endOf(op);
    if (op.input.op !== 'resign' || end?.subject !== ga.subject) continue;
    if (end.id === ga.id) (op as { input: LockInput }).input = { ...op.input, token: gb.token };
    else if (end.id === gb.id) (op as { input: LockInput }).input = { ...op.input, token: ga.token };
  }
  a.outcome = { status: 'ok', value: { ...outA, token: outB.token } };
  b.outcome = { status: 'ok', value: { ...outB, token: outA.token } };
  return mutated;
}

/** A fenced write refused without cause: the first stored write of a key reads as refused. */
export function refusedWithoutCause(ops: readonly LockOp[]): LockOp[] | undefined {
  const mutated = copy(ops);
  const writes = mutated
    .filter((op) => op.input.op === 'fenced-write' && op.outcome !== undefined)
    .sort((x, y) => x.invokeMs - y.invokeMs);
  const first = writes.find(
    (w) =>
      ok(w) &&
      (w.outcome as { value: { stored: boolean } }).value.stored &&
      w.input.op === 'fenced-write' &&
      // Nothing with a newer token on its key was invoked before it returned.
      !writes.some(
        (o) =>
          o !== w &&
          o.input.op === 'fenced-write' &&
          w.input.op === 'fenced-write' &&
          o.input.key === w.input.key &&
          o.input.token > w.input.token &&
          o.invokeMs < w.returnMs!,
      ),
  );
  if (first === undefined) return undefined;
  first.outcome = { status: 'ok', value: { op: 'fenced-write', stored: false } };
  return mutated;
}
