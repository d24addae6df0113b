// A lock holder in its own process, so a test can SIGKILL (or SIGSTOP) it while it holds the
// lock. argv: address lockName backend ttlMs [sessions: "unary" for sessions: false].
// Acquires (try once), prints {"token": "...", "ttlMs": N}, then keeps the lease alive
// through its handle until it is killed or its stdin closes (then it releases and exits).
// Prints {"aborted": "<reason>"} when the handle's signal aborts.
import { connect } from '../../client/index.js';

const [address, lockName, backend, ttlMs, sessions] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string?,
];
const client = connect(address, { sessions: sessions !== 'unary' });
const lock = await client.lock(lockName, { backend, ttlMs: Number(ttlMs), owner: `holder-${process.pid}` });
lock.signal.addEventListener('abort', () => {
  console.error(`holder: lock signal aborted: ${String(lock.signal.reason)}`);
  console.log(JSON.stringify({ aborted: String(lock.signal.reason), at: Date.now() }));
});
console.log(JSON.stringify({ token: lock.fencingToken.toString(), ttlMs: lock.ttlMs }));
// The handle's timers do not keep a process alive (a session's stream does, while it is
// open); stdin (a pipe from the test) does in any case.
process.stdin.resume();
process.stdin.once('end', () => void client.close());
