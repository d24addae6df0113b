// A candidate in its own process, so a test can SIGKILL or SIGSTOP it while it leads.
// argv: address election backend ttlMs sessions value [key]; sessions "on" campaigns inside
// the client's lock session (the SDK's default), "off" (sessions: false) with a unary Campaign
// in a session of its own, kept alive by KeepAlive.
// Campaigns (waiting as long as it takes), prints {"leading": token, "ttlMs": N, "at": ms},
// then keeps its leadership alive until it is killed or its stdin closes (then it resigns and
// exits). Prints {"lost": reason, "at": ms} when the leadership's signal aborts. With `key`,
// it writes the key every 50 ms fenced by its leadership, printing {"wrote": i, "at": ms} or
// {"fenced": i, "at": ms}: like a leader that does not look at its signal before each write
// (a process that was paused), whose writes only the fence can stop.
import { connect, FencedOutError } from '../../client/index.js';

const [address, election, backend, ttlMs, sessions, value, key] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  'on' | 'off',
  string,
  string?,
];
const client = connect(address, { sessions: sessions === 'on' });
const leadership = await client.campaign(election, value, { backend, ttlMs: Number(ttlMs) });
leadership.signal.addEventListener('abort', () =>
  console.log(JSON.stringify({ lost: String(leadership.signal.reason), at: Date.now() })),
);
console.log(
  JSON.stringify({ leading: leadership.fencingToken.toString(), ttlMs: leadership.ttlMs, sessions, at: Date.now() }),
);

if (key !== undefined) {
  const cache = client.cache();
  for (let i = 0; ; i++) {
    try {
      await cache.set(key, `${value}:${i}`, { fence: leadership });
      console.log(JSON.stringify({ wrote: i, at: Date.now() }));
    } catch (err) {
      if (!(err instanceof FencedOutError)) throw err;
      console.log(JSON.stringify({ fenced: i, at: Date.now() }));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
// The leadership's timers do not keep a process alive; stdin (a pipe from the test) does.
process.stdin.resume();
process.stdin.once('end', () => void client.close());
