// The load generator: a closed loop of `concurrency` workers, each awaiting one operation
// at a time, for a warm-up and then a measured window. Throughput counts the operations (or
// items, for batches) that complete inside the window, and latency is sampled from the same
// operations: in a steady state that is every operation's fair share of the window. CPU time
// of the server under test and of this process is metered over the same window: per
// operation, it holds up much better than throughput when other work shares the machine.
import { readFileSync } from 'node:fs';

export interface Cell {
  /** Operations (or items) completed per second in the measured window. */
  readonly rps: number;
  /** CPU time per operation (or item) of the server process under test, in µs. */
  readonly serverUsPerOp?: number;
  /** CPU time per operation (or item) of this process (the client side), in µs. */
  readonly clientUsPerOp?: number;
  /** read + write system calls of the server under test per operation (or item). */
  readonly serverSyscallsPerOp?: number;
  /** Latency of one operation (a whole batch, for batches), in ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Operations timed. */
  readonly samples: number;
  /**
   * Each round's throughput and server CPU per op, in the order taken: a ratio against a
   * baseline measured in the same rounds is the median of the rounds' own ratios (report.ts).
   */
  readonly perRound?: readonly { readonly rps: number; readonly serverUsPerOp: number }[];
}

export interface LoadOptions {
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** The pid of the server under test, whose CPU time is metered over the window. */
  readonly serverPid?: number;
}

/** CPU time (user + system) a process has used so far, in µs, from /proc/<pid>/stat. */
export function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}

/** read and write system calls a process has made so far (syscr + syscw of /proc/<pid>/io). */
export function processSyscalls(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return Number(/^syscr: (\d+)$/m.exec(io)?.[1] ?? NaN) + Number(/^syscw: (\d+)$/m.exec(io)?.[1] ?? NaN);
}

/** USER_HZ: the unit of /proc/<pid>/stat times; 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

function selfCpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/**
 * One operation of worker `worker`. Resolves with the number of items it handled (a 100-key
 * batch: 100), or nothing for one.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: an op that counts nothing just returns.
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

/** One measured window: its throughput, every operation's latency in it, CPU used in it. */
export interface Round {
  readonly rps: number;
  readonly latencies: Float64Array;
  /** Operations (or items) completed in the window. */
  readonly ops: number;
  readonly clientCpuUs: number;
  /** NaN without a server pid. */
  readonly serverCpuUs: number;
  readonly serverSyscalls: number;
}

export async function runRound(op: Op, options: LoadOptions): Promise<Round> {
  const { concurrency, warmupMs, durationMs } = options;
  const samples = new Samples();
  let measuring = false;
  let stopping = false;
  let items = 0;
  let failure: unknown;

  const worker = async (w: number) => {
    while (!stopping) {
      const start = performance.now();
      // biome-ignore lint/suspicious/noConfusingVoidType: what an Op returns.
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
  const serverCpu = () => (options.serverPid === undefined ? NaN : processCpuUs(options.serverPid));
  const serverSyscalls = () => (options.serverPid === undefined ? NaN : processSyscalls(options.serverPid));
  const cpuStart = [selfCpuUs(), serverCpu(), serverSyscalls()] as const;
  const windowStart = performance.now();
  measuring = true;
  await sleep(durationMs, () => stopping);
  const windowEnd = performance.now();
  stopping = true;
  const cpuEnd = [selfCpuUs(), serverCpu(), serverSyscalls()] as const;
  await settle(workers);
  if (failure !== undefined) throw failure;
  return {
    rps: items / ((windowEnd - windowStart) / 1000),
    latencies: samples.sorted(),
    ops: items,
    clientCpuUs: cpuEnd[0] - cpuStart[0],
    serverCpuUs: cpuEnd[1] - cpuStart[1],
    serverSyscalls: cpuEnd[2] - cpuStart[2],
  };
}

/**
 * Rounds of one scenario, taken in turn with its baseline's: throughput is the median
 * round's (a burst of load from elsewhere on the machine spoils one round, not the cell),
 * latency percentiles are over every operation of every round.
 */
export function combine(rounds: readonly Round[]): Cell {
  const rates = rounds.map((r) => r.rps).sort((a, b) => a - b);
  const all = new Float64Array(rounds.reduce((n, r) => n + r.latencies.length, 0));
  let at = 0;
  for (const r of rounds) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  all.sort();
  const mid = rates.length >> 1;
  const rps = rates.length % 2 === 1 ? rates[mid]! : (rates[mid - 1]! + rates[mid]!) / 2;
  const ops = rounds.reduce((n, r) => n + r.ops, 0);
  const perOp = (us: number) => (ops > 0 && Number.isFinite(us) ? us / ops : undefined);
  return {
    rps,
    p50Ms: percentile(all, 50),
    p99Ms: percentile(all, 99),
    samples: all.length,
    serverUsPerOp: perOp(rounds.reduce((n, r) => n + r.serverCpuUs, 0)),
    clientUsPerOp: perOp(rounds.reduce((n, r) => n + r.clientCpuUs, 0)),
    serverSyscallsPerOp: perOp(rounds.reduce((n, r) => n + r.serverSyscalls, 0)),
    perRound: rounds.map((r) => ({ rps: r.rps, serverUsPerOp: r.ops > 0 ? r.serverCpuUs / r.ops : NaN })),
  };
}

export async function runLoad(op: Op, options: LoadOptions): Promise<Cell> {
  return combine([await runRound(op, options)]);
}

/** How long the operations still running at the end of a window may take to finish. */
export const SETTLE_MS = 30_000;

/** Waits for the workers to finish their last operation; a hung one fails the cell instead of the run. */
export async function settle(workers: readonly Promise<unknown>[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`operations still running ${SETTLE_MS} ms after the window closed`)),
      SETTLE_MS,
    );
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
