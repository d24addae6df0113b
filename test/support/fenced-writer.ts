// A lock holder in its own process, so a test can freeze it (SIGSTOP) past its lease's TTL.
// argv: address store lock key ttlMs [pipeline|unary]. Acquires, writes "first" fenced, prints
// {"token": "..."}; then on each stdin line writes that line fenced with the same handle and
// prints {"ok": true} or {"error": "<class name>", "message": "..."}.
import { createInterface } from 'node:readline';
import { connect } from '../../client/index.js';

const [address, store, lockName, key, ttlMs, mode] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
  string?,
];
const client = connect(address, { pipeline: mode !== 'unary' });
const lock = await client.lock(lockName, { ttlMs: Number(ttlMs) });
const cache = client.cache(store);
await cache.set(key, 'first', { fence: lock });
console.log(JSON.stringify({ token: lock.fencingToken.toString() }));
for await (const line of createInterface({ input: process.stdin })) {
  try {
    await cache.set(key, line, { fence: lock });
    console.log(JSON.stringify({ ok: true }));
  } catch (err) {
    console.log(JSON.stringify({ error: (err as Error).name, message: (err as Error).message }));
  }
}
await client.close();
