// Scrapes a server's GET /metrics and reads series out of the Prometheus text format.
import assert from 'node:assert/strict';

export interface Scrape {
  readonly text: string;
  /** The value of the series `name` whose labels include `labels`; 0 when there is none. */
  value(name: string, labels?: Readonly<Record<string, string>>): number;
  /** Whether any series `name` with these labels exists at all. */
  has(name: string, labels?: Readonly<Record<string, string>>): boolean;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Scrape {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    assert.ok(match, `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  const find = (name: string, labels: Readonly<Record<string, string>>) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return {
    text,
    value: (name, labels = {}) => {
      const found = find(name, labels);
      assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} series`);
      return found[0]?.value ?? 0;
    },
    has: (name, labels = {}) => find(name, labels).length > 0,
  };
}

/** GET http://address/metrics, checked to be Prometheus text. */
export async function scrape(address: string): Promise<Scrape> {
  const response = await fetch(`http://${address}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await response.text());
}
