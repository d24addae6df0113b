// A lock holder in its own process, so a test can SIGKILL it while it holds the lock.
// argv: address lockName backend ttlMs. Acquires (try once), prints {"token": "...",
// "ttlMs": N}, then keeps the lease refreshed through its handle until it is killed or its
// stdin closes (then it releases and exits).
import { connect } from '../../client/index.js';

const [address, lockName, backend, ttlMs] = process.argv.slice(2) as [string, string, string, string];
const client = connect(address);
const lock = await client.lock(lockName, { backend, ttlMs: Number(ttlMs), owner: `holder-${process.pid}` });
lock.signal.addEventListener('abort', () =>
  console.error(`holder: lock signal aborted: ${String(lock.signal.reason)}`),
);
console.log(JSON.stringify({ token: lock.fencingToken.toString(), ttlMs: lock.ttlMs }));
// The handle's timers do not keep a process alive; stdin (a pipe from the test) does.
process.stdin.resume();
process.stdin.once('end', () => void client.close());
