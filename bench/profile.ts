// Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: self time per
// function and per area (a file of src/ or client/, a package, node's internals, GC), over
// the samples inside the measured windows only, so server start-up (tsx compiling) and idle
// gaps between scenarios do not count.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from '../test/support/spawn.js';

interface ProfileNode {
  readonly id: number;
  readonly children?: readonly number[];
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface HotSpot {
  /** "function (file:line)" */
  readonly name: string;
  /** Share of the busy (non-idle) samples in the windows, 0..1. */
  readonly share: number;
}

export interface ProfileSummary {
  readonly file: string;
  /** Busy share of the windows' wall time: how loaded the server's main thread was, 0..1. */
  readonly busy: number;
  readonly samples: number;
  readonly top: readonly HotSpot[];
  readonly areas: readonly HotSpot[];
  /**
   * Each busy sample charged to the innermost function of this repository (src/, client/,
   * bench/) on its stack: which of our functions the time (library and native work
   * included) was spent for. "(no latchkey frame)" is grpc-js/node work outside any call
   * of ours, e.g. parsing HTTP/2 frames.
   */
  readonly responsible: readonly HotSpot[];
}

/** A time window in µs of CLOCK_MONOTONIC (what process.hrtime and V8's profiler both use). */
export interface Window {
  readonly startUs: number;
  readonly endUs: number;
}

export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

function where(url: string): string {
  if (url === '') return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  return path.startsWith('/') ? relative(REPO_ROOT, path) : path;
}

function area(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native / V8 builtins)';
  if (url.startsWith('node:')) return 'node: internals';
  const path = where(url);
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1]!;
  return path;
}

export function summarize(file: string, windows: readonly Window[], topN = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ours = (n: ProfileNode) => /^(src|client|bench)\//.test(where(n.callFrame.url));
  const responsible = new Map<string, number>();
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let t = profile.startTime;
  let busy = 0;
  let inWindows = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (windows.length > 0 && !windows.some((w) => t >= w.startUs && t <= w.endUs)) continue;
    inWindows++;
    const node = byId.get(profile.samples[i]!)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') continue;
    busy++;
    const name = `${functionName || '(anonymous)'}${url ? ` (${where(url)}:${lineNumber + 1})` : ''}`;
    self.set(name, (self.get(name) ?? 0) + 1);
    const a = area(node);
    areas.set(a, (areas.get(a) ?? 0) + 1);
    let up: ProfileNode | undefined = node;
    while (up !== undefined && !ours(up)) up = byId.get(parent.get(up.id) ?? -1);
    const owner =
      up === undefined
        ? '(no latchkey frame)'
        : `${up.callFrame.functionName || '(anonymous)'} (${where(up.callFrame.url)}:${up.callFrame.lineNumber + 1})`;
    responsible.set(owner, (responsible.get(owner) ?? 0) + 1);
  }
  const rank = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, count]) => ({ name, share: busy === 0 ? 0 : count / busy }));
  return {
    file,
    busy: inWindows === 0 ? 0 : busy / inWindows,
    samples: busy,
    top: rank(self, topN),
    areas: rank(areas, 12),
    responsible: rank(responsible, 12),
  };
}

export function formatSummary(title: string, s: ProfileSummary): string {
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)}%`;
  return [
    `profile of ${title}: ${s.file}`,
    `  main thread busy ${pct(s.busy).trim()} of the measured windows (${s.samples} busy samples)`,
    '  self time by area:',
    ...s.areas.map((a) => `    ${pct(a.share)}  ${a.name}`),
    '  top functions by self time:',
    ...s.top.map((h) => `    ${pct(h.share)}  ${h.name}`),
    '  time charged to the innermost function of this repository on the stack:',
    ...s.responsible.map((h) => `    ${pct(h.share)}  ${h.name}`),
  ].join('\n');
}

// `node --import tsx bench/profile.ts FILE.cpuprofile [latest.json SCENARIO_ID]`: summarize a
// profile by hand, over one scenario's windows when a --profile run's latest.json is given.
if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const [file, json, id] = process.argv.slice(2);
  if (file === undefined) throw new TypeError('usage: bench/profile.ts FILE.cpuprofile [latest.json SCENARIO_ID]');
  const windows =
    json === undefined || id === undefined
      ? []
      : ((JSON.parse(readFileSync(json, 'utf8')) as { windows?: Record<string, Window[]> }).windows?.[id] ?? []);
  console.log(formatSummary(id ?? file, summarize(file, windows, 25)));
}
