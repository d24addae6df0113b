// A test process that owns a network (netns.ts) with a process running inside it, for the
// harness's own tests (test/partitions/netns.test.ts): prints {"ready": true, "id": ..., "pid": ...}
// (the network's id, the inner process's pid) and then waits until it is signalled.
import { createNetwork } from './netns.js';

const net = await createNetwork(['x', 'y']);
const child = net.host('x').launch('sleep', ['600'], { stdio: 'ignore' });
console.log(JSON.stringify({ ready: true, id: net.id, pid: child.pid }));
// Keeps the process (and so the network) alive until a signal ends it.
setInterval(() => {}, 60_000);
