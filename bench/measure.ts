// The load generator: a closed loop of `concurrency` workers, each awaiting one operation
// at a time, for a warm-up and then a measured window. Throughput counts the operations (or
// items, for batches) that complete inside the window, and latency is sampled from the same
// operations: in a steady state that is every operation's fair share of the window.

export interface Cell {
  /** Operations (or items) completed per second in the measured window. */
  readonly rps: number;
  /** Latency of one operation (a whole batch, for batches), in ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Operations timed. */
  readonly samples: number;
}

export interface LoadOptions {
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

/**
 * One operation of worker `worker`. Resolves with the number of items it handled (a 100-key
 * batch: 100), or nothing for one.
 */
export type Op = (worker: number) => Promise<number | void>;

/** Samples in ms, sorted in place; the nearest-rank percentile. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** A growable Float64Array of latency samples. */
export class Samples {
  #data = new Float64Array(1 << 14);
  #size = 0;

  push(ms: number): void {
    if (this.#size === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.#size++] = ms;
  }

  get size(): number {
    return this.#size;
  }

  sorted(): Float64Array {
    return this.#data.subarray(0, this.#size).sort();
  }
}

export async function runLoad(op: Op, options: LoadOptions): Promise<Cell> {
  const { concurrency, warmupMs, durationMs } = options;
  const samples = new Samples();
  let measuring = false;
  let stopping = false;
  let items = 0;
  let failure: unknown;
  let windowStart = 0;
  let windowEnd = 0;

  const worker = async (w: number) => {
    while (!stopping) {
      const start = performance.now();
      let n: number | void;
      try {
        n = await op(w);
      } catch (err) {
        failure ??= err;
        stopping = true;
        return;
      }
      const end = performance.now();
      if (measuring && !stopping) {
        samples.push(end - start);
        items += n ?? 1;
      }
    }
  };

  const workers = Array.from({ length: concurrency }, (_, w) => worker(w));
  await sleep(warmupMs, () => stopping);
  windowStart = performance.now();
  measuring = true;
  await sleep(durationMs, () => stopping);
  windowEnd = performance.now();
  stopping = true;
  await settle(workers);
  if (failure !== undefined) throw failure;
  const sorted = samples.sorted();
  return { rps: items / ((windowEnd - windowStart) / 1000), p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), samples: sorted.length };
}

/** How long the operations still running at the end of a window may take to finish. */
export const SETTLE_MS = 30_000;

/** Waits for the workers to finish their last operation; a hung one fails the cell instead of the run. */
export async function settle(workers: readonly Promise<unknown>[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`operations still running ${SETTLE_MS} ms after the window closed`)), SETTLE_MS);
  });
  try {
    await Promise.race([Promise.all(workers), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sleeps ms, waking early (checked every 50 ms) once `stop()` is true. */
export async function sleep(ms: number, stop: () => boolean = () => false): Promise<void> {
  const end = performance.now() + ms;
  while (!stop()) {
    const left = end - performance.now();
    if (left <= 0) return;
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, 50)));
  }
}
