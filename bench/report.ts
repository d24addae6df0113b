// Results → ratios and target verdicts → the terminal table, latest.json and latest.md.
import type { Scenario, Target } from './scenarios.js';

export interface CellResult {
  readonly concurrency: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly samples: number;
  readonly serverUsPerOp?: number;
  readonly clientUsPerOp?: number;
  readonly serverSyscallsPerOp?: number;
  /** Scenarios that measure a value (RSS in MB). */
  readonly value?: number;
  readonly note?: string;
  /**
   * subject/baseline (throughput) or baseline/subject (latency): higher is better; for
   * ratioOf 'value' (memory), subject/baseline: lower is better.
   */
  ratio?: number;
  verdict?: 'pass' | 'miss';
  /** The target as printed, e.g. "≥ 0.85× echo.get". */
  targetText?: string;
  /** Server CPU per op over the baseline's, for a `cpu` target. */
  cpuRatio?: number;
  /**
   * For a `ratio` target on throughput: the baseline's server CPU per op over this one's
   * (higher is better, as for `ratio`), the median of the rounds' own; what an op costs the
   * server, which a loaded machine sways less than throughput.
   */
  costRatio?: number;
  readonly perRound?: readonly { readonly rps: number; readonly serverUsPerOp: number }[];
  error?: string;
}

export interface ScenarioResult {
  readonly id: string;
  readonly group: string;
  readonly label: string;
  readonly unit: Scenario['unit'];
  readonly baseline?: string;
  readonly ratioOf: 'rps' | 'p50' | 'p99' | 'value';
  readonly target?: Target | readonly Target[];
  skipped?: string;
  error?: string;
  readonly cells: CellResult[];
}

export interface Machine {
  readonly nproc: number;
  readonly cpu: string;
  readonly node: string;
  readonly loadavgStart: readonly number[];
  loadavgEnd?: readonly number[];
}

export interface Report {
  readonly command: string;
  readonly quick: boolean;
  /** Rounds per cell (see run.ts). */
  readonly rounds: number;
  readonly startedAt: string;
  finishedAt?: string;
  /** The commit measured, "+ uncommitted changes" when the work tree differed from it. */
  readonly git: string;
  readonly machine: Machine;
  /** Whether the SDK sent cache calls through Cache/Pipeline when asked to. */
  sdkPipeline?: boolean | string;
  readonly groups: readonly { name: string; title: string }[];
  readonly scenarios: ScenarioResult[];
  readonly profiles: { id: string; text: string }[];
  /** With --profile: each scenario's measured windows (µs, CLOCK_MONOTONIC), to re-read the profiles by. */
  windows?: Record<string, readonly { startUs: number; endUs: number }[]>;
}

/** Fills in ratios and verdicts from the baselines measured at the same concurrency. */
export function judge(report: Report): void {
  const byId = new Map(report.scenarios.map((s) => [s.id, s]));
  for (const s of report.scenarios) {
    for (const cell of s.cells) {
      if (cell.error !== undefined) continue;
      const base =
        s.baseline === undefined
          ? undefined
          : byId.get(s.baseline)?.cells.find((c) => c.concurrency === cell.concurrency && c.error === undefined);
      // Throughput rounds taken in turn with the baseline's are paired: the ratio is the
      // median of the rounds' own ratios, so load from elsewhere that comes and goes over the
      // cell's seconds spoils a round's pair, not the ratio.
      const paired = pairedMedian(base, cell);
      if (base !== undefined)
        cell.ratio =
          s.ratioOf === 'p50'
            ? base.p50Ms / cell.p50Ms
            : s.ratioOf === 'p99'
              ? base.p99Ms / cell.p99Ms
              : s.ratioOf === 'value'
                ? cell.value! / base.value!
                : (paired?.((b, c) => c.rps / b.rps) ?? cell.rps / base.rps);
      const targets = s.target === undefined ? [] : Array.isArray(s.target) ? s.target : [s.target as Target];
      // The first target that speaks of this concurrency judges the cell.
      const t = targets.find((x) => x.kind !== 'ratio' || x.at === undefined || x.at.includes(cell.concurrency));
      if (t === undefined) continue;
      if (t.kind === 'ratio') {
        cell.targetText = `≥ ${t.min}× ${s.baseline}`;
        if (s.ratioOf === 'rps') cell.costRatio = paired?.((b, c) => b.serverUsPerOp / c.serverUsPerOp);
        if (cell.ratio !== undefined && Number.isFinite(cell.ratio))
          cell.verdict = cell.ratio >= t.min ? 'pass' : 'miss';
      } else if (t.kind === 'cpu') {
        cell.targetText = `server CPU/op ≤ ${t.max}× ${s.baseline}'s`;
        const mine = cell.serverUsPerOp;
        const theirs = base?.serverUsPerOp;
        if (mine !== undefined && theirs !== undefined && theirs > 0) {
          cell.cpuRatio = mine / theirs;
          cell.verdict = cell.cpuRatio <= t.max ? 'pass' : 'miss';
        }
      } else if (t.kind === 'p50') {
        cell.targetText = `p50 ≤ ${t.maxMs} ms`;
        if (Number.isFinite(cell.p50Ms)) cell.verdict = cell.p50Ms <= t.maxMs ? 'pass' : 'miss';
      } else if (t.kind === 'value-ratio') {
        cell.targetText = `≤ ${t.max}× ${s.baseline}`;
        // As for 'value': a quick run's figures are not the ones the target is about.
        if (cell.ratio !== undefined && Number.isFinite(cell.ratio) && !report.quick)
          cell.verdict = cell.ratio <= t.max ? 'pass' : 'miss';
      } else {
        cell.targetText = `≤ ${t.max} ${s.unit}`;
        // The quick run loads fewer entries: a value, but not the one the target is about.
        if (cell.value !== undefined && !report.quick) cell.verdict = cell.value <= t.max ? 'pass' : 'miss';
      }
    }
  }
}

type RoundFigures = NonNullable<CellResult['perRound']>[number];

/**
 * With both cells measured over the same number of rounds (2 or more), a function giving
 * the median over rounds of f(baseline's round, subject's round); undefined otherwise.
 */
function pairedMedian(
  base: CellResult | undefined,
  cell: CellResult,
): ((f: (b: RoundFigures, c: RoundFigures) => number) => number | undefined) | undefined {
  const [b, c] = [base?.perRound, cell.perRound];
  if (b === undefined || c === undefined || b.length !== c.length || b.length < 2) return undefined;
  return (f) => {
    const ratios = b
      .map((round, i) => f(round, c[i]!))
      .filter(Number.isFinite)
      .sort((x, y) => x - y);
    if (ratios.length === 0) return undefined;
    const mid = ratios.length >> 1;
    return ratios.length % 2 === 1 ? ratios[mid]! : (ratios[mid - 1]! + ratios[mid]!) / 2;
  };
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const ms = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(3) : n.toFixed(1)) : '–');
const us = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? '' : n.toFixed(n < 10 ? 1 : 0));
const ratio = (c: CellResult, s: ScenarioResult) =>
  c.ratio === undefined || !Number.isFinite(c.ratio)
    ? ''
    : `${c.ratio.toFixed(2)}× ${s.baseline}${s.ratioOf === 'p50' || s.ratioOf === 'p99' ? ` (${s.ratioOf})` : ''}`;

function rows(report: Report, group: string): string[][] {
  const out: string[][] = [];
  for (const s of report.scenarios.filter((x) => x.group === group)) {
    if (s.skipped !== undefined || (s.error !== undefined && s.cells.length === 0)) {
      out.push([
        s.id,
        s.label,
        '',
        s.skipped !== undefined ? `skipped: ${s.skipped}` : `ERROR: ${s.error}`,
        '',
        '',
        '',
        '',
        '',
        '',
        '',
      ]);
      continue;
    }
    for (const c of s.cells) {
      if (c.error !== undefined) {
        out.push([s.id, s.label, String(c.concurrency), `ERROR: ${c.error}`, '', '', '', '', '', '', '']);
        continue;
      }
      const throughput = s.unit === 'MB' ? `${c.value!.toFixed(0)} MB` : `${int(c.rps)} ${s.unit}/s`;
      const verdict = c.verdict === undefined ? (c.targetText ? 'n/a' : '') : c.verdict;
      out.push([
        s.id,
        s.label,
        String(c.concurrency),
        throughput,
        ms(c.p50Ms),
        ms(c.p99Ms),
        us(c.serverUsPerOp),
        us(c.clientUsPerOp),
        ratio(c, s),
        c.targetText ?? '',
        verdict,
      ]);
    }
  }
  return out;
}

const HEADER = [
  'id',
  'scenario',
  'c',
  'throughput',
  'p50 ms',
  'p99 ms',
  'server µs/op',
  'client µs/op',
  'ratio',
  'target',
  'result',
];
/** Columns right-aligned (numbers), by index in HEADER minus the id. */
const NUMERIC = new Set([2, 3, 4, 5, 6]);

export function textTable(report: Report): string {
  const lines: string[] = [];
  for (const g of report.groups) {
    const body = rows(report, g.name).map((r) => [r[0]!, ...r.slice(2)]);
    if (body.length === 0) continue;
    const head = [HEADER[0]!, ...HEADER.slice(2)];
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
    lines.push('', `== ${g.title}`);
    lines.push(
      head
        .map((h, i) => h.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
    for (const r of body)
      lines.push(
        r
          .map((v, i) => (NUMERIC.has(i) ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd(),
      );
  }
  lines.push('', ...targetLines(report).map((l) => `  ${l}`));
  for (const s of report.scenarios) for (const c of s.cells) if (c.note) lines.push(`  note ${s.id}: ${c.note}`);
  return lines.join('\n');
}

function targetLines(report: Report): string[] {
  const lines = ['targets:'];
  for (const s of report.scenarios) {
    for (const c of s.cells) {
      if (c.targetText === undefined) continue;
      const measured = c.targetText.startsWith('≥')
        ? `${ratio(c, s) || '–'}${c.costRatio === undefined ? '' : `; server CPU/op ${c.costRatio.toFixed(2)}× as cheap as ${s.baseline}'s`}`
        : c.targetText.includes('×') && s.ratioOf === 'value'
          ? `${c.value?.toFixed(0)} ${s.unit}, ${ratio(c, s) || '–'}`
          : c.targetText.startsWith('server CPU')
            ? c.cpuRatio === undefined
              ? '–'
              : `server CPU/op ${c.cpuRatio.toFixed(2)}× ${s.baseline}'s`
            : c.targetText.startsWith('p50')
              ? `p50 ${ms(c.p50Ms)} ms`
              : `${c.value?.toFixed(0)} ${s.unit}`;
      lines.push(
        `${(c.verdict ?? 'n/a').toUpperCase().padEnd(4)}  ${s.id} c=${c.concurrency}: ${measured} (target ${c.targetText})`,
      );
    }
  }
  return lines;
}

export function markdown(report: Report): string {
  const m = report.machine;
  const load = (l: readonly number[] | undefined) => (l ? l.map((x) => x.toFixed(2)).join(', ') : '?');
  const out = [
    `Measured ${report.startedAt.slice(0, 16).replace('T', ' ')} UTC on ${m.nproc} cores (${m.cpu}), Node ${m.node}; load average ${load(m.loadavgStart)} at the start, ${load(m.loadavgEnd)} at the end (a shared machine: other work ran alongside).`,
    `Code: ${report.git}. Command: \`${report.command}\`${report.quick ? ' (quick mode: numbers are not meaningful)' : ''}. SDK cache pipeline: ${report.sdkPipeline === true ? 'on when asked' : `not in effect (${report.sdkPipeline})`}.`,
    '',
    `Throughput counts requests (or keys of a batch, lock cycles, hand-offs) per second over a closed loop of \`c\` concurrent callers in the bench process; the servers are child processes. Each cell is the median of ${report.rounds} round(s) (or its group's own number) taken in turn with the other scenarios of its group, every other round in reverse order. \`ratio\` is against the named baseline measured at the same \`c\` in those same rounds (for throughput, the median of the rounds' own ratios); higher is better (for hand-off it compares p50 latency), except for memory rows (MB against MB: lower is better). \`server µs/op\` is the CPU time the server under test (latchkey, the echo server, memcached or etcd) used per operation, \`client µs/op\` the bench process's (SDK, grpc-js, memjs or etcd3 client): on a shared machine these hold up better than throughput.`,
  ];
  for (const g of report.groups) {
    const body = rows(report, g.name);
    if (body.length === 0) continue;
    out.push(
      '',
      `**${g.title}**`,
      '',
      `| ${HEADER.slice(1).join(' | ')} |`,
      `|${HEADER.slice(1)
        .map((_, i) => (NUMERIC.has(i) ? ' ---: ' : ' --- '))
        .join('|')}|`,
    );
    for (const r of body)
      out.push(
        `| ${r
          .slice(1)
          .map((v) => v.replaceAll('|', '\\|'))
          .join(' | ')} |`,
      );
  }
  out.push('', ...targetLines(report).map((l, i) => (i === 0 ? '**Targets**' + '\n' : `- ${l}`)));
  const notes = report.scenarios.flatMap((s) => s.cells.filter((c) => c.note).map((c) => `- ${s.id}: ${c.note}`));
  if (notes.length > 0) out.push('', ...notes);
  return `${out.join('\n')}\n`;
}
