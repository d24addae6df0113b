// One partition scenario's frame (test/partitions/): workloads run while a fault is applied
// and healed, then the recorded history is judged. A scenario is
//
//   const times = await runScenario({ workloads: [(signal) => runLockWorkload({ ..., signal })],
//                                     warmupMs: 1_500, fault: async () => { cut; hold; heal }, settleMs: 2_500 });
//
// and then its checks: the checker's rules (checker.ts), the answer-time rule below, and its own.
// A workload is any function that records into a history until its signal aborts, so the
// later scenarios (lock sessions, elections) bring theirs, with rules of their own, and reuse
// the rest.
import { setTimeout as sleep } from 'node:timers/promises';
import { ACQUIRE_ANSWER_MARGIN_MS } from '../../src/locks/service.js';
import type { CacheOp, LockOp, Violation } from './checker.js';
import { monotonicMs } from './history.js';

/**
 * What a client may see on top of a server's own bound before an answer counts as late: the
 * way back through the gateway and a busy 2-core machine's scheduling. The bound itself is
 * ACQUIRE_ANSWER_MARGIN_MS after wait_ms for an Acquire.
 */
export const ANSWER_SLACK_MS = 500;

export interface ScenarioTimes {
  /** On the history's clock (monotonicMs). */
  readonly startMs: number;
  readonly faultMs: number;
  readonly healMs: number;
  readonly stopMs: number;
  /** When every workload had finished its last operation. */
  readonly endMs: number;
}

export interface ScenarioOptions {
  /** Each records operations until its signal aborts, then finishes its last one and resolves. */
  readonly workloads: readonly ((signal: AbortSignal) => Promise<void>)[];
  /** Workloads run this long before the fault. */
  readonly warmupMs: number;
  /** Applies the fault, holds it, and heals it before it resolves. */
  readonly fault: () => Promise<void>;
  /** Workloads run this long after the heal. */
  readonly settleMs: number;
}

export async function runScenario(options: ScenarioOptions): Promise<ScenarioTimes> {
  const stop = new AbortController();
  const startMs = monotonicMs();
  const running = options.workloads.map((workload) => workload(stop.signal));
  // A workload that fails stops the scenario at once (after the fault is healed below).
  const failed = Promise.all(running).then(
    () => undefined,
    (err: unknown) => err,
  );
  let faultMs = 0;
  let healMs = 0;
  try {
    await Promise.race([sleep(options.warmupMs), failed]);
    faultMs = monotonicMs();
    await options.fault();
    healMs = monotonicMs();
    await Promise.race([sleep(options.settleMs), failed]);
  } finally {
    stop.abort();
  }
  const stopMs = monotonicMs();
  const err = await failed;
  if (err !== undefined) throw err;
  return { startMs, faultMs, healMs, stopMs, endMs: monotonicMs() };
}

/**
 * The answer-time rule of every scenario: an Acquire answers within its wait_ms plus
 * ACQUIRE_ANSWER_MARGIN_MS (plus ANSWER_SLACK_MS on the client's side), whatever the backend
 * does; and when it is not granted, the answer is ABORTED, or UNAVAILABLE naming the backend
 * (`names`), never DEADLINE_EXCEEDED or anything else.
 */
export function acquireAnswerViolations(ops: readonly LockOp[], names: RegExp): Violation[] {
  const violations: Violation[] = [];
  for (const op of ops) {
    if (op.input.op !== 'acquire' || op.outcome === undefined) continue;
    const took = op.returnMs! - op.invokeMs;
    const bound = op.input.waitMs + ACQUIRE_ANSWER_MARGIN_MS + ANSWER_SLACK_MS;
    const via = `Acquire of "${op.input.name}" (wait_ms ${op.input.waitMs}) through ${op.input.via} by ${op.client}`;
    if (took > bound)
      violations.push({
        rule: 'answer time',
        message: `${via} answered after ${took.toFixed(0)} ms (bound ${bound} ms)`,
      });
    const outcome = op.outcome;
    if (outcome.status === 'ok' || outcome.code === 'ABORTED') continue;
    if (outcome.code !== 'UNAVAILABLE' || !names.test(outcome.message))
      violations.push({ rule: 'answer', message: `${via}: ${outcome.code} ${outcome.message}` });
  }
  return violations;
}

/**
 * The cache's answer-time rule: every operation answers within boundMs (the store's timeout
 * for each of its round trips, plus slack), and when it fails, with UNAVAILABLE naming the
 * store (`names`).
 */
export function cacheAnswerViolations(ops: readonly CacheOp[], boundMs: number, names: RegExp): Violation[] {
  const violations: Violation[] = [];
  for (const op of ops) {
    if (op.outcome === undefined) continue;
    const took = op.returnMs! - op.invokeMs;
    const what = `${op.input.op} of "${op.input.key}" by ${op.client}`;
    if (took > boundMs)
      violations.push({
        rule: 'answer time',
        message: `${what} answered after ${took.toFixed(0)} ms (bound ${boundMs} ms)`,
      });
    const outcome = op.outcome;
    if (outcome.status !== 'ok' && (outcome.code !== 'UNAVAILABLE' || !names.test(outcome.message)))
      violations.push({ rule: 'answer', message: `${what}: ${outcome.code} ${outcome.message}` });
  }
  return violations;
}

/** The operations invoked in [fromMs, toMs) on the history's clock. */
export const between = <T extends { invokeMs: number }>(ops: readonly T[], fromMs: number, toMs: number): T[] =>
  ops.filter((op) => op.invokeMs >= fromMs && op.invokeMs < toMs);
