// A cache-aside caller in its own process, for the lease tests: `concurrency` concurrent
// cache.getOrSet calls on one key through its own SDK client and latchkey server. Its loader
// appends one line to a shared file before it loads (so loader runs are counted outside the
// SDK, across every process), then takes loadMs, or never returns (hang: the test SIGKILLs it).
//
// argv[2]: a GetOrSetWorkerConfig as JSON. Prints {"ready": true} once connected, starts on a
// "go" line on stdin, prints {"loading": true} when its loader starts, and ends with one
// {"done": true, "values": [...]} line.
import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { connect } from '../../client/index.js';

export interface GetOrSetWorkerConfig {
  readonly id: number;
  /** The latchkey server this worker talks to, host:port. */
  readonly address: string;
  readonly store: string;
  readonly key: string;
  readonly concurrency: number;
  readonly leaseMs: number;
  readonly loadMs: number;
  /** The loader never returns. */
  readonly hang: boolean;
  /** One line per loader run: "<id> <ms since the epoch>". */
  readonly runsFile: string;
  /** Bounds each getOrSet, waits included. */
  readonly deadlineMs: number;
}

const config = JSON.parse(process.argv[2]!) as GetOrSetWorkerConfig;
const client = connect(config.address, { deadlineMs: config.deadlineMs });
const cache = client.cache(config.store);
await cache.get(`${config.key}:probe`);
console.log(JSON.stringify({ ready: true }));

const input = createInterface({ input: process.stdin });
for await (const line of input) if (line.trim() === 'go') break;
input.close();

const loader = async () => {
  appendFileSync(config.runsFile, `${config.id} ${Date.now()}\n`);
  console.log(JSON.stringify({ loading: true }));
  if (config.hang) await new Promise(() => {});
  await new Promise((resolve) => setTimeout(resolve, config.loadMs));
  return `loaded by ${config.id}`;
};
const values = await Promise.all(
  Array.from({ length: config.concurrency }, () =>
    cache.getOrSet(config.key, loader, { ttlMs: 60_000, leaseMs: config.leaseMs }).then((v) => v.toString()),
  ),
);
console.log(JSON.stringify({ done: true, values }));
await client.close();
